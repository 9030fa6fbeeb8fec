"""The prediction cache: a bounded LRU with TTL in process, or shared through Redis.

Keys carry everything a ranking depends on: the user, context bucket, k, exclusions, both
model versions, the feature publish and the user's own feature rows' timestamps. Invalidation is
O(1) and never scans keys: every entry is stamped with the user's version and the cache's
generation read when the Rank looked it up, and is served only while both are unchanged. A Track
bumps its users' versions (``bump_users``), a model swap the generation (``bump_generation``); a
stale entry is a miss and is overwritten by the next put under its key, or ages out by LRU/TTL.

Why a stamp in the value rather than the version in the key: with Redis, a key that holds the
version cannot be known before the version is read, which costs a second round trip on every Rank.
A stamp lets one MGET fetch the entry, the user's version and the generation together: the same
one round trip as before versions existed. A Rank that raced a Track puts its entry with the stamp
it read before the Track, so the entry is stale at once: never a stale hit.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple, Protocol, cast

from serving.breaker import Breaker
from setlist.cachekeys import entry_key, generation_key, new_token, user_token, user_version_key
from setlist.redis_client import fail_fast_redis


def cache_key(
    user: str,
    bucket: str,
    k: int,
    exclude: tuple[str, ...],
    model_version: str,
    feature_version: str,
    slate: tuple[str, ...] = (),
) -> str:
    """``<user token>|<digest of the rest>``: the user is a digest of the pseudonym (a shared store
    holds no identifier), and the other fields are joined with a separator none of them can hold (the
    context bucket and the feature version contain ``|`` themselves), so different requests never
    share a key. A caller's own ``slate`` counts in its order (ties keep it). Item ids carry their
    length since slates came: a key with exclusions changed then, one without exclusions or a slate
    did not."""
    # item ids are the caller's: each carries its length, so that no id made of others and a
    # separator reads as those others
    rest = "\x1f".join(
        (bucket, str(k), *(_sized(sorted(set(exclude))) if exclude else ()), "\x1e", model_version, feature_version)
    )
    if slate:
        rest = "\x1f".join((rest, "\x1d", *_sized(slate)))
    return f"{user_token(user)}|{hashlib.blake2b(rest.encode(), digest_size=12).hexdigest()}"


def _sized(ids: Iterable[str]) -> list[str]:
    return [f"{len(i)}:{i}" for i in ids]


class Lookup(NamedTuple):
    """A cached value (None: a miss) and the stamp to ``put`` a fresh value with after a miss."""

    value: Any | None
    stamp: object


class Cache(Protocol):
    def lookup(self, user: str, key: str) -> Lookup: ...

    def put(self, key: str, stamp: object, value: Any) -> None: ...

    def bump_users(self, users: Collection[str]) -> None: ...

    def bump_generation(self) -> None: ...


class NoCache:
    shared = False

    def lookup(self, user: str, key: str) -> Lookup:
        return Lookup(None, None)

    def put(self, key: str, stamp: object, value: Any) -> None:
        return None

    def bump_users(self, users: Collection[str]) -> None:
        return None

    def bump_generation(self) -> None:
        return None


class MemoryCache:
    """At most ``max_entries`` (least recently used out first); an entry expires ``ttl_s`` after
    it was put, by ``clock`` (monotonic seconds; injectable so tests need not sleep).

    User versions are values of one process-wide counter, so a version is never reused. At most
    ``max_users`` users keep their own version (least recently bumped out first); every other user
    reads the ``floor``, the newest version let go. Letting a version go thus makes older stamps of
    users without their own version stale too (a few extra misses), and never revives an old stamp.
    """

    shared = False  # one per process: another worker's Track does not bump this one's versions

    def __init__(
        self,
        max_entries: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_users: int | None = None,
    ) -> None:
        self.max_entries, self.ttl_s, self._clock = max_entries, ttl_s, clock
        self.max_users = max_entries if max_users is None else max_users
        self._data: OrderedDict[str, tuple[float, tuple[int, int], Any]] = OrderedDict()
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._counter = itertools.count(1)
        self._floor = 0
        self._generation = 0
        self._lock = threading.Lock()

    def lookup(self, user: str, key: str) -> Lookup:
        with self._lock:
            stamp = (self._versions.get(user, self._floor), self._generation)
            hit = self._data.get(key)
            if hit is None:
                return Lookup(None, stamp)
            if hit[0] < self._clock() or hit[1] != stamp:
                del self._data[key]  # expired or stale: free it now rather than when LRU gets to it
                return Lookup(None, stamp)
            self._data.move_to_end(key)
            return Lookup(hit[2], stamp)

    def put(self, key: str, stamp: object, value: Any) -> None:
        with self._lock:
            now = self._clock()
            self._data[key] = (now + self.ttl_s, cast(tuple[int, int], stamp), value)
            self._data.move_to_end(key)
            # Most entries are never looked up again (a Track or the hour changes the key), so waiting
            # for a lookup to free them kept a worker at ``max_entries`` (~4 KB each) for good; the least
            # recently used end goes while it is expired: amortized one check per put.
            while self._data and next(iter(self._data.values()))[0] < now:
                self._data.popitem(last=False)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def bump_users(self, users: Collection[str]) -> None:
        with self._lock:
            for user in users:
                self._versions[user] = next(self._counter)
                self._versions.move_to_end(user)
            while len(self._versions) > self.max_users:
                # bumped in counter order, so the first one out holds the largest version let go yet
                self._floor = self._versions.popitem(last=False)[1]

    def bump_generation(self) -> None:
        with self._lock:
            self._generation += 1

    def __len__(self) -> int:
        return len(self._data)


# every key a new version, expiring with PX: SET per key, run in Redis as one command
_BUMP = "for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) end"


class RedisCache:
    """Shared by every replica. Values are JSON (never pickle: a shared store must not be able
    to run code in the server): ``{"stamp": [user version, generation], "value": ...}``. Redis
    evicts by its own policy; entries expire by TTL, user versions after twice that, so a version
    outlives every entry stamped before it (including one put by a Rank that raced its Track).
    A missing version reads as "" (so a Redis that evicts keys under memory pressure could drop a
    version before its entries; the user's feature rows in the key still change on Track). Any Redis
    error or undecodable entry is a miss, at once: one retry without backoff (a pooled connection
    Redis closed), short socket timeouts. The three keys of a lookup share no hash slot: not for
    Redis Cluster."""

    #: every worker and replica reads the same versions and generation, which every Track, erasure
    #: and feature publish bumps: RankingService looks a hit up before reading the user's rows
    shared = True

    def __init__(
        self, url: str, ttl_s: float, timeout_s: float, breaker: Breaker | None = None, namespace: str = "setlist"
    ) -> None:
        self.ttl_ms = int(ttl_s * 1000)
        self.namespace = namespace  # the deployment's (SETLIST_FEAST_PROJECT): setlist.cachekeys
        # one retry, for a pooled connection Redis closed; a timeout is not retried (a hung Redis
        # would cost every call two)
        self.client = fail_fast_redis(url, timeout_s, retries=1, retry_timeouts=False)
        self._bump = self.client.register_script(_BUMP)
        # every Rank looks up and every Track bumps: without it a hung Redis costs each one a timeout
        self._breaker = breaker

    def _call(self, op: Callable[[], Any]) -> tuple[bool, Any]:
        """``op()`` unless the breaker holds Redis off; (False, None) when it did or ``op`` failed."""
        if self._breaker is not None and not self._breaker.allow():
            return False, None
        try:
            out = op()
        except Exception:
            if self._breaker is not None:
                self._breaker.failure()
            return False, None
        if self._breaker is not None:
            self._breaker.success()
        return True, out

    def _entry(self, key: str) -> str:
        return entry_key(key, self.namespace)

    def _version(self, user: str) -> str:
        return user_version_key(user, self.namespace)

    def _generation(self) -> str:
        return generation_key(self.namespace)

    def lookup(self, user: str, key: str) -> Lookup:
        ok, reply = self._call(lambda: self.client.mget(self._entry(key), self._version(user), self._generation()))
        if not ok:
            return Lookup(None, None)  # no stamp: nothing is put while Redis is unreachable
        # the sync client returns bytes; redis-py's annotations also cover its async client
        raw, version, generation = cast(list[bytes | None], reply)
        stamp = [(version or b"").decode("ascii", "replace"), (generation or b"").decode("ascii", "replace")]
        return Lookup(None if raw is None else _decode(raw, stamp), stamp)

    def put(self, key: str, stamp: object, value: Any) -> None:
        if stamp is None:
            return None
        body = json.dumps({"stamp": stamp, "value": value})
        self._call(lambda: self.client.set(self._entry(key), body, px=self.ttl_ms))
        return None

    def bump_users(self, users: Collection[str]) -> None:
        if not users:
            return None
        # one command for a whole Track batch: a pipeline of 1,000 SETs spends ~30 ms in redis-py
        # packing and parsing them. One new token serves the batch: it only has to differ from
        # each user's earlier versions.
        keys = [self._version(u) for u in users]
        self._call(lambda: self._bump(keys=keys, args=[new_token(), 2 * self.ttl_ms]))
        return None

    def bump_generation(self) -> None:
        # rare (a model swap, a publish) and what keeps the old model's rankings from being served:
        # always tried, whatever the breaker says
        try:
            self.client.set(self._generation(), new_token())
        except Exception:
            return None


def _decode(raw: bytes, stamp: list[str]) -> Any | None:
    """The value of a fresh entry; None for a stale one, and for anything that is not an entry this
    code wrote (corrupt bytes, another format): a miss, never an error on Rank."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if not isinstance(doc, dict) or doc.get("stamp") != stamp:
        return None
    return doc.get("value")
