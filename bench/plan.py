"""How long and how hard each scenario runs, per scale. Every field can be overridden on the CLI."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Plan:
    rps: float = 200.0  # the open-loop rate of docs/design.md's targets
    warmup_s: float = 2.0  # sent, not measured, before every timed phase
    open_s: float = 10.0  # Rank cache-miss open loop
    new_s: float = 6.0  # Rank cache-miss open loop for new users (< 10 events), at the same rate
    new_users: int = 200  # distinct users of each kind there (brand-new ids; users with 1-9 events)
    closed_s: float = 6.0  # each closed-loop saturation run
    concurrency: tuple[int, ...] = (4, 16)  # closed-loop workers; the best rps is "saturation"
    sequential: int = 200  # unloaded one-at-a-time Rank calls (fast engine)
    hit_s: float = 6.0  # cache-hit open loop
    hot_users: int = 20  # distinct requests repeated in the cache-hit run
    track_s: float = 6.0
    track_streams: int = 4
    track_batch: int = 100
    mix_events: int = 20_000  # Track events in a player's mix, to measure what sampling saves
    freshness_trials: int = 50
    baseline_s: float = 8.0  # bounded: the baseline may not keep up with rps
    baseline_sequential: int = 30
    baseline_timeout_s: float = 10.0  # per-call deadline for the baseline (fast: rank_timeout_s)
    rank_timeout_s: float = 2.0
    rank_users: int = 1500  # distinct users cycled through by the cache-miss runs
    profile_users: int = 200  # users timed in the in-process stage profile (×2 passes)
    # server processes (SO_REUSEPORT; the load generator opens several connections so the kernel
    # spreads them): one Python process is capped by its GIL near one core, a 2-core box has two
    workers: int = 2
    # extra environment for every server (and the stage profile), for what-if runs such as
    # OMP_NUM_THREADS=1; recorded in the report
    server_env: tuple[tuple[str, str], ...] = ()

    def with_overrides(self, **values: Any) -> Plan:
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in values.items() if k in known and v is not None})


PLANS = {
    # small: the whole run (data reused) in about 2.5 minutes on 2 cores
    "small": Plan(),
    "full": Plan(
        open_s=30.0,
        new_s=15.0,
        new_users=1000,
        closed_s=15.0,
        hit_s=20.0,
        track_s=15.0,
        mix_events=100_000,
        freshness_trials=200,
        baseline_s=15.0,
        sequential=500,
        baseline_sequential=50,
        rank_users=20_000,
    ),
}
