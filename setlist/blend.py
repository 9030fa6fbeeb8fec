"""The ranker's score, shared by training evaluation, the registry signature and serving.

A ranker may be boosted from a base margin: ``weight × basis(feature)`` of each candidate, with the
feature (the EASE neighbour score) and the weight stored as attributes of the booster, so the
artifact alone says how to score. Its trees then learn corrections to that ranking, and a booster
with no trees ranks exactly by the feature: on a small ratings log a few hundred training queries
cannot rebuild what EASE already knows, but can still adjust it.

NumPy and ``inplace_predict`` only: this runs on the Rank hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MARGIN_FEATURE_ATTR = "margin_feature"
MARGIN_WEIGHT_ATTR = "margin_weight"
#: the candidate score boosting starts from
MARGIN_FEATURE = "x_neighbour_score"

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


def scorer(booster) -> Scorer:
    """The one scoring function of a booster: higher is better, one score per row of ``X``, where
    ``X`` holds all candidates of one request. Blended boosters return margins (a sigmoid would
    squash large margins into ties)."""
    blend = Blend.of(booster)
    if blend.column is None:
        return booster.inplace_predict

    def score(X: np.ndarray) -> np.ndarray:
        return booster.inplace_predict(X, base_margin=blend.margin(X), predict_type="margin")

    return score
