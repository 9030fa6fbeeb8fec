"""The canary: the pure state machine on numbers, and the driver with a fake registry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from serving.rollout.canary import CanaryPolicy, CanaryState, Health, decide, judge
from serving.rollout.driver import Rollout
from serving.rollout.routing import CANARY, CHAMPION

P = CanaryPolicy(
    steps=(0.05, 0.25, 0.5, 1.0),
    min_requests=100,
    min_feedback=100,
    max_error_rate=0.01,
    max_p99_ratio=1.5,
    p99_slack_ms=2.0,
    max_skip_increase=0.03,
    alpha=0.01,
)
S = CanaryState(stable=("1", "1"), candidate=("2", "2"))
GOOD = Health(requests=1000, errors=0, p99_ms=8.0, plays=800, skips=200)


def test_too_little_traffic_waits():
    d = decide(S, Health(requests=50, p99_ms=8.0, plays=40, skips=10), GOOD, P)
    assert d.action == "wait" and "requests" in d.reason and d.state == S


def test_healthy_steps_widen_then_complete_at_100_percent():
    d = decide(S, GOOD, GOOD, P)
    assert d.action == "widen" and d.state.step == 1 and d.state.share(P) == 0.25
    d = decide(d.state, GOOD, GOOD, P)
    assert d.action == "widen" and d.state.share(P) == 0.5
    d = decide(d.state, GOOD, GOOD, P)
    assert d.action == "complete" and d.state.phase == "complete" and d.state.share(P) == 1.0
    assert decide(d.state, GOOD, GOOD, P).action == "wait"  # terminal


def test_an_exhausted_error_budget_rolls_back_even_before_the_minimum_sample():
    d = decide(S, Health(requests=20, errors=2, p99_ms=5.0), GOOD, P)
    assert d.action == "rollback" and d.state.phase == "rolled_back" and "error budget" in d.reason
    assert d.state.share(P) == 0.0
    assert decide(S, Health(requests=1000, errors=10, p99_ms=8.0, plays=800, skips=200), GOOD, P).action == "widen"


def test_latency_over_the_budget_rolls_back():
    slow = Health(requests=1000, p99_ms=13.0, plays=800, skips=200)
    assert judge(slow, GOOD, P)[0] == "breach"  # 13 ms > max(8 × 1.5, 8 + 2) = 12 ms
    assert judge(Health(requests=1000, p99_ms=11.0, plays=800, skips=200), GOOD, P)[0] == "healthy"


def test_the_skip_guard_needs_both_a_large_and_a_significant_increase():
    worse = Health(requests=1000, p99_ms=8.0, plays=300, skips=200)  # 40% skips vs 20%
    d = decide(S, worse, GOOD, P)
    assert d.action == "rollback" and "skip rate" in d.reason
    noisy = Health(requests=1000, p99_ms=8.0, plays=74, skips=26)  # 26% on only 100 events
    assert judge(noisy, GOOD, P)[0] == "pending"
    slight = Health(requests=1000, p99_ms=8.0, plays=780, skips=220)  # +2 points: within tolerance
    assert judge(slight, GOOD, P)[0] == "healthy"


def test_policy_steps_must_end_at_100_percent():
    with pytest.raises(ValueError, match="steps"):
        CanaryPolicy(steps=(0.1, 0.5))


# --- the driver, with fakes -------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeBundle:
    candidates_version: str
    ranker_version: str

    @property
    def pair(self) -> tuple[str, str]:
        return self.candidates_version, self.ranker_version

    @property
    def version(self) -> str:
        return f"{self.candidates_version}+{self.ranker_version}"


class FakeRegistry:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.tags: dict[tuple[str, str], dict[str, str]] = {}

    def status(self, pair):
        t = self.tags.get(pair, {})
        stable = t.get("rollout.stable")
        return t.get("rollout.status", ""), tuple(stable.split(":")) if stable else None

    def mark(self, pair, tags) -> None:
        self.tags.setdefault(pair, {}).update(tags)
        self.calls.append(("mark", pair, tags.get("rollout.status")))

    def set_champion(self, pair) -> None:
        self.calls.append(("set_champion", pair))

    def log_run(self, name, tags, metrics) -> None:
        self.calls.append(("log_run", name, tags["rollout.reason"], metrics["canary_skip_rate"]))


def _driver(registry: FakeRegistry, refused: list, enabled: bool = True, loads: dict | None = None) -> Rollout:
    return Rollout(
        P,
        registry,
        enabled,
        load=lambda pair: (loads or {})[pair],
        refuse=lambda pair, why: refused.append((pair, why)),
    )


def test_the_driver_starts_a_canary_on_a_new_champion_and_rolls_it_back_on_bad_feedback():
    registry, refused = FakeRegistry(), []
    r = _driver(registry, refused)
    v1, v2 = FakeBundle("1", "1"), FakeBundle("1", "2")
    assert r.observe(v1) and r.current is v1 and not r.active  # first load: nothing to compare
    assert r.observe(v2) and r.active and r.share() == 0.05 and r.current is v1 and r.candidate is v2
    assert ("mark", ("1", "2"), "canary") in registry.calls
    for _ in range(150):
        r.on_served(CANARY, 0.005, False)
        r.on_served(CHAMPION, 0.005, False)
    for n in range(300):
        r.on_feedback(CANARY, "skip" if n % 2 else "play")  # 50% skips
        r.on_feedback(CHAMPION, "skip" if n % 5 == 0 else "play")  # 20% skips
    assert r.tick() and not r.active and r.state.phase == "rolled_back"
    assert ("set_champion", ("1", "1")) in registry.calls
    assert registry.tags[("1", "2")]["rollout.status"] == "rolled_back"
    run = next(c for c in registry.calls if c[0] == "log_run")
    assert "skip rate" in run[2] and run[3] == pytest.approx(0.5)
    assert refused and refused[0][0] == ("1", "2")
    assert r.current is v1 and r.share() == 0.0 and not r.observe(v1)  # the alias came back: steady


def test_the_driver_follows_a_rollback_made_elsewhere_and_is_a_no_op_when_disabled():
    registry, refused = FakeRegistry(), []
    r = _driver(registry, refused)
    v1, v2 = FakeBundle("1", "1"), FakeBundle("1", "2")
    r.observe(v1), r.observe(v2)
    assert r.observe(v1) and not r.active and r.state.phase == "rolled_back" and refused[0][0] == ("1", "2")
    off = _driver(FakeRegistry(), [], enabled=False)
    off.observe(v1)
    assert off.observe(v2) and off.current is v2 and not off.active


def test_a_restarted_server_resumes_the_canary_from_the_registry_tags():
    registry, v1, v2 = FakeRegistry(), FakeBundle("1", "1"), FakeBundle("1", "2")
    registry.tags[v2.pair] = {"rollout.status": "canary", "rollout.stable": "1:1"}
    r = _driver(registry, [], loads={v1.pair: v1})
    assert r.observe(v2) and r.active and r.current is v1 and r.candidate is v2


def test_a_healthy_canary_widens_step_by_step_and_then_replaces_stable():
    registry = FakeRegistry()
    r = _driver(registry, [])
    v1, v2 = FakeBundle("1", "1"), FakeBundle("1", "2")
    r.observe(v1), r.observe(v2)
    shares = [r.share()]
    while r.active:
        for variant in (CANARY, CHAMPION):
            for n in range(150):
                r.on_served(variant, 0.004, False)
                r.on_feedback(variant, "skip" if n % 5 == 0 else "play")
        assert r.tick()
        shares.append(r.share())
    assert shares == [0.05, 0.25, 0.5, 0.0] and r.state.phase == "complete"
    assert r.current is v2 and r.candidate is None and not r.observe(v2)
    assert registry.tags[v2.pair]["rollout.status"] == "complete"
    assert not any(c[0] == "set_champion" for c in registry.calls)
