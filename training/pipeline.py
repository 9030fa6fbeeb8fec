"""``make train``: event log → training set → two models → MLflow, behind the promotion gate."""
from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from rich.progress import Progress

from feature_repo.build import opted_out_users, personalizable
from feature_repo.store import get_store
from setlist.candidates import CandidateIndex
from setlist.catalog import load_items
from setlist.eventlog import EventLog
from setlist.features import FEATURE_SERVICE, ITEM_NUMERIC, RANKER_FEATURES
from setlist.settings import Settings

from . import plots, registry
from .candidates_fit import CandidateParams, fit_candidate_index
from .dataset import historical, query_state, refs, training_rows
from .evaluate import evaluate
from .labels import build_queries, time_split
from .ranker import RankerParams, fit

RANKER_DAYS = 7
NEGATIVES_PER_QUERY = 50
MAX_HOLDOUT_QUERIES = 3000
COLD_EVENTS = 5


class TrainingRefused(RuntimeError):
    """The training set failed its gate; nothing was trained or registered."""


@dataclass
class TrainingResult:
    run_id: str
    metrics: dict[str, float]
    baseline: dict[str, float]
    champion: dict[str, float] | None
    versions: tuple[str, str]
    promoted: bool
    reason: str
    objective: str
    rows: dict[str, int] = field(default_factory=dict)


def _sample(q: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return q if len(q) <= n else q.sample(n=n, random_state=seed).sort_values("query_id")


def daily_item_matrix(store, index: CandidateIndex):  # noqa: ANN001, ANN201
    """ITEM_NUMERIC per catalog index as of a moment. Item stats are daily snapshots, so the
    matrix at the start of a day is the point-in-time answer for all of that day."""
    cache: dict[pd.Timestamp, np.ndarray] = {}

    def at(ts: pd.Timestamp) -> np.ndarray:
        day = ts.floor("D")
        if day not in cache:
            entity = pd.DataFrame({"item_id": index.item_ids.astype(str), "user_id": "", "device": "unknown",
                                   "event_timestamp": day})
            feats = historical(store, entity, refs("item_stats", ITEM_NUMERIC))
            cache[day] = feats[list(ITEM_NUMERIC)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        return cache[day]

    return at


def train(settings: Settings, progress: bool = True, candidate_params: CandidateParams | None = None,
          ranker_params: RankerParams | None = None) -> TrainingResult:
    cp = candidate_params or CandidateParams()
    rp = ranker_params or RankerParams(trees=settings.ranker_trees)
    seed = settings.seed
    log = EventLog(settings.events_dir)
    raw = log.read()
    if raw.empty:
        raise TrainingRefused(f"the event log at {settings.events_dir} is empty: run `make generate` or `make import`")
    opted_out = opted_out_users(raw)
    events = personalizable(raw)  # consent is enforced before anything is learned
    catalog = load_items(settings.catalog_path)
    split = time_split(events, settings.holdout_days)
    ranker_start = split.cutoff - pd.Timedelta(days=RANKER_DAYS)
    store = get_store(settings)

    bar = Progress(transient=True) if progress else None
    with bar or nullcontext():
        def task(label: str, total: int | None = None):  # noqa: ANN202
            """A bar while the stage runs, then one lasting line with its duration (also when not on a
            terminal, where the bar stays hidden and a long run would otherwise look stuck)."""
            if bar is None:
                return lambda: None
            t, started, left = bar.add_task(label, total=total), time.perf_counter(), [total or 1]

            def advance() -> None:
                bar.advance(t)
                left[0] -= 1
                if left[0] == 0:
                    bar.console.print(f"  {label}: {time.perf_counter() - started:,.1f} s")
            return advance

        step = task("fitting candidate generator (ranker window held back)")
        early = split.train[split.train["timestamp"] < ranker_start]
        index_a = fit_candidate_index(early, catalog, cp, seed)
        step()
        q_all, labels_all = build_queries(split.train[split.train["timestamp"] >= ranker_start])
        q_train = _sample(q_all, settings.max_train_queries, seed)
        rs = training_rows(store, index_a, q_train, labels_all, settings.candidate_pool, NEGATIVES_PER_QUERY, seed,
                           progress=task("building training set", len(q_train)))

        from validation.api import validate_training_set

        gate = validate_training_set(rs.frame, list(RANKER_FEATURES), opted_out)
        if not gate.passed:
            raise TrainingRefused("training set failed validation: " + "; ".join(gate.failures))

        _keep_training_set(settings, rs.frame)

        step = task("training XGBoost ranker (two objectives)")
        fitted = fit(rs, rp, seed)
        step()
        step = task("refitting candidate generator on the whole training window")
        index_b = fit_candidate_index(split.train, catalog, cp, seed)
        step()

        q_hold, labels_hold = build_queries(split.holdout)
        q_hold = _sample(q_hold, MAX_HOLDOUT_QUERIES, seed + 1)
        state = query_state(store, q_hold, str(index_b.item_ids[0]))
        counts = split.train.groupby("user_id").size()
        cold = set(q_hold["user_id"]) - set(counts[counts >= COLD_EVENTS].index)
        scorers = {"model": lambda X: fitted.booster.inplace_predict(X)}
        results = evaluate(index_b, scorers, state, q_hold, labels_hold, daily_item_matrix(store, index_b),
                           settings.candidate_pool, cold,
                           progress=task("evaluating on the hold-out", len(q_hold)))
        champion = _evaluate_champion(settings, store, state, q_hold, labels_hold, cold)

    model, popularity = results["model"], results["popularity"]
    metrics = {k: v for k, v in model.metrics.items()}
    metrics["baseline_popularity_ndcg_at_10"] = popularity.metrics["ndcg_at_10"]
    metrics["baseline_popularity_recall_at_10"] = popularity.metrics["recall_at_10"]
    decision = registry.decide(metrics["ndcg_at_10"], champion["ndcg_at_10"] if champion else None,
                               metrics["baseline_popularity_ndcg_at_10"], settings.promotion_margin, gate.passed)
    client = registry.connect(settings)
    with mlflow.start_run(run_name=f"train-{log.snapshot_hash()}") as run:
        mlflow.log_params({**{f"candidates.{k}": v for k, v in cp.__dict__.items()},
                           **{f"ranker.{k}": v for k, v in rp.__dict__.items()},
                           "ranker.objective": fitted.objective, "seed": seed,
                           "candidate_pool": settings.candidate_pool, "holdout_days": settings.holdout_days,
                           "n_features": len(RANKER_FEATURES)})
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        if champion:
            mlflow.log_metrics({f"champion_{k}": v for k, v in champion.items() if v == v})
        rows = {"events": len(raw), "personalizable_events": len(events), "train_queries": len(q_train),
                "train_rows": len(rs.frame), "holdout_queries": int(metrics["queries"]), "opted_out_users": len(opted_out)}
        mlflow.set_tags({"lineage.feature_service": FEATURE_SERVICE,
                         "lineage.feature_views": "user_profile,item_stats,session,context",
                         "lineage.window_start": str(events["timestamp"].min()),
                         "lineage.cutoff": str(split.cutoff), "lineage.window_end": str(events["timestamp"].max()),
                         "lineage.event_log_snapshot": log.snapshot_hash(),
                         **{f"lineage.rows.{k}": str(v) for k, v in rows.items()}})
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(plots.feature_importance(fitted.booster, Path(tmp) / "feature_importance.png")))
            mlflow.log_artifact(str(plots.evaluation_curves(
                {"model": model.ndcg_curve, "popularity": popularity.ndcg_curve}, model.scores, model.labels,
                Path(tmp) / "evaluation_curves.png")))
        versions = registry.log_models(settings, index_b, fitted.booster, rs.X[:200])
        registry.set_aliases(client, settings, versions, registry.CHALLENGER)
        if decision.promote:
            registry.set_aliases(client, settings, versions, registry.CHAMPION)
        mlflow.set_tags({"promotion.decision": "promoted" if decision.promote else "rejected",
                         "promotion.reason": decision.reason})
    return TrainingResult(run.info.run_id, metrics, popularity.metrics, champion, versions, decision.promote,
                          decision.reason, fitted.objective, rows)


def _keep_training_set(settings: Settings, frame: pd.DataFrame) -> None:
    """The training set as gated, for `python -m validation training-set` and for audits."""
    import pyarrow as pa

    from setlist.eventlog import write_atomic

    write_atomic(pa.Table.from_pandas(frame, preserve_index=False), settings.data_dir / "training" / "training_set.parquet")


def _evaluate_champion(settings: Settings, store, state, q_hold, labels_hold, cold):  # noqa: ANN001
    """The current champion, scored on today's hold-out, so the gate compares like with like."""
    client = registry.connect(settings)
    uris = registry.champion_uris(client, settings)
    if uris is None:
        return None
    try:
        index = mlflow.pyfunc.load_model(uris[0]).unwrap_python_model().index
        booster = mlflow.xgboost.load_model(uris[1])
    except Exception as exc:  # an unloadable champion must not block a healthy challenger
        mlflow.set_tag("promotion.champion_unloadable", str(exc)[:500]) if mlflow.active_run() else None
        return None
    results = evaluate(index, {"model": lambda X: booster.inplace_predict(X)}, state, q_hold, labels_hold,
                       daily_item_matrix(store, index), settings.candidate_pool, cold)
    return results["model"].metrics
