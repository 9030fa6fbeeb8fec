"""Track's idempotence: which event ids were already stored, across requests, workers, replicas and
restarts, for a window (``SETLIST_TRACK_DEDUPE_HOURS``).

Production shares the marks through Redis (every replica sees every mark); locally through a SQLite
table under the WAL directory, shared by the worker processes of one machine and kept across
restarts; tests may use the in-process one. Marks expire, so the store stays the size of the window.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from serving.redis_client import fail_fast_redis
from setlist.settings import Settings

#: ids per SQLite statement: far below its bound-parameter limit, whatever the build
_CHUNK = 500


class Dedupe(Protocol):
    """What Track asks before journaling, and tells after."""

    def seen(self, ids: Sequence[str]) -> set[str]: ...  # those of ``ids`` marked within the window

    def mark(self, ids: Sequence[str]) -> None: ...  # called only once ``ids`` are durable

    def close(self) -> None: ...


class MemoryDedupe:
    """In this process only (tests, a single server without a data directory)."""

    def __init__(self, window_s: float = 86_400.0, clock: Callable[[], float] = time.time) -> None:
        self.window_s, self._clock = window_s, clock
        self._expires: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, ids: Sequence[str]) -> set[str]:
        now = self._clock()
        with self._lock:
            return {i for i in ids if self._expires.get(i, 0.0) > now}

    def mark(self, ids: Sequence[str]) -> None:
        now = self._clock()
        with self._lock:
            self._expires = {i: t for i, t in self._expires.items() if t > now}  # expiry keeps it bounded
            for i in ids:
                self._expires.setdefault(i, now + self.window_s)

    def close(self) -> None:
        return None


class SqliteDedupe:
    """One table shared by every worker process on this machine; rows expire by timestamp."""

    def __init__(self, path: Path, window_s: float, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.window_s, self._clock = window_s, clock
        # autocommit; one connection per Tracker, used under a lock by the request threads
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            # WAL: workers read while one writes. synchronous=NORMAL skips an fsync per mark: a
            # power cut may forget the last marks (a later retry is stored twice), never lose an event
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS seen_expires ON seen (expires)")

    def seen(self, ids: Sequence[str]) -> set[str]:
        now, found = self._clock(), set[str]()
        with self._lock:
            for at in range(0, len(ids), _CHUNK):
                chunk = list(ids[at : at + _CHUNK])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT event_id FROM seen WHERE expires > ? AND event_id IN ({marks})"
                found.update(r[0] for r in self._db.execute(query, [now, *chunk]))
        return found

    def mark(self, ids: Sequence[str]) -> None:
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # expired marks go first, so OR IGNORE below is SET NX: an id marked already keeps its expiry
                self._db.execute("DELETE FROM seen WHERE expires <= ?", (now,))
                self._db.executemany(
                    "INSERT OR IGNORE INTO seen (event_id, expires) VALUES (?, ?)",
                    [(i, now + self.window_s) for i in ids],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisDedupe:
    """Shared by every replica: one key per event id, ``SET key 1 NX EX window``."""

    PREFIX = "setlist:track:seen:"

    def __init__(self, url: str, window_s: float, timeout_s: float) -> None:
        self.ttl_s = max(1, int(window_s))
        # no retry: Track goes on without dedupe instead (see serving.tracking)
        self.client = fail_fast_redis(url, timeout_s, retries=0)

    def seen(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        values = self.client.mget([self.PREFIX + i for i in ids])
        return {i for i, v in zip(ids, values) if v is not None}

    def mark(self, ids: Sequence[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.set(self.PREFIX + i, 1, nx=True, ex=self.ttl_s)
        pipe.execute()

    def close(self) -> None:
        self.client.close()


def make_dedupe(settings: Settings, clock: Callable[[], float] = time.time) -> Dedupe:
    """The adapter of the profile: Redis in production, else SQLite beside the journals (under
    ``wal_dir``, so a simulation's marks stay with its own journals and event log)."""
    window_s = settings.track_dedupe_hours * 3600
    if settings.profile == "production":
        return RedisDedupe(settings.redis_url, window_s, max(settings.online_timeout_ms, 200) / 1000)
    return SqliteDedupe(settings.wal_dir / "dedupe.sqlite", window_s, clock)
