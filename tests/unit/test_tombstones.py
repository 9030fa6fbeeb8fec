"""serving.tombstones: the erased users as serving sees them, re-read only when the list's file changes."""

from __future__ import annotations

import os
from pathlib import Path

from serving.tombstones import Tombstones
from setlist.eventlog import TOMBSTONES, EventLog


def test_a_second_erasure_within_the_same_timestamp_tick_is_seen(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events")
    watch = Tombstones(tmp_path / "events")
    assert watch.snapshot()[0] is None and not watch.current()  # no erasure yet, no file
    events.tombstone("u_first")
    first, erased = watch.snapshot()
    assert first is not None and "u_first" in erased
    path = events.root / TOMBSTONES
    mtime = path.stat().st_mtime_ns
    events.tombstone("u_second")
    os.utime(path, ns=(mtime, mtime))  # a coarse filesystem clock: the same modification time as before
    second, erased = watch.snapshot()
    assert second != first and "u_first" in erased and "u_second" in erased


def test_an_unreadable_list_keeps_the_last_one_read(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events")
    events.tombstone("u_first")
    watch = Tombstones(tmp_path / "events")
    assert "u_first" in watch.current()
    (events.root / TOMBSTONES).write_bytes(b"not parquet")
    assert "u_first" in watch.current()  # kept, with a warning; never an empty list
