"""The current call's deadline, for data-plane work that waits (Track's journal append).

The transport sets it for the length of each call (serving.grpc.interceptors); a call runs
synchronously on one worker thread, so a ContextVar is exact. Outside a call it is unset, and the
waiting code falls back to its own configured bound.
"""

from __future__ import annotations

import contextvars
import time

call_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("call_deadline", default=None)


def remaining() -> float | None:
    """Seconds left in the current call (0 when past), or None outside a call or without a deadline."""
    deadline = call_deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())
