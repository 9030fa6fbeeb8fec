"""Identity-map writes off Track's path: a bounded queue and one background writer that retries.

Track must answer within its deadline once the events are journaled; the identity map (pseudonym →
raw id, for resolution and erasure) lives in PostgreSQL, which may be slow, locked or down. So Track
only queues the pairs here. The writer merges what is queued into one write and retries a failed
write with backoff until the database is back, holding that batch while new pairs queue behind it.

The queue is bounded: when it is full ``submit`` raises :class:`IdentityBacklogFull` at once, and
the caller (serving.tracking.Tracker) forgets the pairs so that the user's next event offers them
again; nothing waits for room.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger("setlist.serving.identities")
MAX_RETRY_S = 30.0
MAX_BATCH = 5_000  # pairs per write: one statement stays well inside the statement timeout
_STOP = object()


class IdentityStore(Protocol):
    """setlist.pseudonym.IdentityMap, or a test double."""

    def remember(self, pairs: Iterable[tuple[str, str]]) -> None: ...

    def dispose(self) -> None: ...


class IdentityBacklogFull(RuntimeError):
    """The queue is full (the database has been unreachable for a while); the pairs were not taken."""


class IdentityWriter:
    """``submit(pairs)`` returns at once; a daemon thread writes them to ``store``.

    It also answers ``remember``/``dispose``, the two calls Tracker makes on its identities."""

    def __init__(
        self, store: IdentityStore, maxsize: int = 10_000, retry_s: float = 0.5, max_retry_s: float = MAX_RETRY_S
    ) -> None:
        self.store = store
        self.retry_s, self.max_retry_s = retry_s, max(retry_s, max_retry_s)
        self.failures = 0  # failed write attempts, for tests and logs
        self._queue: queue.Queue[object] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._unwritten = 0  # submissions queued or being written
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="setlist-identities", daemon=True)
        self._thread.start()

    # --- callers ------------------------------------------------------------------------------
    def submit(self, pairs: Iterable[tuple[str, str]]) -> None:
        batch = dict(pairs)
        if not batch:
            return
        if self._closed:
            raise IdentityBacklogFull("the identity writer is closed")
        with self._idle:  # counted before the writer can see it, so wait_idle never returns early
            self._unwritten += 1
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self._done(1)
            raise IdentityBacklogFull(f"{self._queue.maxsize} identity batches are waiting for the database") from None

    remember = submit  # what Tracker calls

    def pending(self) -> int:
        """Submissions queued or being written."""
        with self._idle:
            return self._unwritten

    def wait_idle(self, timeout: float) -> bool:
        """Block until everything submitted so far is written (True) or ``timeout`` passed (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unwritten == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, giving the database at most ``timeout`` seconds, then release it.
        Pairs still unwritten are logged as lost to the map (the events themselves are journaled)."""
        if self._closed:
            return
        self._closed = True
        if not self.wait_idle(timeout):
            log.warning("closing with %d identity batches unwritten", self.pending())
        self._stop.set()
        try:
            self._queue.put_nowait(_STOP)  # wakes the thread; when full it sees _stop after its write
        except queue.Full:
            pass
        self._thread.join(timeout=1.0)
        self.store.dispose()

    dispose = close  # what Tracker.close calls

    # --- the writer thread ----------------------------------------------------------------------
    def _done(self, submissions: int) -> None:
        with self._idle:
            self._unwritten -= submissions
            self._idle.notify_all()

    def _take(self) -> tuple[dict[str, str], int] | None:
        """One batch: the next queued submission merged with the others already waiting, and how
        many submissions it holds."""
        item = self._queue.get()
        if not isinstance(item, dict):  # _STOP
            return None
        batch, taken = dict(item), 1
        while len(batch) < MAX_BATCH:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(more, dict):
                self._stop.set()
                break
            batch.update(more)
            taken += 1
        return batch, taken

    def _write(self, batch: dict[str, str]) -> bool:
        """Write ``batch``, retrying with backoff; False when stopped before it could be written."""
        wait = self.retry_s
        while True:
            try:
                self.store.remember(batch.items())
                return True
            except Exception as exc:
                self.failures += 1
                log.warning(
                    "identity map write of %d pairs failed (%s); retrying in %.1fs",
                    len(batch),
                    type(exc).__name__,
                    wait,
                )
            if self._stop.wait(wait):  # close() gave up on the database
                return False
            wait = min(wait * 2, self.max_retry_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            taken = self._take()
            if taken is None:
                break
            batch, submissions = taken
            if not self._write(batch):
                log.warning("%d identity pairs not written: the writer stopped first", len(batch))
            self._done(submissions)
