"""The canary rollout as a pure state machine: numbers in, a decision out.

A new champion ("candidate") first serves ``steps[0]`` of the champion traffic while the previous
version ("stable") serves the rest. At each step, once both sides have enough requests and
feedback, the candidate is judged against stable:

- **error budget**: more scoring failures than ``max_error_rate`` of the step's requests;
- **latency**: its p99 above ``max(stable p99 × max_p99_ratio, stable p99 + p99_slack_ms)``;
- **guard KPI**: its skip rate (skips / (plays + skips) in Track feedback) higher than stable's by
  more than ``max_skip_increase`` *and* significantly so (one-sided two-proportion z at ``alpha``).

Any breach rolls back; a healthy step widens to the next share; reaching 100% completes. Nothing
here does I/O or reads a clock, so every transition is a unit test on numbers
(:mod:`serving.rollout.driver` is the driver that feeds it and acts on its decisions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Literal

Pair = tuple[str, str]  # (candidates version, ranker version)
Phase = Literal["canary", "complete", "rolled_back"]
Action = Literal["wait", "widen", "complete", "rollback"]


@dataclass(frozen=True)
class CanaryPolicy:
    steps: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    min_requests: int = 500
    min_feedback: int = 300
    max_error_rate: float = 0.01
    max_p99_ratio: float = 1.5
    p99_slack_ms: float = 2.0
    max_skip_increase: float = 0.03
    alpha: float = 0.01

    def __post_init__(self) -> None:
        s = self.steps
        if not s or any(not 0 < x <= 1 for x in s) or list(s) != sorted(set(s)) or s[-1] != 1.0:
            raise ValueError(f"canary steps must increase strictly within (0, 1] and end at 1.0, got {list(s)}")

    @classmethod
    def from_settings(cls, settings) -> CanaryPolicy:
        return cls(
            steps=tuple(settings.canary_steps),
            min_requests=settings.canary_min_requests,
            min_feedback=settings.canary_min_feedback,
            max_error_rate=settings.canary_max_error_rate,
            max_p99_ratio=settings.canary_max_p99_ratio,
            p99_slack_ms=settings.canary_p99_slack_ms,
            max_skip_increase=settings.canary_max_skip_increase,
            alpha=settings.canary_alpha,
        )


@dataclass(frozen=True)
class Health:
    """One variant's numbers within the current step."""

    requests: int = 0
    errors: int = 0
    p99_ms: float = float("nan")
    plays: int = 0
    skips: int = 0

    @property
    def feedback(self) -> int:
        return self.plays + self.skips

    @property
    def skip_rate(self) -> float:
        return self.skips / self.feedback if self.feedback else float("nan")

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_requests": float(self.requests),
            f"{prefix}_errors": float(self.errors),
            f"{prefix}_p99_ms": self.p99_ms,
            f"{prefix}_feedback": float(self.feedback),
            f"{prefix}_skip_rate": self.skip_rate,
        }


@dataclass(frozen=True)
class CanaryState:
    stable: Pair
    candidate: Pair
    step: int = 0
    phase: Phase = "canary"
    reason: str = ""

    def share(self, policy: CanaryPolicy) -> float:
        """The candidate's share of champion traffic."""
        if self.phase == "canary":
            return policy.steps[self.step]
        return 1.0 if self.phase == "complete" else 0.0


@dataclass(frozen=True)
class Decision:
    action: Action
    state: CanaryState
    reason: str = ""


Verdict = Literal["breach", "healthy", "pending"]


def judge(canary: Health, stable: Health, p: CanaryPolicy) -> tuple[Verdict, str]:
    """Whether the candidate broke a budget, is healthy enough to widen, or needs more data."""
    budget = p.max_error_rate * max(canary.requests, p.min_requests)
    if canary.errors > budget:
        # checked before the minimum sample: a candidate that fails every call is stopped at once
        return "breach", (
            f"error budget exhausted: {canary.errors} failures in {canary.requests} requests "
            f"(budget {p.max_error_rate:.2%})"
        )
    if canary.requests < p.min_requests or stable.requests < p.min_requests:
        return "pending", f"waiting for {p.min_requests} requests per side"
    limit = max(stable.p99_ms * p.max_p99_ratio, stable.p99_ms + p.p99_slack_ms)
    if canary.p99_ms > limit:
        return "breach", f"p99 latency {canary.p99_ms:.2f} ms above {limit:.2f} ms (stable {stable.p99_ms:.2f} ms)"
    if canary.feedback < p.min_feedback or stable.feedback < p.min_feedback:
        return "pending", f"waiting for {p.min_feedback} plays+skips per side"
    diff = canary.skip_rate - stable.skip_rate
    if diff > p.max_skip_increase:
        z = skip_z(canary, stable)
        if z > NormalDist().inv_cdf(1 - p.alpha):
            return "breach", (
                f"skip rate {canary.skip_rate:.3f} vs stable {stable.skip_rate:.3f} "
                f"(+{diff:.3f} > {p.max_skip_increase}, z={z:.2f})"
            )
        return "pending", f"skip rate +{diff:.3f} above tolerance but not significant yet (z={z:.2f})"
    return "healthy", (
        f"errors {canary.errors}/{canary.requests}, p99 {canary.p99_ms:.2f} ms, "
        f"skip rate {canary.skip_rate:.3f} vs {stable.skip_rate:.3f}"
    )


def skip_z(canary: Health, stable: Health) -> float:
    """One-sided two-proportion z statistic (pooled) for canary skip rate > stable skip rate."""
    pooled = (canary.skips + stable.skips) / (canary.feedback + stable.feedback)
    se = math.sqrt(pooled * (1 - pooled) * (1 / canary.feedback + 1 / stable.feedback))
    return (canary.skip_rate - stable.skip_rate) / se if se > 0 else 0.0


def decide(state: CanaryState, canary: Health, stable: Health, policy: CanaryPolicy) -> Decision:
    if state.phase != "canary":
        return Decision("wait", state)
    verdict, why = judge(canary, stable, policy)
    if verdict == "breach":
        return Decision("rollback", replace(state, phase="rolled_back", reason=why), why)
    if verdict == "pending":
        return Decision("wait", state, why)
    nxt = state.step + 1
    if nxt >= len(policy.steps) or policy.steps[nxt] >= 1.0:
        # the last step is 100%: nothing is left to compare against, so healthy here means done
        return Decision("complete", replace(state, step=len(policy.steps) - 1, phase="complete", reason=why), why)
    return Decision("widen", replace(state, step=nxt), why)
