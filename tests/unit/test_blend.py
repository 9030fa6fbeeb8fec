"""The ranker boosted from EASE: the artifact alone says how to score, and every caller scores alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xgboost as xgb

from feature_repo.declarations import load
from serving.rollout.models import ModelBundle
from setlist.blend import MARGIN_FEATURE, margin_basis, scorer, set_blend, set_prerank
from setlist.candidate_sources import GLOBAL_COHORT
from setlist.candidates import CandidateIndex
from setlist.features import CROSS_NAMES
from training.candidates_fit import seen_matrix
from training.ease import Ease, fit_ease, top_neighbours
from training.evaluate import ease_baseline
from training.ranker import ndcg_per_query

ITEMS, USERS = 120, 60
RANKER_FEATURES = load().service("ranker_v1").inputs
CROSS_AT = len(RANKER_FEATURES) - len(CROSS_NAMES)


def _world(seed: int = 0) -> tuple[CandidateIndex, np.ndarray, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    # two tastes, so that EASE has structure to find
    taste = rng.integers(0, 2, USERS)
    p = np.where(taste[:, None] == (np.arange(ITEMS)[None, :] % 2), 0.25, 0.03)
    x = sp.csr_matrix((rng.random((USERS, ITEMS)) < p).astype(np.float32))
    b = fit_ease(x, lam=5.0)
    seen = x.copy()
    seen.data = np.arange(1, len(seen.data) + 1, dtype=np.float32)  # any positive recency ranks
    index = CandidateIndex(
        np.array([f"i{n}" for n in range(ITEMS)]),
        np.zeros(ITEMS, np.int64),
        ["a"],
        np.array([f"u{n}" for n in range(USERS)]),
        rng.normal(size=(USERS, 4)),
        rng.normal(size=(ITEMS, 4)),
        sp.csr_matrix((ITEMS, ITEMS), dtype=np.float32),
        {GLOBAL_COHORT: rng.permutation(ITEMS)},
        seen=seen,
        knn=top_neighbours(b, ITEMS),
        exclude_seen=True,
    )
    return index, b, x


def _X(index: CandidateIndex, user: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c = index.generate(user, [], GLOBAL_COHORT, set(), ITEMS)
    X = rng.normal(size=(len(c.idx), len(RANKER_FEATURES))).astype(np.float32)
    X[:, CROSS_AT:] = index.cross_features(c, None, "", "", [])
    return X, c.idx


def _booster(trees: int, weight: float, seed: int = 0) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, len(RANKER_FEATURES))).astype(np.float32)
    d = xgb.DMatrix(
        X,
        label=(X[:, 0] > 0).astype(np.float32),
        feature_names=list(RANKER_FEATURES),
        base_margin=weight * margin_basis(X[:, RANKER_FEATURES.index(MARGIN_FEATURE)]),
    )
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, d, num_boost_round=trees)
    set_blend(booster, MARGIN_FEATURE, weight)
    return booster


def test_a_booster_with_no_trees_ranks_the_candidates_exactly_as_ease():
    index, b, x = _world()
    rng = np.random.default_rng(1)
    score = scorer(_booster(0, 4.0))
    baseline = ease_baseline(Ease(np.arange(ITEMS), b, ITEMS), x)
    for u in range(0, USERS, 7):
        X, idx = _X(index, f"u{u}", rng)
        s = score(X)
        ease = np.asarray(x[u] @ b).ravel()
        np.testing.assert_allclose(s, 4.0 * ease[idx] / np.abs(ease[idx]).max(), rtol=1e-5, atol=1e-6)
        top = idx[np.argsort(-s, kind="stable")][:10]
        assert top.tolist() == baseline(u, x[u].indices, GLOBAL_COHORT)[:10].tolist()


def test_serving_training_and_a_reloaded_artifact_score_alike(tmp_path):
    index, _, _ = _world()
    booster = _booster(30, 4.0)
    X, _ = _X(index, "u3", np.random.default_rng(2))
    trained = booster.predict(
        xgb.DMatrix(
            X,
            feature_names=list(RANKER_FEATURES),
            base_margin=4.0 * margin_basis(X[:, RANKER_FEATURES.index(MARGIN_FEATURE)]),
        ),
        output_margin=True,
    )
    booster.save_model(tmp_path / "ranker.ubj")
    reloaded = xgb.Booster(model_file=str(tmp_path / "ranker.ubj"))
    served = ModelBundle(index, reloaded, "1", "1").score(X)
    np.testing.assert_allclose(scorer(booster)(X), trained, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served, trained, rtol=1e-5, atol=1e-5)
    # the trees do change the EASE order, so the margin is not all there is
    assert not np.allclose(served, 4.0 * margin_basis(X[:, RANKER_FEATURES.index(MARGIN_FEATURE)]))


def test_a_booster_without_blend_scores_as_before():
    booster = _booster(10, 0.0)
    X = np.random.default_rng(3).normal(size=(20, len(RANKER_FEATURES))).astype(np.float32)
    np.testing.assert_array_equal(scorer(booster)(X), booster.inplace_predict(X))


def test_skipped_items_are_left_out_but_do_not_vote_for_their_neighbours():
    ts = pd.Timestamp("2020-01-01", tz="UTC")
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "user_id": ["u0"] * 3,
            "item_id": ["i0", "i1", "i2"],
            "type": ["like", "skip", "play"],
            "value": [None, None, 0.5],
            "timestamp": [ts, ts + pd.Timedelta(1, "h"), ts + pd.Timedelta(2, "h")],
        }
    )
    index, _, _ = _world()
    index.seen = seen_matrix(events, index.user_ids, pd.Index(index.item_ids))
    seen, profile = index.history(0)
    assert sorted(seen.tolist()) == [0, 1, 2] and profile.tolist() == [0, 2]


def test_validation_ndcg_counts_ties_against_the_positives():
    label = np.array([1.0, 0, 0, 0])
    assert ndcg_per_query(np.zeros(4), label, np.array([4]), k=1).tolist() == [0.0]
    assert ndcg_per_query(np.array([1.0, 0, 0, 0]), label, np.array([4]), k=1).tolist() == [1.0]


def test_when_no_tree_improves_on_ease_the_ranker_is_ease_itself():
    from training.dataset import COMPLETE, MARGIN_BASIS, RankingSet
    from training.ranker import RankerParams, fit

    rng = np.random.default_rng(4)
    queries, per_query = 40, 30
    basis = rng.random(queries * per_query).astype(np.float32)
    label = np.zeros(len(basis))
    for q in range(queries):  # the best-scored item of each query is its one positive
        rows = slice(q * per_query, (q + 1) * per_query)
        label[q * per_query + int(np.argmax(basis[rows]))] = 1.0
    frame = pd.DataFrame(
        rng.normal(size=(len(basis), len(RANKER_FEATURES))).astype(np.float32), columns=list(RANKER_FEATURES)
    )
    frame[MARGIN_FEATURE] = basis
    frame = frame.assign(
        query_id=np.repeat(np.arange(queries), per_query),
        label=label,
        **{MARGIN_BASIS: basis, COMPLETE: np.repeat(np.arange(queries) >= 30, per_query)},
    )
    fitted = fit(
        RankingSet(frame, np.full(queries, per_query), RANKER_FEATURES), RankerParams(trees=10, threads=1), seed=0
    )
    assert fitted.booster.num_boosted_rounds() == 0 and "0 trees" in fitted.objective
    X = frame[list(RANKER_FEATURES)].to_numpy(np.float32)[:per_query]
    assert np.argmax(scorer(fitted.booster)(X)) == np.argmax(basis[:per_query])


def test_a_replaced_prediction_call_scores_every_cascade_alike():
    """The bench's baseline engine scores through a DMatrix: through the same cascade, the same scores."""
    from serving.baseline import _dmatrix_predict

    index, _, _ = _world()
    X, _ = _X(index, "u5", np.random.default_rng(4))
    for prerank in (
        {"features": [MARGIN_FEATURE], "weights": [1.0], "keep": 20},  # linear
        {"first_trees": 5, "keep": 20},  # the ranker's own first trees
        None,
    ):
        booster = _booster(30, 4.0)
        if prerank is not None:
            set_prerank(
                booster, prerank.get("features"), prerank.get("weights"), prerank["keep"], prerank.get("first_trees")
            )
        fast = scorer(booster)(X)
        through = _dmatrix_predict(booster)
        calls: list[int] = []

        def counted(rows, *args, _through=through, _calls=calls, **kwargs):
            _calls.append(len(rows))
            return _through(rows, *args, **kwargs)

        general = scorer(booster, predict=counted)(X)
        # every tree call went through the replacement: the whole request, or the first trees and the kept rows
        assert calls == ([len(X), 20] if "first_trees" in (prerank or {}) else [20] if prerank else [len(X)])
        np.testing.assert_allclose(general, fast, rtol=1e-5, atol=1e-5)
        if prerank is not None:  # the cut is in force: rows below it score under every kept row
            kept = np.argsort(-fast, kind="stable")[:20]
            assert fast[kept].min() > np.delete(fast, kept).max()


def test_rows_below_the_kept_ones_keep_the_pre_rankers_order_beneath_every_kept_score():
    from setlist.blend import below_kept

    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        s = rng.integers(-3, 4, n).astype(np.float32)  # ties, so the stable order matters
        kept = np.sort(rng.choice(n, int(rng.integers(1, n + 1)), replace=False))
        scored = rng.normal(size=len(kept)).astype(np.float32)
        out = below_kept(scored, kept, s)
        np.testing.assert_array_equal(out[kept], scored)
        rest = np.setdiff1d(np.arange(n), kept)
        if len(rest):
            assert out[rest].max() < scored.min()
            # the rest, best first, is the pre-ranker's stable order among them
            by_out, by_pre = np.argsort(-out[rest], kind="stable"), np.argsort(-s[rest], kind="stable")
            np.testing.assert_array_equal(rest[by_out], rest[by_pre])
