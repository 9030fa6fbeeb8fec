"""The event log's tombstone list as serving sees it: re-read only when the file changes, so a look
costs one ``stat``. Track asks on every call (an erased user's later events reach neither the
identity map nor the online store); the refresh loop asks to drop degraded mode's copies."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from setlist.eventlog import TOMBSTONES, Erased, EventLog

log = logging.getLogger(__name__)
Stamp = tuple[int, int, int]  # inode, modification time (ns), size


class Tombstones:
    def __init__(self, events_dir: Path) -> None:
        self._events = EventLog(events_dir)
        self._path = self._events.root / TOMBSTONES
        self._lock = threading.Lock()
        # the list and the file stamp it was read at, swapped together so a reader never pairs them wrongly
        self._seen: tuple[Stamp | None, Erased] = (None, Erased())

    def current(self) -> Erased:
        return self.snapshot()[1]

    def snapshot(self) -> tuple[Stamp | None, Erased]:
        """The erased users now, with the stamp of the file they were read from (None: no file yet). A
        list that cannot be read keeps the last one read (and says so): erasure only ever adds to it, so
        the last one read is never wider than the truth."""
        seen = self._seen
        try:
            info = self._path.stat()
        except FileNotFoundError:
            return seen  # no erasure yet (the file is never removed)
        except OSError as exc:
            log.warning("cannot look at the tombstone list: %s", type(exc).__name__)
            return seen
        # the file is replaced whole (a new inode) at each erasure: two within one timestamp tick differ here
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp == seen[0]:
            return seen
        with self._lock:
            if stamp != self._seen[0]:
                try:
                    self._seen = (stamp, self._events.erased())
                except Exception as exc:  # the next look tries again
                    log.warning("cannot read the tombstone list: %s", type(exc).__name__)
            return self._seen
