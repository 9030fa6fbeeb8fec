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

from feature_repo import declarations
from feature_repo.store import get_store
from setlist import registry
from setlist.blend import scorer
from setlist.candidates import CandidateIndex
from setlist.catalog import load_items
from setlist.consent import opted_out_users, personalizable
from setlist.eventlog import EventLog
from setlist.featureset import MODEL_SERVICE_ATTR, DeclarationError, Service
from setlist.settings import Settings

from training import plots, promotion
from training.candidates_fit import CandidateParams, fit_candidates, seen_matrix
from training.dataset import COMPLETE, RankingSet, historical, query_state, refs, training_rows
from training.evaluate import als_baseline, ease_baseline, evaluate
from training.labels import label
from training.ranker import RankerParams, fit
from training.splits import MIN_POSITIVES, Split, SplitParams, make_split, repeat_share

NEGATIVES_PER_QUERY = 50
MAX_HOLDOUT_QUERIES = 3000
COLD_EVENTS = 5
#: below this many ranker training queries the ranker cannot be fitted and validated honestly
MIN_TRAIN_QUERIES = 10
#: a per-user protocol gives one query per user: on a small log the ranker repeats it on earlier
#: folds (each with a candidate model of its own) until it has about this many queries
TARGET_TRAIN_QUERIES = 1000
MAX_RANKER_FOLDS = 3
#: share of the ranker's queries (the newest) that validate its choices, at most this many: each
#: brings its whole candidate list
VALIDATION_SHARE = 0.2
MAX_VALIDATION_QUERIES = 300
#: leave seen items out when fewer positives than this are repeats (ratings: ~0; music: most)
REPEAT_SHARE_LIMIT = 0.2


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
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)


def _sample(q: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return q if len(q) <= n else q.sample(n=n, random_state=seed).sort_values("query_id")


#: at most this many point-in-time item lookups per evaluation (each is one Feast retrieval)
MAX_ITEM_MOMENTS = 64


def daily_item_matrix(store, index: CandidateIndex, svc: Service,  # noqa: ANN001, ANN201
                      moments: pd.Series | None = None):
    """The service's item inputs per catalog index as of a moment. Item stats are daily snapshots, so the
    matrix at the start of a day is the point-in-time answer for all of that day.

    A per-user split asks at hundreds of different days; ``moments`` (the query times) then set a
    coarser step, so that at most ``MAX_ITEM_MOMENTS`` retrievals run. Rounding down only ever
    shows older statistics, never future ones."""
    cache: dict[pd.Timestamp, np.ndarray] = {}
    step = pd.Timedelta(days=1)
    if moments is not None and len(moments):
        span = pd.Timestamp(moments.max()) - pd.Timestamp(moments.min())
        step = max(step, pd.Timedelta(days=int(np.ceil(span / pd.Timedelta(days=1) / MAX_ITEM_MOMENTS))))

    def at(ts: pd.Timestamp) -> np.ndarray:
        day = ts.floor("D")
        day = day - pd.Timedelta(days=(day - pd.Timestamp(0, tz="UTC")).days % step.days)
        if day not in cache:
            entity = pd.DataFrame({"item_id": index.item_ids.astype(str), "user_id": "", "device": "unknown",
                                   "event_timestamp": day})
            names = list(svc.block("item"))
            if not names:
                cache[day] = np.zeros((len(index.item_ids), 0), np.float32)
            else:
                feats = historical(store, entity, refs("item_stats", names))
                cache[day] = feats[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        return cache[day]

    return at


def split_params(settings: Settings) -> SplitParams:
    return SplitParams(kind=settings.split, holdout_days=settings.holdout_days, holdout_share=settings.holdout_share,
                       holdout_fraction=settings.holdout_fraction, min_users=settings.min_holdout_users,
                       min_queries=settings.min_holdout_queries)


def _ranker_splits(outer: Split, settings: Settings, exclude_seen: bool) -> list[Split]:
    """The outer protocol again, inside the training part, so the ranker learns the evaluated task;
    repeated on the remaining earlier part while queries are few. Newest fold first."""
    p = SplitParams(kind=outer.kind, holdout_days=settings.ranker_window_days,
                    holdout_share=settings.ranker_window_share, holdout_fraction=settings.holdout_fraction,
                    min_users=0, min_queries=0)
    folds: list[Split] = []
    source = outer.train
    while True:
        try:
            inner = make_split(source, p, exclude_seen)
        except ValueError as exc:
            if folds:
                break
            raise TrainingRefused(f"cannot place the ranker's training window: {exc}") from exc
        if folds and len(inner.queries) < MIN_TRAIN_QUERIES:
            break
        inner.reason = "the evaluation protocol, applied to the training part"
        folds.append(inner)
        enough = sum(len(f.queries) for f in folds) >= TARGET_TRAIN_QUERIES
        if enough or len(folds) >= MAX_RANKER_FOLDS:
            return folds
        source = inner.train
    return folds


def _combine(sets: list[RankingSet]) -> RankingSet:
    """Folds' rows as one set, query ids renumbered oldest fold first, so that ids still follow time
    and the ranker validates on the newest queries."""
    frames, offset = [], 0
    for rs in reversed(sets):
        frames.append(rs.frame.assign(query_id=rs.frame["query_id"] + offset))
        offset += int(rs.frame["query_id"].max()) + 1
    frame = pd.concat(frames, ignore_index=True)
    return RankingSet(frame=frame, groups=frame.groupby("query_id", sort=False).size().to_numpy(),
                      inputs=sets[0].inputs)


def _enough(events: pd.DataFrame) -> None:
    """Refuse early, in one sentence, when the data cannot train anything."""
    if events.empty:
        raise TrainingRefused("no events of users with personalization consent: nothing can be learned "
                              "(check the consent columns of the imported data)")
    positives = int((label(events) == 1).sum())
    if positives < 2 * MIN_TRAIN_QUERIES:
        raise TrainingRefused(
            f"only {positives} positive interactions (a like, a play with listen fraction ≥ 0.8, or a rating in "
            "the top fifth of the scale): import more interactions, or check --rating-col / --type-col")
    if events["user_id"].nunique() < 2 or events["item_id"].nunique() < 2:
        raise TrainingRefused("the log has fewer than two users or two items: a ranking needs both")


def train(settings: Settings, progress: bool = True, candidate_params: CandidateParams | None = None,
          ranker_params: RankerParams | None = None) -> TrainingResult:
    rp = ranker_params or RankerParams(trees=settings.ranker_trees)
    seed = settings.seed
    log = EventLog(settings.events_dir)
    raw = log.read()
    if raw.empty:
        raise TrainingRefused(f"the event log at {settings.events_dir} is empty: run `make generate` or `make import`")
    opted_out = opted_out_users(raw)
    events = personalizable(raw)  # consent is enforced before anything is learned
    _enough(events)
    catalog = load_items(settings.catalog_path)
    repeats = repeat_share(events)
    exclude_seen = settings.exclude_seen if settings.exclude_seen is not None else repeats < REPEAT_SHARE_LIMIT
    cp = candidate_params or CandidateParams(
        cohort_days=settings.cohort_window_days, cohort_share=settings.cohort_window_share,
        exclude_seen=exclude_seen, ease_max_items=settings.ease_max_items, ease_lambda=settings.ease_lambda)
    split = make_split(events, split_params(settings), exclude_seen)
    if split.queries.empty:
        raise TrainingRefused("no user has a held-out positive to evaluate on: every user needs at least "
                              f"{MIN_POSITIVES} positive interactions (lower SETLIST_HOLDOUT_FRACTION or import more data)")
    folds = _ranker_splits(split, settings, exclude_seen)
    svc = feature_service(settings)
    choices = [
        f"features: {svc.name} ({len(svc.inputs)} ranker inputs"
        f"{'; set by SETLIST_FEATURE_SERVICE' if settings.feature_service else ', the newest declared'})",
        f"seen items: {'left out' if exclude_seen else 'kept'} ({repeats:.0%} of positives are repeats"
        f"{'; set by SETLIST_EXCLUDE_SEEN' if settings.exclude_seen is not None else ''})",
        "evaluation: " + split.describe(),
        *(f"ranker training, fold {n + 1} of {len(folds)}: " + f.describe() for n, f in enumerate(folds))]
    store = get_store(settings)

    bar = Progress(transient=True) if progress else None
    with bar or nullcontext():
        def say(line: str) -> None:
            if bar is not None:
                bar.console.print(f"  {line}")

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

        for line in choices:
            say(line)
        sets: list[RankingSet] = []
        q_trains = [_sample(f.queries, settings.max_train_queries // len(folds), seed + n) for n, f in enumerate(folds)]
        q_train_n = sum(len(q) for q in q_trains)
        # the newest queries validate the ranker's choices, each with all its candidates
        n_valid = min(MAX_VALIDATION_QUERIES, round(VALIDATION_SHARE * q_train_n), len(q_trains[0]) // 2)
        complete = set(q_trains[0]["query_id"].nlargest(n_valid))
        for n, fold in enumerate(folds):
            step = task(f"fitting candidate generator for fold {n + 1} (its hold-out held back)")
            fitted_a = fit_candidates(fold.train, catalog, cp, seed)
            step()
            if n == 0:
                choices.append(fitted_a.cohort_window.describe())
                say(choices[-1])
            q_train = q_trains[n]
            try:
                sets.append(training_rows(store, fitted_a.index, q_train, fold.labels, settings.candidate_pool,
                                          NEGATIVES_PER_QUERY, seed + n, svc,
                                          progress=task(f"building training set, fold {n + 1}", len(q_train)),
                                          complete=complete if n == 0 else ()))
            except ValueError as exc:
                if n:  # an earlier fold too thin to help: train on the newer ones
                    break
                raise TrainingRefused(f"{exc}; import more interactions per user, or widen the ranker window "
                                      "(SETLIST_RANKER_WINDOW_SHARE / SETLIST_RANKER_WINDOW_DAYS)") from exc
        rs = _combine(sets)
        if len(rs.groups) < MIN_TRAIN_QUERIES:
            raise TrainingRefused(f"only {len(rs.groups)} ranker training queries have a positive among their "
                                  f"candidates (need {MIN_TRAIN_QUERIES}): import more interactions per user")

        from validation.api import validate_training_set

        # the rows the ranker learns from; the validation queries' full lists are far from balanced
        learned = rs.frame[~rs.frame[COMPLETE]]
        gate = validate_training_set(learned, list(rs.inputs), opted_out)
        if not gate.passed:
            raise TrainingRefused("training set failed validation: " + "; ".join(gate.failures))

        _keep_training_set(settings, learned)

        step = task("training XGBoost ranker (boosted from EASE: two weights, three depths)")
        fitted = fit(rs, rp, seed)
        step()
        step = task("refitting candidate generator on the whole training window")
        fitted_b = fit_candidates(split.train, catalog, cp, seed)
        index_b = fitted_b.index
        step()

        q_hold = _sample(split.queries, MAX_HOLDOUT_QUERIES, seed + 1)
        labels_hold = split.labels
        state = query_state(store, q_hold, str(index_b.item_ids[0]), svc)
        counts = split.train.groupby("user_id").size()
        cold = set(q_hold["user_id"]) - set(counts[counts >= COLD_EVENTS].index)
        scorers = {"model": scorer(fitted.booster)}
        baselines = {"als": als_baseline(index_b)}
        if fitted_b.ease is not None:
            baselines["ease"] = ease_baseline(fitted_b.ease, fitted_b.interactions)
        else:
            choices.append(f"EASE skipped: {len(index_b.item_ids):,} items > SETLIST_EASE_MAX_ITEMS "
                           f"({settings.ease_max_items:,})")
            say(choices[-1])
        results = evaluate(index_b, scorers, state, q_hold, labels_hold,
                           daily_item_matrix(store, index_b, svc, q_hold["event_timestamp"]),
                           settings.candidate_pool, cold, svc, baselines,
                           progress=task("evaluating on the hold-out", len(q_hold)))
        champion = _evaluate_champion(settings, store, state, q_hold, labels_hold, cold, split.train, svc)
        # The registered model keeps the training part's weights, so that a later run can score it on
        # a hold-out it never learned from; but it serves with every user's whole history, so that
        # nothing they rated in the hold-out is offered again and their latest items count.
        index_b.seen = seen_matrix(events, index_b.user_ids, pd.Index(index_b.item_ids))

    model = results["model"]
    metrics = {k: v for k, v in model.metrics.items()}
    for name in ("popularity", *baselines):
        for m in ("ndcg_at_10", "recall_at_10", "recall_at_100"):
            metrics[f"baseline_{name}_{m}"] = results[name].metrics[m]
    decision = promotion.decide(metrics["ndcg_at_10"], champion["ndcg_at_10"] if champion else None,
                                {name: metrics[f"baseline_{name}_ndcg_at_10"] for name in ("popularity", *baselines)},
                                settings.promotion_margin, gate.passed)
    client = promotion.use_experiment(settings)
    with mlflow.start_run(run_name=f"train-{log.snapshot_hash()}") as run:
        mlflow.log_params({**{f"candidates.{k}": v for k, v in cp.__dict__.items()},
                           **{f"ranker.{k}": v for k, v in rp.__dict__.items()},
                           "ranker.objective": fitted.objective, "seed": seed,
                           "candidate_pool": settings.candidate_pool, "n_features": len(svc.inputs),
                           "feature_service": svc.name,
                           "split": split.kind, "split.reason": split.reason[:500],
                           "split.holdout_days": f"{split.window.days:.3f}" if split.window else "per user",
                           "split.holdout_fraction": settings.holdout_fraction,
                           "exclude_seen": exclude_seen, "repeat_share": round(repeats, 4),
                           "cohort_window_days": f"{fitted_b.cohort_window.days:.3f}"})
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        if champion:
            mlflow.log_metrics({f"champion_{k}": v for k, v in champion.items() if v == v})
        rows = {"events": len(raw), "personalizable_events": len(events), "train_queries": q_train_n, "ranker_folds": len(sets),
                "train_rows": len(rs.frame), "holdout_queries": int(metrics["queries"]), "opted_out_users": len(opted_out)}
        mlflow.set_tags({registry.LINEAGE_FEATURE_SERVICE: svc.name,
                         registry.LINEAGE_FEATURE_VIEWS: "user_profile,item_stats,session,context",
                         registry.LINEAGE_FEATURES: ",".join(svc.inputs)[:5000],
                         registry.LINEAGE_WINDOW_START: str(events["timestamp"].min()),
                         registry.LINEAGE_CUTOFF: str(split.window.start) if split.window else "per user",
                         registry.LINEAGE_WINDOW_END: str(events["timestamp"].max()),
                         registry.LINEAGE_SNAPSHOT: log.snapshot_hash(),
                         **{f"{registry.LINEAGE_ROWS}{k}": str(v) for k, v in rows.items()}})
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(plots.feature_importance(fitted.booster, Path(tmp) / "feature_importance.png")))
            mlflow.log_artifact(str(plots.evaluation_curves(
                {name: results[name].ndcg_curve for name in ("model", "popularity", *baselines)}, model.scores, model.labels,
                Path(tmp) / "evaluation_curves.png")))
        mlflow.log_metrics({f"importance.{k}": v for k, v in importance(fitted.booster, svc.inputs).items()})
        versions = promotion.log_models(settings, index_b, fitted.booster, rs.X[:200], svc.inputs, svc.name)
        registry.set_alias(client, settings, versions, registry.CHALLENGER)
        has_champion = registry.find_pair(client, settings, registry.CHAMPION) is not None
        if decision.promote and not settings.promote and has_champion:
            decision = promotion.Decision(False, decision.reason + "; kept as challenger (SETLIST_PROMOTE=false): "
                                          "an experiment decides")
        if decision.promote:
            registry.set_alias(client, settings, versions, registry.CHAMPION)
        mlflow.set_tag("training.choices", "\n".join(choices)[:5000])  # what was derived from the data
        mlflow.set_tags({"promotion.decision": "promoted" if decision.promote else "rejected",
                         "promotion.reason": decision.reason})
    return TrainingResult(run.info.run_id, metrics, results["popularity"].metrics, champion, versions,
                          decision.promote, decision.reason, fitted.objective, rows,
                          {name: results[name].metrics for name in ("popularity", *baselines)}, choices)


def _keep_training_set(settings: Settings, frame: pd.DataFrame) -> None:
    """The training set as gated, for `python -m validation training-set` and for audits."""
    import pyarrow as pa

    from setlist.eventlog import write_atomic

    write_atomic(pa.Table.from_pandas(frame, preserve_index=False), settings.data_dir / "training" / "training_set.parquet")


def feature_service(settings: Settings) -> Service:
    """The service this run trains on: SETLIST_FEATURE_SERVICE, else the newest declared."""
    fs = declarations.load(settings)
    try:
        return fs.service(settings.feature_service or fs.newest)
    except DeclarationError as exc:
        raise TrainingRefused(f"{exc} (SETLIST_FEATURE_SERVICE)") from exc


def importance(booster, names: tuple[str, ...]) -> dict[str, float]:  # noqa: ANN001
    """Each input's share of the ranker's total gain (0 for inputs no tree split on)."""
    gain = booster.get_score(importance_type="total_gain")
    total = sum(gain.values()) or 1.0
    return {n: float(gain.get(n, 0.0)) / total for n in names}


def _evaluate_champion(settings: Settings, store, state, q_hold, labels_hold, cold,  # noqa: ANN001
                       train_events: pd.DataFrame, svc: Service):
    """The current champion, scored on today's hold-out, so the gate compares like with like."""
    client = registry.connect(settings)
    pair = registry.find_pair(client, settings, registry.CHAMPION)
    if pair is None:
        return None
    try:
        index, booster = registry.load_pair(settings, pair.pair)
    except Exception as exc:  # an unloadable champion must not block a healthy challenger
        mlflow.set_tag("promotion.champion_unloadable", str(exc)[:500]) if mlflow.active_run() else None
        return None
    # the champion reads its own feature service, which may be older than this run's
    name = booster.attr(MODEL_SERVICE_ATTR) or "ranker_v1"
    try:
        own = declarations.load(settings).service(name)
    except DeclarationError:
        own = None
    if own is None or list(booster.feature_names or []) != list(own.inputs):
        # a champion of a feature set no longer declared cannot be scored by this code; the gate then
        # treats the challenger as a first model (it must still beat the baselines)
        if mlflow.active_run():
            mlflow.set_tag("promotion.champion_unscored", f"its feature service {name} is no longer declared as trained")
        return None
    if own.name != svc.name:
        state = query_state(store, q_hold, str(index.item_ids[0]), own)
    # The champion serves with whole histories, the hold-out included; scored with them it could
    # never find a held-out item. It gets the same history as the challenger.
    index.seen = seen_matrix(train_events, index.user_ids, pd.Index(index.item_ids))
    results = evaluate(index, {"model": scorer(booster)}, state, q_hold, labels_hold,
                       daily_item_matrix(store, index, own, q_hold["event_timestamp"]), settings.candidate_pool,
                       cold, own)
    return results["model"].metrics
