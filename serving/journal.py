"""Durable acknowledgement for Track: a write-ahead journal with group commit.

``append`` returns only after the rows are fsynced. Concurrent callers share one fsync (group
commit). Segments roll over by size or age; a roller thread, off the acknowledgement path, then
moves each closed segment into the parquet event log under a name derived from the segment, and
deletes the segment only after that, so moving the same segment twice (a crash mid-roll) cannot
duplicate events.

Each journal directory is owned by one process: an exclusive ``flock`` on its ``LOCK`` file, held for
the journal's life. A directory nobody holds is an orphan (a dead worker or pod);
:func:`recover_orphans` (``setlist.journal_dirs``) moves its segments into the event log under
the same lock.

Failure never strands a caller: any exception on the writer thread is kept in ``failure``; waiting
and later appends raise :class:`Unavailable` at once, and health reports NOT_SERVING. A disk error
(full, read-only, failing) is not the end: the failed write is cut from its segment (nobody was told
it is stored, so a retry must not find a second copy), that segment is closed for good (after a
failed fsync the same file cannot be trusted again), and the writer retries a fresh segment every
``heal_interval_s`` until the disk takes writes; then it acknowledges again and health recovers. A
bug (any other exception) stops the journal for good.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving.errors import DeadlineExceeded, Unavailable
from setlist.atomicfile import fsync_dir
from setlist.eventlog import EventLog
from setlist.journal_dirs import (
    HELD,
    DirLock,
    recover_directory,
    segment_to_log,
)

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
        heal_interval_s: float = 1.0,
        on_recovered: Callable[[list[str]], None] | None = None,
        on_write: Callable[[float], None] | None = None,
        slow_write_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dir = Path(directory)
        self.events, self.max_bytes, self.max_age_s = events, max_bytes, max_age_s
        self.append_timeout_s = append_timeout_s  # None: wait as long as the disk takes
        self.heal_interval_s = heal_interval_s
        self._on_flushed = on_flushed
        self._sync = sync  # os.fsync; tests wrap it to count group commits or hold one in flight
        self._sync_dir = sync_dir
        # Each disk step of the writer (a batch's write and fsync, a new segment's directory fsync) is
        # timed: every Track waiting behind a slow one waits as long, and may outlast its deadline.
        self._on_write = on_write or _ignore_seconds
        self.slow_write_s = slow_write_s  # a step this slow is logged, with its start and length
        self._clock = clock  # times each disk step: monotonic, so a clock step makes no stall
        self.slow_writes = 0
        self.commits = 0  # fsyncs so far: with concurrent callers, fewer than appends
        self.heals = 0  # times the writer came back after a disk error
        self._cv = threading.Condition()
        self._pending: dict[int, str] = {}  # ticket -> lines, not yet taken by the writer
        self._queued = self._durable = 0
        self._failed: set[int] = set()  # tickets whose write failed, until their caller has been told
        self._late: dict[int, Callable[[bool], None]] = {}  # tickets whose caller gave up mid-write
        self._inflight: list[int] = []  # tickets of the batch being written
        self._closed = self._stopping = self._abandoned = False
        self._error: BaseException | None = None
        self._fatal = False  # a bug, not the disk: no healing
        self._rolling: list[Path] = []  # closed segments waiting for the roller
        # each segment's first durable write (wall time), until the segment is in the event log: the
        # ingest lag is how long the oldest of them has waited
        self._first_ack: dict[Path, float] = {}
        self._move_error: str | None = None  # the last failed move's error, said in full once
        self._fd: int | None = None
        self._path: Path | None = None
        self._lock = DirLock.acquire(self.dir, lock_wait_s)
        try:
            self._sync_dir(self.dir.parent)  # the directory may be new: its own entry must last too
            self.recovered = recover_directory(self.dir, events, on_recovered)
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
    def held_path(self) -> Path:
        """Track's consent withdrawals that the online store did not take yet, kept with this journal
        (``setlist.journal_dirs.HELD``): the next owner of the directory, or a sweep, takes them over."""
        return self.dir / HELD

    @property
    def failure(self) -> BaseException | None:
        """Why the journal is not acknowledging right now (the writer's exception), or None."""
        return self._error

    @property
    def healthy(self) -> bool:
        return self._error is None

    def append(
        self,
        rows: list[dict[str, Any]],
        timeout: float | None = None,
        on_late: Callable[[bool], None] | None = None,
    ) -> None:
        """Block until ``rows`` are durable on disk, or ``timeout`` seconds (default
        ``append_timeout_s``) pass: then DeadlineExceeded. Unavailable while the journal has failed,
        and when this write failed (the rows are then not stored).

        When the deadline passes, ``on_late(stored)`` is called once the outcome is known: at once
        (False) when the rows were never taken, else from the writer thread when their write ends.
        Whoever tracks retries by id can then follow what really happened."""
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        timeout = self.append_timeout_s if timeout is None else timeout
        with self._cv:
            self._check()
            self._queued += 1
            ticket = self._queued
            self._pending[ticket] = lines
            self._cv.notify_all()
            done = self._cv.wait_for(lambda: self._durable >= ticket or ticket in self._failed, timeout)
            if ticket in self._failed:
                self._failed.discard(ticket)
                raise Unavailable(
                    f"the Track journal could not write the events ({_why(self._error)}); they were not stored"
                )
            if self._durable >= ticket:
                return
            withdrawn = not done and self._pending.pop(ticket, None) is not None
            if not withdrawn:
                self._late[ticket] = on_late or _ignore
        if withdrawn:
            _tell([on_late or _ignore], stored=False)
            raise DeadlineExceeded("the journal did not write the events in time; they were not stored")
        raise DeadlineExceeded("the journal's disk write outlasted the deadline; the events may be stored")

    def oldest_unlogged(self) -> float | None:
        """When the oldest acknowledged event not yet moved into the event log was made durable
        (Unix seconds), or None when every acknowledged event is in the log."""
        with self._cv:
            return min(self._first_ack.values(), default=None)

    def wait_healthy(self, timeout: float | None = None) -> bool:
        """Block until the journal acknowledges again (after a disk error); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: self._error is None, timeout)

    def wait_pending(self, n: int, timeout: float | None = None) -> bool:
        """Block until at least ``n`` appends are waiting for the disk (to watch a batch form, in
        monitoring or tests); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: len(self._pending) + len(self._inflight) >= n, timeout)

    def close(self, roll_timeout_s: float = 60.0) -> None:
        """Stop acknowledging, then move every segment into the event log before returning."""
        self._stop(abandon=False)
        self._close_segment()
        with self._cv:
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
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._lock.release()

    # --- writer -------------------------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            raise Unavailable(
                f"the Track journal failed ({_why(self._error)}); this server acknowledges no events until "
                "its disk recovers"
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
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            self._sync_dir(self.dir)  # the new name itself must survive a crash, not only its contents
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._path = fd, path  # only once it exists: close() moves whatever _path names
        self._opened = time.monotonic()
        self._bytes = 0  # durable bytes of this segment

    def _close_segment(self) -> None:
        """Close the current segment and queue it for the roller (an empty one is just removed)."""
        fd, path = self._fd, self._path
        self._fd = self._path = None
        if fd is not None:
            os.close(fd)
        if path is None:
            return
        with self._cv:
            if path not in self._rolling:
                self._rolling.append(path)
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            try:
                if not self._write_next():
                    return
            except OSError as exc:  # the disk: full, read-only, failing; refuse, then try again
                self._fail(exc, "writer")
                self._drop_segment()
                if not self._heal():
                    return
            except BaseException as exc:  # a bug: fail the callers, never leave them waiting
                self._fail(exc, "writer", fatal=True)
                return

    def _fail(self, exc: BaseException, thread: str, fatal: bool = False) -> None:
        log.error("the journal %s failed; Track is unavailable on this server", thread, exc_info=exc)
        late: list[Callable[[bool], None]] = []
        with self._cv:
            self._error = self._error or exc
            self._fatal = self._fatal or fatal
            # everything not yet durable failed: the batch in flight and all that queued behind it
            for ticket in [*self._inflight, *self._pending]:
                if ticket in self._late:
                    late.append(self._late.pop(ticket))
                else:
                    self._failed.add(ticket)
            self._inflight, self._pending = [], {}
            self._cv.notify_all()
        _tell(late, stored=False)

    def _drop_segment(self) -> None:
        """After a failed write or fsync, keep only what was durable, and never write to that file
        again: after a failed fsync the kernel may have dropped the pages it could not write, so a
        later fsync on the same file can succeed without them."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._bytes)  # a torn write would be recovered as unacknowledged rows
            except OSError:
                log.exception("could not cut journal segment %s back to its durable length", self._path)
        try:
            self._close_segment()
        except OSError:
            log.exception("could not close journal segment %s", self._path)

    def _heal(self) -> bool:
        """Retry a new segment every ``heal_interval_s`` until the disk takes writes again. False
        once the journal is closing."""
        while True:
            with self._cv:
                if self._cv.wait_for(lambda: self._closed, self.heal_interval_s):
                    return False
            try:
                self._open_segment()
                self._probe_space()
            except OSError as exc:
                log.debug("journal still failing: %s", exc)
                with self._cv:
                    self._error = exc  # health and callers see the current reason
                self._drop_segment()
                continue
            with self._cv:
                self._error = None
                self.heals += 1
                self._cv.notify_all()
            log.warning("the journal writes again; Track is available on this server")
            return True

    def _probe_space(self) -> None:
        """A full disk still lets an empty file be created: reserve a block to see that it has room."""
        assert self._fd is not None
        try:
            os.posix_fallocate(self._fd, 0, 64 << 10)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
        os.ftruncate(self._fd, 0)

    def _write_next(self) -> bool:
        """Write and fsync one batch (everything queued), roll when due. False once closed."""
        with self._cv:
            while not self._pending and not self._closed:
                if not self._cv.wait(timeout=self.max_age_s):
                    break
            if self._abandoned:
                return False
            batch, upto, closing = list(self._pending.values()), self._queued, self._closed
            self._inflight = list(self._pending)
            self._pending.clear()
        if batch:
            assert self._fd is not None
            data = "".join(batch).encode()
            started = self._clock()
            _write_all(self._fd, data)
            self._sync(self._fd)
            seconds, ended = self._clock() - started, time.time()
            self.commits += 1
            self._bytes += len(data)
            with self._cv:
                if self._path is not None:
                    self._first_ack.setdefault(self._path, time.time())
                self._durable, self._inflight = upto, []
                late = [self._late.pop(t) for t in [t for t in self._late if t <= upto]]
                self._cv.notify_all()
            told, told_at = self._clock(), time.time()
            _tell(late, stored=True)
            told = self._clock() - told
            # told once the callers are: a slow log handler must not hold them too
            self._timed(
                seconds, ended, f"write and fsync the events of {len(batch)} Track call{'s' * (len(batch) != 1)}"
            )
            if late:
                self._late_told(told, told_at, len(late))
        if closing:
            return False
        if self._bytes and (self._bytes >= self.max_bytes or time.monotonic() - self._opened >= self.max_age_s):
            self._roll()
        return True

    def _roll(self) -> None:
        """Start a new segment and hand the closed one to the roller: acks never wait for parquet."""
        self._close_segment()  # queued first: if the next segment cannot be opened, this one still moves
        started = self._clock()
        self._open_segment()
        self._timed(self._clock() - started, time.time(), "create a new segment and fsync its directory")

    def _timed(self, seconds: float, ended: float, what: str) -> None:
        """Report one disk step that took ``seconds`` and ended at ``ended`` (Unix seconds, read as it
        ended: the callers told since may have taken a while); never fails the writer (the step itself
        succeeded: its callers may have been told so already)."""
        try:
            self._on_write(seconds)
            if self.slow_write_s is None or seconds < self.slow_write_s:
                return
            self.slow_writes += 1
            log.warning(
                "the journal's disk took %.2f s to %s: Track calls waiting behind it waited at least as long",
                seconds,
                what,
                extra={
                    "fields": {
                        "journal": self.dir.name,
                        "journal_stall_s": round(seconds, 3),
                        # Unix seconds, as log records are stamped; the length is the step's own clock's
                        "journal_stall_started": round(ended - seconds, 3),
                    }
                },
            )
        except Exception:
            log.debug("could not report a journal disk step", exc_info=True)

    def _late_told(self, seconds: float, started: float, calls: int) -> None:
        """Log the callbacks of callers that gave up waiting (their dedupe claims' commits, a store round
        trip each) when they held the writer as long as a slow disk step would: they are no disk step, so
        they stay out of ``on_write``, but the calls behind them waited all the same (``started``: Unix
        seconds, so that a drill can tell which of its failed calls the hold explains)."""
        if self.slow_write_s is None or seconds < self.slow_write_s:
            return
        try:
            log.warning(
                "the journal's writer took %.2f s to tell %d Track call%s that stopped waiting their events were "
                "stored (their dedupe commits): Track calls waiting behind it waited as long",
                seconds,
                calls,
                "s" * (calls != 1),
                extra={
                    "fields": {
                        "journal": self.dir.name,
                        "journal_late_told_s": round(seconds, 3),
                        "journal_late_told_started": round(started, 3),
                    }
                },
            )
        except Exception:  # as _timed: a report never fails the writer
            log.debug("could not report the late callers' commits", exc_info=True)

    # --- roller -------------------------------------------------------------------------------
    def _roll_loop(self) -> None:
        try:
            self._roll_all()
        except BaseException as exc:  # a dead roller would let segments pile up unseen: fail loudly
            self._fail(exc, "roller", fatal=True)

    def _roll_all(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._rolling or self._stopping)
                if self._abandoned or not self._rolling:
                    return
                segment, stopping = self._rolling[0], self._stopping
            moved = self._move(segment)
            with self._cv:
                if moved:
                    self._first_ack.pop(segment, None)
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
        except Exception as exc:
            # retried every max_age_s: the traceback once, then one line while the error stays the same
            said = f"{type(exc).__name__}: {exc}"
            if said == self._move_error:
                log.warning(
                    "still cannot move journal segment %s into the event log (%s); it stays on disk", segment.name, said
                )
            else:
                log.exception("could not move journal segment %s into the event log; it stays on disk", segment.name)
            self._move_error = said
            return False
        if self._move_error is not None:
            log.info("journal segments move into the event log again")
            self._move_error = None
        if self._on_flushed is not None:
            self._on_flushed(n)
        return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ignore(stored: bool) -> None:
    return None


def _ignore_seconds(seconds: float) -> None:
    return None


def _why(exc: BaseException | None) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _tell(callbacks: list[Callable[[bool], None]], stored: bool) -> None:
    for callback in callbacks:
        try:
            callback(stored)
        except Exception:
            log.exception("a late-append callback failed")
