"""Durable acknowledgement for Track: a write-ahead journal with group commit.

``append`` returns only after the rows are fsynced. Concurrent callers share one fsync (group
commit). Segments roll over by size or age and are then moved into the parquet event log under a
name derived from the segment, so recovering the same segment twice cannot duplicate events.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from setlist.eventlog import EventLog

log = logging.getLogger("setlist.serving.journal")


def segment_to_log(segment: Path, events: EventLog) -> int:
    """Move one closed segment into the event log; a torn last line was never acknowledged."""
    rows = []
    with open(segment, encoding="utf-8") as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    if rows:
        frame = pd.DataFrame(rows)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        frame = frame.drop_duplicates("event_id", keep="first")
        events.append(frame, name=f"journal-{segment.stem}")
    segment.unlink()
    return len(rows)


class Journal:
    def __init__(
        self,
        directory: Path,
        events: EventLog,
        max_bytes: int = 32 << 20,
        max_age_s: float = 5.0,
        on_flushed: Callable[[int], None] | None = None,
        sync: Callable[[int], None] = os.fsync,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events, self.max_bytes, self.max_age_s = events, max_bytes, max_age_s
        self._on_flushed = on_flushed
        self._sync = sync  # os.fsync; tests wrap it to count group commits or hold one in flight
        self.commits = 0  # fsyncs so far: with concurrent callers, fewer than appends
        self._cv = threading.Condition()
        self._pending: list[str] = []
        self._queued = self._durable = 0
        self._closed = False
        self._error: Exception | None = None
        self.recovered = self.recover()
        self._open_segment()
        self._writer = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._writer.start()

    # --- public -------------------------------------------------------------------------------
    def append(self, rows: list[dict[str, Any]]) -> None:
        """Block until ``rows`` are durable on disk."""
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        with self._cv:
            if self._closed:
                raise RuntimeError("journal is closed")
            self._pending.append(lines)
            self._queued += 1
            ticket = self._queued
            self._cv.notify_all()
            while self._durable < ticket and self._error is None:
                self._cv.wait()
            if self._error is not None:
                raise self._error

    def wait_pending(self, n: int, timeout: float | None = None) -> bool:
        """Block until at least ``n`` appends are waiting for the disk (to watch a batch form, in
        monitoring or tests); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: self._queued - self._durable >= n, timeout)

    def recover(self) -> int:
        """Move every segment left on disk (from a crash, or a clean stop) into the event log."""
        total = 0
        for seg in sorted(self.dir.glob("*.jsonl")):
            total += segment_to_log(seg, self.events)
        if total:
            log.info("recovered %d journaled events into the event log", total)
        return total

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._writer.join(timeout=10)
        self._fh.close()
        segment_to_log(self._path, self.events)

    # --- writer -------------------------------------------------------------------------------
    def _open_segment(self) -> None:
        self._path = self.dir / f"{time.time_ns():020d}-{os.getpid()}.jsonl"
        self._fh = open(self._path, "a", encoding="utf-8")
        self._opened = time.monotonic()
        self._bytes = 0

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    if not self._cv.wait(timeout=self.max_age_s):
                        break
                batch, self._pending = self._pending, []
                upto = self._queued
                closing = self._closed
            if batch:
                try:
                    data = "".join(batch)
                    self._fh.write(data)
                    self._fh.flush()
                    self._sync(self._fh.fileno())
                    self.commits += 1
                    self._bytes += len(data)
                except OSError as exc:  # a disk error must fail the callers, not hang them
                    with self._cv:
                        self._error = exc
                        self._cv.notify_all()
                    return
                with self._cv:
                    self._durable = upto
                    self._cv.notify_all()
            if closing:
                return
            if self._bytes and (self._bytes >= self.max_bytes or time.monotonic() - self._opened >= self.max_age_s):
                self._roll()

    def _roll(self) -> None:
        old = self._path
        self._fh.close()
        self._open_segment()
        try:
            n = segment_to_log(old, self.events)
        except Exception:
            log.exception("could not move journal segment %s into the event log", old.name)
            return
        if self._on_flushed is not None:
            self._on_flushed(n)
