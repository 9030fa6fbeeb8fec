"""Quotas per client token: a token bucket per caller and RPC, checked by the guard before any work.

Each bucket holds at most ``burst`` units and refills at ``per_s`` units a second; a call that finds
fewer units than it costs is refused with RESOURCE_EXHAUSTED and told how long to wait (trailing
metadata ``retry-after-ms`` and gRPC's own ``grpc-retry-pushback-ms``). Rank costs one unit per call and
is charged before the request is even parsed; Track costs one unit per event (at least one per call),
so a 1000-event batch weighs what 1000 single-event calls do, and is charged once its events are
counted, before anything is journaled.

The caller is the bearer token that authenticated the call (its fingerprint, never the secret
itself). Without auth every caller shares one bucket per RPC: the quota is then a rate limit of the
whole server. Either way the buckets are bounded by the configured tokens, so nothing ever needs
evicting. Every token has the ``quota_*`` limits unless ``quota_file`` gives it its own
(``serving.grpc.quota_file``).

Where the buckets live is ``quota_backend``: ``memory`` keeps them in the process, so each worker
(``--workers``) and each replica has its own and a token gets up to N times its rate in total;
``redis`` keeps one bucket per token and RPC in the shared Redis, taken from by one atomic script per
call (one round trip), so the rate holds across every worker and replica. A Redis that cannot answer
lets the call through (counted in ``setlist_quota_backend_errors_total``, logged once a minute): a
rate limit that failed closed would turn a Redis outage into a serving outage. A breaker (the online
store's settings) then stops asking a Redis that keeps failing: without it a hung Redis cost every call
one timeout (``SETLIST_ONLINE_TIMEOUT_MS``) for as long as it hung; with it, one probe per cool-down.

No background thread refills anything: the refill is computed from the time passed since the bucket
was last touched (the clock is injectable for tests; the Redis buckets are given the caller's wall
clock, so replicas' clocks need only agree to within the refill time of one unit).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol

from serving import metrics
from serving.breaker import Breaker
from serving.errors import QuotaExceeded
from serving.grpc import quota_file
from serving.grpc.auth import TokenAuth
from serving.grpc.quota_file import Limit, TokenQuota
from setlist.redis_client import fail_fast_redis
from setlist.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Cost = Callable[[Any], int]


def quota_key_prefix(namespace: str = "setlist") -> str:
    """The Redis keys of the shared buckets are ``<namespace>:quota:<rpc>:<token fingerprint or "all">``,
    the namespace being the deployment's Feast project (two deployments on one Redis database keep apart)."""
    return f"{namespace}:quota"


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

    def state(self) -> dict[Hashable, tuple[float, float]]:
        """Every bucket touched so far: key -> (units it holds now, refilled at this rate; now)."""
        with self._lock:
            now = self._clock()
            return {
                key: (min(self.burst, left + (now - then) * self.per_s), now)
                for key, (left, then) in self._buckets.items()
            }

    def restore(self, key: Hashable, left: float, then: float) -> None:
        """Give ``key`` a bucket with ``left`` units as of ``then`` (capped at this burst)."""
        with self._lock:
            self._buckets[key] = (min(self.burst, left), then)


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
        self,
        client: Any,
        prefix: str,
        per_s: float,
        burst: float,
        clock: Clock = time.time,
        rpc: str = "",
        breaker: Breaker | None = None,
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
        self._breaker = breaker

    def _run(self, key: Hashable, cost: float) -> tuple[float, float] | None:
        if self._breaker is not None and not self._breaker.allow():
            metrics.QUOTA_BACKEND_ERRORS.labels(self._rpc).inc()  # let through uncounted, as a failure is
            return None
        try:
            wait, left = self._script(
                keys=[f"{self._prefix}:{'all' if key is None else key}"],
                args=[self.per_s, self.burst, cost, self._clock(), self._expire_ms],
            )
        except Exception as exc:  # redis.RedisError, OSError: the call goes through, see the module
            if self._breaker is not None:
                self._breaker.failure()
            metrics.QUOTA_BACKEND_ERRORS.labels(self._rpc).inc()
            now = time.monotonic()
            if now - self._logged_at >= UNAVAILABLE_LOG_S:
                self._logged_at = now
                log.warning("quota buckets in Redis unavailable; letting calls through: %s", exc)
            return None
        if self._breaker is not None:
            self._breaker.success()
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
    """The quota of one RPC: a default limit for every caller, and limits of their own for some
    (``serving.grpc.quota_file``). ``cost`` None: one unit per call, charged before the request is
    parsed; else ``cost(request)`` units, charged on the parsed request."""

    def __init__(
        self,
        rpc: str,
        per_s: float | None,
        burst: int | None = None,
        *,
        cost: Cost | None = None,
        unit: str = "",
        per_token: bool = True,
        clock: Clock | None = None,
        shared: Any = None,
        own: Iterable[tuple[Hashable, str, Limit | None]] = (),
        breaker: Breaker | None = None,
        namespace: str = "setlist",
    ) -> None:
        """``per_s`` None or 0: no default quota (only the callers in ``own`` are limited). ``own``:
        (caller, name, limit or None for none) per caller with limits of its own. ``shared``: a Redis
        client to keep the buckets in (every process with the same Redis shares them); None keeps
        them in this process. ``breaker``: held by every bucket on ``shared`` (one per client: a Redis
        that fails one RPC's check fails the other's). ``clock``: monotonic for a bucket in the process,
        the wall clock (which replicas share) for a shared one, unless a test injects its own."""
        self.rpc = rpc
        self.cost = cost
        self._unit = f" {unit}" if unit else ""
        self._shared = shared
        self._breaker = breaker
        self._clock = clock
        self._namespace = namespace
        where = "this server" if shared is None else "these servers"
        default = Limit.of(per_s, burst)
        self.burst = default.burst if default is not None else None
        self._default = self._line(default, "this token" if per_token else f"{where} (no auth: all callers share it)")
        self.bucket = self._default[0] if self._default is not None else None
        self._own = {caller: self._line(limit, f"token {name!r}") for caller, name, limit in own}

    def _line(self, limit: Limit | None, whose: str) -> tuple[Bucket, Limit, str] | None:
        if limit is None:
            return None
        bucket: Bucket = (
            TokenBucket(limit.per_s, limit.burst, self._clock or time.monotonic)
            if self._shared is None
            else RedisTokenBucket(
                self._shared,
                f"{quota_key_prefix(self._namespace)}:{self.rpc}",
                limit.per_s,
                limit.burst,
                self._clock or time.time,
                self.rpc,
                self._breaker,
            )
        )
        return bucket, limit, whose

    def carry_from(self, old: Quota) -> None:
        """Take over from ``old`` (this quota replaces it after the quota file changed), so that a
        reload neither refills a spent bucket nor drains a full one: where a limit did not change
        (the default's, or a token's own), this quota draws from ``old``'s very bucket, so calls still
        charging ``old`` count too; every other caller starts with the units it had left, capped at
        its new burst (units taken from ``old`` meanwhile are not counted). Buckets in Redis keep their
        keys whatever happens, and the next take caps them at the new burst."""
        if self._default is not None and old._default is not None and self._default[1] == old._default[1]:
            self._default = (old._default[0], *self._default[1:])
            self.bucket = self._default[0]
        for caller, line in self._own.items():
            was = old._own.get(caller)
            if line is not None and was is not None and line[1] == was[1]:
                self._own[caller] = (was[0], *line[1:])
        for line in (old._default, *old._own.values()):
            if line is None or not isinstance(line[0], TokenBucket):
                continue
            for caller, (left, then) in line[0].state().items():
                mine = self._own.get(caller, self._default)
                if mine is not None and isinstance(mine[0], TokenBucket) and mine[0] is not line[0]:
                    mine[0].restore(caller, left, then)

    @property
    def shared(self) -> Any:
        """The Redis client that holds the buckets; None when they are in this process."""
        return self._shared

    @property
    def breaker(self) -> Breaker | None:
        """The shared buckets' breaker, which a reload's quotas keep (None in the process)."""
        return self._breaker

    def charge(self, client: Hashable, cost: int = 1) -> None:
        """Take ``cost`` units from ``client``'s bucket, or raise QuotaExceeded saying how long to wait."""
        line = self._own.get(client, self._default) if self._own else self._default
        if line is None:  # no quota for this caller
            return
        bucket, limit, whose = line
        wait = bucket.take(client, cost)
        if wait == 0.0:
            return
        limits = f"{limit.per_s:g}{self._unit} per s, burst {limit.burst}"
        if math.isinf(wait):  # waiting cannot help: tell the caller to send less per call
            raise QuotaExceeded(
                f"quota for {self.rpc} exceeded for {whose}: {limits}; one call of {cost}{self._unit} "
                f"can never fit, send at most {limit.burst}{self._unit} per call",
                retry_after_ms=None,
            )
        retry_ms = max(1, math.ceil(wait * 1000))
        raise QuotaExceeded(
            f"quota for {self.rpc} exceeded for {whose}: {limits}; retry after {retry_ms} ms",
            retry_after_ms=retry_ms,
        )


def default_limits(settings: Settings) -> dict[str, Limit | None]:
    """Every caller's limit by RPC, from ``SETLIST_QUOTA_*`` (None: no quota). Raises ValueError on a
    negative setting."""
    specs = (
        ("Rank", settings.quota_rank_per_s, settings.quota_rank_burst),
        ("Track", settings.quota_track_per_s, settings.quota_track_burst),
    )
    for rpc, per_s, burst in specs:
        if (per_s is not None and per_s < 0) or (burst is not None and burst < 0):
            raise ValueError(f"quota_{rpc.lower()}_per_s and quota_{rpc.lower()}_burst must not be negative")
    return {rpc: Limit.of(per_s, burst) for rpc, per_s, burst in specs}


def token_quotas(settings: Settings, auth: TokenAuth | None) -> list[TokenQuota]:
    """The per-token overrides of ``SETLIST_QUOTA_FILE``, checked against the configured tokens.
    Raises UsageError (the file) or ValueError (the settings)."""
    known = [fp for fp, _ in auth.fingerprints()] if auth is not None else []
    return quota_file.load(settings.quota_file, known, default_limits(settings))


def quotas_from_settings(
    settings: Settings,
    auth: TokenAuth | None = None,
    *,
    clock: Clock | None = None,
    shared: Any = None,
    breaker: Breaker | None = None,
) -> dict[str, Quota]:
    """The configured quotas by RPC name; empty when none is set (``quota_*_per_s`` unset or 0, and no
    token given a rate of its own in ``quota_file``). Without ``auth`` callers are not told apart
    and share one bucket per RPC. ``shared``, ``breaker``: the Redis client and its breaker of quotas
    built before (a reload), else made when ``quota_backend`` is ``redis``."""
    defaults = default_limits(settings)
    own = token_quotas(settings, auth)
    limited = {rpc for rpc, limit in defaults.items() if limit is not None}
    limited |= {rpc for t in own for rpc, limit in t.limits.items() if limit is not None}
    if settings.quota_backend != "redis" or not limited:
        shared = breaker = None
    elif shared is None:
        # no retry: a pooled connection Redis closed costs one call its check (let through), not a delay
        shared = fail_fast_redis(settings.redis_url, settings.online_timeout_ms / 1000, retries=0)
    if shared is not None and breaker is None:
        breaker = Breaker(settings.online_breaker_cooldown_s, failures_to_open=settings.online_breaker_failures)
    costs = {"Rank": (None, ""), "Track": (_per_event, "events")}
    quotas: dict[str, Quota] = {}
    for rpc in quota_file.RPCS:
        if rpc not in limited:
            continue
        default = defaults[rpc]
        cost, unit = costs[rpc]
        quotas[rpc] = Quota(
            rpc,
            default.per_s if default is not None else None,
            default.burst if default is not None else None,
            cost=cost,
            unit=unit,
            per_token=auth is not None,
            clock=clock,
            shared=shared,
            own=[(t.fingerprint, t.name, t.limits[rpc]) for t in own if rpc in t.limits],
            breaker=breaker,
            namespace=settings.feast_project,
        )
    return quotas
