"""Quotas per client token: a token bucket per caller and RPC, checked by the guard before any work.

Each bucket holds at most ``burst`` units and refills at ``per_s`` units a second; a call that finds
fewer units than it costs is refused with RESOURCE_EXHAUSTED and told how long to wait (trailing
metadata ``retry-after-ms`` and gRPC's own ``grpc-retry-pushback-ms``). Rank costs one unit per call and
is charged before the request is even parsed; Track costs one unit per event (at least one per call),
so a 1000-event batch weighs what 1000 single-event calls do, and is charged once its events are
counted, before anything is journaled.

The caller is the bearer token that authenticated the call (its entry in ``auth_tokens``, never the
secret itself). Without auth every caller shares one bucket per RPC: the quota is then a rate limit
of the whole server process. Either way the buckets are bounded by the configured tokens, so nothing
ever needs evicting. Buckets live in one process: each worker (``--workers``) and each replica keeps
its own.

Checking a bucket is O(1) under one short lock: no background thread refills anything, the refill is
computed from the time passed since the bucket was last touched (the clock is injectable for tests).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from serving.errors import QuotaExceeded
from setlist.settings import Settings

Clock = Callable[[], float]
Cost = Callable[[Any], int]


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
        clock: Clock = time.monotonic,
    ) -> None:
        self.rpc = rpc
        self.burst = burst or max(1, math.ceil(per_s))  # unset: one second's worth
        self.bucket = TokenBucket(per_s, self.burst, clock)
        self.cost = cost
        self._unit = f" {unit}" if unit else ""
        self._whose = "this token" if per_token else "this server (no auth: all callers share it)"

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


def quotas_from_settings(
    settings: Settings, *, per_token: bool = True, clock: Clock = time.monotonic
) -> dict[str, Quota]:
    """The configured quotas by RPC name; empty when none is set (``quota_*_per_s`` unset or 0).
    ``per_token`` says whether callers are told apart (auth is on) or share one bucket."""
    quotas: dict[str, Quota] = {}
    specs = (
        ("Rank", settings.quota_rank_per_s, settings.quota_rank_burst, None, ""),
        ("Track", settings.quota_track_per_s, settings.quota_track_burst, _per_event, "events"),
    )
    for rpc, per_s, burst, cost, unit in specs:
        if (per_s is not None and per_s < 0) or (burst is not None and burst < 0):
            raise ValueError(f"quota_{rpc.lower()}_per_s and quota_{rpc.lower()}_burst must not be negative")
        if per_s:
            quotas[rpc] = Quota(rpc, per_s, burst, cost=cost, unit=unit, per_token=per_token, clock=clock)
    return quotas
