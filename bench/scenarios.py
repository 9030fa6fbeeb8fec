"""The measured scenarios, each against a running server (``target``), all over grpc.aio.

Every function opens its own channels, so one scenario's connection state never carries over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import connections
from bench.latency import Samples, effective_latencies, percentile, summarize
from bench.loadgen import closed_loop, open_loop, rank_call
from bench.users import User
from serving.grpc import proto

EVENT_MIX = ("play", "play", "play", "skip", "like")  # roughly the generator's proportions
#: what a music player sends around one slate of ten: the choices above, plus an impression per item
#: shown, the track pages opened, and a heartbeat every 30 s of the three plays (~70 s each)
CLIENT_MIX = (("impression", 10), ("view", 2), ("play", 3), ("heartbeat", 7), ("skip", 1), ("like", 1))


@dataclass
class Measured:
    """One phase's summary plus what the plot and checks need."""

    summary: dict[str, Any]
    latencies_ms: list[float]  # what the percentiles were taken over (failed calls at >= the deadline)
    seen: dict[str, int] = field(default_factory=dict)
    groups: dict[str, Measured] = field(default_factory=dict)  # the same calls split by user group


def rank_requests(users: Sequence[User], k: int = 10) -> list[Any]:
    m = proto.ranking_pb2
    return [m.RankRequest(user_id=u.user_id, k=k, context=u.context) for u in users]


def _stub(channel: grpc.aio.Channel) -> Any:
    return proto.ranking_pb2_grpc.RankingServiceStub(channel)


#: connections per load-generating scenario, the same number on each worker process
#: (bench.connections: the kernel places connections, not calls, on workers)
CHANNELS = 8


@contextlib.asynccontextmanager
async def _stubs(target: str, n: int = CHANNELS) -> AsyncIterator[list[Any]]:
    def open_channel() -> grpc.aio.Channel:
        # a local subchannel pool per channel: otherwise gRPC shares one connection among channels
        # to the same target
        return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])

    channels, _ = await connections.balanced(open_channel, int(target.rsplit(":", 1)[1]), n)
    try:
        yield [_stub(c) for c in channels]
    finally:
        await asyncio.gather(*(c.close() for c in channels))


def _measured(samples: Samples, timeout_s: float, seen: dict[str, int] | None = None) -> Measured:
    # failed calls enter the percentiles at (at least) the deadline; see bench.latency.effective_latencies
    summary = summarize(samples, deadline_ms=timeout_s * 1000)
    if seen:
        replies = max(seen.get("replies", 0), 1)
        summary["cache_hit_fraction"] = round(seen.get("cache_hit", 0) / replies, 4)
        summary["degraded_fraction"] = round(seen.get("degraded", 0) / replies, 4)
        summary["popularity_fraction"] = round(seen.get("popularity", 0) / replies, 4)
    return Measured(summary, effective_latencies(samples, timeout_s * 1000), dict(seen or {}))


async def rank_open(
    target: str,
    requests: Sequence[Any],
    rate: float,
    duration_s: float,
    warmup_s: float,
    timeout_s: float,
    seed: int = 0,
) -> Measured:
    async with _stubs(target) as stubs:
        seen: dict[str, int] = {}
        samples = await open_loop(rank_call(stubs, requests, timeout_s, seen), rate, duration_s, warmup_s, seed)
    return _measured(samples, timeout_s, seen)


async def rank_open_groups(
    target: str,
    requests: Sequence[Any],
    groups: Sequence[str],
    rate: float,
    duration_s: float,
    warmup_s: float,
    timeout_s: float,
    seed: int = 0,
) -> Measured:
    """:func:`rank_open` over requests for several groups of users (``groups[i]`` names the group of
    ``requests[i]``): one schedule at ``rate``, summarized as a whole and per group (``.groups``)."""
    if len(groups) != len(requests):
        raise ValueError(f"{len(groups)} group names for {len(requests)} requests")
    async with _stubs(target) as stubs:
        seen: dict[str, dict[str, int]] = {g: {} for g in dict.fromkeys(groups)}
        calls = {g: rank_call(stubs, requests, timeout_s, seen[g]) for g in seen}

        def group(seq: int) -> str:
            return groups[seq % len(groups)]

        async def call(seq: int) -> str:
            return await calls[group(seq)](seq)

        samples = await open_loop(call, rate, duration_s, warmup_s, seed, group=group)
    total = {k: sum(s.get(k, 0) for s in seen.values()) for k in ("cache_hit", "degraded", "popularity", "replies")}
    whole = _measured(samples, timeout_s, total)
    whole.groups = {g: _measured(samples.groups.get(g, Samples()), timeout_s, seen[g]) for g in seen}
    return whole


async def rank_closed(
    target: str, requests: Sequence[Any], concurrency: int, duration_s: float, warmup_s: float, timeout_s: float
) -> Measured:
    async with _stubs(target) as stubs:
        seen: dict[str, int] = {}
        samples = await closed_loop(rank_call(stubs, requests, timeout_s, seen), concurrency, duration_s, warmup_s)
    return _measured(samples, timeout_s, seen)


async def rank_sequential(target: str, requests: Sequence[Any], n: int, timeout_s: float) -> Measured:
    """One call at a time: the unloaded latency (the like-for-like comparison of engines)."""
    samples, seen = Samples(), dict[str, int]()
    async with grpc.aio.insecure_channel(target) as channel:
        call = rank_call([_stub(channel)], requests, timeout_s, seen)
        for seq in range(n):
            t0 = time.perf_counter()
            code = await call(seq)
            samples.record(code, (time.perf_counter() - t0) * 1000)
        samples.elapsed_s = sum(samples.latencies_ms + samples.error_latencies_ms) / 1000
    return _measured(samples, timeout_s, seen)


async def health_sequential(target: str, n: int, timeout_s: float) -> Measured:
    """Health checks one at a time over one channel: a round trip through the same client and server
    that does no work, the floor under any Rank's latency (the cache-hit target is read against it)."""
    samples = Samples()
    request = health_pb2.HealthCheckRequest(service="")
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                await stub.Check(request, timeout=timeout_s)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            samples.record(code, (time.perf_counter() - t0) * 1000)
        samples.elapsed_s = sum(samples.latencies_ms + samples.error_latencies_ms) / 1000
    return _measured(samples, timeout_s)


async def rank_prime(target: str, requests: Sequence[Any], timeout_s: float) -> Measured:
    """Every request once over each connection of a scenario, so each worker process has answered
    it: an in-process cache is per worker, and a later run's connection may land on any of them."""
    samples, seen = Samples(), dict[str, int]()
    async with _stubs(target) as stubs:
        for stub in stubs:
            call = rank_call([stub], requests, timeout_s, seen)
            for seq in range(len(requests)):
                t0 = time.perf_counter()
                code = await call(seq)
                samples.record(code, (time.perf_counter() - t0) * 1000)
        samples.elapsed_s = sum(samples.latencies_ms + samples.error_latencies_ms) / 1000
    return _measured(samples, timeout_s, seen)


def _event(user: User, item_id: str, etype: str, n: int) -> Any:
    m = proto.ranking_pb2
    ev = m.Event(
        event_id=str(uuid.uuid4()),
        user_id=user.user_id,
        item_id=item_id,
        type=etype,
        timestamp_ms=int(time.time() * 1000),
        session_id=f"bench-{user.user_id}",
        context=user.context,
    )
    if etype == "play":
        ev.value = (n % 10) / 10
    return ev


async def track_throughput(
    target: str,
    users: Sequence[User],
    items: Sequence[str],
    streams: int,
    batch: int,
    duration_s: float,
    warmup_s: float,
    timeout_s: float,
) -> dict[str, Any]:
    """``streams`` concurrent senders of ``batch``-event Track calls; an accepted event is durable."""
    m = proto.ranking_pb2
    accepted = [0]
    counter = iter(range(1 << 62))

    async with _stubs(target) as stubs:
        loop = asyncio.get_running_loop()
        measured_from = loop.time() + warmup_s

        async def call(seq: int) -> str:
            events = []
            for _ in range(batch):
                n = next(counter)
                events.append(
                    _event(users[n % len(users)], items[(n * 7919) % len(items)], EVENT_MIX[n % len(EVENT_MIX)], n)
                )
            try:
                reply = await stubs[seq % len(stubs)].Track(m.TrackRequest(events=events), timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            if loop.time() >= measured_from:
                accepted[0] += reply.accepted
            return "OK" if reply.accepted == batch else "PARTIAL"

        samples = await closed_loop(call, streams, duration_s, warmup_s)
    out = summarize(samples, deadline_ms=timeout_s * 1000)
    return {
        "events_per_s": round(accepted[0] / samples.elapsed_s, 1) if samples.elapsed_s else None,
        "batch": batch,
        "streams": streams,
        "batches": out["count"],
        "errors": out["errors"],
        "errors_by_code": out["errors_by_code"],
        "batch_p50_ms": out["p50_ms"],
        "batch_p99_ms": out["p99_ms"],
    }


async def track_client_mix(
    target: str, users: Sequence[User], items: Sequence[str], events: int, batch: int, timeout_s: float
) -> dict[str, Any]:
    """Send about ``events`` events in ``CLIENT_MIX`` proportions, one call at a time, and add up what
    the server says it did: acknowledged, and of those left out of storage by the batch tier's
    sample (``TrackResponse.sampled_out``). What the tiers file saves on this traffic, measured."""
    m = proto.ranking_pb2
    kinds = [t for t, n in CLIENT_MIX for _ in range(n)]
    sent: dict[str, int] = {}
    accepted = sampled_out = failed = 0
    n = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = _stub(channel)
        while n < events:
            call = []
            for _ in range(min(batch, events - n)):
                etype = kinds[n % len(kinds)]
                sent[etype] = sent.get(etype, 0) + 1
                call.append(_event(users[n % len(users)], items[(n * 7919) % len(items)], etype, n))
                n += 1
            try:
                reply = await stub.Track(m.TrackRequest(events=call), timeout=timeout_s)
            except grpc.aio.AioRpcError:
                failed += len(call)
                continue
            accepted += reply.accepted
            sampled_out += reply.sampled_out
    return {
        "sent": n,
        "sent_by_type": dict(sorted(sent.items())),
        "accepted": accepted,
        "failed": failed,
        "sampled_out": sampled_out,
        "stored": accepted - sampled_out,
        "saved_share": round(sampled_out / accepted, 4) if accepted else None,
    }


async def freshness(
    target: str, users: Sequence[User], trials: int, timeout_s: float, give_up_s: float = 2.0
) -> dict[str, Any]:
    """Track ``not_interested`` for the user's current top item, then Rank until it is gone.

    Freshness is the time from the Track acknowledgement to the end of the first Rank whose answer no
    longer holds the item, so it includes at least one full Rank. Trials run one at a time, on the
    cache-enabled server: invalidating the cached ranking is part of what is measured."""
    m = proto.ranking_pb2
    fresh_ms: list[float] = []
    stale_ranks: list[int] = []
    failed = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = _stub(channel)
        for user in list(users)[:trials]:
            request = m.RankRequest(user_id=user.user_id, k=10, context=user.context)
            before = await stub.Rank(request, timeout=timeout_s)
            await stub.Rank(request, timeout=timeout_s)  # now cached, so a stale answer would be served
            if not before.items:
                failed += 1
                continue
            top = before.items[0].item_id
            await stub.Track(m.TrackRequest(events=[_event(user, top, "not_interested", 0)]), timeout=timeout_s)
            acked = time.perf_counter()
            stale = 0
            while True:
                reply = await stub.Rank(request, timeout=timeout_s)
                elapsed = time.perf_counter() - acked
                if top not in {i.item_id for i in reply.items}:
                    fresh_ms.append(elapsed * 1000)
                    stale_ranks.append(stale)
                    break
                stale += 1
                if elapsed > give_up_s:
                    failed += 1
                    break
    ordered = sorted(fresh_ms)
    return {
        "freshness_p50_ms": _r(percentile(ordered, 50)),
        "freshness_p99_ms": _r(percentile(ordered, 99)),
        "freshness_max_ms": _r(ordered[-1]) if ordered else None,
        "trials": len(fresh_ms),
        "not_reflected_within_s": {"seconds": give_up_s, "count": failed},
        "stale_ranks_before_fresh": sum(stale_ranks),
    }


def _r(v: float) -> float | None:
    return None if v != v else round(v, 3)
