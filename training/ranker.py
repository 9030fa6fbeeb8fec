"""Stage two: an XGBoost ranker. Both a learning-to-rank and a binary objective are trained on
the earlier queries and the one that ranks the later (validation) queries better is kept."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from .dataset import RankingSet

OBJECTIVES = ("rank:ndcg", "binary:logistic")


@dataclass(frozen=True)
class RankerParams:
    trees: int = 200
    max_depth: int = 6
    eta: float = 0.08
    min_child_weight: float = 1.0
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    threads: int = 2


@dataclass
class FittedRanker:
    booster: xgb.Booster
    objective: str
    validation_ndcg: dict[str, float]


def _split(rs: RankingSet, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Split rows by query, in time order (queries are numbered by time)."""
    qids = rs.frame["query_id"].to_numpy()
    unique = np.unique(qids)
    cut = unique[int(len(unique) * (1 - share))] if len(unique) > 1 else unique[-1] + 1
    return qids < cut, qids >= cut


def _dmatrix(rs: RankingSet, mask: np.ndarray) -> xgb.DMatrix:
    frame = rs.frame[mask]
    d = xgb.DMatrix(frame[list(rs.inputs)].to_numpy(np.float32), label=frame["label"].to_numpy(),
                    feature_names=list(rs.inputs))
    d.set_group(frame.groupby("query_id", sort=False).size().to_numpy())
    return d


#: tree depths tried beside the configured one: a few hundred queries (a small ratings log) overfit
#: deep trees, millions of rows want them; the validation queries decide
SHALLOW_DEPTHS = (2, 4)


def fit(rs: RankingSet, p: RankerParams, seed: int, validation_share: float = 0.2) -> FittedRanker:
    train, valid = _split(rs, validation_share)
    dtrain, dvalid = _dmatrix(rs, train), _dmatrix(rs, valid)
    results: dict[str, tuple[xgb.Booster, float]] = {}
    for depth in sorted({*SHALLOW_DEPTHS, p.max_depth}):
        for objective in OBJECTIVES:
            params = {"objective": objective, "eval_metric": "ndcg@10", "max_depth": depth, "eta": p.eta,
                      "min_child_weight": p.min_child_weight, "subsample": p.subsample,
                      "colsample_bytree": p.colsample_bytree, "tree_method": "hist", "nthread": p.threads,
                      "seed": seed}
            log: dict = {}
            booster = xgb.train(params, dtrain, num_boost_round=p.trees, evals=[(dvalid, "valid")],
                                evals_result=log, verbose_eval=False)
            results[f"{objective} depth={depth}"] = (booster, float(log["valid"]["ndcg@10"][-1]))
    # ties go to the simpler model: shallower first, in the order tried
    best = max(results, key=lambda o: results[o][1])
    return FittedRanker(results[best][0], best, {o: v for o, (_, v) in results.items()})
