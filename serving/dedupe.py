"""Track's idempotence: which event ids were already stored, across requests, workers, replicas and
restarts, for a window (``SETLIST_TRACK_DEDUPE_HOURS``).

An id goes through two states. Before its write, Track *claims* it: an in-flight mark that lives for
``SETLIST_TRACK_CLAIM_S``. A retry that arrives while the first attempt is still writing (a client
whose deadline passed, a second copy sent to another worker) finds the claim and is refused with
UNAVAILABLE instead of being written twice. Once the journal holds the events, the claim becomes a
*stored* mark for the window, and retries are acknowledged as duplicates; if the write failed, the
claim is released and the retry is stored. A claim whose server died before either expires, so the
retry is never refused for good (and the journal recovery marks what that server did write).

Production shares the marks through Redis (every replica sees every mark); locally through a SQLite
table beside the WAL directory, shared by the worker processes of one machine and kept across
restarts; tests may use the in-process one. Marks expire, so the store stays the size of the window.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from setlist.redis_client import BULK_TIMEOUT_FLOOR_MS, fail_fast_redis
from setlist.settings import Settings

#: ids per SQLite statement: far below its bound-parameter limit, whatever the build
_CHUNK = 500


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: ``fresh`` ids are now claimed by the caller, ``stored`` ones were
    written before, ``busy`` ones are being written by another attempt right now."""

    fresh: list[str]
    stored: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)


class Dedupe(Protocol):
    """What Track asks before journaling, and tells after."""

    def claim(self, ids: Sequence[str]) -> Claim: ...

    def commit(self, ids: Sequence[str]) -> None: ...  # stored: called only once ``ids`` are durable

    def release(self, ids: Sequence[str]) -> None: ...  # not stored: drop the caller's claims

    def close(self) -> None: ...


class MemoryDedupe:
    """In this process only (tests, a single server without a data directory)."""

    def __init__(
        self, window_s: float = 86_400.0, clock: Callable[[], float] = time.time, claim_s: float = 30.0
    ) -> None:
        self.window_s, self.claim_s, self._clock = window_s, claim_s, clock
        self._marks: dict[str, tuple[float, bool]] = {}  # id -> (expires, stored)
        self._lock = threading.Lock()

    def claim(self, ids: Sequence[str]) -> Claim:
        now, out = self._clock(), Claim([])
        with self._lock:
            for i in ids:
                expires, stored = self._marks.get(i, (0.0, False))
                if expires > now:
                    (out.stored if stored else out.busy).add(i)
                else:
                    self._marks[i] = (now + self.claim_s, False)
                    out.fresh.append(i)
        return out

    def commit(self, ids: Sequence[str]) -> None:
        now = self._clock()
        with self._lock:
            self._marks = {i: m for i, m in self._marks.items() if m[0] > now}  # expiry keeps it bounded
            for i in ids:
                self._marks[i] = (now + self.window_s, True)

    def release(self, ids: Sequence[str]) -> None:
        with self._lock:
            for i in ids:
                if not self._marks.get(i, (0.0, True))[1]:
                    del self._marks[i]

    def close(self) -> None:
        return None


class SqliteDedupe:
    """One table shared by every worker process on this machine; rows expire by timestamp."""

    def __init__(
        self, path: Path, window_s: float, clock: Callable[[], float] = time.time, claim_s: float = 30.0
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.window_s, self.claim_s, self._clock = window_s, claim_s, clock
        # autocommit; one connection per Tracker, used under a lock by the request threads
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            # WAL: workers read while one writes. synchronous=NORMAL skips an fsync per mark: a
            # power cut may forget the last marks (a later retry is stored twice), never lose an event
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("DROP TABLE IF EXISTS seen")  # before claims: stored marks only
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS marks (event_id TEXT PRIMARY KEY, expires REAL NOT NULL, "
                "stored INTEGER NOT NULL) WITHOUT ROWID"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS marks_expires ON marks (expires)")

    def claim(self, ids: Sequence[str]) -> Claim:
        now, out = self._clock(), Claim([])
        with self._lock, self._write():
            # expired marks go first, so what is left is live: a claim or a stored mark
            self._db.execute("DELETE FROM marks WHERE expires <= ?", (now,))
            live: dict[str, int] = {}
            for chunk in _chunks(ids):
                query = f"SELECT event_id, stored FROM marks WHERE event_id IN ({','.join('?' * len(chunk))})"
                live.update(self._db.execute(query, chunk).fetchall())
            for i in ids:
                if i in live:
                    (out.stored if live[i] else out.busy).add(i)
                elif i not in out.fresh:
                    out.fresh.append(i)
            self._db.executemany(
                "INSERT INTO marks (event_id, expires, stored) VALUES (?, ?, 0)",
                [(i, now + self.claim_s) for i in out.fresh],
            )
        return out

    def commit(self, ids: Sequence[str]) -> None:
        now = self._clock()
        with self._lock, self._write():
            self._db.executemany(
                "INSERT OR REPLACE INTO marks (event_id, expires, stored) VALUES (?, ?, 1)",
                [(i, now + self.window_s) for i in ids],
            )

    def release(self, ids: Sequence[str]) -> None:
        with self._lock, self._write():
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM marks WHERE stored = 0 AND event_id IN ({marks})", chunk)

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for at in range(0, len(ids), _CHUNK):
        yield list(ids[at : at + _CHUNK])


class RedisDedupe:
    """Shared by every replica: one key per event id, ``0`` while claimed, ``1`` once stored."""

    # One script per batch, not a command per event: packing and parsing a hundred SETs in redis-py
    # cost more than Track's journal write (NOTES.md, Performance). Every key is on the one plain
    # Redis of SETLIST_REDIS_URL (never a cluster), so a batch's keys may span slots.
    # claim answers per key: 2 claimed now, 1 stored before, 0 claimed by another attempt (or a
    # claim that expired between the two calls: the client retries)
    _CLAIM = (
        "local out = {} "
        "for i, k in ipairs(KEYS) do "
        "if redis.call('SET', k, '0', 'NX', 'PX', ARGV[1]) then out[i] = 2 "
        "elseif redis.call('GET', k) == '1' then out[i] = 1 else out[i] = 0 end end "
        "return out"
    )
    _COMMIT = "for _, k in ipairs(KEYS) do redis.call('SET', k, '1', 'EX', ARGV[1]) end return #KEYS"
    # only a claim is released: a stored mark (another attempt's, after this claim expired) stays
    _RELEASE = "for _, k in ipairs(KEYS) do if redis.call('GET', k) == '0' then redis.call('DEL', k) end end"

    def __init__(
        self, url: str, window_s: float, timeout_s: float, claim_s: float = 30.0, namespace: str = "setlist"
    ) -> None:
        # under the deployment's name (SETLIST_FEAST_PROJECT): another deployment's event of the same id, on
        # a shared Redis database, is not taken for this one's and acknowledged unstored
        self.prefix = f"{namespace}:track:seen:"
        self.ttl_s = max(1, int(window_s))
        self.claim_ms = max(1, int(claim_s * 1000))
        # no retry: Track goes on without dedupe instead (see serving.tracking)
        self.client = fail_fast_redis(url, timeout_s, retries=0)
        self._claim = self.client.register_script(self._CLAIM)
        self._commit = self.client.register_script(self._COMMIT)
        self._release = self.client.register_script(self._RELEASE)

    def claim(self, ids: Sequence[str]) -> Claim:
        out = Claim([])
        if not ids:
            return out
        states = self._claim(keys=[self.prefix + i for i in ids], args=[self.claim_ms])
        for i, state in zip(ids, states, strict=True):
            if state == 2:
                out.fresh.append(i)
            else:
                (out.stored if state == 1 else out.busy).add(i)
        return out

    def commit(self, ids: Sequence[str]) -> None:
        if ids:
            self._commit(keys=[self.prefix + i for i in ids], args=[self.ttl_s])

    def release(self, ids: Sequence[str]) -> None:
        if ids:
            self._release(keys=[self.prefix + i for i in ids])

    def close(self) -> None:
        self.client.close()


def make_dedupe(settings: Settings, clock: Callable[[], float] = time.time) -> Dedupe:
    """The adapter of the profile: Redis in production, else SQLite beside the WAL directory (named
    after it, so a simulation's marks stay with its own journals; not inside it, so a journal disk that
    fills up cannot also keep a failed write's claims from being released)."""
    window_s, claim_s = settings.track_dedupe_hours * 3600, settings.track_claim_s
    if settings.on_servers:
        timeout_s = max(settings.online_timeout_ms, BULK_TIMEOUT_FLOOR_MS) / 1000  # a batch's claims in one script
        return RedisDedupe(settings.redis_url, window_s, timeout_s, claim_s, settings.feast_project)
    return SqliteDedupe(dedupe_path(settings), window_s, clock, claim_s)


def dedupe_path(settings: Settings) -> Path:
    return settings.wal_dir.parent / f"{settings.wal_dir.name}-dedupe.sqlite"
