"""Load generation on asyncio (grpc.aio): an open loop with Poisson arrivals, and a closed loop.

Open loop: send times are drawn up front (exponential gaps at the target rate) and every call's
latency is measured from its *scheduled* send time, not from when it actually left. A server (or a
load generator) that stalls therefore pays for every request that should have been sent during the
stall; measuring from the actual send would hide exactly those (coordinated omission).

Closed loop: N workers each send, wait for the answer, and send again. Its throughput is the
saturation rate for that concurrency; its latencies are not comparable with the open loop's.

All timing goes through the running loop's clock (``loop.time()``) and ``asyncio.sleep``, so tests
can drive the generator on a virtual-time loop without real waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from bench.latency import Samples

#: one request: given its sequence number, send it and return the gRPC status code name ("OK", …).
#: Must not raise for RPC failures; they are results, counted by code.
Call = Callable[[int], Awaitable[str]]
LATE_S = 0.001  # a send leaving later than this after its scheduled time is counted as late


def poisson_schedule(rate: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """Send offsets (seconds from the start) of a Poisson process at ``rate`` per second."""
    if rate <= 0 or duration_s <= 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    # Draw more gaps than needed, in one go, then cut at the duration.
    n = int(rate * duration_s + 10 * np.sqrt(rate * duration_s) + 10)
    times = np.cumsum(rng.exponential(1.0 / rate, size=n))
    while times[-1] < duration_s:  # astronomically rare; keep drawing rather than truncate early
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate, size=n))])
    return times[times < duration_s]


async def open_loop(
    call: Call,
    rate: float,
    duration_s: float,
    warmup_s: float = 0.0,
    seed: int = 0,
    group: Callable[[int], str] | None = None,
) -> Samples:
    """Send at Poisson times for ``warmup_s + duration_s`` seconds; measure only after the warm-up.

    With ``group`` (sequence number -> group name) every measured call is also recorded in
    ``samples.groups[name]``, over the same measured window: one schedule, one load, split afterwards."""
    loop = asyncio.get_running_loop()
    offsets = poisson_schedule(rate, warmup_s + duration_s, seed)
    samples = Samples()

    def part(seq: int) -> Samples | None:
        return None if group is None else samples.groups.setdefault(group(seq), Samples())

    start = loop.time() + 0.005  # a small lead so the first send is not already late
    measured_from = start + warmup_s
    last_done = [measured_from]

    async def one(seq: int, scheduled: float, measured: bool) -> None:
        code = await call(seq)
        done = loop.time()
        if measured:
            samples.record(code, (done - scheduled) * 1000.0)
            last_done[0] = max(last_done[0], done)
            if (sub := part(seq)) is not None:
                sub.record(code, (done - scheduled) * 1000.0)

    tasks: list[asyncio.Task[None]] = []
    for seq, offset in enumerate(offsets.tolist()):
        scheduled = start + offset
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        measured = offset >= warmup_s
        if measured:
            samples.offered += 1
            if (sub := part(seq)) is not None:
                sub.offered += 1
            lag = loop.time() - scheduled
            samples.send_lag_ms.append(lag * 1000.0)
            if lag > LATE_S:
                samples.late_sends += 1
        tasks.append(asyncio.ensure_future(one(seq, scheduled, measured)))
    await asyncio.gather(*tasks)
    # The measured window runs to the schedule's end or the last answer, whichever is later: a
    # backlog that drains after the schedule lowers the achieved rate, as it should.
    samples.elapsed_s = max(start + warmup_s + duration_s, last_done[0]) - measured_from
    for sub in samples.groups.values():
        sub.elapsed_s = samples.elapsed_s
    return samples


async def closed_loop(call: Call, concurrency: int, duration_s: float, warmup_s: float = 0.0) -> Samples:
    """``concurrency`` workers send back to back; calls started during the warm-up are not measured."""
    loop = asyncio.get_running_loop()
    samples = Samples()
    start = loop.time()
    measured_from, stop_at = start + warmup_s, start + warmup_s + duration_s
    counter = iter(range(1 << 62))

    async def worker() -> None:
        while (sent := loop.time()) < stop_at:
            code = await call(next(counter))
            if sent >= measured_from:
                samples.offered += 1
                samples.record(code, (loop.time() - sent) * 1000.0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    samples.elapsed_s = max(loop.time(), stop_at) - measured_from
    return samples


# --- gRPC calls ----------------------------------------------------------------------------------
def rank_call(
    stubs: Sequence[Any], requests: Sequence[Any], timeout_s: float, seen: dict[str, int] | None = None
) -> Call:
    """A Call that sends ``requests[seq % len(requests)]`` over the stubs in turn (one per
    connection); ``seen`` counts cache hits, degraded responses and answers from the popularity
    fallback (``arm == "popularity"``: no ranker ran) so a scenario can check it measured what it
    meant to (all hits, no fallbacks)."""
    import grpc

    async def call(seq: int) -> str:
        try:
            reply = await stubs[seq % len(stubs)].Rank(requests[seq % len(requests)], timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        if seen is not None:
            seen["cache_hit"] = seen.get("cache_hit", 0) + int(reply.cache_hit)
            seen["degraded"] = seen.get("degraded", 0) + int(reply.degraded)
            seen["popularity"] = seen.get("popularity", 0) + int(reply.arm == "popularity")
            seen["replies"] = seen.get("replies", 0) + 1
        return "OK"

    return call
