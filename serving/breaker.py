"""A circuit breaker for the stores a request may wait on (the online store's user rows, Track's dedupe
and session push, the shared prediction cache): after a few consecutive failures the store is left
alone for a cool-down, so a dead or hung store costs a few timeouts rather than one per request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Breaker:
    """Closed until ``failures_to_open`` consecutive failures (a success in between starts the count
    again); then open (every call refused) for ``cooldown_s``; then half-open: one call goes through
    as a probe and the rest stay refused for another cool-down, until the probe reports ``success``
    (closed) or ``failure`` (open again at once: the store has already shown it is down)."""

    def __init__(
        self, cooldown_s: float, clock: Callable[[], float] = time.monotonic, failures_to_open: int = 1
    ) -> None:
        if failures_to_open < 1:
            raise ValueError(f"failures_to_open must be at least 1, got {failures_to_open}")
        self.cooldown_s, self._clock = cooldown_s, clock
        self.failures_to_open = failures_to_open
        self._open_until = 0.0
        self._failures = 0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            if now < self._open_until:
                return False
            if self._open_until:  # half-open: let this one through, hold the rest back
                self._open_until = now + self.cooldown_s
            return True

    def success(self) -> None:
        with self._lock:
            self._open_until = 0.0
            self._failures = 0

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._open_until or self._failures >= self.failures_to_open:  # a failed probe, or enough
                self._open_until = self._clock() + self.cooldown_s

    @property
    def open(self) -> bool:
        return self._clock() < self._open_until
