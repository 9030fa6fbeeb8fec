"""Durable acknowledgement for Track: a write-ahead journal with group commit.

``append`` returns only after the rows are fsynced. Concurrent callers share one fsync (group
commit). Segments roll over by size or age; a roller thread, off the acknowledgement path, then
moves each closed segment into the parquet event log under a name derived from the segment, and
deletes the segment only after that, so moving the same segment twice (a crash mid-roll) cannot
duplicate events.

Each journal directory is owned by one process: an exclusive ``flock`` on its ``LOCK`` file, held for
the journal's life. A directory nobody holds is an orphan (a dead worker or pod);
:func:`recover_orphans` (``serving.journal_dirs``) moves its segments into the event log under
the same lock.

Failure never strands a caller: any exception on the writer thread is kept in ``failure``; waiting
and later appends raise :class:`Unavailable` at once, and health reports NOT_SERVING.
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

from serving.errors import DeadlineExceeded, Unavailable
from serving.journal_dirs import (
    DirLock,
    fsync_dir,
    recover_directory,
    segment_to_log,
)
from setlist.eventlog import EventLog

log = logging.getLogger("setlist.serving.journal")


class Journal:
    def __init__(
        self,
        directory: Path,
        events: EventLog,
        max_bytes: int = 32 << 20,
        max_age_s: float = 5.0,
        on_flushed: Callable[[int], None] | None = None,
        sync: Callable[[int], None] = os.fsync,
        *,
        append_timeout_s: float | None = None,
        lock_wait_s: float = 0.0,
        sync_dir: Callable[[Path], None] = fsync_dir,
    ) -> None:
        self.dir = Path(directory)
        self.events, self.max_bytes, self.max_age_s = events, max_bytes, max_age_s
        self.append_timeout_s = append_timeout_s  # None: wait as long as the disk takes
        self._on_flushed = on_flushed
        self._sync = sync  # os.fsync; tests wrap it to count group commits or hold one in flight
        self._sync_dir = sync_dir
        self.commits = 0  # fsyncs so far: with concurrent callers, fewer than appends
        self._cv = threading.Condition()
        self._pending: dict[int, str] = {}  # ticket -> lines, not yet taken by the writer
        self._queued = self._durable = 0
        self._closed = self._stopping = self._abandoned = False
        self._error: BaseException | None = None
        self._rolling: list[Path] = []  # closed segments waiting for the roller
        self._lock = DirLock.acquire(self.dir, lock_wait_s)
        try:
            self._sync_dir(self.dir.parent)  # the directory may be new: its own entry must last too
            self.recovered = recover_directory(self.dir, events)
            self._open_segment()
        except BaseException:
            self._lock.release()
            raise
        self._writer = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._roller = threading.Thread(target=self._roll_loop, name="journal-roller", daemon=True)
        self._writer.start()
        self._roller.start()

    # --- public -------------------------------------------------------------------------------
    @property
    def failure(self) -> BaseException | None:
        """Why the journal stopped acknowledging (the writer's exception), or None."""
        return self._error

    @property
    def healthy(self) -> bool:
        return self._error is None

    def append(self, rows: list[dict[str, Any]], timeout: float | None = None) -> None:
        """Block until ``rows`` are durable on disk, or ``timeout`` seconds (default
        ``append_timeout_s``) pass: then DeadlineExceeded. Unavailable once the journal failed."""
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        timeout = self.append_timeout_s if timeout is None else timeout
        with self._cv:
            self._check()
            self._queued += 1
            ticket = self._queued
            self._pending[ticket] = lines
            self._cv.notify_all()
            done = self._cv.wait_for(lambda: self._durable >= ticket or self._error is not None, timeout)
            if self._durable >= ticket:
                return
            self._check()
            if not done and self._pending.pop(ticket, None) is not None:
                raise DeadlineExceeded("the journal did not write the events in time; they were not stored")
            raise DeadlineExceeded("the journal's disk write outlasted the deadline; the events may be stored")

    def wait_pending(self, n: int, timeout: float | None = None) -> bool:
        """Block until at least ``n`` appends are waiting for the disk (to watch a batch form, in
        monitoring or tests); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: self._queued - self._durable >= n, timeout)

    def close(self, roll_timeout_s: float = 60.0) -> None:
        """Stop acknowledging, then move every segment into the event log before returning."""
        self._stop(abandon=False)
        self._fh.close()
        with self._cv:
            if self._path not in self._rolling:  # already queued when the writer failed mid-roll
                self._rolling.append(self._path)
            self._stopping = True
            self._cv.notify_all()
        self._roller.join(timeout=roll_timeout_s)
        if self._roller.is_alive():  # keep the lock: a sweep must not move what is being moved
            log.warning("journal segments still rolling at close; recovery at the next start moves them")
            return
        self._lock.release()

    def abandon(self) -> None:
        """Stop as a crash would: nothing more is written or moved, the segments stay on disk for
        recovery, and the directory is unlocked. For tests and drills."""
        self._stop(abandon=True)
        self._roller.join(timeout=10)
        self._fh.close()
        self._lock.release()

    # --- writer -------------------------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            raise Unavailable(
                f"the Track journal failed ({type(self._error).__name__}); this server acknowledges no more events"
            ) from self._error
        if self._closed:
            raise Unavailable("the Track journal is closed (the server is stopping)")

    def _stop(self, abandon: bool) -> None:
        with self._cv:
            self._closed = True
            self._abandoned = self._stopping = abandon
            self._cv.notify_all()
        self._writer.join(timeout=10)

    def _open_segment(self) -> None:
        path = self.dir / f"{time.time_ns():020d}-{os.getpid()}.jsonl"
        self._fh = open(path, "a", encoding="utf-8")
        self._path = path  # only once it exists: close() moves whatever _path names
        self._sync_dir(self.dir)  # the new name itself must survive a crash, not only its contents
        self._opened = time.monotonic()
        self._bytes = 0

    def _run(self) -> None:
        try:
            while self._write_next():
                pass
        except BaseException as exc:  # whatever it is, fail the callers: never leave them waiting
            self._fail(exc, "writer")

    def _fail(self, exc: BaseException, thread: str) -> None:
        log.error("the journal %s failed; Track is unavailable on this server", thread, exc_info=exc)
        with self._cv:
            self._error = self._error or exc
            self._cv.notify_all()

    def _write_next(self) -> bool:
        """Write and fsync one batch (everything queued), roll when due. False once closed."""
        with self._cv:
            while not self._pending and not self._closed:
                if not self._cv.wait(timeout=self.max_age_s):
                    break
            if self._abandoned:
                return False
            batch, upto, closing = list(self._pending.values()), self._queued, self._closed
            self._pending.clear()
        if batch:
            data = "".join(batch)
            self._fh.write(data)
            self._fh.flush()
            self._sync(self._fh.fileno())
            self.commits += 1
            self._bytes += len(data)
            with self._cv:
                self._durable = upto
                self._cv.notify_all()
        if closing:
            return False
        if self._bytes and (self._bytes >= self.max_bytes or time.monotonic() - self._opened >= self.max_age_s):
            self._roll()
        return True

    def _roll(self) -> None:
        """Start a new segment and hand the closed one to the roller: acks never wait for parquet."""
        self._fh.close()
        with self._cv:  # queued first: if the next segment cannot be opened, this one still moves
            self._rolling.append(self._path)
            self._cv.notify_all()
        self._open_segment()

    # --- roller -------------------------------------------------------------------------------
    def _roll_loop(self) -> None:
        try:
            self._roll_all()
        except BaseException as exc:  # a dead roller would let segments pile up unseen: fail loudly
            self._fail(exc, "roller")

    def _roll_all(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._rolling or self._stopping)
                if self._abandoned or not self._rolling:
                    return
                segment, stopping = self._rolling[0], self._stopping
            moved = self._move(segment)
            with self._cv:
                if moved or stopping:  # a failure at close stays on disk for the next start
                    self._rolling.remove(segment)
                    self._cv.notify_all()
                else:  # retry later: the event log may be back
                    self._cv.wait_for(lambda: self._stopping, self.max_age_s)

    def _move(self, segment: Path) -> bool:
        if not segment.exists():  # moved already (queued twice when the writer failed mid-roll)
            return True
        try:
            n = segment_to_log(segment, self.events)
        except Exception:
            log.exception("could not move journal segment %s into the event log; it stays on disk", segment.name)
            return False
        if self._on_flushed is not None:
            self._on_flushed(n)
        return True
