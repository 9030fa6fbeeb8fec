"""The pre-ranker: a logistic regression over the candidate stage's own scores (the user×item block:
embedding, neighbour and co-visitation scores, their per-request ranks, source count, popularity
rank, genre matches), fitted on the training queries. On Rank it keeps a request's best ``keep``
candidates for the trees (setlist.blend.Prerank); the trees' cost grows with the rows they score.

``keep`` is chosen on the validation queries: the smallest of ``keep``, 1.5×, 2×, 3× … below the
candidate pool that keeps at least ``1 - max_loss`` of the positives among the candidates. When
none does, the ranker goes without a pre-ranker, and the run says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from setlist.features import CROSS_NAMES
from training.dataset import COMPLETE, RankingSet

#: multiples of the configured ``keep`` tried, smallest first
WIDENINGS = (1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class FittedPrerank:
    features: list[str]
    weights: list[float]
    keep: int  # 0: no pre-ranker
    retention: float  # the share of validation positives kept at ``keep`` (nan: nothing to measure)
    tried: dict[int, float] = field(default_factory=dict)  # keep → retention
    reason: str = ""


def _fit_weights(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Logistic regression on standardized columns, folded back to weights on the raw columns."""
    from sklearn.linear_model import LogisticRegression

    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(max_iter=500, class_weight="balanced")
    model.fit((X - mean) / std, y)
    return (model.coef_[0] / std).astype(np.float32)


def retention(scores: np.ndarray, y: np.ndarray, groups: np.ndarray, keep: int) -> float:
    """The share of positives in the ``keep`` best-scored rows of their query (rows of one query are
    consecutive; ``groups`` holds each query's row count)."""
    kept = total = 0.0
    start = 0
    for n in groups:
        s, lab = scores[start : start + n], y[start : start + n]
        start += n
        total += lab.sum()
        if n <= keep:
            kept += lab.sum()
        else:
            kept += lab[np.argpartition(-s, keep - 1)[:keep]].sum()
    return float(kept / total) if total else float("nan")


def fit_prerank(
    rs: RankingSet, train: np.ndarray, valid: np.ndarray, keep: int, max_loss: float, pool: int
) -> FittedPrerank:
    features = [n for n in CROSS_NAMES if n in rs.inputs]
    if keep <= 0:
        return FittedPrerank(features, [], 0, float("nan"), reason="SETLIST_PRERANK_KEEP is 0")
    if not features:
        return FittedPrerank(features, [], 0, float("nan"), reason="the feature service has no candidate scores")
    frame = rs.frame
    y_train = frame.loc[train, "label"].to_numpy()
    if not 0 < y_train.sum() < len(y_train):
        return FittedPrerank(features, [], 0, float("nan"), reason="the training rows have one label only")
    weights = _fit_weights(np.nan_to_num(frame.loc[train, features].to_numpy(np.float64)), y_train)
    # whole candidate lists when the validation queries kept them; else the validation rows as they are
    whole = valid & frame[COMPLETE].to_numpy(bool) if COMPLETE in frame else valid
    rows = whole if whole.any() else valid
    part = frame[rows]
    scores = np.nan_to_num(part[features].to_numpy(np.float32)) @ weights
    y = part["label"].to_numpy()
    groups = part.groupby("query_id", sort=False).size().to_numpy()
    tried: dict[int, float] = {}
    for factor in WIDENINGS:
        k = int(round(keep * factor))
        if k >= pool:
            break
        tried[k] = retention(scores, y, groups, k)
        if not tried[k] < 1.0 - max_loss:  # nan (no positives to lose) keeps the pre-ranker
            return FittedPrerank(features, weights.tolist(), k, tried[k], tried)
    return FittedPrerank(
        features,
        weights.tolist(),
        0,
        float("nan"),
        tried,
        f"no keep below the pool of {pool} held {1 - max_loss:.0%} of the validation positives ("
        + ", ".join(f"{k} kept {r:.1%}" for k, r in tried.items())
        + ")",
    )
