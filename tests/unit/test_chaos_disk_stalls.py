"""bench.chaos: a failed call is put down to the machine's own disk only when the server logged a
journal stall that held it when it failed, never because a stall happened somewhere else in the drill."""

from __future__ import annotations

import json
from pathlib import Path

from bench.chaos.lab import journal_stalls
from bench.chaos.load import Tally
from bench.chaos.scenarios import in_disk_stalls
from serving.tracking import STILL_WRITING

BUSY = f"1 of these events {STILL_WRITING}; retry shortly"
SHIFT = 1_000_000.0  # Unix seconds minus monotonic seconds, as the drill measures it
TIMEOUT = "DEADLINE_EXCEEDED"


def tally(*calls: tuple[float, float, str, str, str]) -> Tally:
    t = Tally()
    t.failed_calls.extend(calls)
    t.failed = len(calls)
    return t


def test_a_timeout_while_a_stall_held_the_journal_and_its_refused_retry_are_the_disk() -> None:
    stalls = [(SHIFT + 10.5, 2.3)]  # the journal's disk held every write from 10.5 to 12.8
    t = tally(
        (10.0, 12.0, TIMEOUT, "Deadline Exceeded", "b1"),
        (12.01, 12.02, "UNAVAILABLE", BUSY, "b1"),  # b1's retry, while its first attempt is still written
        (11.0, 12.9, TIMEOUT, "Deadline Exceeded", "b2"),  # just after: its own write, under the threshold
    )
    assert in_disk_stalls(t, stalls, SHIFT) == 3


def test_failures_a_stall_does_not_explain_are_left_to_the_drill() -> None:
    stalls = [(SHIFT + 10.0, 1.1)]  # held from 10.0 to 11.1
    t = tally(
        (10.0, 12.0, TIMEOUT, "Deadline Exceeded", "b1"),  # the stall ended 0.9 s before its deadline
        (10.1, 10.2, "UNAVAILABLE", "failed to connect to all addresses", "b2"),  # during it, but not the disk
        (10.5, 10.6, "UNAVAILABLE", BUSY, "b3"),  # refused during it, but no attempt of b3 timed out on it
        (20.0, 20.01, "UNAVAILABLE", BUSY, "b1"),  # refused long after the stall ended
        (10.0, 10.1, "INTERNAL", "boom", "b4"),
    )
    assert in_disk_stalls(t, stalls, SHIFT) == 0
    assert in_disk_stalls(tally((9.0, 11.0, TIMEOUT, "", "b1")), [], SHIFT) == 0


def test_the_server_log_gives_each_stall_once_and_skips_torn_lines(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    lines = [
        {"ts": 5.0, "logger": "setlist.access", "msg": "rpc"},
        {"ts": 7.1, "logger": "setlist.serving.journal", "journal_stall_s": 2.1, "journal_stall_started": 5.0},
    ]
    log.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"journal_stall_s": 1.0, "journal_st')
    assert journal_stalls(log) == [(5.0, 2.1)]
    assert journal_stalls(tmp_path / "absent.log") == []


def test_late_callers_commits_hold_the_journal_only_where_asked(tmp_path: Path) -> None:
    """The writer running the dedupe commits of callers that gave up holds the calls behind it as a disk
    step does: a drill counts that hold where the dedupe store is on the machine's disk (local profile)."""
    log = tmp_path / "server.log"
    lines = [
        {"ts": 7.1, "journal_stall_s": 2.1, "journal_stall_started": 5.0},
        {"ts": 9.9, "journal_late_told_s": 1.4, "journal_late_told_started": 8.5},
    ]
    log.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"journal_late_told_s": 1.0, "journal_la')
    assert journal_stalls(log) == [(5.0, 2.1)]
    held = journal_stalls(log, late_callers=True)
    assert held == [(5.0, 2.1), (8.5, 1.4)]
    t = tally((8.0, 9.5, TIMEOUT, "Deadline Exceeded", "b1"))  # its deadline passed during the commits
    assert in_disk_stalls(t, held, 0.0) == 1  # the log's clock here is the tally's
    assert in_disk_stalls(t, journal_stalls(log), 0.0) == 0
