"""The canary driver: feeds serving's numbers to the pure state machine (serving.rollout.canary) from the
refresh loop, and acts on its decisions in the registry.

- When the champion alias moves to a new pair, the previous champion stays the *stable* version
  and the new one becomes the *candidate*, serving ``steps[0]`` of champion traffic.
- Rank reports each variant's latency and failures (``on_served``), Track its plays and skips
  (``on_feedback``); counters restart at every step so each step is judged on its own traffic.
- A rollback moves the ``champion`` alias back to the stable pair, tags the candidate versions
  with the reason and logs an MLflow run; the candidate is refused in this process from then on.

With several replicas each judges its own traffic; the first to roll back moves the alias and the
others follow on their next refresh (they see the alias back on their stable pair). Steps are not
shared between replicas.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from serving.rollout.canary import CanaryPolicy, CanaryState, Decision, Health, Pair, Phase, decide
from serving.rollout.models import Bounded, ModelBundle
from serving.rollout.routing import CANARY, CHAMPION
from setlist.registry import (
    TAG_ROLLOUT_AT,
    TAG_ROLLOUT_REASON,
    TAG_ROLLOUT_SHARE,
    TAG_ROLLOUT_STABLE,
    TAG_ROLLOUT_STATUS,
    pair_tag,
)

log = logging.getLogger("setlist.serving.rollout.driver")
LATENCY_WINDOW = 20_000
REGISTRY_TIMEOUT_S = 10.0  # settings.mlflow_timeout_s in serving


class RolloutRegistry(Protocol):
    def status(self, pair: Pair) -> tuple[str, Pair | None]: ...

    def mark(self, pair: Pair, tags: dict[str, str]) -> None: ...

    def set_champion(self, pair: Pair) -> None: ...

    def log_run(self, name: str, tags: dict[str, str], metrics: dict[str, float]) -> None: ...


class VariantStats:
    """Counters for one variant within one step; written by request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = self.errors = self.plays = self.skips = 0
        self._lat = np.zeros(LATENCY_WINDOW, np.float64)  # the latest latencies, as a ring

    def served(self, seconds: float, error: bool) -> None:
        with self._lock:
            self._lat[self.requests % LATENCY_WINDOW] = seconds
            self.requests += 1
            self.errors += error

    def feedback(self, event_type: str) -> None:
        with self._lock:
            if event_type == "play":
                self.plays += 1
            elif event_type == "skip":
                self.skips += 1

    def health(self) -> Health:
        with self._lock:
            n = min(self.requests, LATENCY_WINDOW)
            p99 = float(np.percentile(self._lat[:n], 99) * 1000) if n else float("nan")
            return Health(self.requests, self.errors, p99, self.plays, self.skips)


class Rollout:
    def __init__(
        self,
        policy: CanaryPolicy,
        registry: RolloutRegistry | None,
        enabled: bool,
        load: Callable[[Pair], ModelBundle],
        refuse: Callable[[Pair, str], None],
        on_decision: Callable[[str, float], None] = lambda action, share: None,
        registry_timeout_s: float = REGISTRY_TIMEOUT_S,
    ) -> None:
        self.policy, self.registry = policy, registry
        # the decision is applied to routing first; recording it must not stall the next judgement
        self._bounded = Bounded(registry_timeout_s, "setlist-rollout-registry")
        self.enabled = enabled and policy.steps[0] < 1.0
        self._load, self._refuse, self._on_decision = load, refuse, on_decision
        self.current: ModelBundle | None = None  # the stable champion
        self.candidate: ModelBundle | None = None
        self.state: CanaryState | None = None
        self.last: Decision | None = None
        self._stats = {CHAMPION: VariantStats(), CANARY: VariantStats()}

    # --- what the router needs ------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state is not None and self.state.phase == "canary" and self.candidate is not None

    def share(self) -> float:
        return self.state.share(self.policy) if self.state is not None and self.active else 0.0

    def salt(self) -> str:
        return f"canary:{pair_tag(self.candidate.pair)}" if self.candidate is not None else ""

    # --- request threads ----------------------------------------------------------------------
    def on_served(self, variant: str, seconds: float, error: bool) -> None:
        stats = self._stats.get(variant)
        if stats is not None and self.active:
            stats.served(seconds, error)

    def on_feedback(self, variant: str, event_type: str) -> None:
        stats = self._stats.get(variant)
        if stats is not None and self.active:
            stats.feedback(event_type)

    def health(self) -> tuple[Health, Health]:
        """(candidate, stable) in the current step."""
        return self._stats[CANARY].health(), self._stats[CHAMPION].health()

    # --- refresh loop -------------------------------------------------------------------------
    def observe(self, champion: ModelBundle | None) -> bool:
        """React to the champion alias's bundle. Returns True when what is served changed."""
        if champion is None:
            return False
        if self.current is None:
            self.current = champion
            self._resume(champion)
            return True
        if self.active:
            st = self.state
            assert st is not None
            if champion.pair == st.candidate:
                return False
            if champion.pair == st.stable:  # rolled back elsewhere (another replica, an operator)
                self._end("rolled_back", "the champion alias moved back to the stable version")
                return True
            self._start(champion)  # a newer version mid-canary: judge it against the same stable
            return True
        if champion.pair == self.current.pair:
            return False
        if not self.enabled:
            self.current = champion
            return True
        self._start(champion)
        return True

    def tick(self) -> bool:
        """Judge the current step. Returns True when routing changed (widen, complete, rollback)."""
        if not self.active or self.state is None:
            return False
        canary, stable = self.health()
        d = decide(self.state, canary, stable, self.policy)
        self.last = d
        if d.action == "wait":
            return False
        cand = self.candidate
        assert cand is not None
        self._on_decision(d.action, d.state.share(self.policy))
        log.warning("canary %s %s: %s", cand.version, d.action, d.reason)
        if d.action == "widen":
            self.state = d.state
            self._reset()
            self._registry("mark", cand.pair, {TAG_ROLLOUT_STATUS: "canary", TAG_ROLLOUT_SHARE: str(self.share())})
        elif d.action == "complete":
            self.state, self.current, self.candidate = d.state, cand, None
            self._registry("mark", cand.pair, {TAG_ROLLOUT_STATUS: "complete", TAG_ROLLOUT_REASON: d.reason[:500]})
        else:
            self._rollback(d, canary, stable)
        return True

    # --- internals ----------------------------------------------------------------------------
    def _start(self, champion: ModelBundle) -> None:
        assert self.current is not None
        self.candidate = champion
        self.state = CanaryState(stable=self.current.pair, candidate=champion.pair)
        self._reset()
        self._on_decision("start", self.share())
        log.warning(
            "canary started: %s serves %.0f%% of champion traffic, stable %s",
            champion.version,
            100 * self.share(),
            self.current.version,
        )
        self._registry(
            "mark",
            champion.pair,
            {
                TAG_ROLLOUT_STATUS: "canary",
                TAG_ROLLOUT_SHARE: str(self.share()),
                TAG_ROLLOUT_STABLE: pair_tag(self.current.pair),
            },
        )

    def _resume(self, champion: ModelBundle) -> None:
        """After a restart mid-canary the alias already names the candidate; its tags name stable."""
        if not self.enabled or self.registry is None:
            return
        try:
            status, stable = self._bounded(self.registry.status, champion.pair)
            if status != "canary" or stable is None or stable == champion.pair:
                return
            self.current = self._load(stable)
        except Exception as exc:
            log.warning("cannot resume the canary of %s: %s", champion.version, exc)
            self.current = champion
            return
        self._start(champion)

    def _rollback(self, d: Decision, canary: Health, stable: Health) -> None:
        cand = self.candidate
        assert cand is not None and self.current is not None
        self._refuse(cand.pair, f"canary rolled back: {d.reason}")
        self.state, self.candidate = d.state, None
        self._registry("set_champion", self.current.pair)
        now = datetime.now(UTC).isoformat()
        self._registry(
            "mark",
            cand.pair,
            {
                TAG_ROLLOUT_STATUS: "rolled_back",
                TAG_ROLLOUT_REASON: d.reason[:500],
                TAG_ROLLOUT_STABLE: pair_tag(self.current.pair),
                TAG_ROLLOUT_AT: now,
            },
        )
        self._registry(
            "log_run",
            f"canary-rollback-{pair_tag(cand.pair)}",
            {
                "rollout.action": "rollback",
                TAG_ROLLOUT_REASON: d.reason[:500],
                "rollout.candidate": pair_tag(cand.pair),
                TAG_ROLLOUT_STABLE: pair_tag(self.current.pair),
                "rollout.step": str(d.state.step),
            },
            {**canary.as_metrics("canary"), **stable.as_metrics("stable")},
        )

    def _end(self, phase: Phase, reason: str) -> None:
        if self.candidate is not None and phase == "rolled_back":
            self._refuse(self.candidate.pair, reason)
        if self.state is not None:
            self.state = CanaryState(self.state.stable, self.state.candidate, self.state.step, phase, reason)
        self.candidate = None
        self._on_decision(phase, 0.0)

    def _reset(self) -> None:
        self._stats = {CHAMPION: VariantStats(), CANARY: VariantStats()}  # one assignment; late writes are lost

    def _registry(self, method: str, *args: object) -> None:
        if self.registry is None:
            return
        try:
            self._bounded(getattr(self.registry, method), *args)
        except Exception as exc:
            log.error("registry %s failed during the canary: %s", method, exc)
