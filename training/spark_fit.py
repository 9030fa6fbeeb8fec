"""The cluster profile's fits (``SETLIST_PROFILE=cluster``): the candidate model's embeddings with Spark
MLlib's ALS, the ranker with ``xgboost.spark.SparkXGBRanker``.

Each hands back exactly what the driver's fit does, so that recording, registering and serving do
not change: the ALS factors as float32 arrays in the interaction matrix's row (user) and column
(item) order, zeros for a user or item without a pair (Spark has no factor for those); the ranker as
the fitted model's ``get_booster()``, with the same feature names, chosen among the same margin
weights, depths and tree counts on the same validation queries (training.ranker.fit makes that
choice on the driver; only the boosting runs on Spark).

Below ``SETLIST_SPARK_ALS_MIN_PAIRS`` (user, item) pairs the embeddings are fitted by ``implicit`` on
the driver, as in the other profiles (why: ``spark_als``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xgboost as xgb

from setlist.settings import Settings
from training.candidates_fit import CandidateParams, FittedCandidates, fit_candidates, fit_embeddings
from training.dataset import MARGIN_BASIS, RankingSet
from training.progress import Reporter
from training.ranker import FittedRanker, RankerParams, Trainer, fit
from training.run import Engine

#: SparkXGBRanker takes ranking objectives only (XGBRanker refuses ``binary:logistic``, the driver
#: ranker's objective): its pairwise NDCG objective is the one that maps (measured on the 25k
#: fixture at 0.200–0.206 ndcg@10 against binary's 0.201–0.216; training.ranker.OBJECTIVES)
SPARK_OBJECTIVES = ("rank:ndcg",)
#: at most this many XGBoost workers (barrier tasks): the training sets are a few hundred thousand
#: rows at most, and each worker is a Python process holding its share
MAX_WORKERS = 4
#: the driver ranker's XGBoost parameters under the names the Spark estimator takes; ``nthread`` is
#: dropped (each worker uses ``spark.task.cpus`` threads)
_PARAM_NAMES = {"eta": "learning_rate", "seed": "random_state"}
_DROPPED = frozenset({"nthread"})
#: ALS checkpoints its factors every this many iterations (under the Spark staging location)
ALS_CHECKPOINT_INTERVAL = 10


def num_workers(spark: Any) -> int:
    """XGBoost workers: Spark's default parallelism, at most MAX_WORKERS."""
    return max(1, min(int(spark.sparkContext.defaultParallelism), MAX_WORKERS))


def spark_als(pairs: int, settings: Settings) -> bool:
    """Whether Spark's ALS fits embeddings of this many (user, item) pairs: from
    ``SETLIST_SPARK_ALS_MIN_PAIRS`` (default 5,000,000) up; ``implicit`` on the driver below.

    The interaction matrix is built on the driver either way (the event log is read there), so Spark
    adds only the factorization's compute. Measured on 2 shared cores (local[2], 64 factors, 15
    iterations): implicit with one thread fits 2.5k pairs in 0.1 s, 200k in 2.7 s, 1M in 16 s; Spark's
    ALS takes 8 s, 55 s and 167 s (a job per iteration, a shuffle of rating blocks, checkpoints). On one
    machine Spark never wins; what it buys is executors' cores and memory: at 5M pairs the driver's
    single-threaded fit takes ~1.5 min each (four per run: three folds and the refit), which a cluster
    of tens of cores spreads, and matrix and factors grow past what the driver should hold beside the
    rest of training."""
    return pairs >= settings.spark_als_min_pairs


def spark_engine(settings: Settings, report: Reporter) -> Engine:
    """The cluster profile's engine: each fit says which engine ran it (printed, and kept among the
    run's choices, which MLflow records)."""
    from setlist.spark import session

    spark = session(settings, "setlist-train")
    workers = num_workers(spark)
    threshold = settings.spark_als_min_pairs
    fits = {"candidates": 0}

    def embed(
        events: pd.DataFrame, users: np.ndarray, matrix: sp.csr_matrix, p: CandidateParams, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fits["candidates"] += 1
        pairs = int(matrix.nnz)
        if spark_als(pairs, settings):
            report.note(
                f"candidate embeddings #{fits['candidates']}: Spark MLlib ALS ({pairs:,} pairs ≥ "
                f"SETLIST_SPARK_ALS_MIN_PAIRS {threshold:,}; {settings.spark_master})"
            )
            return users, *als_factors(spark, matrix, p, seed, f"{settings.spark_staging_location}/checkpoints")
        report.note(
            f"candidate embeddings #{fits['candidates']}: implicit ALS on the driver ({pairs:,} pairs < "
            f"SETLIST_SPARK_ALS_MIN_PAIRS {threshold:,})"
        )
        return fit_embeddings(events, users, matrix, p, seed)

    def candidates(events: pd.DataFrame, catalog: pd.DataFrame, p: CandidateParams, seed: int) -> FittedCandidates:
        return fit_candidates(events, catalog, p, seed, embed=embed)

    def ranker(rs: RankingSet, p: RankerParams, seed: int) -> FittedRanker:
        trainer = SparkTrainer(spark, workers)
        try:
            fitted = fit(rs, p, seed, trainer=trainer, objectives=SPARK_OBJECTIVES)
        finally:
            trainer.release()
        report.note(
            f"ranker: xgboost.spark SparkXGBRanker on {workers} workers ({trainer.fits} fits, "
            f"{trainer.rows:,} rows in {trainer.queries:,} queries; {settings.spark_master}), kept {fitted.objective}"
        )
        return fitted

    return Engine(candidates, ranker)


def als_factors(
    spark: Any, matrix: sp.csr_matrix, p: CandidateParams, seed: int, checkpoints: str
) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors of Spark's implicit-preference ALS on the confidence-weighted matrix:
    (n_users × factors, n_items × factors) float32, rows in the matrix's order.

    The parameters map one to one: ``alpha`` (confidence 1 + alpha·r in both), rank, iterations,
    and the regularization, which Spark scales by each row's pair count (ALS-WR) where ``implicit``
    adds it as is: the same setting regularizes a little more on Spark."""
    from pyspark.ml.recommendation import ALS

    coo = matrix.tocoo()
    ratings = spark.createDataFrame(
        pd.DataFrame(
            {
                "user": coo.row.astype(np.int32),
                "item": coo.col.astype(np.int32),
                "rating": coo.data.astype(np.float32),
            }
        )
    )
    blocks = max(1, int(spark.sparkContext.defaultParallelism))
    if spark.sparkContext.getCheckpointDir() is None:
        # without checkpoints ALS's lineage grows with each iteration until serializing a task
        # overflows the JVM's stack (seen at 15 iterations on local[2])
        spark.sparkContext.setCheckpointDir(checkpoints)
    model = ALS(
        rank=p.factors,
        maxIter=p.iterations,
        regParam=p.regularization,
        alpha=p.alpha,
        implicitPrefs=True,
        nonnegative=False,
        seed=seed,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        checkpointInterval=ALS_CHECKPOINT_INTERVAL,
    ).fit(ratings)
    return (
        _dense(model.userFactors, matrix.shape[0], p.factors),
        _dense(model.itemFactors, matrix.shape[1], p.factors),
    )


def _dense(factors: Any, n: int, k: int) -> np.ndarray:
    """Spark's (id, features) rows as an n × k float32 array; ids without a row stay zero."""
    out = np.zeros((n, k), np.float32)
    rows = factors.toPandas()
    if len(rows):
        out[rows["id"].to_numpy(np.int64)] = np.stack(rows["features"].to_numpy()).astype(np.float32)
    return out


class SparkTrainer:
    """A training.ranker TrainerFactory on Spark: the training rows become one cached Spark DataFrame
    (features renamed ``f0…fN``, since input names need not be Spark column names; the booster keeps
    the real names), and each booster is a ``SparkXGBRanker`` fit on it, grouped by ``query_id``."""

    def __init__(self, spark: Any, workers: int) -> None:
        self.spark, self.workers = spark, workers
        self.frame: Any = None
        self.fits = self.rows = self.queries = 0

    def __call__(self, rs: RankingSet, mask: np.ndarray) -> Trainer:
        rows = rs.frame[mask]
        inputs = list(rs.inputs)
        data = {f"f{n}": rows[name].to_numpy(np.float32) for n, name in enumerate(inputs)}
        data["label"] = rows["label"].to_numpy(np.float32)
        data["qid"] = rows["query_id"].to_numpy(np.int64)
        data["basis"] = rows[MARGIN_BASIS].to_numpy(np.float32)
        self.release()
        # partitioned once as each fit wants it (one partition per worker, a query's rows together,
        # sorted by query), so the fits skip SparkXGBRanker's own repartition
        self.frame = (
            self.spark.createDataFrame(pd.DataFrame(data))
            .repartitionByRange(self.workers, "qid")
            .sortWithinPartitions("qid")
            .cache()
        )
        self.rows, self.queries = len(rows), int(rows["query_id"].nunique())
        columns = [f"f{n}" for n in range(len(inputs))]

        def train(params: dict[str, Any], weight: float, rounds: int) -> xgb.Booster:
            from pyspark.sql import functions as F
            from xgboost.spark import SparkXGBRanker

            frame = self.frame.withColumn("margin", F.lit(float(weight)) * F.col("basis")) if weight else self.frame
            kwargs: dict[str, Any] = {_PARAM_NAMES.get(k, k): v for k, v in params.items() if k not in _DROPPED}
            if weight:
                kwargs["base_margin_col"] = "margin"
            estimator = SparkXGBRanker(
                features_col=columns,
                label_col="label",
                qid_col="qid",
                num_workers=self.workers,
                n_estimators=rounds,
                feature_names=inputs,
                **kwargs,
            )
            self.fits += 1
            return estimator.fit(frame).get_booster()

        return train

    def release(self) -> None:
        if self.frame is not None:
            self.frame.unpersist()
            self.frame = None
