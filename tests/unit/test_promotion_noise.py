"""The promotion gate does not serve a model whose gain over a baseline a few queries could have made."""

from __future__ import annotations

import numpy as np

from training.evaluate import paired_gain
from training.promotion import decide

BASELINES = {"popularity": 0.10, "als": 0.12}


def test_a_gain_within_two_standard_errors_is_refused_and_says_how_to_decide_otherwise():
    noisy = {"popularity": 0.01, "als": 0.04}  # popularity clearly beaten, ALS not
    d = decide(0.15, None, BASELINES, 0.005, True, gain_se=noisy, min_se=2.0, queries=18)
    assert not d.promote
    assert "beats als 0.1200 by +0.0300, within the noise over 18 hold-out queries" in d.reason
    assert "SETLIST_PROMOTION_BASELINE_SE=0" in d.reason
    # the setting for more hold-out queries is the split's own, when the run says which it used
    assert "SETLIST_HOLDOUT_SHARE for the global split; the per-user one asks each user once" in d.reason
    per_user = decide(0.15, None, BASELINES, 0.005, True, gain_se=noisy, min_se=2.0, split="per_user").reason
    assert "(the per-user split asks each user once: more users, or SETLIST_SPLIT=global" in per_user
    assert "FRACTION" not in per_user
    period = decide(0.15, None, BASELINES, 0.005, True, gain_se=noisy, min_se=2.0, split="global").reason
    assert "SETLIST_HOLDOUT_DAYS or SETLIST_HOLDOUT_SHARE" in period and "FRACTION" not in period
    # popularity is judged first: its gain (0.05) is within 2 × 0.03 too
    assert decide(0.15, None, BASELINES, 0.005, True, gain_se={"popularity": 0.03}, min_se=2.0).reason.startswith(
        "ndcg@10 0.1500 beats popularity 0.1000 by +0.0500, within the noise ("
    )
    # clear of the noise, or the rule turned off: promoted on the means
    clear = {"popularity": 0.01, "als": 0.01}
    assert decide(0.15, None, BASELINES, 0.005, True, gain_se=clear, min_se=2.0).promote
    assert decide(0.15, None, BASELINES, 0.005, True, gain_se=noisy, min_se=0.0).promote
    # a baseline not measured (nan) or without an error is judged on its mean alone, as before
    assert decide(0.15, None, {"popularity": 0.10, "als": float("nan")}, 0.005, True, gain_se=noisy, min_se=0).promote
    assert decide(0.15, None, BASELINES, 0.005, True, gain_se={}, min_se=2.0).promote


def test_the_noise_rule_holds_beside_a_champion():
    clear = {"popularity": 0.001, "als": 0.001}
    assert decide(0.30, 0.20, BASELINES, 0.005, True, gain_se=clear, min_se=2.0).promote
    assert not decide(0.13, 0.10, BASELINES, 0.005, True, gain_se={"als": 0.01}, min_se=2.0).promote


def test_the_paired_gain_is_the_mean_difference_and_its_standard_error():
    rng = np.random.default_rng(7)
    theirs = rng.random(400)
    ours = theirs + 0.05 + rng.normal(0, 0.1, 400)
    gain, se = paired_gain(ours, theirs)
    diff = ours - theirs
    assert gain == float(diff.mean()) and abs(se - diff.std(ddof=1) / 20) < 1e-12
    # pairing matters: the same gain over unpaired noise has a far larger error than the paired one
    assert se < 0.1 / np.sqrt(400) * 1.2 < np.sqrt(theirs.var() + ours.var()) / 20
    assert paired_gain(np.array([0.3]), np.array([0.1]))[1] == 0.0
    assert paired_gain(np.zeros(0), np.zeros(0)) == (0.0, 0.0)
