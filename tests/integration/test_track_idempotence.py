"""Track is idempotent by event_id: a retry, to any worker, replica or after a restart, is
acknowledged and stored once (within SETLIST_TRACK_DEDUPE_HOURS)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from feature_repo.build import prepare, prepare_table
from serving.bootstrap import Server
from serving.dedupe import Dedupe, MemoryDedupe, RedisDedupe, SqliteDedupe, dedupe_path, make_dedupe
from serving.errors import DeadlineExceeded, Unavailable
from serving.journal import Journal
from serving.tracking import Tracker
from serving.types import TrackEvent
from setlist.eventlog import EventLog, Quarantine
from setlist.settings import Settings
from tests.fakes.dataplane import START, Dataplane, FakeClock, FakeJournal
from tests.servers import free_port

NOW_MS = int(START * 1000)


def batch(prefix: str = "e", n: int = 5) -> list[TrackEvent]:
    return [
        TrackEvent(f"{prefix}{i}", f"user-{i}", "item-3", "play", NOW_MS - 1000 + i, "s1", {}, 0.9) for i in range(n)
    ]


def logged_ids(settings: Settings) -> list[str]:
    return sorted(EventLog(settings.events_dir).read(columns=["event_id"])["event_id"])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", hmac_key="test-hmac-key", impressions_enabled=False)


def worker(settings: Settings, n: int, **parts: Any) -> tuple[Dataplane, Server]:
    """One serving worker on the shared data dir: its own journal, the profile's dedupe (not a fake)."""
    from feature_repo.declarations import load

    plane = Dataplane(settings, load(settings))
    journal = Journal(settings.wal_dir / f"worker-{n}", EventLog(settings.events_dir), max_age_s=3600)
    return plane, plane.build(journal=journal, **{"dedupe": None, **parts})


def test_the_same_batch_to_two_workers_and_after_a_restart_is_stored_once(settings: Settings) -> None:
    (_, first), (second_plane, second) = worker(settings, 0), worker(settings, 1)
    try:
        assert first.track(batch()).accepted == 5
        assert second.track(batch()).accepted == 5  # the retry is acknowledged: the client did nothing wrong
        assert second.track(batch()[:2] + batch("new", 1)).accepted == 3
    finally:
        first.close()
        second.close()
    assert ("record_track_duplicates", (5,)) in second_plane.metrics.calls
    assert ("record_track_duplicates", (2,)) in second_plane.metrics.calls
    _, restarted = worker(settings, 0)
    try:
        assert restarted.track(batch()).accepted == 5
    finally:
        restarted.close()
    assert logged_ids(settings) == sorted([f"e{i}" for i in range(5)] + ["new0"])


def test_redis_dedupes_across_replicas(settings: Settings, redis_server: Any) -> None:
    redis_server.start()  # a fault test may have left it stopped
    redis_server.flush()
    replicas = [RedisDedupe(redis_server.url, 3600, 0.5) for _ in range(2)]
    (_, a), (_, b) = worker(settings, 0, dedupe=replicas[0]), worker(settings, 1, dedupe=replicas[1])
    try:
        assert a.track(batch()).accepted == 5 and b.track(batch()).accepted == 5
    finally:
        a.close()
        b.close()
    assert logged_ids(settings) == [f"e{i}" for i in range(5)]
    with redis_server.client() as client:
        assert 0 < client.ttl(replicas[0].prefix + "e0") <= 3600  # marks expire with the window


def test_production_dedupes_through_redis_and_local_through_sqlite(settings: Settings) -> None:
    dedupe = make_dedupe(settings.model_copy(update={"profile": "production"}))  # connects lazily
    try:
        assert isinstance(dedupe, RedisDedupe)
    finally:
        dedupe.close()
    local = make_dedupe(settings)
    try:
        assert isinstance(local, SqliteDedupe) and dedupe_path(settings).exists()
        assert not dedupe_path(settings).is_relative_to(settings.wal_dir)  # off the journal's disk
    finally:
        local.close()


def test_an_unreachable_dedupe_store_does_not_fail_track(tmp_path: Path) -> None:
    journal = FakeJournal()
    down = RedisDedupe(f"redis://127.0.0.1:{free_port()}/0", 3600, 0.2)
    degraded: list[str] = []
    tracker = Tracker(
        journal, None, Quarantine(tmp_path / "q"), None, clock=lambda: START, dedupe=down, on_degraded=degraded.append
    )
    try:
        assert tracker.track(batch(), None, str).accepted == 5
        assert len(journal.rows) == 5  # stored: at worst a retry is stored twice, never an event lost
        assert degraded == ["dedupe_unavailable"]  # counted, so an operator sees the check was skipped
    finally:
        tracker.close()


class FailingJournal(FakeJournal):
    """A journal whose disk fails ``failures`` times."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def append(self, rows: list[dict[str, Any]], timeout: float | None = None, on_late: Any = None) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        super().append(rows)


def stored(dedupe: Dedupe, ids: list[str]) -> set[str]:
    """The ids ``dedupe`` knows as stored (its claims on the others are released again)."""
    claim = dedupe.claim(ids)
    dedupe.release(claim.fresh)
    return claim.stored


def test_an_event_is_marked_stored_only_once_it_is_journaled(tmp_path: Path) -> None:
    journal, dedupe = FailingJournal(failures=1), MemoryDedupe()
    tracker = Tracker(journal, None, Quarantine(tmp_path / "q"), None, clock=lambda: START, dedupe=dedupe)
    try:
        with pytest.raises(OSError):
            tracker.track(batch(), None, str)
        assert stored(dedupe, ["e0"]) == set()  # not acknowledged, and its claim released: the retry is stored
        assert tracker.track(batch(), None, str).accepted == 5
        assert [r["event_id"] for r in journal.rows] == [f"e{i}" for i in range(5)]
        assert stored(dedupe, ["e0", "e4"]) == {"e0", "e4"}
    finally:
        tracker.close()


def make(kind: str, tmp_path: Path, clock: FakeClock, redis_server: Any = None) -> Dedupe:
    if kind == "memory":
        return MemoryDedupe(3600, clock, claim_s=30)
    if kind == "sqlite":
        return SqliteDedupe(tmp_path / "d.sqlite", 3600, clock, claim_s=30)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_marks_expire_after_the_window(tmp_path: Path, kind: str) -> None:
    clock = FakeClock()
    dedupe = make(kind, tmp_path, clock)
    try:
        dedupe.commit(["a"])
        clock.advance(3599)
        assert stored(dedupe, ["a", "b"]) == {"a"}
        clock.advance(2)
        assert stored(dedupe, ["a"]) == set()
        dedupe.commit(["a"])  # a mark after expiry starts a new window
        clock.advance(3599)
        assert stored(dedupe, ["a"]) == {"a"}
    finally:
        dedupe.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_claim_holds_off_a_second_attempt_until_released_or_expired(tmp_path: Path, kind: str) -> None:
    clock = FakeClock()
    dedupe = make(kind, tmp_path, clock)
    try:
        first = dedupe.claim(["a", "b"])
        assert first.fresh == ["a", "b"] and not first.busy
        second = dedupe.claim(["a", "c"])
        assert second.busy == {"a"} and second.fresh == ["c"]  # a is being written: not twice
        dedupe.release(["a"])
        assert dedupe.claim(["a"]).fresh == ["a"]  # the first write failed: the retry may store it
        clock.advance(31)
        assert dedupe.claim(["a", "b"]).fresh == ["a", "b"]  # a dead writer's claims expire
        dedupe.commit(["a"])
        dedupe.release(["a"])  # releasing never drops a stored mark
        assert dedupe.claim(["a"]).stored == {"a"}
    finally:
        dedupe.close()


def test_redis_claims_hold_off_a_second_attempt_and_release_only_claims(redis_server: Any) -> None:
    redis_server.start()
    redis_server.flush()
    a, b = RedisDedupe(redis_server.url, 3600, 0.5, claim_s=30), RedisDedupe(redis_server.url, 3600, 0.5, claim_s=30)
    try:
        assert a.claim(["x", "y"]).fresh == ["x", "y"]
        with redis_server.client() as client:
            assert 0 < client.pttl(a.prefix + "y") <= 30_000  # claims live briefly
        assert b.claim(["x"]).busy == {"x"}  # another replica's attempt is still writing it
        a.commit(["x"])
        a.release(["y"])
        answer = b.claim(["x", "y"])
        assert answer.stored == {"x"} and answer.fresh == ["y"]
        b.release(["x", "y"])  # only y was a claim
        assert a.claim(["x"]).stored == {"x"}
    finally:
        a.close()
        b.close()


class WatchedDedupe(SqliteDedupe):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.committed = threading.Event()

    def commit(self, ids: Any) -> None:
        super().commit(ids)
        self.committed.set()


def test_a_retry_while_the_first_attempt_is_writing_is_refused_then_acknowledged_once(
    settings: Settings,
) -> None:
    """The client's deadline passes while its events are being written; it retries at once (refused:
    still being written), and again after the write landed (acknowledged, not stored again)."""
    held, release = threading.Event(), threading.Event()

    def slow_sync(fd: int) -> None:
        held.set()
        assert release.wait(10)
        os.fsync(fd)

    events = EventLog(settings.events_dir)
    journal = Journal(settings.wal_dir / "worker-0", events, max_age_s=3600, sync=slow_sync, append_timeout_s=0.05)
    dedupe = WatchedDedupe(settings.wal_dir / "dedupe.sqlite", 3600, claim_s=30)
    tracker = Tracker(journal, None, Quarantine(settings.quarantine_dir), None, clock=lambda: START, dedupe=dedupe)
    try:
        with pytest.raises(DeadlineExceeded, match="may be stored"):
            tracker.track(batch(), None, str)
        assert held.is_set()
        with pytest.raises(Unavailable, match="still being written"):
            tracker.track(batch(), None, str)
        release.set()
        assert dedupe.committed.wait(10)  # the writer thread settles the claims once the fsync is done
        assert tracker.track(batch(), None, str).duplicates == frozenset(f"e{i}" for i in range(5))
    finally:
        tracker.close()
    assert logged_ids(settings) == [f"e{i}" for i in range(5)]


def test_the_feature_build_counts_a_repeated_event_id_once() -> None:
    events = pd.DataFrame(
        {
            "event_id": ["x", "y", "x"],
            "timestamp": pd.to_datetime([NOW_MS, NOW_MS + 1, NOW_MS], unit="ms", utc=True),
            "item_id": ["i1", "i2", "i1"],
        }
    )
    assert list(prepare(events)["item_id"]) == ["i1", "i2"]
    table = pa.Table.from_pandas(events, preserve_index=False)
    assert prepare_table(table).column("item_id").to_pylist() == ["i1", "i2"]


def test_two_deployments_on_one_redis_database_keep_their_marks_apart(redis_server: Any) -> None:
    """Each deployment's marks live under its Feast project's name: an event id the staging deployment saw
    is fresh to production's (else production would acknowledge it and store nothing)."""
    redis_server.start()
    redis_server.flush()
    staging = RedisDedupe(redis_server.url, 3600, 0.5, namespace="staging")
    production = RedisDedupe(redis_server.url, 3600, 0.5, namespace="production")
    try:
        assert staging.claim(["e1"]).fresh == ["e1"]
        staging.commit(["e1"])
        assert production.claim(["e1"]).fresh == ["e1"] and staging.claim(["e1"]).stored == {"e1"}
        with redis_server.client() as client:
            assert client.exists("staging:track:seen:e1") and client.exists("production:track:seen:e1")
    finally:
        staging.close()
        production.close()
