"""The pre-ranker: a linear score, or the ranker's own first trees, keeps a request's best rows for
the trees; training fits it and picks how many rows to keep from the validation queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from feature_repo.declarations import load
from setlist.blend import MARGIN_FEATURE, Prerank, scorer, set_blend, set_prerank
from setlist.features import CROSS_NAMES
from training import prerank
from training.dataset import COMPLETE, MARGIN_BASIS, RankingSet
from training.prerank import cascade_quality, fit_prerank
from training.ranker import RankerParams, choose, fit

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


def test_the_cascade_loses_only_what_the_ranker_would_have_shown():
    n = 150
    full = -np.arange(n, dtype=np.float32)  # the ranker: earlier rows first
    y = np.zeros(n)
    y[[2, 120]] = 1.0  # one positive the ranker shows in its top 10, one beyond its top 100
    groups = np.array([n])
    # a cut that drops the positive the ranker ranks 121st costs nothing at ndcg@10 or recall@100
    drops_far = full.copy()
    drops_far[120] = -1e6
    assert cascade_quality(drops_far, full, y, groups, keep=100) == pytest.approx(1.0)
    # a cut that drops the one it ranks third costs everything the ranker had
    drops_near = full.copy()
    drops_near[2] = -1e6
    assert cascade_quality(drops_near, full, y, groups, keep=100) == pytest.approx(0.0)
    # no query with a positive: nothing to judge
    assert np.isnan(cascade_quality(full, full, np.zeros(n), groups, keep=100))


def _ranker(rs: RankingSet, column: str):
    """A stand-in for the ranker's first trees: every m scores by ``column``."""
    values = rs.frame[column].to_numpy(np.float32)
    return lambda rows, m: values[rows]


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
    pre = fit_prerank(rs, ~valid, valid, keep=10, max_loss=0.01, pool=80, first_trees=_ranker(rs, SIGNAL), trees=100)
    # the linear cut holds too, and the kind kept costs the fewest tree evaluations of those that hold
    assert "linear" in pre.options
    kept = "linear" if pre.first_trees is None else f"first {pre.first_trees} trees"
    assert pre.options[kept][1] == min(cost for _, cost in pre.options.values())
    w = dict(zip(pre.features, pre.weights, strict=True))
    assert max(w, key=lambda f: abs(w[f])) == SIGNAL and w[SIGNAL] > 0
    assert pre.keep in pre.tried and pre.tried[pre.keep] >= 0.99
    assert all(r < 0.99 for k, r in pre.tried.items() if k < pre.keep)  # nothing smaller would have held


def test_when_no_cut_holds_the_ranker_goes_without_a_prerank_and_says_why():
    rs = _ranking_set(6, noise=50.0)  # positives unrelated to any candidate score
    valid = rs.frame[COMPLETE].to_numpy(bool)
    labels = rs.frame["label"].to_numpy(np.float32)
    noise = np.random.default_rng(6).normal(size=len(labels)).astype(np.float32)

    def oracle(rows: np.ndarray, m: int) -> np.ndarray:  # the whole ranker knows; its first trees do not
        return labels[rows] if m == 100 else noise[rows]

    pre = fit_prerank(rs, ~valid, valid, keep=10, max_loss=0.01, pool=40, first_trees=oracle, trees=100)
    assert pre.keep == 0 and "no keep below the pool of 40" in pre.reason and not pre.options
    fitted = fit(rs, RankerParams(trees=5, threads=1, prerank_keep=10, pool=40), seed=0)
    assert fitted.prerank is not None and (Prerank.of(fitted.booster) is None) == (fitted.prerank.keep == 0)


def test_a_catalogue_smaller_than_the_pool_is_measured_by_its_own_lists():
    # a 22-item catalogue said "the best 150 of 500 candidates": the lists are the catalogue, whole
    tiny = _ranking_set(7, per_query=12)
    valid = tiny.frame[COMPLETE].to_numpy(bool)
    pre = fit_prerank(
        tiny, ~valid, valid, keep=20, max_loss=0.01, pool=500, first_trees=_ranker(tiny, SIGNAL), trees=100
    )
    assert pre.keep == 0 and "the candidate lists hold at most 12 items, no more than the 20" in pre.reason
    # lists shorter than the configured pool: the cost is that of the lists as they are
    rs = _ranking_set(5)
    valid = rs.frame[COMPLETE].to_numpy(bool)
    pool_80 = fit_prerank(
        rs, ~valid, valid, keep=10, max_loss=0.01, pool=80, first_trees=_ranker(rs, SIGNAL), trees=100
    )
    pool_500 = fit_prerank(
        rs, ~valid, valid, keep=10, max_loss=0.01, pool=500, first_trees=_ranker(rs, SIGNAL), trees=100
    )
    assert pool_500.options == pool_80.options and pool_500.keep == pool_80.keep > 0


def test_a_fitted_ranker_carries_its_prerank_in_the_artifact():
    rs = _ranking_set(7)
    fitted = fit(rs, RankerParams(trees=5, threads=1, prerank_keep=20, pool=80), seed=0)
    assert fitted.prerank is not None and fitted.prerank.keep >= 20
    loaded = xgb.Booster(model_file=bytearray(fitted.booster.save_raw("ubj")))
    pre = Prerank.of(loaded)
    assert pre is not None and pre.keep == fitted.prerank.keep


def test_the_cheapest_model_validation_cannot_tell_from_the_best_is_kept():
    rng = np.random.default_rng(3)
    best = rng.uniform(0.0, 0.5, 400)
    noise = rng.normal(0.0, 0.05, 400)
    noise -= noise.mean()  # so the offsets below are the exact mean losses
    per_query = {
        "EASE, 0 trees": best - 0.05,  # far behind on every query
        "depth=6, 200 trees": best,
        "depth=4, 50 trees": best - 0.002 + noise,  # behind by less than a standard error
        "depth=2, 25 trees": best - 0.02 + noise,  # behind by several
    }
    costs = {"EASE, 0 trees": 0, "depth=6, 200 trees": 1200, "depth=4, 50 trees": 200, "depth=2, 25 trees": 50}
    se = 0.05 / np.sqrt(400)
    chosen, tried = choose(per_query, costs, 0.0)
    assert chosen == "depth=4, 50 trees"
    assert tried["depth=4, 50 trees"].loss_se == pytest.approx(se, rel=0.2)
    assert [n for n, t in tried.items() if t.admissible] == ["depth=6, 200 trees", "depth=4, 50 trees"]
    # without the standard error only a tolerance above its loss admits it
    assert choose(per_query, costs, 0.0, se=0.0)[0] == "depth=6, 200 trees"
    loss = float((per_query["depth=6, 200 trees"] - per_query["depth=4, 50 trees"]).mean())
    assert choose(per_query, costs, 1.01 * loss / best.mean(), se=0.0)[0] == "depth=4, 50 trees"
    # a tolerance wide enough admits pure EASE, which costs nothing
    assert choose(per_query, costs, 0.25)[0] == "EASE, 0 trees"
    assert tried["depth=6, 200 trees"].loss_se == 0.0 and tried["depth=6, 200 trees"].ndcg == pytest.approx(best.mean())


def test_equal_configurations_go_to_the_one_tried_first():
    same = np.array([0.2, 0.4, 0.6])
    chosen, tried = choose({"a": same, "b": same.copy()}, {"a": 10, "b": 10}, 0.0)
    assert chosen == "a" and all(t.admissible for t in tried.values())


# --- the ranker's own first trees as the pre-ranker ---------------------------------------------
def _margins(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    return booster.inplace_predict(X, predict_type="margin")


@pytest.mark.parametrize("m", [1, 3, 5])
def test_a_tree_prerank_scores_kept_rows_exactly_as_the_whole_booster(m):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(60, len(FEATURES))).astype(np.float32)
    booster = _booster(trees=5)
    full = _margins(booster, X)
    set_prerank(booster, None, keep=15, first_trees=m)
    pre = scorer(booster)(X)
    first = booster.inplace_predict(X, iteration_range=(0, m), predict_type="margin")
    kept = np.argsort(-first, kind="stable")[:15]
    rest = np.setdiff1d(np.arange(len(X)), kept)
    np.testing.assert_allclose(pre[kept], full[kept], rtol=1e-5, atol=1e-6)
    assert pre[kept].min() > pre[rest].max()
    # the dropped rows keep the first trees' order among themselves
    assert (np.diff(pre[rest[np.argsort(-first[rest], kind="stable")]]) < 0).all()


def test_a_zero_tree_prerank_cuts_by_the_blends_margin_and_short_requests_are_scored_whole():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(30, len(FEATURES))).astype(np.float32)
    booster = _booster(trees=4)
    set_blend(booster, MARGIN_FEATURE, 4.0)
    full = scorer(booster, prerank=False)(X)
    set_prerank(booster, None, keep=8, first_trees=0)
    kept = np.argsort(-X[:, FEATURES.index(MARGIN_FEATURE)], kind="stable")[:8]
    np.testing.assert_allclose(scorer(booster)(X)[kept], full[kept], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scorer(booster)(X[:8]), scorer(booster, prerank=False)(X[:8]), rtol=1e-5, atol=1e-6)


def test_a_tree_prerank_needing_more_trees_than_the_booster_has_is_refused():
    booster = _booster(trees=3)
    set_prerank(booster, None, keep=10, first_trees=4)
    with pytest.raises(ValueError, match="first 4 trees"):
        Prerank.of(booster)


def test_when_only_the_trees_know_what_matters_training_preranks_with_the_first_trees(monkeypatch):
    """Positives drawn from a feature the linear kind cannot read (not a candidate score): the
    linear cut loses them, the booster's own first trees keep them, and the artifact says so."""
    hidden = next(n for n in FEATURES if n not in CROSS_NAMES)
    queries, per_query = 200, 80
    rs = _ranking_set(8, queries=queries)
    frame = rs.frame.assign(**{MARGIN_FEATURE: 0.0, MARGIN_BASIS: 0.0, COMPLETE: rs.frame["query_id"] >= 150})
    latent = frame[hidden].to_numpy() + 0.1 * np.random.default_rng(8).normal(size=len(frame))
    label = np.zeros(len(frame))
    for q in range(queries):
        rows = np.arange(q * per_query, (q + 1) * per_query)
        label[rows[np.argsort(-latent[rows])[:3]]] = 1.0
    rs = RankingSet(frame.assign(label=label), rs.groups, rs.inputs)
    # 80 candidates are too few to pay for a second predict call; a large pool's calls cost little beside its rows
    monkeypatch.setattr(prerank, "CALL_COST", 0)
    fitted = fit(rs, RankerParams(trees=50, max_depth=3, threads=1, prerank_keep=20, pool=80), seed=0)
    pre = fitted.prerank
    assert pre is not None and pre.keep and pre.first_trees is not None and pre.first_trees > 0
    assert "linear" not in pre.options and pre.tried[pre.keep] >= 0.99
    loaded = xgb.Booster(model_file=bytearray(fitted.booster.save_raw("ubj")))
    served = Prerank.of(loaded)
    assert served is not None and (served.first_trees, served.keep) == (pre.first_trees, pre.keep)


def test_of_the_kinds_that_hold_the_one_with_the_fewest_tree_evaluations_is_kept():
    rs = _ranking_set(9)
    valid = rs.frame[COMPLETE].to_numpy(bool)
    signal = rs.frame[SIGNAL].to_numpy(np.float32)

    def first_trees(rows: np.ndarray, m: int) -> np.ndarray:  # every m holds: the ranker's own score
        return signal[rows]

    pre = fit_prerank(rs, ~valid, valid, keep=10, max_loss=0.01, pool=80, first_trees=first_trees, trees=100)
    costs = {name: cost for name, (_, cost) in pre.options.items()}
    assert set(costs) >= {"first 5 trees", "first 10 trees"} and "first 0 trees" not in costs  # no margin
    kept = min(costs, key=costs.__getitem__)
    assert pre.describe() in ("a linear score of the candidate stage's scores", f"the ranker's {kept}")
    assert (pre.first_trees is None) == (kept == "linear")


def test_a_cut_that_costs_more_than_scoring_every_candidate_is_not_kept():
    """The first trees hold, but a second predict call over 80 candidates costs more than it saves."""
    rs = _ranking_set(10)
    valid = rs.frame[COMPLETE].to_numpy(bool)
    labels = rs.frame["label"].to_numpy(np.float32)
    noise = np.random.default_rng(10).normal(size=len(labels)).astype(np.float32)

    def trees_only(rows: np.ndarray, m: int) -> np.ndarray:  # the first trees already know; no linear score does
        return labels[rows] if m > 0 else noise[rows]

    rs = RankingSet(rs.frame.assign(**{f: noise for f in CROSS_NAMES if f in rs.frame}), rs.groups, rs.inputs)
    pre = fit_prerank(rs, ~valid, valid, keep=10, max_loss=0.01, pool=80, first_trees=trees_only, trees=100)
    assert pre.keep == 0 and "costs less than the trees on all 80 candidates" in pre.reason
    assert set(pre.options) >= {"first 5 trees"} and "linear" not in pre.options


def test_a_cut_is_judged_by_the_upper_bound_of_its_loss_not_the_estimate():
    """Ten queries each losing the same share: the bound is the estimate. The same total loss in
    one query of the ten: the same estimate, but a wider bound, so less is credited."""
    n, queries = 150, 10
    full = np.tile(-np.arange(n, dtype=np.float32), queries)
    groups = np.full(queries, n)

    def world(losing: list[int]) -> tuple[np.ndarray, np.ndarray]:
        y, pre = np.zeros(n * queries), full.copy()
        for q in range(queries):
            y[q * n + np.array([0, 1])] = 1.0  # two positives the ranker shows first
            if q in losing:
                pre[q * n + 1] = -1e6  # the cut drops one of them
        return y, pre

    y, pre = world(list(range(queries)))
    steady = cascade_quality(pre, full, y, groups, keep=100)
    assert steady == pytest.approx(0.5)  # every query keeps one positive of two at recall@100
    y, pre = world([3])
    lumpy = cascade_quality(pre, full, y, groups, keep=100)
    assert lumpy < 1.0 - 0.05  # the estimated loss is 5% of recall; the bound adds its uncertainty
