"""Cost tiers: which events take the real-time path, the sample that keeps batch events, and the
estimator that turns sampling weights back into counts."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from setlist.contract import EVENT_TYPES
from setlist.errors import UsageError
from setlist.tiers import Tiers, estimate_total, unit_hash

EXAMPLE = {
    "realtime": ["play", "skip", "like", "add_to_playlist", "not_interested", "search", "feature_use"],
    "batch": {"impression": {"sample": 1.0}, "view": {"sample": 0.2}, "heartbeat": {"sample": 0.05}},
}


def test_the_shipped_tiers_file_names_every_event_type_once():
    from pathlib import Path

    tiers = Tiers.load(Path(__file__).resolve().parents[2] / "tiers.yaml")
    assert tiers.realtime | set(tiers.batch) == set(EVENT_TYPES)
    assert not tiers.realtime & set(tiers.batch)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({**EXAMPLE, "batch": {**EXAMPLE["batch"], "view": {"sample": 0}}}, "in (0, 1]"),
        ({**EXAMPLE, "batch": {**EXAMPLE["batch"], "view": {"sample": "often"}}}, "must be a number"),
        ({**EXAMPLE, "realtime": [*EXAMPLE["realtime"], "view"]}, "in both tiers"),
        ({**EXAMPLE, "realtime": ["play"]}, "no tier for"),
        ({**EXAMPLE, "realtime": [*EXAMPLE["realtime"], "scroll"]}, "unknown event types ['scroll']"),
        ({**EXAMPLE, "fast": []}, "unknown keys"),
    ],
)
def test_a_bad_tiers_file_is_refused_with_the_reason(raw, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Tiers.parse(raw)


def test_the_keep_decision_is_the_same_for_a_retry_and_keeps_about_the_rate():
    tiers = Tiers.parse(EXAMPLE)
    ids = [uuid.uuid4().hex for _ in range(20_000)]
    kept = [tiers.keep("view", i) for i in ids]
    assert kept == [tiers.keep("view", i) for i in ids]  # a retried event is decided the same way
    assert abs(np.mean(kept) - 0.2) < 0.02
    assert all(tiers.keep("play", i) for i in ids[:100])  # realtime types are never sampled
    assert tiers.weight("view") == pytest.approx(5.0) and tiers.weight("play") is None


def test_unit_hash_is_uniform():
    u = np.array([unit_hash(f"e{i}") for i in range(50_000)])
    hist, _ = np.histogram(u, bins=10, range=(0, 1))
    assert (abs(hist / len(u) - 0.1) < 0.01).all()


def test_the_estimate_recovers_the_true_count_within_its_interval():
    """Sample many event streams at a few rates: the 95% interval covers the true count about 95%
    of the time, and the estimate is unbiased."""
    rng = np.random.default_rng(5)
    for rate in (0.5, 0.1, 0.02):
        tiers = Tiers.parse({**EXAMPLE, "batch": {**EXAMPLE["batch"], "heartbeat": {"sample": rate}}})
        covered, errors = 0, []
        for trial in range(200):
            true = int(rng.integers(2_000, 6_000))
            ids = [f"{trial}-{rate}-{rng.integers(1 << 62)}" for _ in range(true)]
            weights = [tiers.weight("heartbeat") for i in ids if tiers.keep("heartbeat", i)]
            est = estimate_total(weights)
            covered += est.lo <= true <= est.hi
            errors.append((est.total - true) / true)
        assert 0.90 <= covered / 200 <= 0.99, (rate, covered)
        assert abs(np.mean(errors)) < 0.02, rate  # unbiased within the noise of 200 trials


def test_unsampled_events_count_exactly():
    est = estimate_total([None, 1.0, float("nan"), None])
    assert (est.total, est.lo, est.hi, est.stored) == (4.0, 4.0, 4.0, 4)
