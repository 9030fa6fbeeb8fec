"""Asynchronous impression logging: Rank hands a record to a bounded queue and returns.

Rank must never wait for a disk. ``submit`` is a non-blocking put: when the queue is full (the
writer fell behind, the disk is slow) the record is dropped and counted, so an overloaded writer
costs impressions, never latency. One background thread drains the queue in batches and writes
parquet through a sink (:func:`setlist.impressions.write_batch` in production, a fake in tests).

Impressions are analytics, not acknowledgements: a crash loses at most the queued records, which
is why they do not go through the Track journal.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import cast

from setlist.impressions import Impression, write_batch

log = logging.getLogger("setlist.serving.impressions")
Sink = Callable[[list[Impression]], int]


class _Flush:
    """A marker put in the queue: everything before it is written when ``done`` is set."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class ImpressionLog:
    def __init__(
        self,
        sink: Sink,
        maxsize: int = 10_000,
        batch: int = 2_000,
        flush_s: float = 2.0,
        on_drop: Callable[[], None] = lambda: None,
        on_written: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, maxsize))
        self._sink, self._batch, self._flush_s = sink, max(1, batch), flush_s
        self._on_drop, self._on_written = on_drop, on_written
        # The writer sleeps between flushes and drains the queue in one go; waking it per record
        # would cost every Rank a thread switch. flush_s <= 0 means "write at once" (tests).
        self._wake = threading.Event()
        self._eager = flush_s <= 0
        self.dropped = 0  # records refused because the queue was full
        self.failed = 0  # records lost to sink errors
        self.written = 0  # rows written
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="impression-writer", daemon=True)
        self._thread.start()

    @classmethod
    def to_directory(cls, root: Path, **kw: object) -> ImpressionLog:
        return cls(partial(write_batch, Path(root)), **kw)  # type: ignore[arg-type]  # kw: the constructor's own options

    # --- Rank path ----------------------------------------------------------------------------
    def submit(self, record: Impression) -> bool:
        """Queue ``record`` without blocking; False (and counted) when it was dropped."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1  # approximate under races; the Prometheus counter is exact
            self._on_drop()
            return False
        if self._eager or self._queue.qsize() >= self._batch:
            self._wake.set()
        return True

    # --- control --------------------------------------------------------------------------------
    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every record submitted before this call is written (tests, shutdown)."""
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("impression writer is stuck; %d queued records are lost", self._queue.qsize())
            return
        self._wake.set()
        self._thread.join(timeout)

    # --- writer -------------------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            self._wake.wait(None if self._eager else self._flush_s)
            self._wake.clear()
            pending: list[Impression] = []
            markers: list[_Flush] = []
            while not stop:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    pending.append(cast(Impression, item))  # the queue holds impressions and the two markers
                    if len(pending) >= self._batch:
                        self._write(pending)
                        pending = []
            if pending:
                self._write(pending)
            for m in markers:
                m.done.set()

    def _write(self, records: list[Impression]) -> None:
        try:
            rows = self._sink(records)
        except Exception:
            self.failed += len(records)
            log.exception("could not write %d impression records", len(records))
            return
        self.written += rows
        self._on_written(rows)
