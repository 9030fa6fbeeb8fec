"""Consent fails closed in serving: a withdrawal through Track reaches the very next Rank on every
worker, an event without a flag changes nothing, an unknown value is rejected, a user whose consent
row cannot be read gets popularity, and impressions are kept only with analytics consent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.bootstrap import Server
from serving.types import RankQuery, TrackEvent
from setlist.settings import Settings
from tests.fakes.dataplane import Dataplane, FakeJournal

USER = "user-0"


@pytest.fixture
def plane(tmp_path: Path) -> Dataplane:
    return Dataplane.fresh(tmp_path, reload_interval_s=3600, cache_ttl_s=300)


@pytest.fixture
def workers(plane: Dataplane) -> Iterator[tuple[Server, Server]]:
    """Two workers on one online store, each with its own in-process prediction cache."""
    a, b = plane.build(), plane.build()
    yield a, b
    a.close()
    b.close()


def event(plane: Dataplane, event_id: str, user: str = USER, **context: str) -> TrackEvent:
    return TrackEvent(event_id, user, "item-3", "play", int(plane.clock() * 1000), "s1", dict(context), 0.9)


def personalized(server: Server, user: str = USER) -> bool:
    return server.rank(RankQuery(user, 5)).arm != "popularity"


def consent_row(plane: Dataplane, user: str = USER) -> dict | None:
    pseudonym = plane.build(load=False).service.pseudonym(user)
    return plane.online.read("user_consent", [pseudonym])[0][1]


def on_journal(plane: Dataplane, held: Path) -> Server:
    """A server whose journal keeps its held withdrawals in ``held``, as serving.journal.Journal does."""
    return plane.build(journal=FakeJournal(held_path=held))


def withdraw_while_the_store_is_down(plane: Dataplane, server: Server) -> None:
    """A withdrawal taken while the online store does not answer (it is left down): acknowledged, its push held."""
    plane.online.fail = ConnectionError("online store down")
    assert server.track([event(plane, "w1", consent_personalization="false")]).accepted == 1
    assert server.service.tracker.withdrawals_held()


def test_a_withdrawal_through_one_worker_reaches_the_next_rank_on_the_other(
    plane: Dataplane, workers: tuple[Server, Server]
) -> None:
    a, b = workers
    assert personalized(b) and b.rank(RankQuery(USER, 5)).cache_hit  # personalized, and cached on b
    assert a.track([event(plane, "w1", consent_personalization="false")]).accepted == 1
    assert not personalized(b)  # the very next Rank, on the other worker, without waiting for a build


def test_an_event_without_a_flag_does_not_turn_personalization_back_on(
    plane: Dataplane, workers: tuple[Server, Server]
) -> None:
    a, b = workers
    a.track([event(plane, "w1", consent_personalization="no")])
    plane.clock.advance(1)
    a.track([event(plane, "w2")])  # no context at all
    assert not personalized(b)
    assert consent_row(plane)["consent_personalization"] is False
    plane.clock.advance(1)
    a.track([event(plane, "w3", consent_personalization="yes")])
    assert personalized(b)


def test_an_unknown_consent_value_is_rejected_alone_with_a_reason(plane: Dataplane, workers) -> None:
    a, _ = workers
    result = a.track([event(plane, "w1", consent_personalization="n"), event(plane, "w2")])
    assert result.accepted == 1
    assert [(r.event_id, r.reason.split(":")[0]) for r in result.rejected] == [("w1", "bad_consent")]
    assert "'n'" in result.rejected[0].reason


def test_a_new_user_without_a_flag_gets_the_default(tmp_path: Path) -> None:
    from feature_repo.declarations import load

    for default, want in (("deny", False), ("grant", True)):
        settings = Settings(data_dir=tmp_path / default, hmac_key="k", consent_default=default)
        plane = Dataplane(settings, load(settings))
        server = plane.build()
        try:
            server.track([event(plane, "n1", user="brand-new")])
        finally:
            server.close()
        assert consent_row(plane, "brand-new") == {"consent_personalization": want, "consent_analytics": want}


def test_no_consent_row_means_popularity_even_with_a_trained_embedding(plane: Dataplane, workers) -> None:
    a, _ = workers
    pseudonym = a.service.pseudonym(USER)
    plane.online.delete("user_consent", pseudonym)  # a push that failed, a row not yet published
    assert not personalized(a)


def test_a_degraded_read_without_known_rows_serves_popularity(plane: Dataplane, workers) -> None:
    a, _ = workers
    plane.online.fail = TimeoutError("online store down")
    result = a.rank(RankQuery(USER, 5))
    assert result.degraded and result.arm == "popularity"


def test_impressions_are_kept_only_with_analytics_consent(plane: Dataplane, workers) -> None:
    a, _ = workers
    a.rank(RankQuery(USER, 5))
    a.track([event(plane, "w1", consent_analytics="false")])
    a.rank(RankQuery(USER, 5))
    a.rank(RankQuery("user-1", 5))
    pseudonyms = [r.user_id for r in plane.impressions.records]
    assert pseudonyms == [a.service.pseudonym(USER), a.service.pseudonym("user-1")]


def test_a_withdrawal_the_store_did_not_take_holds_on_this_worker_and_reaches_the_store_once_it_answers(
    plane: Dataplane, workers: tuple[Server, Server]
) -> None:
    a, b = workers
    assert personalized(a) and personalized(b)  # both now hold the user's rows for degraded mode
    withdraw_while_the_store_is_down(plane, a)
    assert not personalized(a)  # a forgot the rows degraded mode would have served the user from
    plane.online.fail = None
    a.track([event(plane, "early", user="user-1")])  # within a second of the failure: not tried again yet
    assert a.service.tracker.withdrawals_held()
    plane.clock.advance(2)
    a.track([event(plane, "other", user="user-1")])  # the next Track pushes the held withdrawal
    assert not a.service.tracker.withdrawals_held()
    assert consent_row(plane)["consent_personalization"] is False
    assert not personalized(b) and not personalized(a)


def test_a_quiet_server_pushes_a_held_withdrawal_by_itself(plane: Dataplane) -> None:
    import time

    server = plane.build()
    try:
        withdraw_while_the_store_is_down(plane, server)
        plane.online.fail = None
        plane.clock.advance(2)
        server.start()  # the refresh loop tries held withdrawals every second, not every reload interval
        deadline = time.monotonic() + 20
        while server.service.tracker.withdrawals_held() and time.monotonic() < deadline:
            server.stop_event.wait(0.05)
        assert not server.service.tracker.withdrawals_held()
        assert consent_row(plane)["consent_personalization"] is False
    finally:
        server.close()


def test_a_consent_given_again_after_a_held_withdrawal_is_not_overwritten_by_its_retry(
    plane: Dataplane, workers: tuple[Server, Server]
) -> None:
    a, b = workers
    withdraw_while_the_store_is_down(plane, a)
    plane.clock.advance(5)
    a.track([event(plane, "w2", consent_personalization="true")])  # given again, while the store is still down
    assert a.service.tracker.withdrawals_held()  # held with the withdrawal, in order
    plane.online.fail = None
    plane.clock.advance(2)
    a.service.settle_withdrawals()  # the retry folds both: the later grant wins
    assert not a.service.tracker.withdrawals_held()
    assert consent_row(plane)["consent_personalization"] is True
    assert personalized(a) and personalized(b)


def test_a_consent_given_again_once_the_store_answers_wins_over_the_held_withdrawal(
    plane: Dataplane, workers: tuple[Server, Server]
) -> None:
    a, b = workers
    withdraw_while_the_store_is_down(plane, a)
    plane.online.fail = None
    plane.clock.advance(5)
    a.track([event(plane, "w2", consent_personalization="true")])  # the push sees the held withdrawal first
    assert not a.service.tracker.withdrawals_held()
    assert consent_row(plane)["consent_personalization"] is True
    assert personalized(a) and personalized(b)


def test_a_held_withdrawal_of_a_user_erased_meanwhile_is_dropped_not_written_back(
    plane: Dataplane, workers: tuple[Server, Server]
) -> None:
    from setlist.eventlog import EventLog

    a, _ = workers
    withdraw_while_the_store_is_down(plane, a)
    plane.online.fail = None
    pseudonym = a.service.pseudonym(USER)
    plane.online.delete("user_consent", pseudonym)  # what the erasure removes...
    EventLog(plane.settings.events_dir).tombstone(pseudonym)  # ...and records
    plane.clock.advance(2)
    a.service.settle_withdrawals()
    assert not a.service.tracker.withdrawals_held()
    assert plane.online.read("user_consent", [pseudonym])[0] == (None, None)


def test_a_withdrawal_held_by_a_process_that_died_is_pushed_by_the_next_one_on_its_journal(
    plane: Dataplane, tmp_path: Path
) -> None:
    """The held withdrawal is kept beside the journal: the next process there pushes it at once, rather
    than leaving the user personalized until the next materialize."""
    held = tmp_path / "wal" / "worker-0" / "withdrawals-held.json"
    held.parent.mkdir(parents=True)
    dead = on_journal(plane, held)
    withdraw_while_the_store_is_down(plane, dead)
    assert held.exists() and dead.service.pseudonym(USER) in held.read_text()
    plane.online.fail = None  # the process dies (never closed); the store comes back
    assert consent_row(plane)["consent_personalization"] is True  # the withdrawal never reached it
    successor = on_journal(plane, held)
    try:
        assert successor.service.tracker.withdrawals_held() == [successor.service.pseudonym(USER)]
        successor.service.settle_withdrawals()  # what its refresh loop does within a second
        assert consent_row(plane)["consent_personalization"] is False
        assert not successor.service.tracker.withdrawals_held() and not held.exists()
        assert not personalized(successor)
    finally:
        successor.close()


def test_a_grant_held_after_a_withdrawal_survives_the_restart_in_time_order(plane: Dataplane, tmp_path: Path) -> None:
    held = tmp_path / "withdrawals-held.json"
    dead = on_journal(plane, held)
    withdraw_while_the_store_is_down(plane, dead)
    plane.clock.advance(5)
    dead.track([event(plane, "w2", consent_personalization="true")])  # given again, the store still down
    plane.online.fail = None
    successor = on_journal(plane, held)
    try:
        assert successor.service.tracker.withdrawals_held() == [successor.service.pseudonym(USER)]
        successor.service.settle_withdrawals()
        assert consent_row(plane)["consent_personalization"] is True  # the later grant wins, as in one process
        assert not held.exists()
    finally:
        successor.close()


def test_a_server_takes_over_the_held_withdrawals_of_a_dead_pods_journal_and_pushes_them(plane: Dataplane) -> None:
    from datetime import UTC, datetime

    from setlist.journal_dirs import HELD, write_held

    pseudonym = plane.build(load=False).service.pseudonym(USER)
    orphan = plane.settings.wal_dir / "pod-gone" / "worker-3"  # no process holds its lock
    orphan.mkdir(parents=True)
    at = datetime.fromtimestamp(plane.clock(), tz=UTC)
    withdrawal = {"event_id": "w1", "timestamp": at, "consent_personalization": False, "consent_analytics": None}
    write_held(orphan / HELD, {pseudonym: [withdrawal]})
    server = plane.build(journal=None)  # its own journal under the WAL directory, and the start-up sweep
    try:
        assert server.service.tracker.withdrawals_held() == [pseudonym]
        assert not orphan.exists()  # taken over: kept in this server's own file until pushed
        server.service.settle_withdrawals()
        assert consent_row(plane)["consent_personalization"] is False and not personalized(server)
    finally:
        server.close()


def test_status_shows_withdrawals_held_until_the_store_takes_them(plane: Dataplane, tmp_path: Path) -> None:
    import pandas as pd

    from ops.status import event_lines
    from setlist.eventlog import EventLog
    from tests.unit.test_journal import row

    logged = pd.DataFrame([row(0)]).assign(timestamp=lambda f: pd.to_datetime(f.timestamp, unit="ms", utc=True))
    EventLog(plane.settings.events_dir).append(logged)  # status says more once the event log holds something
    (plane.settings.wal_dir / "worker-0").mkdir(parents=True)
    server = on_journal(plane, plane.settings.wal_dir / "worker-0" / "withdrawals-held.json")
    withdraw_while_the_store_is_down(plane, server)
    lines = {line.name: line for line in event_lines(plane.settings, plane.clock() + 90)}
    held = lines["consent withdrawals held"]
    assert held.mark == "warn" and held.value.startswith("1 user withdrew a consent")
    assert "1 journal directory" in held.value
    assert held.age_s == pytest.approx(90, abs=1)
    plane.online.fail = None
    plane.clock.advance(2)
    server.service.settle_withdrawals()
    assert "consent withdrawals held" not in {line.name for line in event_lines(plane.settings, plane.clock())}
    server.close()


def test_a_withdrawal_held_while_the_store_still_answers_reads_holds_from_the_next_rank(
    plane: Dataplane, workers: tuple[Server, Server]
) -> None:
    """A store that refuses writes but answers reads (a locked SQLite file, a Redis out of memory) still
    says yes: Rank goes by the withdrawal this process holds, not by that row."""
    a, _ = workers
    assert personalized(a)
    plane.online.fail_writes = ConnectionError("read-only store")
    assert a.track([event(plane, "w1", consent_personalization="false")]).accepted == 1
    assert a.service.tracker.withdrawals_held()
    assert consent_row(plane)["consent_personalization"] is True  # the store never took it
    assert not personalized(a)
    plane.online.fail_writes = None
    plane.clock.advance(2)
    a.service.settle_withdrawals()
    assert consent_row(plane)["consent_personalization"] is False and not personalized(a)
    assert not a.service.reader.withheld(a.service.pseudonym(USER))  # nothing left to go by but the store


def test_an_erased_users_held_withdrawal_leaves_the_file_at_the_next_call_whatever_the_store_does(
    plane: Dataplane, tmp_path: Path
) -> None:
    """Erasure waits for this file to forget the user: a store still refusing writes (so every retry
    fails and the next is put off) must not keep them there."""
    from setlist.eventlog import EventLog

    held = tmp_path / "withdrawals-held.json"
    server = on_journal(plane, held)
    try:
        withdraw_while_the_store_is_down(plane, server)
        pseudonym = server.service.pseudonym(USER)
        assert pseudonym in held.read_text()
        EventLog(plane.settings.events_dir).tombstone(pseudonym)
        server.service.settle_withdrawals()  # within WITHDRAWAL_RETRY_S of the failure: no retry due yet
        assert not held.exists() and not server.service.tracker.withdrawals_held()
    finally:
        server.close()


def test_a_closed_tracker_writes_no_more_held_withdrawals(plane: Dataplane, tmp_path: Path) -> None:
    """Once closed, the journal directory may already belong to a successor or a sweep."""
    held = tmp_path / "withdrawals-held.json"
    server = on_journal(plane, held)
    withdraw_while_the_store_is_down(plane, server)
    server.close()
    plane.online.fail = None
    successor = on_journal(plane, held)  # the next process on the same journal
    try:
        successors = held.read_text()
        plane.clock.advance(2)
        server.service.tracker.retry_withdrawals()  # the old process's last retry, after its close
        assert held.read_text() == successors  # not emptied under the successor, which still holds them
    finally:
        successor.close()


def test_a_held_file_whose_write_failed_is_written_at_a_later_settle(
    plane: Dataplane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erased user left memory, but the disk refused the write: no later change would write the file
    again on a quiet server, and an erasure waits for it, so a settle tries again."""
    import serving.tracking
    from setlist.eventlog import EventLog
    from setlist.journal_dirs import write_held

    held = tmp_path / "withdrawals-held.json"
    server = on_journal(plane, held)
    try:
        withdraw_while_the_store_is_down(plane, server)
        pseudonym = server.service.pseudonym(USER)
        EventLog(plane.settings.events_dir).tombstone(pseudonym)

        def full(path: Path, content: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(serving.tracking, "write_held", full)
        server.service.settle_withdrawals()
        assert not server.service.tracker.withdrawals_held() and pseudonym in held.read_text()
        monkeypatch.setattr(serving.tracking, "write_held", write_held)  # the disk has room again
        plane.clock.advance(2)
        server.service.settle_withdrawals()
        assert not held.exists()
    finally:
        server.close()


def test_held_flags_keep_the_latest_explicit_value_of_each_flag(plane: Dataplane) -> None:
    server = plane.build()
    try:
        plane.online.fail = ConnectionError("online store down")
        server.track([event(plane, "w1", consent_personalization="false", consent_analytics="false")])
        plane.clock.advance(5)
        server.track([event(plane, "w2", consent_personalization="true")])  # given again; analytics stays off
        server.track([event(plane, "x", user="user-1", consent_analytics="false")])  # analytics only
        generation, flags = server.service.tracker.held_flags()
        me, other = server.service.pseudonym(USER), server.service.pseudonym("user-1")
        assert flags == {
            me: {"consent_personalization": True, "consent_analytics": False},
            other: {"consent_analytics": False},
        }
        assert server.service.tracker.held_flags()[0] == generation  # asked again: the same answer
    finally:
        plane.online.fail = None
        server.close()


def test_an_older_generation_of_held_flags_never_replaces_a_newer_one(plane: Dataplane) -> None:
    """Two threads settling at once: the one that read the held set before a withdrawal must not clear it."""
    reader = plane.build(load=False).service.reader
    reader.withhold(2, {"u_1": {"consent_personalization": False}})
    reader.withhold(1, {})
    assert reader.withheld("u_1")
    reader.withhold(3, {})
    assert not reader.withheld("u_1")


def test_a_withheld_users_shared_cache_entry_is_not_served_when_its_bump_was_lost(plane: Dataplane) -> None:
    """A shared cache is looked up before any row is read; a Track's bump of it can fail too (the same
    Redis refusing writes): a user whose withdrawal this process holds is read first."""
    from serving.cache import MemoryCache

    class LostBumps(MemoryCache):
        shared = True

        def bump_users(self, users: object) -> None:
            return None  # the bump did not reach the shared store

    server = plane.build(cache=LostBumps(1000, 300, clock=plane.clock))
    try:
        assert personalized(server)
        assert server.rank(RankQuery(USER, 5)).cache_hit  # the personalized entry is in the shared cache
        plane.online.fail_writes = ConnectionError("read-only store")
        assert server.track([event(plane, "w1", consent_personalization="false")]).accepted == 1
        assert not personalized(server)
    finally:
        plane.online.fail_writes = None
        server.close()


def test_a_dead_writers_temporary_beside_the_journal_is_removed_by_its_next_owner(
    plane: Dataplane, tmp_path: Path
) -> None:
    from setlist.journal_dirs import HELD_TMP

    (tmp_path / HELD_TMP).write_text('{"version": 1, "users": {"u_1": [')  # killed mid-write
    server = on_journal(plane, tmp_path / "withdrawals-held.json")
    server.close()
    assert not (tmp_path / HELD_TMP).exists()
