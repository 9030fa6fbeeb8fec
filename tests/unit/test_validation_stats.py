"""Pure drift maths: binning, PSI and Jensen–Shannon distance."""

import numpy as np
import pandas as pd
import pytest

from validation.distributions import (
    bucket_codes,
    categorical_reference,
    drift_score,
    histogram,
    js_distance,
    null_scores,
    numeric_reference,
    psi,
)


def test_psi_is_zero_for_identical_and_grows_with_shift():
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(size=20_000))
    r = numeric_reference(ref)
    same = drift_score("psi", "numeric", r.bins, r.shares, pd.Series(rng.normal(size=20_000)))
    shifted = drift_score("psi", "numeric", r.bins, r.shares, pd.Series(rng.normal(loc=1.0, size=20_000)))
    assert same < 0.01
    assert shifted > 0.25


def test_quantile_bins_are_equal_mass_and_discrete_data_collapses_bins():
    r = numeric_reference(pd.Series(np.arange(1000, dtype=float)))
    assert len(r.bins) == 9
    assert np.allclose(r.shares[:10], 0.1, atol=0.002)
    assert r.shares[-2:] == [0.0, 0.0]  # other, null
    discrete = numeric_reference(pd.Series([0.0] * 90 + [1.0] * 10))
    assert len(discrete.bins) == 2  # many identical quantiles → few cut points


def test_nulls_have_their_own_bucket():
    r = numeric_reference(pd.Series([1.0, 2.0, None, None]))
    assert r.shares[-1] == pytest.approx(0.5)
    counts = histogram("numeric", r.bins, pd.Series([None] * 4))
    assert counts[-1] == 4


def test_unseen_categories_fall_into_other_and_drift():
    ref = pd.Series(["mobile"] * 50 + ["desktop"] * 50)
    r = categorical_reference(ref)
    assert set(r.bins) == {"mobile", "desktop"}
    exploded = pd.Series([f"free text {i}" for i in range(60)] + ["mobile"] * 40)
    assert drift_score("psi", "categorical", r.bins, r.shares, exploded) > 0.25
    assert drift_score("js", "categorical", r.bins, r.shares, exploded) > 0.2


def test_js_distance_bounds():
    assert js_distance([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert psi([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown drift method"):
        drift_score("kl", "numeric", [0.0], [0.5, 0.5, 0, 0], pd.Series([1.0]))


def test_bucket_codes_count_up_to_the_histogram():
    values = pd.Series([0.1, 0.5, None, "junk", 0.9, 0.3] * 50, dtype=object)
    bins = [0.2, 0.6]
    assert np.array_equal(
        np.bincount(bucket_codes("numeric", bins, values), minlength=5), histogram("numeric", bins, values)
    )
    cats = pd.Series(["a", "b", None, "c", "a"])
    assert np.array_equal(
        np.bincount(bucket_codes("categorical", ["a", "b"], cats), minlength=4),
        histogram("categorical", ["a", "b"], cats),
    )


def test_null_scores_grow_when_windows_hold_few_independent_bursts():
    rng = np.random.default_rng(0)
    # 400 bursts of 25 events each sharing one hour: a window of 1,000 events holds only 40 bursts
    hours = pd.Series(np.repeat(rng.integers(0, 24, 400), 25))
    bursts = np.repeat(np.arange(400), 25)
    bins = numeric_reference(hours).bins
    clustered = null_scores("psi", "numeric", bins, hours, 1000, 0, draws=30, clusters=bursts)
    independent = null_scores("psi", "numeric", bins, hours, 1000, 0, draws=30, clusters=np.arange(len(hours)))
    assert len(clustered) == len(independent) == 30
    assert np.median(clustered) > 5 * np.median(independent)
