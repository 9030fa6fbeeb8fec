"""The baseline engine ranks like the fast path (same candidates, same model, same scores) and keeps
to the gRPC contract, so bench compares how the work is done, not different work."""

from __future__ import annotations

import pytest

from serving.baseline import build_baseline
from serving.bootstrap import build
from serving.client import ClientError, SetlistClient, new_event
from serving.grpc.server import start_server
from serving.types import RankQuery


def _settings(world):
    return world.settings.model_copy(update={"port": 0, "metrics_port": 0, "host": "127.0.0.1", "cache_enabled": False})


def test_baseline_and_fast_path_rank_identically(tiny_copy):
    settings = _settings(tiny_copy)
    baseline, fast = build_baseline(settings), build(settings)
    try:
        users = tiny_copy.users[tiny_copy.users["consent_personalization"]].head(8)
        compared = 0
        for user_id, locale, device in zip(users["user_id"], users["locale"], users["device"]):
            q = RankQuery(str(user_id), 10, {"device": str(device), "locale": str(locale)})
            a, b = baseline.rank(q), fast.rank(q)
            assert a.arm == "baseline" and a.model_version == b.model_version
            assert [i.item_id for i in a.items] == [i.item_id for i in b.items]
            assert [i.score for i in a.items] == pytest.approx([i.score for i in b.items], abs=1e-5)
            compared += 1
        assert compared == 8
    finally:
        fast.close()
        baseline.close()


def test_both_engines_weave_the_searched_genre_into_a_newcomers_first_slate(tiny_copy):
    settings = _settings(tiny_copy).model_copy(update={"new_user_genre_cap": 0.5})
    baseline, fast = build_baseline(settings), build(settings)
    try:
        index = fast.service.live.bundle.index
        genre = next(g for g in index.genres if g != "unknown")
        consent = {"consent_personalization": "true", "consent_analytics": "true", "device": "mobile"}
        search = new_event("brand-new-listener", "", "search", context=consent, query=genre)
        assert fast.track([search]).accepted == 1  # a search, no profile, nothing played
        q = RankQuery("brand-new-listener", 6, {"device": "mobile"})
        a, b = baseline.rank(q), fast.rank(q)
        assert [i.item_id for i in a.items] == [i.item_id for i in b.items]
        genres = [index.genres[index.item_genre[index.item_index[i.item_id]]] for i in b.items]
        # the searched genre on every other slot from the first, the cohort's popular items between
        assert [g == genre for g in genres] == [True, False] * 3
    finally:
        fast.close()
        baseline.close()


def test_baseline_serves_rank_over_grpc_and_refuses_track(tiny_copy):
    settings = _settings(tiny_copy)
    with start_server(build_baseline(settings), settings) as running:
        with SetlistClient(f"127.0.0.1:{running.port}", timeout=30) as client:
            assert client.wait_ready(timeout=30)
            user = str(tiny_copy.users["user_id"].iloc[0])
            reply = client.rank(user, k=5, context={"device": "mobile", "locale": "en_US"})
            assert len(reply.items) == 5 and reply.arm == "baseline"
            with pytest.raises(ClientError) as err:
                client.rank(user, k=0)
            assert err.value.code.name == "INVALID_ARGUMENT"
            with pytest.raises(ClientError) as err:
                client.track([new_event(user, reply.items[0].item_id, "skip")])
            assert err.value.code.name == "INVALID_ARGUMENT" and "fast engine" in err.value.message
