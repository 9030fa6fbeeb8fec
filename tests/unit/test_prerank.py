"""The pre-ranker: a linear score over the candidate stage's scores keeps a request's best rows for
the trees; training fits it and picks how many rows to keep from the validation queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from feature_repo.declarations import load
from setlist.blend import MARGIN_FEATURE, Prerank, scorer, set_blend, set_prerank
from setlist.features import CROSS_NAMES
from training.dataset import COMPLETE, MARGIN_BASIS, RankingSet
from training.prerank import fit_prerank, retention
from training.ranker import RankerParams, cheapest, fit

FEATURES = load().service("ranker_v1").inputs
SIGNAL = "x_embedding_score"  # the one column the positives are drawn from in these worlds


def _booster(seed: int = 0, trees: int = 5) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    d = xgb.DMatrix(X, label=(X[:, FEATURES.index(SIGNAL)] > 0).astype(float), feature_names=list(FEATURES))
    return xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, d, num_boost_round=trees)


def _weights(column: str, weight: float = 1.0) -> list[float]:
    return [weight if n == column else 0.0 for n in CROSS_NAMES]


def test_the_trees_score_only_the_kept_rows_and_the_rest_rank_below_them_in_prerank_order():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, len(FEATURES))).astype(np.float32)
    booster = _booster()
    full = scorer(booster)(X)
    set_prerank(booster, list(CROSS_NAMES), _weights(SIGNAL), keep=10)
    pre = scorer(booster)(X)
    by_signal = np.argsort(-X[:, FEATURES.index(SIGNAL)], kind="stable")
    kept, rest = by_signal[:10], by_signal[10:]
    np.testing.assert_allclose(pre[kept], full[kept], rtol=1e-6)  # the trees' own scores, unchanged
    assert pre[kept].min() > pre[rest].max()  # everything dropped ranks below everything kept
    assert (np.diff(pre[rest]) < 0).all()  # and among itself, by the pre-ranker
    np.testing.assert_allclose(scorer(booster, prerank=False)(X), full)  # the comparison path ignores it
    assert np.isfinite(pre).all()


def test_a_request_with_no_more_rows_than_keep_is_scored_whole():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(8, len(FEATURES))).astype(np.float32)
    booster = _booster()
    full = scorer(booster)(X)
    set_prerank(booster, list(CROSS_NAMES), _weights(SIGNAL), keep=10)
    np.testing.assert_allclose(scorer(booster)(X), full)


def test_a_blended_rankers_margin_is_scaled_over_the_whole_request_before_the_cut():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, len(FEATURES))).astype(np.float32)
    booster = _booster(trees=0)  # pure margin: the score is weight × basis over the whole list
    set_blend(booster, MARGIN_FEATURE, 4.0)
    full = scorer(booster)(X)
    set_prerank(booster, list(CROSS_NAMES), _weights(MARGIN_FEATURE), keep=5)
    kept = np.argsort(-X[:, FEATURES.index(MARGIN_FEATURE)], kind="stable")[:5]
    np.testing.assert_allclose(scorer(booster)(X)[kept], full[kept], rtol=1e-6)


def test_a_prerank_reading_a_feature_the_ranker_lacks_is_refused_and_zero_keep_means_none():
    booster = _booster()
    set_prerank(booster, ["not_an_input"], [1.0], keep=10)
    with pytest.raises(ValueError, match="not_an_input"):
        Prerank.of(booster)
    set_prerank(booster, None)
    assert Prerank.of(booster) is None


def test_retention_is_the_share_of_positives_in_each_querys_best_rows():
    scores = np.array([3.0, 2.0, 1.0, 0.0, 5.0, 4.0])
    y = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    assert retention(scores, y, np.array([4, 2]), keep=2) == pytest.approx(2 / 3)  # query 1 loses one of two
    assert retention(scores, y, np.array([4, 2]), keep=3) == 1.0


def _ranking_set(seed: int, queries: int = 60, per_query: int = 80, noise: float = 0.3) -> RankingSet:
    """Whole candidate lists whose positives sit where SIGNAL (plus noise) is high."""
    rng = np.random.default_rng(seed)
    n = queries * per_query
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))).astype(np.float32), columns=list(FEATURES))
    latent = frame[SIGNAL].to_numpy() + noise * rng.normal(size=n)
    label = np.zeros(n)
    for q in range(queries):
        rows = np.arange(q * per_query, (q + 1) * per_query)
        label[rows[np.argsort(-latent[rows])[:3]]] = 1.0
    frame = frame.assign(
        query_id=np.repeat(np.arange(queries), per_query),
        label=label,
        **{MARGIN_BASIS: frame[MARGIN_FEATURE].to_numpy(), COMPLETE: np.repeat(np.arange(queries) >= 40, per_query)},
    )
    return RankingSet(frame, np.full(queries, per_query), FEATURES)


def test_training_learns_which_candidate_score_matters_and_keeps_the_smallest_cut_that_holds():
    rs = _ranking_set(5)
    valid = rs.frame[COMPLETE].to_numpy(bool)
    pre = fit_prerank(rs, ~valid, valid, keep=10, max_loss=0.01, pool=80)
    w = dict(zip(pre.features, pre.weights, strict=True))
    assert max(w, key=lambda f: abs(w[f])) == SIGNAL and w[SIGNAL] > 0
    assert pre.keep in pre.tried and pre.tried[pre.keep] >= 0.99
    assert all(r < 0.99 for k, r in pre.tried.items() if k < pre.keep)  # nothing smaller would have held


def test_when_no_cut_holds_the_ranker_goes_without_a_prerank_and_says_why():
    rs = _ranking_set(6, noise=50.0)  # positives unrelated to any score: no cut keeps 99% of them
    valid = rs.frame[COMPLETE].to_numpy(bool)
    pre = fit_prerank(rs, ~valid, valid, keep=10, max_loss=0.01, pool=40)
    assert pre.keep == 0 and "no keep below the pool of 40" in pre.reason
    fitted = fit(rs, RankerParams(trees=5, threads=1, prerank_keep=10, pool=40), seed=0)
    assert Prerank.of(fitted.booster) is None and fitted.prerank is not None and fitted.prerank.keep == 0


def test_a_fitted_ranker_carries_its_prerank_in_the_artifact():
    rs = _ranking_set(7)
    fitted = fit(rs, RankerParams(trees=5, threads=1, prerank_keep=20, pool=80), seed=0)
    assert fitted.prerank is not None and fitted.prerank.keep >= 20
    loaded = xgb.Booster(model_file=bytearray(fitted.booster.save_raw("ubj")))
    pre = Prerank.of(loaded)
    assert pre is not None and pre.keep == fitted.prerank.keep


def test_the_cheapest_model_within_the_tolerance_is_kept():
    results = {
        "EASE, 0 trees": (0.200, None, 4.0, 0, 0),
        "depth=6, 200 trees": (0.250, None, 4.0, 200, 6),
        "depth=4, 50 trees": (0.249, None, 4.0, 50, 4),
        "depth=2, 25 trees": (0.240, None, 4.0, 25, 2),
    }
    assert cheapest(results, 0.0) == "depth=6, 200 trees"
    assert cheapest(results, 0.005) == "depth=4, 50 trees"  # 0.249 ≥ 0.25 × 0.995
    assert cheapest(results, 0.25) == "EASE, 0 trees"
