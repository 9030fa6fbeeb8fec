"""The ranker's score, shared by training evaluation, the registry signature and serving.

A ranker may be boosted from a base margin: ``weight × basis(feature)`` of each candidate, with the
feature (the EASE neighbour score) and the weight stored as attributes of the booster, so the
artifact alone says how to score. Its trees then learn corrections to that ranking, and a booster
with no trees ranks exactly by the feature: on a small ratings log a few hundred training queries
cannot rebuild what EASE already knows, but can still adjust it.

A ranker may also carry a pre-ranker (``Prerank``): a linear score over the candidate stage's own
scores that keeps the best ``keep`` candidates of a request for the trees, the cheap third stage of
an industrial cascade. The trees' cost grows with the rows they score; the linear score costs one
small matrix product. Training fits it and picks ``keep`` on the validation queries.

NumPy and ``inplace_predict`` only: this runs on the Rank hot path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MARGIN_FEATURE_ATTR = "margin_feature"
MARGIN_WEIGHT_ATTR = "margin_weight"
#: the candidate score boosting starts from
MARGIN_FEATURE = "x_neighbour_score"
#: the pre-ranker, as JSON: {"features": [...], "weights": [...], "keep": n}
PRERANK_ATTR = "prerank"

Scorer = Callable[[np.ndarray], np.ndarray]


def margin_basis(score: np.ndarray) -> np.ndarray:
    """A request's scores over its largest magnitude. Raw EASE scores grow with the length of a
    user's history; scaled per request, one weight means the same for every user. Must see the
    request's whole candidate list (training computes it before sampling negatives)."""
    score = np.asarray(score, np.float32)
    top = float(np.max(np.abs(score))) if len(score) else 0.0
    return score / np.float32(top) if top > 0 else np.zeros(len(score), np.float32)


@dataclass(frozen=True)
class Blend:
    column: int | None  # the margin feature's column in the ranker's input; None: no margin
    weight: float = 0.0

    @classmethod
    def of(cls, booster) -> Blend:
        name, weight = booster.attr(MARGIN_FEATURE_ATTR), booster.attr(MARGIN_WEIGHT_ATTR)
        if not name or not weight or float(weight) == 0.0:
            return cls(None)
        names = list(booster.feature_names or [])
        if name not in names:
            raise ValueError(f"the ranker's margin feature {name!r} is not one of its inputs")
        return cls(names.index(name), float(weight))

    def margin(self, X: np.ndarray) -> np.ndarray | None:
        if self.column is None:
            return None
        return np.float32(self.weight) * margin_basis(X[:, self.column])


def set_blend(booster, feature: str | None, weight: float) -> None:
    """Record (or clear, with ``feature=None``) the margin a booster was trained from."""
    booster.set_attr(
        **{
            MARGIN_FEATURE_ATTR: feature if feature and weight else None,
            MARGIN_WEIGHT_ATTR: repr(float(weight)) if feature and weight else None,
        }
    )


@dataclass(frozen=True)
class Prerank:
    """A linear score over some of the ranker's input columns; a request's best ``keep`` rows by it
    go on to the trees."""

    columns: np.ndarray  # the features' columns in the ranker's input
    weights: np.ndarray  # float32, one per column
    keep: int

    @classmethod
    def of(cls, booster) -> Prerank | None:
        raw = booster.attr(PRERANK_ATTR)
        if not raw:
            return None
        doc = json.loads(raw)
        names = list(booster.feature_names or [])
        missing = [f for f in doc["features"] if f not in names]
        if missing:
            raise ValueError(f"the ranker's pre-ranker reads {missing}, which are not among its inputs")
        if int(doc["keep"]) <= 0:
            return None
        columns = np.array([names.index(f) for f in doc["features"]], np.int64)
        return cls(columns, np.asarray(doc["weights"], np.float32), int(doc["keep"]))

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.nan_to_num(X[:, self.columns]) @ self.weights

    def select(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The rows kept (ascending, so equal final scores keep candidate order) and every row's
        pre-rank score; None when the request has no more rows than ``keep``."""
        if len(X) <= self.keep:
            return None
        s = self.scores(X)
        return np.sort(np.argpartition(-s, self.keep - 1)[: self.keep]), s


def set_prerank(booster, features: list[str] | None, weights: list[float] | None = None, keep: int = 0) -> None:
    """Record (or clear, with ``features=None``) a booster's pre-ranker."""
    doc = None
    if features and weights is not None and keep > 0:
        doc = json.dumps({"features": list(features), "weights": [float(w) for w in weights], "keep": int(keep)})
    booster.set_attr(**{PRERANK_ATTR: doc})


def scorer(booster, prerank: bool = True) -> Scorer:
    """The one scoring function of a booster: higher is better, one score per row of ``X``, where
    ``X`` holds all candidates of one request. Blended boosters return margins (a sigmoid would
    squash large margins into ties). With a pre-ranker (unless ``prerank=False``, for comparison)
    only its ``keep`` rows are scored by the trees; the others score below all of them, in the
    pre-ranker's order."""
    blend = Blend.of(booster)
    pre = Prerank.of(booster) if prerank else None

    def trees(X: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        if blend.column is None:
            return booster.inplace_predict(X if rows is None else X[rows])
        margin = blend.margin(X)  # scaled over the whole request, as trained
        assert margin is not None  # a blend with a column has a margin
        if rows is None:
            return booster.inplace_predict(X, base_margin=margin, predict_type="margin")
        return booster.inplace_predict(X[rows], base_margin=margin[rows], predict_type="margin")

    if pre is None:
        return (lambda X: trees(X, None)) if blend.column is not None else booster.inplace_predict

    def cascade(X: np.ndarray) -> np.ndarray:
        picked = pre.select(X)
        if picked is None:
            return trees(X, None)
        kept, s = picked
        scored = np.asarray(trees(X, kept), np.float32)
        out = np.empty(len(X), np.float32)
        out[kept] = scored
        rest = np.ones(len(X), bool)
        rest[kept] = False
        # below every kept row, and in the pre-ranker's order among themselves
        order = np.argsort(np.argsort(-s[rest], kind="stable"), kind="stable").astype(np.float32)
        out[rest] = (float(scored.min()) if len(scored) else 0.0) - 1.0 - order / max(len(order), 1)
        return out

    return cascade
