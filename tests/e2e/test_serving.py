"""The ranking server on the tiny world: a real gRPC server on a free port, real stores."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from serving.bootstrap import build
from serving.client import ClientError, SetlistClient, new_event
from serving.grpc.server import start_server
from serving.item_table import differences


def _settings(world, **over):
    return world.settings.model_copy(update={"port": 0, "metrics_port": 0, "host": "127.0.0.1", **over})


@pytest.fixture
def running(tiny_copy):
    settings = _settings(tiny_copy)
    server = build(settings)
    with start_server(server, settings) as running:
        client = SetlistClient(f"127.0.0.1:{running.port}", timeout=10)
        assert client.wait_ready(timeout=30)
        yield tiny_copy, server, client
        client.close()


def _personal_user(world) -> str:
    users = world.users
    return str(users.loc[users["consent_personalization"], "user_id"].iloc[0])


def test_rank_returns_k_distinct_items_in_descending_score_order(running):
    world, _, client = running
    reply = client.rank(_personal_user(world), k=10, context={"device": "mobile", "locale": "en_US"})
    ids = [i.item_id for i in reply.items]
    scores = [i.score for i in reply.items]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert scores == sorted(scores, reverse=True)
    assert reply.arm == "champion" and not reply.degraded and reply.model_version


def test_rank_is_deterministic_for_the_same_state(tiny_copy):
    settings = _settings(tiny_copy, cache_enabled=False)
    server = build(settings)
    user = _personal_user(tiny_copy)
    from serving.types import RankQuery

    first = server.rank(RankQuery(user, 20, {"device": "mobile"}))
    second = server.rank(RankQuery(user, 20, {"device": "mobile"}))
    assert first == second and not first.cache_hit
    server.close()


def test_a_callers_slate_is_ordered_by_the_served_ranker(running):
    world, _, client = running
    user = _personal_user(world)
    own = [i.item_id for i in client.rank(user, k=30, context={"device": "mobile"}).items]
    slate = own[::-1]  # the caller's order is not the ranker's
    reply = client.rank(user, k=10, context={"device": "mobile"}, candidates=slate)
    got = [i.item_id for i in reply.items]
    assert len(got) == 10 and set(got) <= set(own) and reply.unknown_item_ids == ()
    assert [i.score for i in reply.items] == sorted((i.score for i in reply.items), reverse=True)
    assert got != slate[:10] and reply.arm == "champion" and not reply.degraded


def test_cache_hit_then_track_invalidates_and_changes_the_ranking(running):
    world, _, client = running
    user = _personal_user(world)
    ctx = {"device": "mobile", "locale": "en_US"}
    first = client.rank(user, k=5, context=ctx)
    again = client.rank(user, k=5, context=ctx)
    assert not first.cache_hit and again.cache_hit and again.items == first.items
    top = first.items[0].item_id
    accepted, rejected = client.track([new_event(user, top, "not_interested", session_id="s-test", context=ctx)])
    assert accepted == 1 and not rejected
    after = client.rank(user, k=5, context=ctx)
    assert not after.cache_hit
    assert top not in [i.item_id for i in after.items]


def test_a_skip_changes_the_next_ranking(running):
    world, _, client = running
    user = str(world.users.loc[world.users["consent_personalization"], "user_id"].iloc[1])
    before = client.rank(user, k=10, context={"device": "desktop"})
    client.track([new_event(user, before.items[0].item_id, "skip", session_id="s-skip")])
    after = client.rank(user, k=10, context={"device": "desktop"})
    assert [i.item_id for i in after.items] != [i.item_id for i in before.items]


def test_cold_start_and_opted_out_users_get_cohort_popularity(running):
    world, _, client = running
    opted_out = str(world.users.loc[~world.users["consent_personalization"], "user_id"].iloc[0])
    for user in ("someone-we-have-never-seen", opted_out):
        reply = client.rank(user, k=5, context={"device": "mobile", "locale": "en_US"}, explain=True)
        assert reply.arm == "popularity" and len(reply.items) == 5
        assert all(i.reasons for i in reply.items)


def test_explain_returns_reasons_for_every_item(running):
    world, _, client = running
    reply = client.rank(_personal_user(world), k=5, explain=True)
    assert all(i.reasons for i in reply.items)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"user_id": "", "k": 5}, "user_id is empty"),
        ({"user_id": "x" * 300, "k": 5}, "at most"),
        ({"user_id": "u", "k": 0}, "k must be between"),
        ({"user_id": "u", "k": 100000}, "k must be between"),
        ({"user_id": "u", "k": 5, "exclude": [f"i{n}" for n in range(2000)]}, "exclude_item_ids"),
    ],
)
def test_bad_rank_requests_get_invalid_argument(running, kwargs, message):
    _, _, client = running
    with pytest.raises(ClientError) as err:
        client.rank(**kwargs)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and message in str(err.value)


@pytest.mark.parametrize(
    "event, message",
    [
        (dict(type="dance"), "unknown_type"),
        (dict(timestamp_ms=int(time.time() * 1000) + 86_400_000), "future_timestamp"),
        (dict(item_id=""), "missing_id"),
    ],
)
def test_bad_track_events_get_invalid_argument_and_are_quarantined(running, event, message):
    world, _, client = running
    from dataclasses import replace

    base = new_event("u1", "track_000001", "play", value=0.9)
    with pytest.raises(ClientError) as err:
        client.track([replace(base, **event)])
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and message in str(err.value)
    from setlist.eventlog import Quarantine

    assert Quarantine(world.settings.quarantine_dir).read()["reason"].str.startswith(message).any()


def test_health_goes_from_not_serving_to_serving(tiny_copy):
    settings = _settings(tiny_copy)
    server = build(settings, load=False)
    with start_server(server, settings) as running:
        client = SetlistClient(f"127.0.0.1:{running.port}", timeout=5)
        assert client.health() == "NOT_SERVING"
        server.refresh()
        assert client.wait_ready(timeout=30)
        assert client.health() == "SERVING"
        client.close()


def test_item_table_equals_the_online_store(tiny_copy):
    server = build(_settings(tiny_copy))
    live = server.service.live
    assert differences(live.items, server.online, live.bundle.index.item_ids) == []
    server.close()


def _register_copy(settings, corrupt: bool = False) -> None:
    """A new champion pair: the same models again, or a ranker whose artifact is garbage."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    cand = client.get_model_version_by_alias(settings.candidates_model, "champion")
    rank = client.get_model_version_by_alias(settings.ranker_model, "champion")
    new_c = mlflow.register_model(f"models:/{settings.candidates_model}/{cand.version}", settings.candidates_model)
    if corrupt:
        import tempfile
        from pathlib import Path

        bad = Path(tempfile.mkdtemp()) / "MLmodel"
        bad.write_text("this is not a model\n")
        new_r = client.create_model_version(settings.ranker_model, str(bad.parent), run_id=rank.run_id)
    else:
        new_r = mlflow.register_model(f"models:/{settings.ranker_model}/{rank.version}", settings.ranker_model)
    client.set_registered_model_alias(settings.candidates_model, "champion", new_c.version)
    client.set_registered_model_alias(settings.ranker_model, "champion", new_r.version)


def test_hot_reload_switches_versions_with_no_failed_request(running):
    world, server, client = running
    user = _personal_user(world)
    before = client.rank(user, k=5).model_version
    failures, versions, stop = [], set(), threading.Event()

    def hammer() -> None:
        n = 0
        while not stop.is_set():
            try:
                versions.add(client.rank(f"{user}" if n % 2 else f"load-{n}", k=5).model_version)
            except ClientError as exc:  # pragma: no cover - the assertion below reports it
                failures.append(exc)
            n += 1

    t = threading.Thread(target=hammer)
    t.start()
    _register_copy(world.settings)
    assert server.refresh()
    after = client.rank(f"{user}-after", k=5).model_version
    stop.set()
    t.join()
    assert not failures and after != before and versions <= {before, after}


def test_a_corrupt_champion_is_refused_and_the_previous_keeps_serving(running):
    world, server, client = running
    before = client.rank(_personal_user(world), k=5).model_version
    _register_copy(world.settings, corrupt=True)
    assert not server.refresh()
    reply = client.rank(_personal_user(world) + "-x", k=5)
    assert reply.model_version == before
