"""serving.journal: group commit batches concurrent appends into fewer fsyncs, and an acknowledged
append is on disk: in the event log after close, or recovered from the segment after a crash."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from serving.journal import Journal
from setlist.contract import SCHEMA_VERSION
from setlist.eventlog import EventLog
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
    with pytest.raises(RuntimeError):
        journal.append([row(99)])  # a closed journal acknowledges nothing

    reopened = Journal(tmp_path / "wal", events, max_age_s=3600)
    assert reopened.recovered == 0  # nothing was left behind to replay twice
    reopened.close()
    assert event_ids(events) == sorted(r["event_id"] for r in rows)


def test_a_crash_loses_no_acknowledged_event(tmp_path: Path, events: EventLog) -> None:
    crashed = Journal(tmp_path / "wal", events, max_age_s=3600)
    for k in range(5):
        crashed.append([row(k)])  # acknowledged: fsynced
    # the process dies mid-batch: a torn, never-acknowledged line at the end, and no close()
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
    (segment,) = (tmp_path / "wal").glob("*.jsonl")
    kept = segment.read_bytes()
    Journal(tmp_path / "wal", events, max_age_s=3600).close()
    segment.write_bytes(kept)  # a crash after the log write, before the unlink
    Journal(tmp_path / "wal", events, max_age_s=3600).close()
    assert event_ids(events) == [f"e{k}" for k in range(3)]
