"""The event log's tombstone list as serving sees it: re-read only when the file changes, so a look
costs one ``stat``. Track asks on every call (an erased user's later events reach neither the
identity map nor the online store); the refresh loop asks to drop degraded mode's copies."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from setlist.eventlog import TOMBSTONES, Erased, EventLog

log = logging.getLogger(__name__)


class Tombstones:
    def __init__(self, events_dir: Path) -> None:
        self._events = EventLog(events_dir)
        self._path = self._events.root / TOMBSTONES
        self._lock = threading.Lock()
        self._stamp: int | None = None
        self._erased = Erased()

    @property
    def stamp(self) -> int | None:
        """The file's modification time when it was last read (None: no file yet)."""
        return self._stamp

    def current(self) -> Erased:
        """The erased users now. A list that cannot be read keeps the last one read (and says so):
        erasure only ever adds to it, so the last one read is never wider than the truth."""
        try:
            stamp = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return self._erased  # no erasure yet (the file is never removed)
        except OSError as exc:
            log.warning("cannot look at the tombstone list: %s", type(exc).__name__)
            return self._erased
        if stamp == self._stamp:
            return self._erased
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._erased = self._events.erased()
                except Exception as exc:  # the next look tries again
                    log.warning("cannot read the tombstone list: %s", type(exc).__name__)
                    return self._erased
                self._stamp = stamp
        return self._erased
