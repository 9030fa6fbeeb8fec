"""Experiments in the real server on the tiny world: arms, impressions, Track arms, aliases, canary.

Run with ``-p tests.world`` (the ``tiny_copy`` fixture).
"""

from __future__ import annotations

import threading
from pathlib import Path

from serving.bootstrap import build
from serving.client import SetlistClient, new_event
from serving.grpc.server import start_server
from serving.impressions import ImpressionLog
from serving.types import RankQuery
from setlist.eventlog import EventLog
from setlist.experiment import load_experiment
from setlist.impressions import read_impressions, to_table

EXPERIMENT = """
name: t-ab
salt: t-ab-1
control: control
holdout: {share: 0.1, salt: test-holdout}
arms:
  control:    {share: 0.3, strategy: popularity}
  champion:   {share: 0.4, strategy: model, alias: champion}
  challenger: {share: 0.3, strategy: model, alias: challenger}
"""
CTX = {"device": "mobile", "locale": "en_US"}


def _settings(world, tmp_path: Path, text: str = EXPERIMENT, **over):
    path = tmp_path / "experiments.yaml"
    path.write_text(text)
    return world.settings.model_copy(
        update={"port": 0, "metrics_port": 0, "host": "127.0.0.1", "experiments_file": path, **over}
    )


def _personal(world, n: int = 40) -> list[str]:
    """Users who consented to personalization and to analytics (only they leave impression records)."""
    both = world.users["consent_personalization"] & world.users["consent_analytics"]
    return world.users.loc[both, "user_id"].astype(str).tolist()[:n]


def test_rank_returns_before_the_impression_writer_runs_and_records_carry_arm_positions_scores(tiny_copy, tmp_path):
    server = build(_settings(tiny_copy, tmp_path))
    entered, release, written = threading.Event(), threading.Event(), []

    def blocked(records):
        entered.set()
        assert release.wait(10)
        written.extend(records)
        return len(records)

    server.service.impressions = log = ImpressionLog(blocked, flush_s=0.0)
    users = _personal(tiny_copy, 6)
    first = server.rank(RankQuery(users[0], 5, CTX))
    assert entered.wait(5) and not written  # the writer holds the first record and cannot finish…
    results = [server.rank(RankQuery(u, 5, CTX)) for u in users[1:]]  # …and Rank keeps answering
    assert not written
    release.set()
    assert log.flush()
    rows = to_table(written).to_pylist()
    assert len(written) == len(users) and len(rows) == 5 * len(users)
    exp = load_experiment(server.service.settings.experiments_file)
    for record, result, user in zip(written, [first, *results], users):
        assert record.arm == result.arm == exp.assign(server.service.pseudonym(user)).arm.name
        assert record.item_ids == tuple(i.item_id for i in result.items)
        assert record.scores == tuple(i.score for i in result.items) and record.experiment == "t-ab"
    assert [r["position"] for r in rows[:5]] == [1, 2, 3, 4, 5]
    server.close()


def test_grpc_arms_follow_the_assignment_and_track_rows_get_the_arm(tiny_copy, tmp_path):
    settings = _settings(tiny_copy, tmp_path)
    server = build(settings)
    exp = load_experiment(settings.experiments_file)
    users = _personal(tiny_copy, 30)
    with start_server(server, settings) as running:
        client = SetlistClient(f"127.0.0.1:{running.port}", timeout=10)
        assert client.wait_ready(timeout=30)
        replies = {u: client.rank(u, k=5, context=CTX) for u in users}
        for u, reply in replies.items():
            assert reply.arm == exp.assign(server.service.pseudonym(u)).arm.name
        assert {r.arm for r in replies.values()} == {"control", "champion", "challenger"}
        assert all(r.model_version == "candidates:1+ranker:1" for r in replies.values())
        u = users[0]
        sent = [
            new_event(u, replies[u].items[0].item_id, "play", "s1", 0.9, CTX),
            new_event(u, replies[u].items[1].item_id, "skip", "s1", None, {**CTX, "arm": "client-arm"}),
        ]
        client.track(sent)
        client.close()
    rows = EventLog(settings.events_dir).read().set_index("event_id")
    assert rows.loc[[e.event_id for e in sent], "arm"].tolist() == [replies[u].arm, "client-arm"]  # filled; kept
    shown = read_impressions(settings.impressions_dir, "t-ab")
    assert len(shown) == 5 * len(users) and set(shown["request_id"]) >= {r.request_id for r in replies.values()}
    no_analytics = tiny_copy.users.loc[~tiny_copy.users["consent_analytics"], "user_id"].astype(str).tolist()[:3]
    with start_server(build(settings), settings) as running, SetlistClient(f"127.0.0.1:{running.port}") as client:
        assert client.wait_ready(timeout=30)
        unrecorded = [client.rank(u, k=5, context=CTX).request_id for u in no_analytics]
    shown = read_impressions(settings.impressions_dir, "t-ab")
    assert no_analytics and not set(shown["request_id"]) & set(unrecorded)  # no record without analytics consent
    assert set(shown.loc[shown["arm"] == "control", "served"]) == {"popularity"}


def test_each_arm_serves_its_alias_and_a_broken_challenger_falls_back_to_the_champion(tiny_copy, tmp_path):
    from tests.e2e.test_serving import _register_copy

    settings = _settings(tiny_copy, tmp_path, cache_enabled=False)
    _register_copy(settings)  # champion → v2 (a copy); challenger stays v1
    server = build(settings)
    live = server.service.live
    assert live.variants["champion"].bundle.ranker_version == "2"
    assert live.variants["challenger"].bundle.ranker_version == "1"
    by_arm = {}
    for u in _personal(tiny_copy, 40):
        r = server.rank(RankQuery(u, 5, CTX))
        by_arm.setdefault(r.arm, set()).add(r.model_version)
    assert by_arm["champion"] == {"candidates:2+ranker:2"} and by_arm["challenger"] == {"candidates:1+ranker:1"}
    server.close()


def test_a_canary_that_fails_is_invisible_to_callers_and_rolled_back_on_its_error_budget(tiny_copy, tmp_path):
    from mlflow import MlflowClient

    from tests.e2e.test_serving import _register_copy

    settings = _settings(
        tiny_copy,
        tmp_path,
        experiments_file=None,
        canary_enabled=True,
        canary_steps=[0.5, 1.0],
        canary_min_requests=20,
        cache_enabled=False,
    )
    server = build(settings)
    _register_copy(settings)
    assert server.refresh() and server.rollout.active
    candidate = server.rollout.candidate

    class Exploding:
        def inplace_predict(self, X):
            raise RuntimeError("boom")

    object.__setattr__(candidate, "booster", Exploding())  # a bug that only shows on real traffic
    replies = [server.rank(RankQuery(u, 5, CTX)) for u in _personal(tiny_copy, 40)]
    assert all(len(r.items) == 5 and r.model_version == "candidates:1+ranker:1" for r in replies)
    assert server.check_canary() and server.rollout.state.phase == "rolled_back"
    assert "error budget" in server.rollout.state.reason
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert str(client.get_model_version_by_alias(settings.ranker_model, "champion").version) == "1"
    tags = client.get_model_version(settings.ranker_model, str(candidate.ranker_version)).tags
    assert tags["rollout.status"] == "rolled_back" and "error budget" in tags["rollout.reason"]
    assert not server.refresh() and server.service.live.bundle.ranker_version == "1"
    server.close()
