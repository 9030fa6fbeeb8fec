"""The scheduler's ports, the clock and the way a job's process is started, with their real adapters.

Tests hand ``ops.scheduler.Scheduler`` fakes of these instead: time then moves only when the
scheduler waits, and a "process" ends when the test says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol


class Process(Protocol):
    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


class Runner(Protocol):
    def start(self, argv: Sequence[str]) -> Process: ...


class Clock(Protocol):
    def now(self) -> datetime: ...  # aware: for cron times
    def monotonic(self) -> float: ...  # for deadlines and pauses
    def wait(self, stop: threading.Event, seconds: float) -> None: ...  # returns early when stop is set
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, stop: threading.Event, seconds: float) -> None:
        stop.wait(seconds)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _Subprocess:
    """A job in a session (process group) of its own: a deadline or a stop reaches the job's children
    too, and a Ctrl-C at the terminal reaches only the scheduler, which then stops the job itself."""

    def __init__(self, argv: Sequence[str]) -> None:
        self._popen = subprocess.Popen(list(argv), start_new_session=True)

    def poll(self) -> int | None:
        return self._popen.poll()

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self._popen.pid, sig)
        except ProcessLookupError:  # the whole group has already gone
            pass


class SubprocessRunner:
    def start(self, argv: Sequence[str]) -> Process:
        return _Subprocess(argv)
