"""``setlist.dense_predict``: the direct C call gives XGBoost's own ``inplace_predict`` numbers, bit for
bit, for every argument the scorer uses, from many threads at once, and refuses what it cannot score."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import xgboost as xgb

from setlist.blend import scorer, set_blend, set_prerank
from setlist.dense_predict import DensePredict


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(3)
    X = rng.random((400, 6), dtype=np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.random(400) * 0.3 > 0.6).astype(int)
    dtrain = xgb.DMatrix(X, y, feature_names=[f"f{i}" for i in range(6)])
    return xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1}, dtrain, 30)


@pytest.fixture
def X() -> np.ndarray:
    rng = np.random.default_rng(11)
    X = rng.random((257, 6), dtype=np.float32)
    X[rng.random(X.shape) < 0.15] = np.nan
    return X


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"predict_type": "margin"},
        {"iteration_range": (0, 7)},
        {"iteration_range": (5, 30), "predict_type": "margin"},
        {"base_margin": "margin", "predict_type": "margin"},
        {"base_margin": "margin", "predict_type": "margin", "iteration_range": (0, 12)},
    ],
)
def test_the_direct_call_matches_inplace_predict_bit_for_bit(booster, X, kwargs):
    predict = DensePredict.of(booster)
    assert isinstance(predict, DensePredict)
    if kwargs.get("base_margin") == "margin":
        kwargs = {**kwargs, "base_margin": np.linspace(-2, 2, len(X), dtype=np.float32)}
    for rows in (X, X[:1], X[:0], X[::3], X.astype(np.float64)):  # strided and float64 are copied first
        margin = kwargs.get("base_margin")
        args = {**kwargs, "base_margin": None if margin is None else margin[: len(rows)]}
        expected = booster.inplace_predict(rows, **args)
        got = predict(rows, **args)
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.array_equal(got, expected)


def test_one_proxy_per_thread_keeps_concurrent_margins_apart(booster, X):
    predict = DensePredict.of(booster)
    margins = [np.full(len(X), float(n), np.float32) for n in range(8)]
    expected = [booster.inplace_predict(X, base_margin=m, predict_type="margin") for m in margins]

    def run(n: int) -> bool:
        return all(
            np.array_equal(predict(X, base_margin=margins[n], predict_type="margin"), expected[n]) for _ in range(50)
        )

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, range(8)))


def test_a_result_is_its_own_copy(booster, X):
    predict = DensePredict.of(booster)
    first = predict(X[:10])
    kept = first.copy()
    predict(X[10:30])  # overwrites the booster's buffer
    assert np.array_equal(first, kept)


def test_what_it_cannot_score_is_refused_with_the_reason(booster, X):
    predict = DensePredict.of(booster)
    with pytest.raises(ValueError, match="Feature shape mismatch, expected: 6"):
        predict(X[:, :5])
    with pytest.raises(ValueError, match="Feature shape mismatch"):
        predict(X[0])
    with pytest.raises(ValueError, match="base_margin has shape"):
        predict(X, base_margin=np.zeros(3, np.float32), predict_type="margin")
    with pytest.raises(ValueError, match="predict_type must be value or margin"):
        predict(X, predict_type="leaf")


def test_anything_but_an_xgboost_booster_keeps_its_own_call():
    stand_in = SimpleNamespace(inplace_predict=lambda X, **_: np.zeros(len(X), np.float32))
    assert DensePredict.of(stand_in) is stand_in.inplace_predict


def test_the_scorer_calls_it_and_scores_as_before(booster, X):
    set_blend(booster, "f2", 1.5)
    set_prerank(booster, ["f0", "f1"], [1.0, -0.5], keep=100)
    try:
        fast, wrapped = scorer(booster), scorer(booster, predict=booster.inplace_predict)
        assert np.array_equal(fast(X), wrapped(X))
    finally:
        set_blend(booster, None, 0.0)
        set_prerank(booster, None)
