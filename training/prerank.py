"""The pre-ranker: keeps a request's best ``keep`` candidates for the trees (setlist.blend.Prerank);
the trees' cost grows with the rows they score. Two kinds are fitted and compared on the validation
queries:

- linear: a logistic regression over the candidate stage's own scores (the user×item block:
  embedding, neighbour and co-visitation scores, their per-request ranks, source count, popularity
  rank, genre matches), fitted on the training queries; one small matrix product per request;
- the ranker's own first ``m`` trees (``FIRST_TREES``; 0 is the EASE margin a blended ranker starts
  from), over every candidate; the remaining trees continue from that margin on the kept rows only.

For each kind, ``keep`` is the smallest of ``keep``, 1.5×, 2×, 3× … below the candidate pool at
which the cascade (the cut, then the whole ranker on what it kept) ranks the validation queries'
whole candidate lists within ``max_loss`` of the whole ranker scoring every candidate: ndcg@10 and
recall@100 both at least ``1 - max_loss`` of the ranker's own (the figures the hold-out reports), at
the upper 95% bound of the loss, so that a few hundred validation queries do not cut on luck. A
cut may drop positives the ranker itself would have ranked too low to show. Of the kinds that hold,
the cheapest per request wins, counting tree evaluations and XGBoost's fixed cost per predict call
(``CALL_COST``: a cut by the first trees makes two calls), unless it costs no less than the trees on
every candidate. When none holds, the ranker goes without a pre-ranker, and the run says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from setlist.blend import below_kept
from setlist.candidate_sources import top_stable
from setlist.features import CROSS_NAMES
from training.dataset import COMPLETE, RankingSet

#: multiples of the configured ``keep`` tried, smallest first
WIDENINGS = (1.0, 1.5, 2.0, 3.0)
#: first-tree counts tried as a pre-ranker (0: the blend's margin alone; each below the ranker's trees)
FIRST_TREES = (0, 5, 10, 25)
#: XGBoost's fixed cost per predict call, in tree evaluations: at full scale one inplace_predict cost
#: ~0.16 ms before its first row and ~7 ns per tree evaluation (100 depth-4 trees, one thread), so a
#: second call for a cut by the first trees costs as much as scoring ~200 more rows through 100 trees
CALL_COST = 20_000
#: (mask of the rows, m) → the margin after the ranker's first m trees, one per row, in frame order
FirstTrees = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class FittedPrerank:
    features: list[str]
    weights: list[float]
    keep: int  # 0: no pre-ranker
    #: what the cascade keeps of the whole ranker's validation ndcg@10 and recall@100 at ``keep``, the
    #: smaller of the two, at the upper 95% bound of the loss (``cascade_quality``; nan: nothing to measure)
    retention: float
    tried: dict[int, float] = field(default_factory=dict)  # keep → retention, of the kind kept
    reason: str = ""
    first_trees: int | None = None  # set: the ranker's first trees pre-rank (else the linear score)
    #: every kind that held: its name → (keep, tree evaluations per request)
    options: dict[str, tuple[int, int]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.first_trees is None:
            return "a linear score of the candidate stage's scores"
        if self.first_trees == 0:
            return "the EASE margin the ranker starts from"
        return f"the ranker's first {self.first_trees} trees"


def _fit_weights(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Logistic regression on standardized columns, folded back to weights on the raw columns."""
    from sklearn.linear_model import LogisticRegression

    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(max_iter=500, class_weight="balanced")
    model.fit((X - mean) / std, y)
    return (model.coef_[0] / std).astype(np.float32)


#: the cut-offs the cascade's quality is judged at (the hold-out's ndcg@10 and recall@100)
NDCG_AT, RECALL_AT = 10, 100


def _ndcg_recall(score: np.ndarray, lab: np.ndarray) -> tuple[float, float]:
    order = np.lexsort((lab, -score))  # ties count against the positives, as training's ndcg does
    top = lab[order[:NDCG_AT]]
    discount = 1.0 / np.log2(np.arange(2, NDCG_AT + 2))
    ideal = discount[: min(int(lab.sum()), NDCG_AT)].sum()
    return float((top * discount[: len(top)]).sum() / ideal), float(lab[order[:RECALL_AT]].sum() / lab.sum())


#: the one-sided normal quantile of the bound a cut is judged by (95%): a few hundred validation
#: queries (a small ratings log) measure the cascade's cost too loosely to cut on the estimate alone
CONFIDENCE_Z = 1.645


def cascade_quality(pre: np.ndarray, full: np.ndarray, y: np.ndarray, groups: np.ndarray, keep: int) -> float:
    """What the cascade keeps of the whole ranker's (``full`` scoring every row) mean ndcg@10 and
    recall@100 over the queries with a positive, judged cautiously: one minus the upper 95% bound of
    the share lost (the per-query losses' mean plus ``CONFIDENCE_Z`` standard errors), the smaller of
    the two metrics; 1.0 for a metric the ranker scores zero on (nothing to lose), nan without queries."""
    rows: list[tuple[float, float, float, float]] = []  # cascade ndcg, cascade recall, full ndcg, full recall
    start = 0
    for n in groups:
        p, f, lab = pre[start : start + n], full[start : start + n], y[start : start + n]
        start += n
        if not lab.sum():
            continue
        cut = f
        if n > keep:
            kept = np.sort(top_stable(p, keep))
            cut = below_kept(np.asarray(f[kept], np.float32), kept, np.asarray(p, np.float32))
        rows.append((*_ndcg_recall(cut, lab), *_ndcg_recall(f, lab)))
    if not rows:
        return float("nan")
    m = np.asarray(rows)
    shares = []
    for cascade, whole in ((m[:, 0], m[:, 2]), (m[:, 1], m[:, 3])):
        total = whole.sum()
        if total <= 0:
            shares.append(1.0)
            continue
        lost = whole - cascade
        se = lost.std(ddof=1) * np.sqrt(len(lost)) if len(lost) > 1 else 0.0
        shares.append(1.0 - (lost.sum() + CONFIDENCE_Z * se) / total)
    return float(min(shares))


def _smallest_keep(
    scores: np.ndarray, full: np.ndarray, y: np.ndarray, groups: np.ndarray, keep: int, max_loss: float, pool: int
) -> tuple[int, dict[int, float]]:
    """(the smallest widening of ``keep`` that holds, or 0; keep → cascade quality of those tried)."""
    tried: dict[int, float] = {}
    for factor in WIDENINGS:
        k = int(round(keep * factor))
        if k >= pool:
            break
        tried[k] = cascade_quality(scores, full, y, groups, k)
        if not tried[k] < 1.0 - max_loss:  # nan (no positives to lose) keeps the pre-ranker
            return k, tried
    return 0, tried


def fit_prerank(
    rs: RankingSet,
    train: np.ndarray,
    valid: np.ndarray,
    keep: int,
    max_loss: float,
    pool: int,
    first_trees: FirstTrees,
    trees: int,
    has_margin: bool = False,
) -> FittedPrerank:
    """``first_trees`` scores rows by the ranker's first trees (all ``trees`` of them: the ranker
    itself; ``has_margin``: it is boosted from the EASE margin, so 0 trees is a score too)."""
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
    y = part["label"].to_numpy()
    groups = part.groupby("query_id", sort=False).size().to_numpy()
    # whole lists are as long as the catalogue allows: one smaller than the pool fills none of it
    pool = min(pool, int(groups.max())) if whole.any() and len(groups) else pool
    if pool <= keep:  # a catalogue of a few dozen items: the lists are whole already
        return FittedPrerank(
            features,
            weights.tolist(),
            0,
            float("nan"),
            reason=f"the candidate lists hold at most {pool} items, no more than the {keep} a pre-ranker "
            "would keep (SETLIST_PRERANK_KEEP): the trees score them all",
        )
    # kind → (first trees or None, keep, keep → retention); the linear kind first, so it wins ties
    held: dict[str, tuple[int | None, int, dict[int, float]]] = {}
    full = np.asarray(first_trees(rows, trees), np.float32)
    linear_scores = np.nan_to_num(part[features].to_numpy(np.float32)) @ weights
    k, linear_tried = _smallest_keep(linear_scores, full, y, groups, keep, max_loss, pool)
    if k:
        held["linear"] = (None, k, linear_tried)
    for m in FIRST_TREES:
        if m >= trees or (m == 0 and not has_margin):
            continue
        k, tried = _smallest_keep(np.asarray(first_trees(rows, m), np.float32), full, y, groups, keep, max_loss, pool)
        if k:
            held[f"first {m} trees"] = (m, k, tried)
    if not held:
        return FittedPrerank(
            features,
            weights.tolist(),
            0,
            float("nan"),
            linear_tried,
            f"no keep below the pool of {pool} held {1 - max_loss:.0%} of the ranker's validation ndcg@10 and "
            "recall@100 (linear: " + ", ".join(f"{k} kept {r:.1%}" for k, r in linear_tried.items()) + ")",
        )

    def cost(m: int | None, k: int) -> int:  # per request of ``pool`` candidates, in tree evaluations
        calls = 2 if m else 1  # a cut by the first trees is a predict call of its own
        return calls * CALL_COST + (trees * k if not m else m * pool + (trees - m) * k)

    options = {name: (k, cost(m, k)) for name, (m, k, _) in held.items()}
    name = min(options, key=lambda n: options[n][1])
    m, k, tried = held[name]
    whole = cost(None, pool)
    if options[name][1] >= whole:
        return FittedPrerank(
            features,
            weights.tolist(),
            0,
            float("nan"),
            tried,
            f"no cut that held ({name}, keeping {k}) costs less than the trees on all {pool} candidates",
            options=options,
        )
    return FittedPrerank(features, weights.tolist(), k, tried[k], tried, first_trees=m, options=options)
