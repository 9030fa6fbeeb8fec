"""The cost arithmetic, on plain values: what a day costs, per unit, per arm, and what sampling saved.

Nothing here reads a file or a clock, so every number the report prints can be checked by hand
(tests/unit/test_cost_model.py). What the inputs mean, and where they come from, is docs/cost.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ops.cost.prices import Prices

GB = 2**30
DAYS_PER_MONTH = 365.25 / 12
#: the bucket for calls and events that carry no experiment arm
NO_ARM = ""


@dataclass(frozen=True)
class Rates:
    """Measured resources per unit of work (None: not measured, so not priced)."""

    rank_cpu_s: float | None = None  # CPU seconds per Rank call
    track_cpu_s: float | None = None  # CPU seconds per Track event
    track_events_per_call: float | None = None  # events a Track call carries, on average
    jobs_cpu_s_per_day: float | None = None  # the scheduled batch jobs' CPU seconds per day
    redis_bytes: float | None = None  # Redis used_memory


@dataclass(frozen=True)
class Day:
    """One UTC day of the data: the work done and the bytes its partitions hold."""

    date: str
    rank_calls: int = 0
    track_events: int = 0  # event-log rows of the day
    represented_events: float = 0.0  # what they stand for: the sum of their weights (null = 1)
    value_events: float = 0.0
    engaged_users: int = 0  # users with at least the engaged minimum of value events that day
    events_bytes: int = 0
    impressions_bytes: int = 0


@dataclass(frozen=True)
class Costs:
    serving_cpu: float = 0.0
    jobs_cpu: float = 0.0
    storage: float = 0.0
    redis: float = 0.0
    requests: float = 0.0

    @property
    def total(self) -> float:
        return self.serving_cpu + self.jobs_cpu + self.storage + self.redis + self.requests

    def __add__(self, other: Costs) -> Costs:
        return Costs(
            self.serving_cpu + other.serving_cpu,
            self.jobs_cpu + other.jobs_cpu,
            self.storage + other.storage,
            self.redis + other.redis,
            self.requests + other.requests,
        )


def track_calls(track_events: float, rates: Rates) -> float | None:
    """Track calls behind ``track_events``, when the events a call carries were measured."""
    per_call = rates.track_events_per_call
    return track_events / per_call if per_call else None


def day_cost(day: Day, held_bytes: float, rates: Rates, prices: Prices) -> Costs:
    """One day: serving CPU for its Rank calls and Track events, the batch jobs' daily CPU, keeping
    ``held_bytes`` of files for a day, a day of Redis memory, and its calls. An unmeasured rate
    (None) adds nothing; the report says which ones were not measured."""
    cpu_s = day.rank_calls * (rates.rank_cpu_s or 0.0) + day.track_events * (rates.track_cpu_s or 0.0)
    calls = day.rank_calls + (track_calls(day.track_events, rates) or 0.0)
    return Costs(
        serving_cpu=cpu_s * prices.cpu_second,
        jobs_cpu=(rates.jobs_cpu_s_per_day or 0.0) * prices.cpu_second,
        storage=held_bytes / GB * prices.storage_gb_month / DAYS_PER_MONTH,
        redis=(rates.redis_bytes or 0.0) / GB * prices.redis_gb_hour * 24,
        requests=calls / 1e6 * prices.million_requests,
    )


def held(days: list[Day], fixed_bytes: float = 0.0) -> list[float]:
    """The bytes kept on each day: every partition up to and including it (what is still on disk),
    plus ``fixed_bytes`` (the online store's file, at its current size)."""
    out, running = [], 0.0
    for d in days:
        running += d.events_bytes + d.impressions_bytes
        out.append(running + fixed_bytes)
    return out


def per(total: float, count: float, unit: float = 1.0) -> float | None:
    """Cost per ``unit`` of ``count`` (per 1,000 Rank calls: unit=1000); None when there were none."""
    return total / count * unit if count > 0 else None


@dataclass(frozen=True)
class Arm:
    arm: str
    users: int = 0
    engaged_users: int = 0
    value_events: float = 0.0
    rank_calls: int = 0
    track_events: int = 0
    track_calls: float | None = None  # when the source counted calls; else derived from the events


def arm_calls(arm: Arm, rates: Rates) -> float:
    """The calls an arm is charged by: its Rank calls plus its Track calls (the events over the measured
    events per call; each event as one call when that was not measured)."""
    if arm.track_calls is not None:
        return arm.rank_calls + arm.track_calls
    derived = track_calls(arm.track_events, rates)
    return arm.rank_calls + (derived if derived is not None else arm.track_events)


def allocate(total: float, weights: Mapping[str, float]) -> dict[str, float]:
    """``total`` split in proportion to ``weights``; nothing to split by (every weight 0) is an empty split."""
    whole = sum(max(0.0, w) for w in weights.values())
    if whole <= 0:
        return {}
    return {k: total * max(0.0, w) / whole for k, w in weights.items()}


@dataclass(frozen=True)
class Saving:
    events: float
    bytes: float


def sampling_saved(stored: int, represented: float, stored_bytes: float) -> Saving:
    """What sampling kept out of the log: the events the stored ones stand for but are not
    (``represented - stored``), at the mean size of a stored event. Nothing sampled saves 0."""
    missing = max(0.0, represented - stored)
    mean = stored_bytes / stored if stored else 0.0
    return Saving(missing, missing * mean)
