"""The load generator on a virtual-time event loop: no real waiting, exact expected latencies.

The loop's clock only moves when every task is waiting on a timer, and then jumps straight to the
next timer, so a fake call that ``await asyncio.sleep(d)`` takes exactly ``d`` seconds.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pytest

from bench.loadgen import closed_loop, open_loop, poisson_schedule


class _VirtualClock(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None):
        if timeout is None:  # nothing ready and no timer: with no real I/O that is a deadlock
            raise RuntimeError("virtual loop has nothing left to run")
        self.now += max(timeout, 0.0)
        return super().select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.clock = _VirtualClock()
        super().__init__(self.clock)

    def time(self) -> float:
        return self.clock.now


def run_virtual(coro: Coroutine[Any, Any, Any]) -> Any:
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_poisson_schedule_has_the_rate_and_exponential_gaps() -> None:
    times = poisson_schedule(200.0, 100.0, seed=3)
    assert np.all(np.diff(times) > 0) and times[0] > 0 and times[-1] < 100.0
    assert abs(len(times) - 20_000) < 4 * np.sqrt(20_000)  # Poisson count: mean 20k, sd ~141
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1 / 200, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)  # exponential: CV = 1
    assert np.array_equal(times, poisson_schedule(200.0, 100.0, seed=3))
    assert len(poisson_schedule(0, 10)) == 0


def test_open_loop_measures_a_steady_server_exactly() -> None:
    async def call(seq: int) -> str:
        await asyncio.sleep(0.010)
        return "OK"

    s = run_virtual(open_loop(call, rate=100.0, duration_s=5.0, warmup_s=1.0, seed=1))
    schedule = poisson_schedule(100.0, 6.0, seed=1)
    assert s.offered == int((schedule >= 1.0).sum())
    assert len(s.latencies_ms) == s.offered
    assert s.latencies_ms == pytest.approx([10.0] * s.offered, abs=1e-6)
    assert s.late_sends == 0
    assert s.elapsed_s == pytest.approx(5.0, abs=0.011)


def test_open_loop_counts_queueing_behind_a_stall_from_the_scheduled_time() -> None:
    """A one-at-a-time server stalls for 0.5 s: every request scheduled during the stall waits for it.
    A closed loop with one worker sees one slow call; the open loop sees all of them."""

    def server() -> Any:
        lock = asyncio.Lock()

        async def call(seq: int) -> str:
            async with lock:
                now = asyncio.get_running_loop().time()
                if 1.0 <= now < 1.5:
                    await asyncio.sleep(1.5 - now)
                await asyncio.sleep(0.001)
            return "OK"

        return call

    opened = run_virtual(open_loop(server(), rate=100.0, duration_s=3.0, seed=2))
    offsets = poisson_schedule(100.0, 3.0, seed=2)
    start = 0.005  # open_loop's lead before the first send
    scheduled = offsets + start
    in_stall = (scheduled >= 1.0) & (scheduled < 1.5)
    assert in_stall.sum() > 30
    # The lock is FIFO, so answers come back in send order: latency i belongs to schedule slot i, and
    # each request sent during the stall waited at least until the stall ended.
    waited = np.array(opened.latencies_ms) / 1000
    assert np.all(waited[in_stall] >= 1.5 - scheduled[in_stall] - 1e-9)
    assert sorted(opened.latencies_ms)[int(0.9 * len(opened.latencies_ms))] > 50.0  # p90 shows the stall

    closed = run_virtual(closed_loop(server(), concurrency=1, duration_s=3.0))
    assert sum(ms > 100 for ms in closed.latencies_ms) == 1  # coordinated omission hides the rest


def test_a_late_sender_still_charges_latency_from_the_schedule() -> None:
    """The generator itself falls behind (a call hogs the loop for 200 ms): sends leave late, and
    their latency includes the time they should already have been in flight."""
    loop_hog = {"done": False}

    async def call(seq: int) -> str:
        if not loop_hog["done"]:
            loop_hog["done"] = True
            clock = asyncio.get_running_loop()
            clock.clock.now += 0.200  # as if the CPU were busy for 200 ms
        await asyncio.sleep(0.002)
        return "OK"

    s = run_virtual(open_loop(call, rate=200.0, duration_s=2.0, seed=4))
    assert s.late_sends > 10
    assert max(s.latencies_ms) > 150.0
    assert min(s.latencies_ms) == pytest.approx(2.0, abs=1e-6)


def test_errors_are_results_and_the_rate_counts_successes() -> None:
    async def call(seq: int) -> str:
        await asyncio.sleep(0.001)
        return "OK" if seq % 4 else "UNAVAILABLE"

    s = run_virtual(closed_loop(call, concurrency=2, duration_s=1.0, warmup_s=0.1))
    total = sum(s.codes.values())
    assert s.codes["UNAVAILABLE"] == pytest.approx(total / 4, abs=2)
    assert len(s.latencies_ms) == s.codes["OK"]
    assert s.elapsed_s == pytest.approx(1.0, abs=0.002)


def test_open_loop_splits_one_schedule_by_group() -> None:
    """The new-user scenario sends two groups on one schedule: each group's latencies are its own,
    and together they are the whole run."""

    async def call(seq: int) -> str:
        await asyncio.sleep(0.002 if seq % 2 else 0.008)  # odd requests are the fast group
        return "OK" if seq % 2 or seq % 10 else "UNAVAILABLE"

    s = run_virtual(open_loop(call, rate=100.0, duration_s=4.0, warmup_s=0.5, seed=5, group=lambda seq: "ab"[seq % 2]))
    a, b = s.groups["a"], s.groups["b"]
    assert sorted(s.groups) == ["a", "b"]
    assert a.offered + b.offered == s.offered and abs(a.offered - b.offered) <= 1
    assert a.latencies_ms == pytest.approx([8.0] * len(a.latencies_ms), abs=1e-6)
    assert b.latencies_ms == pytest.approx([2.0] * len(b.latencies_ms), abs=1e-6)
    assert a.codes["UNAVAILABLE"] > 0 and b.codes["UNAVAILABLE"] == 0
    assert a.codes + b.codes == s.codes
    assert a.elapsed_s == b.elapsed_s == s.elapsed_s
    assert run_virtual(open_loop(call, rate=100.0, duration_s=1.0, seed=5)).groups == {}
