"""Latency arithmetic: percentiles and one summary shape shared by every scenario.

Percentiles use the nearest-rank definition (the smallest sample with at least p% of samples at or
below it) rather than interpolation: a reported p99 is then a latency some request really had, and
hand-computed expectations in tests are exact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(sorted_ms: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence; NaN when it is empty."""
    if not sorted_ms:
        return math.nan
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = math.ceil(p / 100.0 * len(sorted_ms))
    return float(sorted_ms[max(rank, 1) - 1])


def _key(p: float) -> str:
    return f"p{p:g}".replace(".", "") + "_ms"  # 99.9 -> p999_ms, 50 -> p50_ms


@dataclass
class Samples:
    """What one measured phase produced: latencies of successful calls, and every status seen."""

    latencies_ms: list[float] = field(default_factory=list)
    error_latencies_ms: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0  # wall time from the first scheduled send to the last completion
    offered: int = 0  # calls the schedule asked for (open loop) or that were sent
    late_sends: int = 0  # open loop: sends that left > 1 ms after their scheduled time
    send_lag_ms: list[float] = field(default_factory=list)  # open loop: actual minus scheduled send time
    # open loop with a ``group``: the same calls again, split by the group of their request
    groups: dict[str, Samples] = field(default_factory=dict)

    def record(self, code: str, latency_ms: float) -> None:
        self.codes[code] += 1
        (self.latencies_ms if code == "OK" else self.error_latencies_ms).append(latency_ms)


def effective_latencies(s: Samples, deadline_ms: float | None = None) -> list[float]:
    """Latencies the percentiles are taken over, ascending.

    Without a deadline: successful calls only. With one: failed calls too, each counted as taking at
    least the whole deadline. A refused or timed-out request is at least as bad for its user as one
    that took the deadline, and leaving it out would let a server that sheds most of its load look
    fast; with failures counted this way a percentile is a lower bound of the truth."""
    if deadline_ms is None:
        return sorted(s.latencies_ms)
    return sorted(s.latencies_ms + [max(ms, deadline_ms) for ms in s.error_latencies_ms])


def summarize(s: Samples, deadline_ms: float | None = None) -> dict[str, object]:
    """Percentiles (see :func:`effective_latencies`), achieved rate, and errors by status code."""
    ordered = effective_latencies(s, deadline_ms)
    out: dict[str, object] = {_key(p): _round(percentile(ordered, p)) for p in PERCENTILES}
    out["max_ms"] = _round(ordered[-1] if ordered else math.nan)
    out["mean_ms"] = _round(sum(ordered) / len(ordered) if ordered else math.nan)
    ok_sorted = sorted(s.latencies_ms)
    out["p99_ok_only_ms"] = _round(percentile(ok_sorted, 99.0))
    completed, ok = sum(s.codes.values()), s.codes.get("OK", 0)
    out["count"] = completed
    out["ok"] = ok
    out["offered"] = s.offered or completed
    # Achieved rate counts successful responses only: a server that answers fast with errors has not
    # served that rate.
    out["rps"] = _round(ok / s.elapsed_s if s.elapsed_s > 0 else math.nan, 1)
    out["errors"] = completed - ok
    out["errors_by_code"] = {c: n for c, n in sorted(s.codes.items()) if c != "OK"}
    out["failed_counted_at_ms"] = deadline_ms if completed - ok else None
    out["late_sends"] = s.late_sends
    # How far behind its schedule the load generator itself ran: large values mean it was starved
    # of CPU (the latencies above already include the lag, being measured from the schedule).
    lag = sorted(s.send_lag_ms)
    out["send_lag_p99_ms"] = _round(percentile(lag, 99.0)) if lag else None
    out["send_lag_max_ms"] = _round(lag[-1]) if lag else None
    out["elapsed_s"] = _round(s.elapsed_s, 2)
    return out


def cdf_points(latencies_ms: Iterable[float], max_points: int = 400) -> list[tuple[float, float]]:
    """(latency, cumulative fraction) pairs, thinned to at most ``max_points`` for plotting."""
    ordered = sorted(latencies_ms)
    n = len(ordered)
    if not n:
        return []
    step = max(1, n // max_points)
    pts = [(ordered[i], (i + 1) / n) for i in range(0, n, step)]
    if pts[-1][1] != 1.0:
        pts.append((ordered[-1], 1.0))
    return pts


def _round(v: float, digits: int = 3) -> float | None:
    # JSON has no NaN; None says "not measured" where a number would lie.
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), digits)
