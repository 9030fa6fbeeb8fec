"""A canary drill: promote a deliberately broken ranker and watch the canary roll it back.

Serving runs in process with the canary on (thresholds sized for a small simulated audience), a
broken ranker is registered and promoted to champion, and simulated users (experiments
.simulate) drive Rank and Track while the refresh loop's canary check runs between batches.
Afterwards the ``challenger`` alias is put back where it was, so the drill leaves no broken alias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from experiments.broken import Mode, register_broken_ranker
from experiments.simulate import SimConfig, SimStats, Simulator, load_latent, population, simulation_settings
from setlist import registry
from setlist.errors import SetlistError
from setlist.registry import Pair
from setlist.settings import Settings

#: sized for a few hundred simulated users; latency limits are loose on purpose, so the drill shows
#: the guard KPI catching a model that is fast and error-free but bad
DRILL_POLICY: dict[str, object] = {
    "canary_enabled": True,
    "canary_steps": [0.3, 0.6, 1.0],
    "canary_min_requests": 60,
    "canary_min_feedback": 150,
    "canary_max_error_rate": 0.01,
    "canary_max_p99_ratio": 4.0,
    "canary_p99_slack_ms": 50.0,
    "canary_max_skip_increase": 0.02,
    "canary_alpha": 0.01,
}
SIM_WORKER = 9999  # its own journal directory, so a drill never touches a running server's


class DrillError(SetlistError, RuntimeError):
    pass


@dataclass
class DrillResult:
    stable: Pair
    candidate: Pair
    phase: str  # rolled_back | complete | canary (undecided)
    reason: str
    champion_after: Pair
    stats: SimStats
    decisions: list[str] = field(default_factory=list)


def _alias(settings: Settings, alias: str) -> Pair | None:
    found = registry.find_pair(registry.connect(settings), settings, alias)
    return None if found is None else found.pair


def run_drill(
    settings: Settings,
    users: int = 200,
    sessions: int = 3,
    mode: Mode = "shuffled",
    seed: int = 11,
    users_info: pd.DataFrame | None = None,
    **policy: object,
) -> DrillResult:
    from serving.bootstrap import build

    # the drill's simulated traffic is written under simulation_dir, never into the real event log
    s = simulation_settings(settings).model_copy(update={**DRILL_POLICY, **policy, "experiments_file": None})
    latent = load_latent(s)
    server = build(s, worker=SIM_WORKER)
    challenger = _alias(s, registry.CHALLENGER)
    decisions: list[str] = []
    try:
        if server.rollout.current is None:
            raise DrillError("no champion is being served: train first")
        stable = server.rollout.current.pair
        candidate = register_broken_ranker(s, mode, seed=seed)
        server.refresh()
        if not server.rollout.active:
            raise DrillError(f"the canary did not start for {candidate}")
        decisions.append(f"start: {candidate} serves {server.rollout.share():.0%}")

        def check() -> None:
            if server.rollout.active and server.check_canary() and server.rollout.last is not None:
                last = server.rollout.last
                decisions.append(f"{last.action}: {last.reason}")

        sim = Simulator(server, latent, SimConfig(users=users, sessions=sessions, seed=seed))
        stats = sim.run(population(latent, users, seed, users_info), between=check, batch=25)
        check()
        state = server.rollout.state
        assert state is not None
        phase, reason = state.phase, state.reason
    finally:
        server.close()
        if challenger is not None:
            registry.set_alias(registry.connect(s), s, challenger, registry.CHALLENGER)
    return DrillResult(stable, candidate, phase, reason, _alias(s, registry.CHAMPION) or ("", ""), stats, decisions)
