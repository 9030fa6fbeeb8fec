"""Stage two: an XGBoost ranker, boosted from the EASE neighbour score (see setlist.blend) and
trained on the earlier queries; the weight, depth and number of trees that rank the later
(validation) queries' whole candidate lists best are kept. Zero trees is pure EASE: the fallback
when no correction helps. Without EASE weights (a large catalog) the margin is zero, which is
boosting from scratch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb

from setlist.blend import MARGIN_FEATURE, set_blend, set_prerank
from training.dataset import COMPLETE, MARGIN_BASIS, RankingSet
from training.prerank import FirstTrees, FittedPrerank, fit_prerank

#: measured on the 25k-rating fixture's hold-out, boosted from EASE×4: binary 0.201–0.216 ndcg@10,
#: rank:ndcg 0.200–0.206 (and twice the time)
OBJECTIVES = ("binary:logistic",)
#: weights of the per-request scaled EASE score (in [-1, 1]) the trees start from. Measured on the
#: 25k fixture's hold-out (EASE 0.193): from scratch 0.174–0.181, ×1 0.188–0.200, ×4 0.200–0.216;
#: the validation queries could not tell ×1 from ×4, so weak priors are not offered
MARGIN_WEIGHTS = (4.0, 8.0)
#: tree counts compared on the validation queries (early stopping on a coarse grid)
TREE_STEPS = (0, 10, 25, 50, 100, 200)


@dataclass(frozen=True)
class RankerParams:
    trees: int = 200
    max_depth: int = 6
    eta: float = 0.08
    min_child_weight: float = 1.0
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    threads: int = 2
    #: the cheapest model within this share of the best validation ndcg@10, plus ``selection_se``
    #: standard errors of the paired per-query loss, is kept (``choose``)
    ndcg_tolerance: float = 0.0
    #: the default is the "one-standard-error rule" (Hastie, Tibshirani & Friedman, The Elements of
    #: Statistical Learning, 7.10): the best of thirty configurations on a few hundred validation
    #: queries is partly luck, and a share alone let the choice swing between 100 depth-4 and 200
    #: depth-6 trees across preparations of the same data, while every tree is paid for on each Rank
    selection_se: float = 1.0
    #: candidates the pre-ranker keeps for the trees (0: none), the positives it may drop on
    #: validation, and the candidate pool it cuts from (training.prerank)
    prerank_keep: int = 0
    prerank_max_loss: float = 0.01
    pool: int = 500


@dataclass(frozen=True)
class Tried:
    """One configuration as ``choose`` judged it."""

    ndcg: float  # mean validation ndcg@10
    loss_se: float  # standard error of its mean per-query loss against the best configuration
    cost: int  # trees × depth: what scoring it costs per candidate
    admissible: bool  # validation cannot tell it from the best (within the tolerance)


#: how the name of the configuration without trees ends (the EASE margin alone, weighted): ``training``'s
#: report reads the chosen objective by it
MARGIN_ALONE = ", 0 trees"


@dataclass
class FittedRanker:
    booster: xgb.Booster
    objective: str
    validation_ndcg: dict[str, float]
    prerank: FittedPrerank | None = None
    #: every configuration tried, as ``choose`` judged it (the MLflow run's ranker_selection.json)
    tried: dict[str, Tried] = field(default_factory=dict)


def _split(rs: RankingSet, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Split rows by query, in time order (queries are numbered by time)."""
    qids = rs.frame["query_id"].to_numpy()
    unique = np.unique(qids)
    cut = unique[int(len(unique) * (1 - share))] if len(unique) > 1 else unique[-1] + 1
    return qids < cut, qids >= cut


def _dmatrix(rs: RankingSet, mask: np.ndarray, weight: float) -> xgb.DMatrix:
    frame = rs.frame[mask]
    d = xgb.DMatrix(
        frame[list(rs.inputs)].to_numpy(np.float32),
        label=frame["label"].to_numpy(),
        feature_names=list(rs.inputs),
        base_margin=(weight * frame[MARGIN_BASIS].to_numpy(np.float32)) if weight else None,
    )
    d.set_group(frame.groupby("query_id", sort=False).size().to_numpy())
    return d


#: trains one booster: (xgboost params, margin weight, rounds) → booster, on the rows a TrainerFactory was given
Trainer = Callable[[dict[str, Any], float, int], xgb.Booster]
#: (ranking set, mask of the rows to train on) → Trainer: ``local_trainer``, or Spark's in training.spark_fit
TrainerFactory = Callable[[RankingSet, np.ndarray], Trainer]


def local_trainer(rs: RankingSet, mask: np.ndarray) -> Trainer:
    """``xgb.train`` in this process, one DMatrix per margin weight."""
    matrices: dict[float, xgb.DMatrix] = {}

    def train(params: dict[str, Any], weight: float, rounds: int) -> xgb.Booster:
        if weight not in matrices:
            matrices[weight] = _dmatrix(rs, mask, weight)
        return xgb.train(params, matrices[weight], num_boost_round=rounds)

    return train


def ndcg_per_query(pred: np.ndarray, label: np.ndarray, groups: np.ndarray, k: int = 10) -> np.ndarray:
    """ndcg@k of each of the consecutive groups of rows that has a positive. Ties count against the
    positives, so that a score that cannot tell items apart earns nothing from the order rows happen
    to be stored in."""
    out, start = [], 0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    for n in groups:
        p, y = pred[start : start + n], label[start : start + n]
        start += n
        if not y.sum():
            continue
        order = np.lexsort((y, -p))[:k]
        ideal = discount[: min(int(y.sum()), k)].sum()
        out.append(float((y[order] * discount[: len(order)]).sum() / ideal))
    return np.asarray(out, np.float64)


#: tree depths tried beside the configured one: a few hundred queries (a small ratings log) overfit
#: deep trees, millions of rows want them; the validation queries decide
SHALLOW_DEPTHS = (2, 4)


def fit(
    rs: RankingSet,
    p: RankerParams,
    seed: int,
    validation_share: float = 0.2,
    *,
    trainer: TrainerFactory = local_trainer,
    objectives: tuple[str, ...] = OBJECTIVES,
) -> FittedRanker:
    """Validates on the queries that keep all their candidates when there are such (and others to
    train on), else on the newest ``validation_share`` of queries. ``trainer`` fits each booster (in
    this process unless given); the choice among them is made here, on the validation queries."""
    complete = rs.frame[COMPLETE].to_numpy(bool) if COMPLETE in rs.frame else np.zeros(len(rs.frame), bool)
    train, valid = (~complete, complete) if complete.any() and not complete.all() else _split(rs, validation_share)
    y_valid = rs.frame.loc[valid, "label"].to_numpy()
    g_valid = rs.frame[valid].groupby("query_id", sort=False).size().to_numpy()
    # name → (per-query ndcg, booster, weight, trees, depth)
    results: dict[str, tuple[np.ndarray, xgb.Booster | None, float, int, int]] = {}
    steps = sorted({s for s in TREE_STEPS if s <= p.trees} | {p.trees})
    # a feature service without the neighbour score (a replaced built-in pack) trains from scratch
    train_one = trainer(rs, train)
    for weight in MARGIN_WEIGHTS if MARGIN_FEATURE in rs.inputs else (0.0,):
        dvalid = _dmatrix(rs, valid, weight)
        if weight:
            margin = dvalid.get_base_margin()
            results[f"EASE×{weight:g}{MARGIN_ALONE}"] = (ndcg_per_query(margin, y_valid, g_valid), None, weight, 0, 0)
        for depth in sorted({*SHALLOW_DEPTHS, p.max_depth}):
            for objective in objectives:
                params = {
                    "objective": objective,
                    "max_depth": depth,
                    "eta": p.eta,
                    "min_child_weight": p.min_child_weight,
                    "subsample": p.subsample,
                    "colsample_bytree": p.colsample_bytree,
                    "tree_method": "hist",
                    "nthread": p.threads,
                    "seed": seed,
                }
                booster = train_one(params, weight, p.trees)
                for trees in (s for s in steps if s):
                    pred = booster.predict(dvalid, iteration_range=(0, trees), output_margin=True)
                    name = (
                        f"{objective} depth={depth}" + (f" from EASE×{weight:g}" if weight else "") + f", {trees} trees"
                    )
                    results[name] = (ndcg_per_query(pred, y_valid, g_valid), booster, weight, trees, depth)
    best, tried = choose(
        {n: v[0] for n, v in results.items()},
        {n: v[3] * v[4] for n, v in results.items()},
        p.ndcg_tolerance,
        p.selection_se,
    )
    _, booster, weight, trees, _ = results[best]
    if trees == 0:  # no correction helped: a booster with no trees, scoring by the margin alone
        booster = xgb.train(
            {"objective": objectives[0], "nthread": p.threads}, _dmatrix(rs, train, weight), num_boost_round=0
        )
    elif trees < booster.num_boosted_rounds():
        booster = booster[:trees]
    set_blend(booster, MARGIN_FEATURE if weight else None, weight)
    pre = fit_prerank(
        rs,
        train,
        valid,
        p.prerank_keep,
        p.prerank_max_loss,
        p.pool,
        _first_trees(rs, booster, weight),
        booster.num_boosted_rounds(),
        bool(weight),
    )
    set_prerank(booster, pre.features if pre.keep else None, pre.weights, pre.keep, pre.first_trees)
    return FittedRanker(booster, best, {n: t.ndcg for n, t in tried.items()}, pre, tried)


def _first_trees(rs: RankingSet, booster: xgb.Booster, weight: float) -> FirstTrees:
    """Rows' margins after the booster's first m trees (0: the margin it is boosted from)."""

    # the last rows' matrix: fit_prerank asks the same rows for every m
    built: list[tuple[np.ndarray, xgb.DMatrix]] = []

    def margins(rows: np.ndarray, m: int) -> np.ndarray:
        if not built or built[0][0] is not rows:
            built[:] = [(rows, _dmatrix(rs, rows, weight))]
        d = built[0][1]
        if m == 0:  # iteration_range (0, 0) would mean every tree
            return d.get_base_margin() if weight else np.zeros(d.num_row(), np.float32)
        return booster.predict(d, iteration_range=(0, m), output_margin=True)

    return margins


def choose(
    per_query: dict[str, np.ndarray], costs: dict[str, int], tolerance: float, se: float = 1.0
) -> tuple[str, dict[str, Tried]]:
    """The model to keep and how each was judged: the cheapest to score (trees × depth; pure EASE
    costs nothing) of those whose mean loss of validation ndcg against the best, less ``se``
    standard errors of the paired per-query losses, is within ``tolerance`` (a share) of the best's
    ndcg; ties go to the one tried first. Every array holds the same validation queries in order."""
    means = {n: float(v.mean()) if len(v) else 0.0 for n, v in per_query.items()}
    best = max(means, key=lambda n: means[n])
    tried: dict[str, Tried] = {}
    for name, values in per_query.items():
        loss = per_query[best] - values
        err = float(loss.std(ddof=1) / np.sqrt(len(loss))) if len(loss) > 1 else 0.0
        # the small slack: a configuration equal to the best must pass its own test
        ok = means[best] - means[name] - se * err <= tolerance * means[best] + 1e-12
        tried[name] = Tried(means[name], err, costs[name], ok)
    chosen = min((n for n, t in tried.items() if t.admissible), key=lambda n: tried[n].cost)
    return chosen, tried
