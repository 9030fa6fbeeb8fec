"""Quotas per client token: a token bucket per caller and RPC, checked by the guard before any work.

Each bucket holds at most ``burst`` units and refills at ``per_s`` units a second; a call that finds
fewer units than it costs is refused with RESOURCE_EXHAUSTED and told how long to wait (trailing
metadata ``retry-after-ms`` and gRPC's own ``grpc-retry-pushback-ms``). Rank costs one unit per call and
is charged before the request is even parsed; Track costs one unit per event (at least one per call),
so a 1000-event batch weighs what 1000 single-event calls do, and is charged once its events are
counted, before anything is journaled.

The caller is the bearer token that authenticated the call (its entry in ``auth_tokens``, never the
secret itself). Without auth every caller shares one bucket per RPC: the quota is then a rate limit
of the whole server. Either way the buckets are bounded by the configured tokens, so nothing ever
needs evicting.

Where the buckets live is ``quota_backend``: ``memory`` keeps them in the process, so each worker
(``--workers``) and each replica has its own and a token gets up to N times its rate in total;
``redis`` keeps one bucket per token and RPC in the shared Redis, taken from by one atomic script per
call (one round trip), so the rate holds across every worker and replica. A Redis that cannot answer
lets the call through (counted in ``setlist_quota_backend_errors_total``, logged once a minute): a
rate limit that failed closed would turn a Redis outage into a serving outage.

No background thread refills anything: the refill is computed from the time passed since the bucket
was last touched (the clock is injectable for tests; the Redis buckets are given the caller's wall
clock, so replicas' clocks need only agree to within the refill time of one unit).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from serving import metrics
from serving.errors import QuotaExceeded
from setlist.redis_client import fail_fast_redis
from setlist.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Cost = Callable[[Any], int]
#: the Redis keys of the shared buckets: ``setlist:quota:<rpc>:<token index or "all">``
QUOTA_KEY_PREFIX = "setlist:quota"


class TokenBucket:
    """Token buckets of one size and rate, one per key, created full on first use."""

    def __init__(self, per_s: float, burst: float, clock: Clock = time.monotonic) -> None:
        if not per_s > 0 or not burst >= 1:
            raise ValueError(f"a token bucket needs per_s > 0 and burst >= 1, got {per_s} and {burst}")
        self.per_s = float(per_s)
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (units left, when last touched)
        self._lock = threading.Lock()

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Take ``cost`` units from ``key``'s bucket: 0.0 when they were there (and are now taken),
        else the seconds until they will be (nothing is taken). ``math.inf`` if ``cost`` exceeds the burst."""
        if cost > self.burst:
            return math.inf
        with self._lock:  # the clock is read inside, so that the times a bucket sees never go back
            now = self._clock()
            left, then = self._buckets.get(key, (self.burst, now))
            left = min(self.burst, left + (now - then) * self.per_s)
            if left >= cost:
                self._buckets[key] = (left - cost, now)
                return 0.0
            self._buckets[key] = (left, now)
        return (cost - left) / self.per_s

    def available(self, key: Hashable) -> float:
        """Units ``key`` could spend now (for tests and debugging)."""
        with self._lock:
            now = self._clock()
            left, then = self._buckets.get(key, (self.burst, now))
            return min(self.burst, left + (now - then) * self.per_s)


class Bucket(Protocol):
    per_s: float
    burst: float

    def take(self, key: Hashable, cost: float = 1.0) -> float: ...

    def available(self, key: Hashable) -> float: ...


# KEYS[1] the bucket; ARGV: per_s, burst, cost, now (s), expiry (ms). Returns {wait s, units left} as
# strings (a Lua number would come back truncated to an integer). Cost 0 reads without writing. A
# clock behind the bucket's (another replica's) counts as the bucket's time, so it never refills twice.
_TAKE = """
local per_s, burst, cost, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'left', 'at')
local left, at = tonumber(state[1]), tonumber(state[2])
if left == nil or at == nil then left, at = burst, now end
if now < at then now = at end
left = math.min(burst, left + (now - at) * per_s)
local wait = 0
if left >= cost then left = left - cost else wait = (cost - left) / per_s end
if cost > 0 then
  redis.call('HSET', KEYS[1], 'left', tostring(left), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
end
return {tostring(wait), tostring(left)}
"""

#: at most one log line per this many seconds while the shared buckets cannot be reached
UNAVAILABLE_LOG_S = 60.0


class RedisTokenBucket:
    """``TokenBucket``'s contract with the buckets in Redis, shared by every process that uses the same
    ``prefix`` (the RPC). A bucket's key expires once it would have refilled to the burst, which is
    what a missing key means."""

    def __init__(
        self, client: Any, prefix: str, per_s: float, burst: float, clock: Clock = time.time, rpc: str = ""
    ) -> None:
        if not per_s > 0 or not burst >= 1:
            raise ValueError(f"a token bucket needs per_s > 0 and burst >= 1, got {per_s} and {burst}")
        self.per_s = float(per_s)
        self.burst = float(burst)
        self._client = client
        self._script = client.register_script(_TAKE)
        self._prefix = prefix
        self._clock = clock
        self._rpc = rpc or prefix
        self._expire_ms = math.ceil(self.burst / self.per_s * 1000) + 1000
        self._logged_at = -math.inf

    def _run(self, key: Hashable, cost: float) -> tuple[float, float] | None:
        try:
            wait, left = self._script(
                keys=[f"{self._prefix}:{'all' if key is None else key}"],
                args=[self.per_s, self.burst, cost, self._clock(), self._expire_ms],
            )
        except Exception as exc:  # redis.RedisError, OSError: the call goes through, see the module
            metrics.QUOTA_BACKEND_ERRORS.labels(self._rpc).inc()
            now = time.monotonic()
            if now - self._logged_at >= UNAVAILABLE_LOG_S:
                self._logged_at = now
                log.warning("quota buckets in Redis unavailable; letting calls through: %s", exc)
            return None
        return float(wait), float(left)

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        if cost > self.burst:
            return math.inf
        answer = self._run(key, cost)
        return 0.0 if answer is None else answer[0]

    def available(self, key: Hashable) -> float:
        answer = self._run(key, 0)
        return self.burst if answer is None else answer[1]


def _per_event(request: Any) -> int:
    return max(1, len(request.events))


class Quota:
    """The quota of one RPC. ``cost`` None: one unit per call, charged before the request is parsed;
    else ``cost(request)`` units, charged on the parsed request."""

    def __init__(
        self,
        rpc: str,
        per_s: float,
        burst: int | None = None,
        *,
        cost: Cost | None = None,
        unit: str = "",
        per_token: bool = True,
        clock: Clock | None = None,
        shared: Any = None,
    ) -> None:
        """``shared``: a Redis client to keep the buckets in (every process with the same Redis shares
        them); None keeps them in this process. ``clock``: monotonic for a bucket in the process, the
        wall clock (which replicas share) for a shared one, unless a test injects its own."""
        self.rpc = rpc
        self.burst = burst or max(1, math.ceil(per_s))  # unset: one second's worth
        self.bucket: Bucket = (
            TokenBucket(per_s, self.burst, clock or time.monotonic)
            if shared is None
            else RedisTokenBucket(shared, f"{QUOTA_KEY_PREFIX}:{rpc}", per_s, self.burst, clock or time.time, rpc)
        )
        self.cost = cost
        self._unit = f" {unit}" if unit else ""
        where = "this server" if shared is None else "these servers"
        self._whose = "this token" if per_token else f"{where} (no auth: all callers share it)"

    def charge(self, client: Hashable, cost: int = 1) -> None:
        """Take ``cost`` units from ``client``'s bucket, or raise QuotaExceeded saying how long to wait."""
        wait = self.bucket.take(client, cost)
        if wait == 0.0:
            return
        limits = f"{self.bucket.per_s:g}{self._unit} per s, burst {self.burst}"
        if math.isinf(wait):  # waiting cannot help: tell the caller to send less per call
            raise QuotaExceeded(
                f"quota for {self.rpc} exceeded for {self._whose}: {limits}; one call of {cost}{self._unit} "
                f"can never fit, send at most {self.burst}{self._unit} per call",
                retry_after_ms=None,
            )
        retry_ms = max(1, math.ceil(wait * 1000))
        raise QuotaExceeded(
            f"quota for {self.rpc} exceeded for {self._whose}: {limits}; retry after {retry_ms} ms",
            retry_after_ms=retry_ms,
        )


def quotas_from_settings(settings: Settings, *, per_token: bool = True, clock: Clock | None = None) -> dict[str, Quota]:
    """The configured quotas by RPC name; empty when none is set (``quota_*_per_s`` unset or 0).
    ``per_token`` says whether callers are told apart (auth is on) or share one bucket."""
    quotas: dict[str, Quota] = {}
    shared = None
    if settings.quota_backend == "redis" and (settings.quota_rank_per_s or settings.quota_track_per_s):
        # no retry: a pooled connection Redis closed costs one call its check (let through), not a delay
        shared = fail_fast_redis(settings.redis_url, settings.online_timeout_ms / 1000, retries=0)
    specs = (
        ("Rank", settings.quota_rank_per_s, settings.quota_rank_burst, None, ""),
        ("Track", settings.quota_track_per_s, settings.quota_track_burst, _per_event, "events"),
    )
    for rpc, per_s, burst, cost, unit in specs:
        if (per_s is not None and per_s < 0) or (burst is not None and burst < 0):
            raise ValueError(f"quota_{rpc.lower()}_per_s and quota_{rpc.lower()}_burst must not be negative")
        if per_s:
            quotas[rpc] = Quota(
                rpc, per_s, burst, cost=cost, unit=unit, per_token=per_token, clock=clock, shared=shared
            )
    return quotas
