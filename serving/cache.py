"""The prediction cache: a bounded LRU with TTL in process, or shared through Redis.

Keys carry everything a ranking depends on: the user, context bucket, k, exclusions, both
model versions, the feature publish and the user's own feature rows' timestamps. A Track pushes
new session state, which changes the key, so invalidation on feedback needs no broadcast and
works across replicas; explicit ``invalidate_user`` additionally frees memory at once.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, cast


def cache_key(
    user: str, bucket: str, k: int, exclude: tuple[str, ...], model_version: str, feature_version: str
) -> str:
    """``<user>|<digest of the rest>``: the user stays a readable prefix (``invalidate_user`` scans it),
    and the other fields are joined with a separator none of them can hold (the context bucket and
    the feature version contain ``|`` themselves), so different requests never share a key."""
    rest = "\x1f".join((bucket, str(k), *sorted(set(exclude)), "\x1e", model_version, feature_version))
    return f"{user}|{hashlib.blake2b(rest.encode(), digest_size=12).hexdigest()}"


class Cache(Protocol):
    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def invalidate_user(self, user: str) -> None: ...

    def clear(self) -> None: ...


class NoCache:
    def get(self, key: str) -> Any | None:
        return None

    def put(self, key: str, value: Any) -> None:
        return None

    def invalidate_user(self, user: str) -> None:
        return None

    def clear(self) -> None:
        return None


class MemoryCache:
    """At most ``max_entries`` (least recently used out first); an entry expires ``ttl_s`` after
    it was put, by ``clock`` (monotonic seconds; injectable so tests need not sleep)."""

    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries, self.ttl_s, self._clock = max_entries, ttl_s, clock
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] < self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return hit[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = (self._clock() + self.ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def invalidate_user(self, user: str) -> None:
        prefix = user + "|"
        with self._lock:
            for key in [k for k in self._data if k.startswith(prefix)]:
                del self._data[key]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class RedisCache:
    """Shared by every replica. Values are JSON (never pickle: a shared store must not be able
    to run code in the server). Redis evicts by its own policy; entries expire by TTL."""

    PREFIX = "setlist:rank:"

    def __init__(self, url: str, ttl_s: float, timeout_s: float) -> None:
        import redis

        self.ttl_ms = int(ttl_s * 1000)
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def get(self, key: str) -> Any | None:
        try:
            raw = self.client.get(self.PREFIX + key)
        except Exception:
            return None
        # the sync client returns bytes; redis-py's annotations also cover its async client
        return None if raw is None else json.loads(cast(bytes, raw))

    def put(self, key: str, value: Any) -> None:
        try:
            self.client.set(self.PREFIX + key, json.dumps(value), px=self.ttl_ms)
        except Exception:
            return None

    def invalidate_user(self, user: str) -> None:
        try:
            for key in self.client.scan_iter(match=f"{self.PREFIX}{user}|*", count=500):
                self.client.delete(key)
        except Exception:
            return None

    def clear(self) -> None:
        try:
            for key in self.client.scan_iter(match=f"{self.PREFIX}*", count=1000):
                self.client.delete(key)
        except Exception:
            return None
