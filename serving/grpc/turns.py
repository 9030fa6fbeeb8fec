"""Turns: at most a few calls of a CPU-bound RPC compute at once; the others wait in line.

A server process runs Python on one core at a time (the GIL). Sixty-four Rank calls admitted at
once do not finish sixty-four times faster than one: they share the core, so each takes about
sixty-four calls' time, and under overload every call ends late. Letting a few run (enough to
overlap Redis round trips) and the rest wait first come, first served keeps each call's own time
short; a call that cannot get its turn within its budget is refused at once, while the caller can
still retry elsewhere, instead of being answered after its deadline.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from serving.errors import RetryLater

#: weight of the newest run time in the running average a waiting call leaves room for
RUN_TIME_WEIGHT = 0.1


class Shed(RetryLater):
    """A call refused because its turn would not come in time; the hint is the line's expected
    drain time, for the caller's backoff."""

    refused = "busy"


class Turns:
    """``running`` calls at a time; later ones wait, oldest first, at most ``max_wait_s`` and never
    past their deadline less the recent run time (a turn that leaves no time to run is no turn)."""

    def __init__(self, rpc: str, running: int, max_wait_s: float) -> None:
        if running < 1:
            raise ValueError(f"{rpc} must be allowed at least 1 running call, got {running}")
        if max_wait_s < 0:
            raise ValueError(f"{rpc}'s longest wait must be 0 or more seconds, got {max_wait_s}")
        self.rpc = rpc
        self.running = running
        self.max_wait_s = max_wait_s
        self._free = running
        self._lock = threading.Lock()
        self._line: deque[threading.Event] = deque()  # waiting calls, oldest first
        self._run_s = 0.0  # running average of a call's run time; 0 until one finished

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def run_s(self) -> float:
        return self._run_s

    def enter(self, deadline_left_s: float | None) -> float:
        """Take a turn (returns the seconds waited for it), or raise ``Shed``. Every successful
        ``enter`` must be paired with one ``leave``."""
        with self._lock:
            if self._free and not self._line:
                self._free -= 1
                return 0.0
            budget, why = self.max_wait_s, f"the longest wait is {self.max_wait_s * 1000:.0f} ms"
            if deadline_left_s is not None and deadline_left_s - self._run_s < budget:
                budget, why = deadline_left_s - self._run_s, "the call's deadline leaves no time to wait"
            if budget <= 0:
                raise self._shed(why)
            turn = threading.Event()
            self._line.append(turn)
        start = time.monotonic()
        if turn.wait(budget):
            return time.monotonic() - start
        with self._lock:
            if turn.is_set():  # handed a turn just as the wait ran out: it is ours
                return time.monotonic() - start
            self._line.remove(turn)
            raise self._shed(f"no turn came in {budget * 1000:.0f} ms")

    def leave(self, ran_s: float) -> None:
        """End a turn that ran ``ran_s`` seconds: the oldest waiting call gets it, else it is free."""
        with self._lock:
            self._run_s = ran_s if self._run_s == 0 else self._run_s + RUN_TIME_WEIGHT * (ran_s - self._run_s)
            if self._line:
                self._line.popleft().set()
            else:
                self._free += 1

    def _shed(self, why: str) -> Shed:
        # the caller's backoff hint: how long the calls ahead would take to clear
        drain_ms = max(1, round((len(self._line) + self.running) * self._run_s / self.running * 1000))
        return Shed(
            f"server busy: {self.running} {self.rpc} calls running and {len(self._line)} waiting, "
            f"{why}; retry with backoff",
            drain_ms,
        )
