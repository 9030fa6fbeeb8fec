"""serving.journal: group commit batches concurrent appends into fewer fsyncs, and an acknowledged
append is on disk: in the event log after close, or recovered from the segment after a crash. The
journal never hangs (writer failures and deadlines fail the caller fast) and never strands events
(one owner per directory; orphaned directories are recovered exactly once)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from serving.errors import DeadlineExceeded, Unavailable
from serving.journal import Journal
from setlist.contract import SCHEMA_VERSION
from setlist.eventlog import EventLog
from setlist.journal_dirs import JournalLocked, recover_orphans
from tests.fakes.dataplane import START

WAIT = 10.0  # a generous bound on each wait; the tests never rely on it passing


def row(n: int) -> dict:
    return {
        "event_id": f"e{n}",
        "schema_version": SCHEMA_VERSION,
        "user_id": f"u_{n % 3}",
        "session_id": "s",
        "item_id": f"item-{n}",
        "type": "play",
        "timestamp": int(START * 1000) + n,
        "value": None,
        "device": "mobile",
        "locale": "de-DE",
        "consent_personalization": True,
        "consent_analytics": True,
        "arm": None,
    }


class HeldSync:
    """os.fsync that counts calls and can hold the first one until the test releases it."""

    def __init__(self, hold_first: bool = False) -> None:
        self.calls = 0
        self.entered, self.release = threading.Event(), threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.release.wait(WAIT)
        os.fsync(fd)


def event_ids(events: EventLog) -> list[str]:
    return sorted(events.read(["event_id"])["event_id"])


@pytest.fixture
def events(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "events")


def test_appends_waiting_on_one_fsync_share_the_next(tmp_path: Path, events: EventLog) -> None:
    sync = HeldSync(hold_first=True)
    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=sync)
    first = threading.Thread(target=journal.append, args=([row(0)],))
    first.start()
    assert sync.entered.wait(WAIT)  # the first batch is in its fsync ...
    n = 8
    others = [threading.Thread(target=journal.append, args=([row(k)],)) for k in range(1, n + 1)]
    for t in others:
        t.start()
    assert journal.wait_pending(n + 1, WAIT)  # ... while eight more appends queue behind it
    sync.release.set()
    for t in (first, *others):
        t.join(WAIT)
        assert not t.is_alive()
    assert journal.commits == sync.calls == 2  # nine acknowledged appends, two fsyncs
    journal.close()
    assert event_ids(events) == sorted(f"e{k}" for k in range(n + 1))


def test_an_append_returns_only_after_its_fsync(tmp_path: Path, events: EventLog) -> None:
    sync = HeldSync(hold_first=True)
    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=sync)
    done = threading.Event()
    t = threading.Thread(target=lambda: (journal.append([row(0)]), done.set()))
    t.start()
    assert sync.entered.wait(WAIT)
    assert not done.is_set()  # held in fsync: not acknowledged yet
    sync.release.set()
    assert done.wait(WAIT)
    t.join(WAIT)
    journal.close()


def test_every_acknowledged_event_is_in_the_log_after_close_and_reopen(tmp_path: Path, events: EventLog) -> None:
    journal = Journal(tmp_path / "wal", events, max_age_s=3600)
    rows = [row(k) for k in range(20)]
    threads = [threading.Thread(target=journal.append, args=(rows[k : k + 4],)) for k in range(0, 20, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    journal.close()
    assert event_ids(events) == sorted(r["event_id"] for r in rows)
    with pytest.raises(Unavailable):
        journal.append([row(99)])  # a closed journal acknowledges nothing

    reopened = Journal(tmp_path / "wal", events, max_age_s=3600)
    assert reopened.recovered == 0  # nothing was left behind to replay twice
    reopened.close()
    assert event_ids(events) == sorted(r["event_id"] for r in rows)


def test_a_crash_loses_no_acknowledged_event(tmp_path: Path, events: EventLog) -> None:
    crashed = Journal(tmp_path / "wal", events, max_age_s=3600)
    for k in range(5):
        crashed.append([row(k)])  # acknowledged: fsynced
    crashed.abandon()  # the process dies: no close(), and its lock goes with it
    # ... mid-batch: a torn, never-acknowledged line at the end
    (segment,) = (tmp_path / "wal").glob("*.jsonl")
    with open(segment, "a", encoding="utf-8") as fh:
        fh.write('{"event_id": "torn", "schema_version"')
    assert event_ids(events) == []  # nothing reached the log before the crash

    restarted = Journal(tmp_path / "wal", events, max_age_s=3600)
    assert restarted.recovered == 5
    assert event_ids(events) == [f"e{k}" for k in range(5)]
    restarted.close()
    assert event_ids(events) == [f"e{k}" for k in range(5)]


def test_recovering_the_same_segment_twice_does_not_duplicate(tmp_path: Path, events: EventLog) -> None:
    crashed = Journal(tmp_path / "wal", events, max_age_s=3600)
    crashed.append([row(k) for k in range(3)])
    crashed.abandon()
    (segment,) = (tmp_path / "wal").glob("*.jsonl")
    kept = segment.read_bytes()
    Journal(tmp_path / "wal", events, max_age_s=3600).close()
    segment.write_bytes(kept)  # a crash after the log write, before the unlink
    Journal(tmp_path / "wal", events, max_age_s=3600).close()
    assert event_ids(events) == [f"e{k}" for k in range(3)]


# --- never hangs -----------------------------------------------------------------------------------
class Call:
    """Run ``fn`` on a thread: a call that would hang fails the test after WAIT, never blocks it."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, fn, args, kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> BaseException | None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the call is still waiting"
        return self.error


class FailingSync(HeldSync):
    """Holds the first fsync until released, then fails it with ``error``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(hold_first=True)
        self.error = error

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(WAIT)
        raise self.error


def test_a_writer_crash_fails_the_waiting_append_and_every_later_one(tmp_path: Path, events: EventLog) -> None:
    sync = FailingSync(ValueError("a bug, not an OSError"))
    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=sync)
    waiting = Call(journal.append, [row(0)])
    assert sync.entered.wait(WAIT)
    sync.release.set()
    assert isinstance(waiting.outcome(), Unavailable)
    assert not journal.healthy and isinstance(journal.failure, ValueError)
    assert isinstance(Call(journal.append, [row(1)]).outcome(), Unavailable)  # fails fast, queues nothing
    journal.close()


def test_a_segment_that_cannot_be_opened_on_roll_fails_appends_fast(
    tmp_path: Path, events: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "wal", events, max_bytes=1, max_age_s=3600)

    def no_space() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "_open_segment", no_space)
    journal.append([row(0)])  # durable, then the writer rolls and cannot open the next segment
    assert isinstance(Call(journal.append, [row(1)]).outcome(), Unavailable)
    assert isinstance(journal.failure, OSError)
    journal.close()
    assert event_ids(events) == ["e0"]  # the acknowledged row still reaches the log


def test_a_disk_error_refuses_the_write_keeps_what_was_durable_and_heals(tmp_path: Path, events: EventLog) -> None:
    sync = FailingAfter(1)
    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=sync, heal_interval_s=0.01)
    journal.append([row(0)])  # durable
    with pytest.raises(Unavailable, match="not stored"):
        journal.append([row(1)])  # written to the file, but its fsync failed
    assert journal.wait_healthy(WAIT)  # a new segment, and the disk takes writes again
    journal.append([row(2)])
    journal.close()
    assert journal.heals == 1
    # the failed write was cut from its segment: a row nobody acknowledged is not stored, so the
    # client's retry of it cannot make a second copy
    assert event_ids(events) == ["e0", "e2"]


class FailingAfter(HeldSync):
    """os.fsync that succeeds ``ok`` times, then fails once with EIO (the rows are in the file by then)."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls == self.ok + 1:
            raise OSError(5, "Input/output error")
        os.fsync(fd)


def test_while_the_disk_refuses_appends_fail_fast_and_health_says_so(
    tmp_path: Path, events: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=FailingAfter(0), heal_interval_s=0.01)
    opened = journal._open_segment
    refused = threading.Event()

    def read_only() -> None:
        refused.set()
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(journal, "_open_segment", read_only)
    with pytest.raises(Unavailable):
        journal.append([row(0)])
    assert refused.wait(WAIT)  # the writer tried to heal, and the directory still refuses
    assert not journal.healthy and isinstance(journal.failure, PermissionError)
    assert isinstance(Call(journal.append, [row(1)]).outcome(), Unavailable)
    monkeypatch.setattr(journal, "_open_segment", opened)  # the directory is writable again
    assert journal.wait_healthy(WAIT)
    journal.append([row(2)])
    journal.close()
    assert event_ids(events) == ["e2"]


def test_a_caller_past_its_deadline_learns_the_outcome_of_its_write(tmp_path: Path, events: EventLog) -> None:
    sync = HeldSync(hold_first=True)
    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=sync)
    outcomes: list[tuple[str, bool]] = []
    told = threading.Event()

    def late(name: str):
        def tell(stored: bool) -> None:
            outcomes.append((name, stored))
            told.set()

        return tell

    first = Call(journal.append, [row(0)], timeout=0.05, on_late=late("in flight"))
    assert sync.entered.wait(WAIT)
    with pytest.raises(DeadlineExceeded, match="not stored"):
        journal.append([row(1)], timeout=0.05, on_late=late("queued"))
    assert outcomes == [("queued", False)]  # never taken by the writer: told at once
    assert isinstance(first.outcome(), DeadlineExceeded)
    told.clear()
    sync.release.set()
    assert told.wait(WAIT)
    assert outcomes == [("queued", False), ("in flight", True)]
    journal.close()
    assert event_ids(events) == ["e0"]


def test_an_append_not_yet_written_by_its_deadline_is_withdrawn(tmp_path: Path, events: EventLog) -> None:
    sync = HeldSync(hold_first=True)
    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=sync)
    first = Call(journal.append, [row(0)])
    assert sync.entered.wait(WAIT)  # the writer is busy with the first batch ...
    with pytest.raises(DeadlineExceeded, match="not stored"):
        journal.append([row(1)], timeout=0.05)  # ... so the second cannot be written in time
    sync.release.set()
    assert first.outcome() is None
    journal.close()
    assert event_ids(events) == ["e0"]  # the expired append was never written: a retry cannot duplicate


def test_an_append_in_flight_at_its_deadline_fails_and_may_be_stored(tmp_path: Path, events: EventLog) -> None:
    sync = HeldSync(hold_first=True)
    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=sync, append_timeout_s=0.05)
    late = Call(journal.append, [row(0)])  # the default deadline comes from the constructor
    assert sync.entered.wait(WAIT)
    assert isinstance(late.outcome(), DeadlineExceeded)
    sync.release.set()
    journal.append([row(1)], timeout=WAIT)
    journal.close()
    assert event_ids(events) == ["e0", "e1"]


# --- durability -------------------------------------------------------------------------------------
def test_each_new_segment_is_in_a_synced_directory_before_it_takes_rows(tmp_path: Path, events: EventLog) -> None:
    seen: list[set[str]] = []  # the segments present each time the journal directory is fsynced
    wal = tmp_path / "wal"

    def sync_dir(path: Path) -> None:
        if path == wal:
            seen.append({p.name for p in path.glob("*.jsonl")})

    rolled = threading.Event()
    journal = Journal(wal, events, max_bytes=1, max_age_s=3600, sync_dir=sync_dir, on_flushed=lambda n: rolled.set())
    assert len(seen) == 1 and len(seen[0]) == 1  # the first segment's name is durable before any ack
    journal.append([row(0)])
    assert rolled.wait(WAIT)  # rolled: the next segment was created, and its directory synced, first
    assert len(seen) == 2 and seen[1] - seen[0]
    journal.close()


class SteppedClock:
    """Unix seconds that move only when a disk step says how long it took."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def test_a_slow_disk_step_is_measured_and_logged_as_a_stall(
    tmp_path: Path, events: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    clock, steps = SteppedClock(), []
    wal = tmp_path / "wal"

    def slow_fsync(fd: int) -> None:  # the first group commit's fsync takes 2.5 s, the next ones 2 ms
        clock.now += 2.5 if not steps else 0.002
        os.fsync(fd)

    def slow_dir_sync(path: Path) -> None:  # the first roll's new segment: its directory fsync takes 1.5 s
        if path == wal and len(steps) == 1:
            clock.now += 1.5

    rolled = threading.Event()
    caplog.set_level("WARNING", logger="setlist.serving.journal")
    journal = Journal(
        wal,
        events,
        max_bytes=1,  # every write rolls
        max_age_s=3600,
        sync=slow_fsync,
        sync_dir=slow_dir_sync,
        on_flushed=lambda n: rolled.set(),
        on_write=steps.append,
        slow_write_s=1.0,
        clock=clock,
    )
    journal.append([row(0)])
    assert rolled.wait(WAIT)
    journal.append([row(1)])
    journal.close()
    assert steps[:3] == pytest.approx([2.5, 1.5, 0.002], abs=1e-6)  # write, new segment, write: each one timed
    assert journal.slow_writes == 2
    stalls = [r for r in caplog.records if r.name == "setlist.serving.journal"]
    assert [r.fields["journal_stall_s"] for r in stalls] == [2.5, 1.5]
    assert stalls[0].fields["journal_stall_started"] == pytest.approx(stalls[0].created - 2.5, abs=1.0)
    assert stalls[0].fields["journal"] == "wal"
    assert "write and fsync the events of 1 Track call:" in stalls[0].getMessage()
    assert "create a new segment" in stalls[1].getMessage()


def test_slow_callbacks_of_callers_that_gave_up_are_logged_but_are_no_disk_step(
    tmp_path: Path, events: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    clock, steps, told = SteppedClock(), [], threading.Event()
    sync = HeldSync(hold_first=True)

    def slow_commit(stored: bool) -> None:  # a dedupe commit on a store that takes 1.5 s to answer
        clock.now += 1.5
        told.set()

    caplog.set_level("WARNING", logger="setlist.serving.journal")
    journal = Journal(
        tmp_path / "wal", events, max_age_s=3600, sync=sync, on_write=steps.append, slow_write_s=1.0, clock=clock
    )
    gave_up = Call(journal.append, [row(0)], timeout=0.05, on_late=slow_commit)
    assert sync.entered.wait(WAIT)
    assert isinstance(gave_up.outcome(), DeadlineExceeded)
    sync.release.set()
    assert told.wait(WAIT)
    journal.append([row(1)], timeout=WAIT)
    journal.close()
    assert steps == [0.0, 0.0]  # the disk steps alone: the callback's 1.5 s is not one of them
    (logged,) = [r for r in caplog.records if r.name == "setlist.serving.journal"]
    assert logged.fields["journal_late_told_s"] == 1.5 and logged.fields["journal"] == "wal"
    # stamped in Unix seconds when the commits began (this clock moved, the wall's did not), as the drills
    # match it against their failed calls
    assert logged.fields["journal_late_told_started"] == pytest.approx(logged.created, abs=1.0)
    assert "to tell 1 Track call that stopped waiting" in logged.getMessage()


def test_a_failing_metric_sink_fails_no_append(tmp_path: Path, events: EventLog) -> None:
    def broken(seconds: float) -> None:
        raise RuntimeError("the sink is broken")

    journal = Journal(tmp_path / "wal", events, max_age_s=3600, on_write=broken, slow_write_s=0.0)
    journal.append([row(0)])
    journal.append([row(1)])  # the writer is alive, and the first append was not failed after its fsync
    assert journal.healthy
    journal.close()
    assert event_ids(events) == ["e0", "e1"]


def test_without_a_threshold_no_step_is_called_slow(tmp_path: Path, events: EventLog) -> None:
    clock, steps = SteppedClock(), []

    def slow_fsync(fd: int) -> None:
        clock.now += 10.0
        os.fsync(fd)

    journal = Journal(tmp_path / "wal", events, max_age_s=3600, sync=slow_fsync, on_write=steps.append, clock=clock)
    journal.append([row(0)])
    journal.close()
    assert steps == [10.0] and journal.slow_writes == 0


# --- one owner per directory ------------------------------------------------------------------------
def test_a_second_journal_on_a_live_directory_refuses_and_moves_nothing(tmp_path: Path, events: EventLog) -> None:
    first = Journal(tmp_path / "wal", events, max_age_s=3600)
    first.append([row(0)])
    with pytest.raises(JournalLocked, match="another server is running"):
        Journal(tmp_path / "wal", events, max_age_s=3600)
    assert event_ids(events) == []  # the live segment was not "recovered" from under its owner
    first.append([row(1)])
    first.close()
    assert event_ids(events) == ["e0", "e1"]
    Journal(tmp_path / "wal", events, max_age_s=3600).close()  # free again once the owner is gone


def test_a_starting_journal_waits_for_the_lock_while_it_is_held(tmp_path: Path, events: EventLog) -> None:
    first = Journal(tmp_path / "wal", events, max_age_s=3600)
    first.append([row(0)])
    opened: list[Journal] = []
    second = Call(lambda: opened.append(Journal(tmp_path / "wal", events, max_age_s=3600, lock_wait_s=WAIT)))
    first.close()
    assert second.outcome() is None
    opened[0].close()
    assert event_ids(events) == ["e0"]


# --- rolling off the acknowledgement path -----------------------------------------------------------
class HeldLog(EventLog):
    """An event log whose appends wait until released (a slow parquet write), or fail after writing."""

    def __init__(self, root: Path, fail: bool = False) -> None:
        super().__init__(root)
        self.fail = fail
        self.entered, self.release, self.failed = threading.Event(), threading.Event(), threading.Event()

    def append(self, frame, tag: str = "batch", name: str | None = None) -> int:
        self.entered.set()
        assert self.release.wait(WAIT)
        written = super().append(frame, tag, name)
        if self.fail:  # the process "dies" after the parquet write, before the segment is deleted
            self.failed.set()
            raise OSError("killed mid-roll")
        return written


def test_acknowledgements_do_not_wait_for_a_roll(tmp_path: Path) -> None:
    held = HeldLog(tmp_path / "events")
    journal = Journal(tmp_path / "wal", held, max_bytes=1, max_age_s=3600)
    journal.append([row(0)])
    assert held.entered.wait(WAIT)  # the first segment is being moved into the log ...
    assert Call(journal.append, [row(1)]).outcome() is None  # ... and Track is still acknowledged
    held.release.set()
    journal.close()
    assert event_ids(held) == ["e0", "e1"]


def test_a_crash_mid_roll_keeps_the_segment_and_recovery_adds_it_once(tmp_path: Path) -> None:
    held = HeldLog(tmp_path / "events", fail=True)
    crashed = Journal(tmp_path / "wal", held, max_bytes=1, max_age_s=3600)
    crashed.append([row(0), row(1)])
    assert held.entered.wait(WAIT)
    held.release.set()
    assert held.failed.wait(WAIT)
    crashed.abandon()
    assert len(list((tmp_path / "wal").glob("*.jsonl"))) == 2  # the rolled segment stays, beside the open one
    events = EventLog(tmp_path / "events")
    Journal(tmp_path / "wal", events, max_age_s=3600).close()
    ids = list(events.read(["event_id"])["event_id"])
    assert sorted(ids) == ["e0", "e1"]  # in the log once, though written before and after the crash


class RefusingLog(EventLog):
    """An event log that refuses its first ``refusals`` appends as an unwritable directory does."""

    def __init__(self, root: Path, refusals: int) -> None:
        super().__init__(root)
        self.refusals, self.tries = refusals, 0
        self.refused = threading.Event()  # set when the last refusal has been given

    def append(self, frame, tag: str = "batch", name: str | None = None) -> int:
        self.tries += 1
        if self.tries <= self.refusals:
            if self.tries == self.refusals:
                self.refused.set()
            raise PermissionError(13, "Permission denied", str(self.root))
        return super().append(frame, tag, name)


def test_a_move_that_keeps_failing_is_told_in_full_once_then_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refusing = RefusingLog(tmp_path / "events", refusals=3)
    journal = Journal(tmp_path / "wal", refusing, max_bytes=1, max_age_s=0.05)  # retried every 0.05 s
    with caplog.at_level("INFO", logger="setlist.serving.journal"):
        journal.append([row(0)])
        assert refusing.refused.wait(WAIT)
        journal.close()  # the next try, at close, moves it
    said = [r for r in caplog.records if "journal segment" in r.getMessage() or "again" in r.getMessage()]
    assert [r.exc_info is not None for r in said[:3]] == [True, False, False]
    assert "still cannot move" in said[1].getMessage() and "Permission denied" in said[1].getMessage()
    assert said[3].getMessage() == "journal segments move into the event log again"
    assert event_ids(refusing) == ["e0"]


# --- orphans ----------------------------------------------------------------------------------------
def test_recover_orphans_moves_dead_journals_once_and_leaves_live_ones(tmp_path: Path, events: EventLog) -> None:
    root = tmp_path / "wal"
    dead = Journal(root / "pod-a" / "worker-1", events, max_age_s=3600)
    dead.append([row(0), row(1)])
    dead.abandon()  # a worker that is gone
    live = Journal(root / "pod-b" / "worker-0", events, max_age_s=3600)
    live.append([row(2)])
    assert recover_orphans(root, events) == {root / "pod-a" / "worker-1": 2}
    assert not (root / "pod-a" / "worker-1").exists()  # nothing left to recover again
    assert recover_orphans(root, events) == {}
    assert list(events.read(["event_id"])["event_id"]) == ["e0", "e1"]
    live.close()
    assert event_ids(events) == ["e0", "e1", "e2"]


def _withdrawal(event_id: str, personalization: bool, minute: int = 0) -> dict[str, object]:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 1, 0, minute, tzinfo=UTC)
    flags = {"consent_personalization": personalization, "consent_analytics": None}
    return {"event_id": event_id, "timestamp": at, **flags}


def test_a_dead_workers_held_withdrawals_are_taken_over_by_a_sweep_and_its_directory_goes(
    tmp_path: Path, events: EventLog
) -> None:
    from setlist.journal_dirs import adopt_held, read_held, write_held

    root = tmp_path / "wal"
    dead = Journal(root / "pod-a" / "worker-1", events, max_age_s=3600)
    write_held(dead.held_path, {"u1": [_withdrawal("e1", False)], "u2": [_withdrawal("e2", False)]})
    dead.abandon()
    live = Journal(root / "pod-b" / "worker-0", events, max_age_s=3600)  # the sweeping server's own
    mine = live.held_path
    write_held(mine, {"u1": [_withdrawal("e0", True, minute=1)]})  # held by this process already
    try:
        assert recover_orphans(root, events, on_held=lambda orphan: adopt_held(orphan, mine)) == {dead.dir: 0}
    finally:
        live.close()
    assert not dead.dir.exists()
    taken = read_held(mine)
    assert set(taken) == {"u1", "u2"}
    assert [r["event_id"] for r in taken["u1"]] == ["e1", "e0"]  # both, in time order: the later grant last
    assert adopt_held(mine, mine) == 0 and read_held(mine) == taken  # never its own file


def test_a_sweep_that_cannot_push_leaves_held_withdrawals_in_place_for_the_next_server(
    tmp_path: Path, events: EventLog
) -> None:
    from setlist.journal_dirs import HELD, journal_dirs, read_held, write_held

    root = tmp_path / "wal"
    dead = Journal(root / "worker-1", events, max_age_s=3600)
    dead.append([row(0)])
    write_held(dead.held_path, {"u1": [_withdrawal("e1", False)]})
    dead.abandon()
    assert recover_orphans(root, events) == {dead.dir: 1}  # e.g. recover-journals: no online store to push to
    assert journal_dirs(root) == [dead.dir] and set(read_held(dead.dir / HELD)) == {"u1"}


def test_an_unreadable_held_file_is_removed_with_an_error_not_left_holding_pseudonyms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing in it can be pushed, and an erasure could not read it to strip a user: it goes, and the
    log says the next materialize writes every consent. A reader that is not its owner leaves it."""
    from setlist.journal_dirs import HELD, read_held

    path = tmp_path / HELD
    path.write_text('{"version": 1, "users": {"u_1": [{"event_id"')  # cut short by a failing disk
    assert read_held(path, look_only=True) == {} and path.exists()
    with caplog.at_level("ERROR", logger="setlist.serving.journal"):
        assert read_held(path) == {}
    assert not path.exists() and list(tmp_path.iterdir()) == []
    assert "cannot be read" in caplog.text and "next materialize" in caplog.text


def test_a_dead_writers_temporary_goes_with_its_orphaned_directory(tmp_path: Path, events: EventLog) -> None:
    from setlist.journal_dirs import HELD_TMP

    dead = Journal(tmp_path / "wal" / "worker-1", events, max_age_s=3600)
    (dead.dir / HELD_TMP).write_text('{"version": 1, "users": {"u_1"')  # killed mid-write
    dead.abandon()
    recover_orphans(tmp_path / "wal", events)
    assert not dead.dir.exists()


def test_a_held_file_round_trips_only_what_a_consent_push_needs(tmp_path: Path) -> None:
    from setlist.journal_dirs import HELD, read_held, write_held

    full = {**_withdrawal("e1", False), "item_id": "i9", "session_id": "s1", "query": "private words"}
    write_held(tmp_path / HELD, {"u1": [full]})
    assert "private words" not in (tmp_path / HELD).read_text()
    assert read_held(tmp_path / HELD) == {"u1": [_withdrawal("e1", False)]}
    write_held(tmp_path / HELD, {})
    assert not (tmp_path / HELD).exists()


# --- health -----------------------------------------------------------------------------------------
def test_a_failed_journal_turns_health_not_serving_and_track_unavailable(tmp_path: Path, events: EventLog) -> None:
    from grpc_health.v1 import health_pb2

    from serving.grpc.health import Readiness
    from serving.types import TrackEvent
    from tests.fakes.dataplane import Dataplane

    plane = Dataplane.fresh(tmp_path, hmac_key="k", impressions_enabled=False, reload_interval_s=3600)
    sync = FailingSync(OSError(5, "Input/output error"))
    sync.release.set()
    server = plane.build(journal=Journal(tmp_path / "wal", events, max_age_s=3600, sync=sync))
    readiness = Readiness(server, poll_s=0.01)
    statuses: list[int] = []
    flipped = threading.Event()
    push = readiness.servicer.set

    def record(service: str, status: int) -> None:  # the poller's pushes, as Watch streams see them
        push(service, status)
        statuses.append(status)
        if health_pb2.HealthCheckResponse.SERVING in statuses and status == health_pb2.HealthCheckResponse.NOT_SERVING:
            flipped.set()

    readiness.servicer.set = record  # type: ignore[method-assign]
    readiness.start()
    event = TrackEvent("e1", "user-0", "item-3", "play", int(plane.clock() * 1000), "s1")
    with pytest.raises(Unavailable):  # the transport answers UNAVAILABLE
        server.track([event])
    assert flipped.wait(WAIT)
    assert server.failure is not None
    readiness.shutdown()
    server.close()


def test_recover_journals_says_which_directories_still_hold_withdrawals_for_the_next_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from serving.__main__ import app
    from setlist.journal_dirs import write_held

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    wal = tmp_path / "data" / "wal"
    dead = Journal(wal / "worker-1", EventLog(tmp_path / "data" / "events"), max_age_s=3600)
    dead.append([row(0)])
    write_held(dead.held_path, {"u1": [_withdrawal("e1", False)]})
    dead.abandon()
    result = CliRunner().invoke(app, ["recover-journals"])
    assert result.exit_code == 0, result.output
    assert "recovered 1 events from 1 unlocked journal directories" in result.output
    assert "1 unlocked journal directory holds consent withdrawals" in result.output
    assert str(dead.dir) in result.output and "next server started on" in result.output
    again = CliRunner().invoke(app, ["recover-journals"])  # the directory stays, for its withdrawals only
    assert again.exit_code == 0, again.output
    assert "recovered 0 events from 0 unlocked journal directories" in again.output
    assert "1 unlocked journal directory holds consent withdrawals" in again.output
