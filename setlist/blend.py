"""The ranker's score, shared by training evaluation, the registry signature and serving.

A ranker may be boosted from a base margin: ``weight × basis(feature)`` of each candidate, with the
feature (the EASE neighbour score) and the weight stored as attributes of the booster, so the
artifact alone says how to score. Its trees then learn corrections to that ranking, and a booster
with no trees ranks exactly by the feature: on a small ratings log a few hundred training queries
cannot rebuild what EASE already knows, but can still adjust it.

A ranker may also carry a pre-ranker (``Prerank``) that keeps the best ``keep`` candidates of a
request for the trees, the cheap third stage of an industrial cascade: the trees' cost grows with the
rows they score. Its score is either linear over the candidate stage's own scores (one small matrix
product), or the ranker's own first trees over every candidate, whose margin the remaining trees then
continue on the kept rows (so a kept row's score is exactly the whole ranker's). Training picks the
kind, and ``keep``, on the validation queries.

NumPy and ``inplace_predict`` only: this runs on the Rank hot path (the bench's baseline engine passes
its own prediction call, through an XGBoost DMatrix, to score the same way).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from setlist.candidate_sources import top_stable
from setlist.dense_predict import DensePredict

MARGIN_FEATURE_ATTR = "margin_feature"
MARGIN_WEIGHT_ATTR = "margin_weight"
#: the candidate score boosting starts from
MARGIN_FEATURE = "x_neighbour_score"
#: the pre-ranker, as JSON: {"features": [...], "weights": [...], "keep": n} (linear), or
#: {"trees": m, "keep": n} (the booster's first m trees, 0: the blend's margin alone)
PRERANK_ATTR = "prerank"

Scorer = Callable[[np.ndarray], np.ndarray]
#: a booster's prediction call, as ``xgb.Booster.inplace_predict`` takes it: (X, iteration_range=,
#: base_margin=, predict_type=) → one value per row
Predict = Callable[..., np.ndarray]


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
    """Scores every candidate of a request cheaply; its best ``keep`` rows go on to the trees. Linear
    over some of the ranker's input columns, or (``first_trees`` set) the booster's first trees."""

    columns: np.ndarray  # the features' columns in the ranker's input (linear)
    weights: np.ndarray  # float32, one per column (linear)
    keep: int
    first_trees: int | None = None  # the booster's first trees score (0: the blend's margin alone)

    @classmethod
    def of(cls, booster) -> Prerank | None:
        raw = booster.attr(PRERANK_ATTR)
        if not raw:
            return None
        doc = json.loads(raw)
        if int(doc["keep"]) <= 0:
            return None
        if "trees" in doc:
            m = int(doc["trees"])
            if not 0 <= m <= booster.num_boosted_rounds():
                raise ValueError(
                    f"the ranker's pre-ranker reads its first {m} trees; it has {booster.num_boosted_rounds()}"
                )
            return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), int(doc["keep"]), m)
        names = list(booster.feature_names or [])
        missing = [f for f in doc["features"] if f not in names]
        if missing:
            raise ValueError(f"the ranker's pre-ranker reads {missing}, which are not among its inputs")
        columns = np.array([names.index(f) for f in doc["features"]], np.int64)
        return cls(columns, np.asarray(doc["weights"], np.float32), int(doc["keep"]))

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The linear score (a tree pre-ranker's needs the booster: ``scorer`` computes it)."""
        return np.nan_to_num(X[:, self.columns]) @ self.weights

    def pick(self, s: np.ndarray) -> np.ndarray:
        """The ``keep`` best rows by ``s``, ascending (so equal final scores keep candidate order);
        of rows tied at the cut the earlier candidates, since the first trees' margins tie often."""
        return np.sort(top_stable(s, self.keep))

    def select(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The rows kept and every row's linear pre-rank score; None when the request has no more
        rows than ``keep``."""
        if len(X) <= self.keep:
            return None
        s = self.scores(X)
        return self.pick(s), s


def set_prerank(
    booster,
    features: list[str] | None,
    weights: list[float] | None = None,
    keep: int = 0,
    first_trees: int | None = None,
) -> None:
    """Record (or clear, with ``features=None`` and no ``first_trees``) a booster's pre-ranker: linear
    over ``features``, or its own first ``first_trees`` trees."""
    doc = None
    if first_trees is not None and keep > 0:
        doc = json.dumps({"trees": int(first_trees), "keep": int(keep)})
    elif features and weights is not None and keep > 0:
        doc = json.dumps({"features": list(features), "weights": [float(w) for w in weights], "keep": int(keep)})
    booster.set_attr(**{PRERANK_ATTR: doc})


def scorer(booster, prerank: bool = True, predict: Predict | None = None) -> Scorer:
    """The one scoring function of a booster: higher is better, one score per row of ``X``, where
    ``X`` holds all candidates of one request. Blended boosters return margins (a sigmoid would
    squash large margins into ties). With a pre-ranker (unless ``prerank=False``, for comparison)
    only its ``keep`` rows are scored by the trees; the others score below all of them, in the
    pre-ranker's order. ``predict`` replaces the booster's ``inplace_predict`` (same arguments), which
    is called through ``setlist.dense_predict`` by default (the same C call, less Python around it)."""
    blend = Blend.of(booster)
    pre = Prerank.of(booster) if prerank else None
    call: Predict = predict or DensePredict.of(booster)

    def trees(X: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        if blend.column is None:
            return call(X if rows is None else X[rows])
        margin = blend.margin(X)  # scaled over the whole request, as trained
        assert margin is not None  # a blend with a column has a margin
        if rows is None:
            return call(X, base_margin=margin, predict_type="margin")
        return call(X[rows], base_margin=margin[rows], predict_type="margin")

    if pre is None:
        return (lambda X: trees(X, None)) if blend.column is not None else call
    if pre.first_trees is not None:
        return _tree_cascade(booster, blend, pre, call)

    def cascade(X: np.ndarray) -> np.ndarray:
        picked = pre.select(X)
        if picked is None:
            return trees(X, None)
        kept, s = picked
        scored = np.asarray(trees(X, kept), np.float32)
        return below_kept(scored, kept, s)

    return cascade


def below_kept(scored: np.ndarray, kept: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Every row's score: the trees' for the ``kept`` rows, and below all of them for the others, in
    the pre-ranker's order (``s``) among themselves."""
    out = np.empty(len(s), np.float32)
    out[kept] = scored
    rest = np.ones(len(s), bool)
    rest[kept] = False
    # each row's place in the pre-ranker's order: one sort, inverted by assignment
    order = np.empty(int(rest.sum()), np.float32)
    order[np.argsort(-s[rest], kind="stable")] = np.arange(len(order), dtype=np.float32)
    out[rest] = (float(scored.min()) if len(scored) else 0.0) - 1.0 - order / max(len(order), 1)
    return out


def _tree_cascade(booster, blend: Blend, pre: Prerank, call: Predict) -> Scorer:
    """The booster's first ``m`` trees over every row, the rest over the kept rows only, starting
    from the first trees' margin: a kept row's score is the whole booster's margin, exactly."""
    m, total = int(pre.first_trees or 0), booster.num_boosted_rounds()

    def first(X: np.ndarray) -> np.ndarray:
        margin = blend.margin(X)
        if m == 0:  # iteration_range (0, 0) would mean every tree
            if margin is None:
                raise ValueError("a pre-ranker of 0 trees needs a ranker boosted from a margin")
            return margin
        return np.asarray(call(X, iteration_range=(0, m), base_margin=margin, predict_type="margin"), np.float32)

    def cascade(X: np.ndarray) -> np.ndarray:
        s = first(X)
        if len(X) <= pre.keep:
            kept = np.arange(len(X))
        else:
            kept = pre.pick(s)
        if m >= total:
            scored = s[kept]
        else:
            scored = np.asarray(
                call(X[kept], iteration_range=(m, total), base_margin=s[kept], predict_type="margin"), np.float32
            )
        if len(kept) == len(X):
            return scored
        return below_kept(scored, kept, s)

    return cascade
