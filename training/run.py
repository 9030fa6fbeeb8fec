"""``make train``: event log → training set → two models → MLflow, behind the promotion gate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from feature_repo import declarations
from feature_repo.publish_record import latest_version
from feature_repo.store import get_store
from setlist.blend import scorer
from setlist.candidates import CandidateIndex
from setlist.catalog import load_items
from setlist.consent import FLAGS, opted_out_users, personalizable
from setlist.eventlog import EventLog
from setlist.features import SESSION_LAST_N
from setlist.featureset import VIEW_OF, DeclarationError, Service
from setlist.lineage import file_digest, record_gate
from setlist.memory import gb, require_room
from setlist.publish import cut_short, in_progress
from setlist.settings import Settings
from training.candidates_fit import CandidateParams, FittedCandidates, fit_candidates, refit_popularity, seen_matrix
from training.champion import champion_metrics
from training.dataset import COMPLETE, RankingSet, daily_item_matrix, query_state, training_rows
from training.ease import ease_peak_bytes
from training.evaluate import Baseline, Evaluation, als_baseline, ease_baseline, evaluate, paired_gain
from training.folds import MIN_TRAIN_QUERIES, TrainingRefused, combine, ranker_splits, require_enough, split_params
from training.labels import label
from training.prerank import CALL_COST
from training.progress import Reporter
from training.ranker import FittedRanker, RankerParams, fit
from training.record import record
from training.splits import MIN_POSITIVES, Split, make_split, recent_repeat_share, repeat_share

NEGATIVES_PER_QUERY = 50
MAX_HOLDOUT_QUERIES = 3000
COLD_EVENTS = 5
#: share of the ranker's queries (the newest) that validate its choices, at most this many: each
#: brings its whole candidate list
VALIDATION_SHARE = 0.2
MAX_VALIDATION_QUERIES = 300
#: leave seen items out when fewer positives than this are repeats (ratings: ~0; music: most)
REPEAT_SHARE_LIMIT = 0.2
#: the session's recent items stay candidates when at least this share of positives repeats one of them
RECENT_REPEAT_KEEP = 0.5
#: from this share of positives repeating a recent item, leaving them out is said to cap recall
RECENT_CAP_SAID = 0.2


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


@dataclass(frozen=True)
class Engine:
    """What fits the two models: pandas and XGBoost in this process, or, in the cluster profile,
    Spark (training.spark_fit). Both give the same artifacts, registered the same way."""

    candidates: Callable[[pd.DataFrame, pd.DataFrame, CandidateParams, int], FittedCandidates]
    ranker: Callable[[RankingSet, RankerParams, int], FittedRanker]


def local_engine() -> Engine:
    # looked up when called, so that a test may replace this module's ``fit`` or ``fit_candidates``
    return Engine(lambda *a: fit_candidates(*a), lambda *a: fit(*a))


def engine_for(settings: Settings, report: Reporter) -> Engine:
    if not settings.on_spark:
        return local_engine()
    from training.spark_fit import spark_engine

    return spark_engine(settings, report)


def _sample(q: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return q if len(q) <= n else q.sample(n=n, random_state=seed).sort_values("query_id")


@dataclass
class Plan:
    """What the data decided before anything is fitted: consent applied, windows, folds, the feature
    service; ``choices`` says each decision in a sentence (printed, and logged to MLflow)."""

    raw_events: int
    events: pd.DataFrame
    opted_out: set[str]
    catalog: pd.DataFrame
    repeats: float
    exclude_seen: bool
    candidate_params: CandidateParams
    split: Split
    folds: list[Split]
    svc: Service
    choices: list[str]
    #: what lineage records, taken when the data is read: a job that ran alongside (an import, a publish,
    #: another training writing the same training-set file) must not be named as this run's input
    snapshot: str = ""
    publish: int | None = None
    training_set: str = ""


#: the event columns training reads; the rest (arm, query, weight, schema version) cost memory per event
TRAINING_COLUMNS = ("event_id", "user_id", "session_id", "item_id", "type", "timestamp", "value", "device", "locale")


def _seen_only(events: pd.DataFrame, settings: Settings, exclude_seen: bool) -> bool:
    """Whether the split found queries once seen items stay candidates: every held-out positive was an
    item its user had met before (a user who is one long session over a few items)."""
    try:
        return exclude_seen and not make_split(events, split_params(settings), False).queries.empty
    except ValueError:  # no split at all either way: the counts say why
        return False


#: the share of users with a single event from which training's refusal says that first
SINGLE_EVENT_USERS = 0.9


def _no_queries(events: pd.DataFrame, seen_only: bool = False) -> str:
    """Why no user could be asked about a held-out positive, with the counts that tell which way on."""
    if seen_only:
        return (
            "no user has a held-out positive to evaluate on: every one is an item its user met before in the "
            "training part, and seen items are left out of the candidates (SETLIST_EXCLUDE_SEEN; chosen when few "
            "positives repeat). SETLIST_EXCLUDE_SEEN=false keeps them, for a log whose users come back to the "
            "same items"
        )
    positive = label(events).to_numpy() == 1
    per_user = pd.Series(positive).groupby(events["user_id"].to_numpy()).sum()
    enough = int((per_user >= MIN_POSITIVES).sum())
    types = ", ".join(f"{t} {n:,}" for t, n in events["type"].value_counts().head(6).items())
    events_per_user = events.groupby("user_id", sort=False).size()
    if float((events_per_user == 1).mean()) >= SINGLE_EVENT_USERS:
        # no reading of the types helps: a user met once has no taste to learn (Yahoo!'s Front Page log,
        # whose lines name no user, keyed by a hash of each line's features)
        return (
            f"no user has a held-out positive to evaluate on: {int((events_per_user == 1).sum()):,} of "
            f"{len(events_per_user):,} users have a single event ({types}), and a user needs at least "
            f"{MIN_POSITIVES} positive interactions. A log whose user column names each row anew (a session, a "
            "request, a hash of the row) has no history to learn from: import it with a column that names the same "
            "person across rows"
        )
    return (
        f"no user has a held-out positive to evaluate on: each needs at least {MIN_POSITIVES} positive "
        f"interactions, and {enough:,} of {len(per_user):,} users have them ({int(positive.sum()):,} positives in "
        f"{len(events):,} events: {types}). Positives are likes, adds and plays of most of an item; views, "
        "impressions and skips are not: a log of views and purchases needs its views read as plays "
        "(--type-map view=play) or more purchases per user" + ("; or lower SETLIST_HOLDOUT_FRACTION" if enough else "")
    )


def read_for_training(log: EventLog, files: list[Path] | None = None) -> pd.DataFrame:
    """The log's events with the columns training uses. Event ids only break ties in the log's
    (timestamp, event_id) order and sessions are only compared, so both come as integers."""
    return log.read(columns=(*TRAINING_COLUMNS, *FLAGS), codes=("session_id",), ids_as_positions=True, files=files)


def _quiet(label: str, total: int | None = None) -> Callable[[], None]:
    return lambda: None


def check_training_memory(stored: int, catalog_items: int, settings: Settings) -> None:
    """Refuse a run whose estimated peak (the events', and EASE's fit) would not fit in memory."""
    covered = min(catalog_items, max(settings.ease_max_items, 0))
    ease = ease_peak_bytes(covered)
    instead = (
        "The champion keeps serving. Train on Spark (SETLIST_PROFILE=cluster, docs/cluster.md), keep less "
        "history (SETLIST_RETENTION_EVENTS_DAYS, then make retention)"
    )
    if covered:
        instead += f", lower SETLIST_EASE_MAX_ITEMS (EASE over {covered:,} items takes ~{gb(ease)})"
    require_room(
        stored * settings.train_bytes_per_event + ease,
        f"training on {stored:,} events",
        "SETLIST_TRAIN_BYTES_PER_EVENT",
        instead + ", or use a machine with more memory",
    )


def recent_choice(recent: float, exclude_recent: bool, told: bool) -> str:
    """The plan's line on the session's recent items: a cap on recall is said where it is one."""
    line = (
        f"recent items: {'left out' if exclude_recent else 'kept'} ({recent:.0%} of positives repeat one of the "
        f"user's last {SESSION_LAST_N} items{'; set by SETLIST_EXCLUDE_RECENT' if told else ''})"
    )
    if exclude_recent and recent >= RECENT_CAP_SAID:  # JODIE's MOOC: 41% of its positives out of reach
        line += (
            f": no model finds those again, so recall stays near {1 - recent:.0%} at most "
            "(SETLIST_EXCLUDE_RECENT=false keeps them as candidates)"
        )
    return line


def plan_run(
    settings: Settings,
    log: EventLog,
    candidate_params: CandidateParams | None,
    task: Callable[[str], Callable[[], None]] = _quiet,
) -> Plan:
    """``task`` reports each stage's duration (``Reporter.task``): on a log of 16M events the plan
    takes minutes before anything is fitted."""
    # counted from the files' footers: reading the log is itself most of training's peak
    stored = log.count()
    catalog = load_items(settings.catalog_path)
    check_training_memory(stored, len(catalog), settings)
    done = task(f"reading {stored:,} events")
    files = log.files()  # one listing for the snapshot lineage records and for the read: Track adds files meanwhile
    snapshot = log.snapshot_hash(files)
    raw = read_for_training(log, files)
    done()
    if raw.empty:
        raise TrainingRefused(f"the event log at {settings.events_dir} is empty: run `make generate` or `make import`")
    done = task(f"applying consent to {len(raw):,} events")
    consent_default = settings.consent_granted_by_default
    opted_out = opted_out_users(raw, consent_default)
    events = personalizable(raw, consent_default)  # consent is enforced before anything is learned
    raw_events = len(raw)
    del raw  # a copy of the log held to the end of the plan would be its largest single cost
    require_enough(events)
    repeats, recent = repeat_share(events), recent_repeat_share(events)
    done()
    exclude_seen = settings.exclude_seen if settings.exclude_seen is not None else repeats < REPEAT_SHARE_LIMIT
    told = settings.exclude_recent is not None
    exclude_recent = settings.exclude_recent if told else recent < RECENT_REPEAT_KEEP
    cp = candidate_params or CandidateParams(
        cohort_days=settings.cohort_window_days,
        cohort_share=settings.cohort_window_share,
        cohort_probe_k=settings.candidate_pool // 2,  # the popularity source's share of a pool
        live_max_loss=settings.cohort_live_max_loss,
        exclude_seen=exclude_seen,
        exclude_recent=exclude_recent,
        ease_max_items=settings.ease_max_items,
        ease_lambda=settings.ease_lambda,
        exact_search_max_items=settings.exact_search_max_items,
    )
    done = task("placing the evaluation split")
    split = make_split(events, split_params(settings), exclude_seen)
    done()
    if split.queries.empty:
        raise TrainingRefused(_no_queries(events, _seen_only(events, settings, exclude_seen)))
    if split.train.empty:  # said here: every later step would fail on an empty frame in its own words
        raise TrainingRefused(
            f"the {split.kind} split left no events to train on ({split.describe()}): import a longer log, "
            "or choose the other split with SETLIST_SPLIT (global or per_user)"
        )
    done = task("placing the ranker's training folds")
    folds = ranker_splits(split, settings, exclude_seen)
    done()
    svc = feature_service(settings)
    choices = [
        f"features: {svc.name} ({len(svc.inputs)} ranker inputs"
        f"{'; set by SETLIST_FEATURE_SERVICE' if settings.feature_service else ', the newest declared'})",
        f"seen items: {'left out' if exclude_seen else 'kept'} ({repeats:.0%} of positives are repeats"
        f"{'; set by SETLIST_EXCLUDE_SEEN' if settings.exclude_seen is not None else ''})",
        recent_choice(recent, exclude_recent, told),
        "evaluation: " + split.describe(),
        *(f"ranker training, fold {n + 1} of {len(folds)}: " + f.describe() for n, f in enumerate(folds)),
    ]
    return Plan(
        raw_events,
        events,
        opted_out,
        catalog,
        repeats,
        exclude_seen,
        cp,
        split,
        folds,
        svc,
        choices,
        snapshot=snapshot,
    )


#: items seen once, as a share of the items, from which a refusal blames the item column
ONCE_ITEMS_SHARE = 0.9


def _thin_data_advice(events: pd.DataFrame) -> str:
    """What to do when no training query finds a positive among its candidates: more data per user,
    unless nearly every item occurs once (a row or feature-list column imported as the item), when
    no amount of it helps."""
    counts = events["item_id"].value_counts()
    once = float((counts == 1).mean()) if len(counts) else 0.0
    if once >= ONCE_ITEMS_SHARE:
        return (
            f"{once:.0%} of the {len(counts):,} items occur on one event only, so no item links two users: check "
            "that the import's --item-col is the item id (not a row, order or feature-list column)"
        )
    return (
        "import more interactions per user, or widen the ranker window "
        "(SETLIST_RANKER_WINDOW_SHARE / SETLIST_RANKER_WINDOW_DAYS)"
    )


def ranker_set(
    settings: Settings, plan: Plan, store: FeatureStore, report: Reporter, engine: Engine | None = None
) -> tuple[RankingSet, int, int]:
    """The ranker's training rows over the folds (newest first), each fold's candidates from a
    generator that never saw that fold's hold-out. Returns the set, its query count and folds used."""
    seed, folds, engine = settings.seed, plan.folds, engine or local_engine()
    sets: list[RankingSet] = []
    q_trains = [_sample(f.queries, settings.max_train_queries // len(folds), seed + n) for n, f in enumerate(folds)]
    q_train_n = sum(len(q) for q in q_trains)
    # the newest queries validate the ranker's choices, each with all its candidates
    n_valid = min(MAX_VALIDATION_QUERIES, round(VALIDATION_SHARE * q_train_n), len(q_trains[0]) // 2)
    complete = set(q_trains[0]["query_id"].nlargest(n_valid))
    for n, fold in enumerate(folds):
        step = report.task(f"fitting candidate generator for fold {n + 1} (its hold-out held back)")
        fitted = engine.candidates(fold.train, plan.catalog, plan.candidate_params, seed)
        step()
        if n == 0:
            report.note(fitted.popularity.describe())
        try:
            sets.append(
                training_rows(
                    store,
                    fitted.index,
                    q_trains[n],
                    fold.labels,
                    settings.candidate_pool,
                    NEGATIVES_PER_QUERY,
                    seed + n,
                    plan.svc,
                    progress=report.task(f"building training set, fold {n + 1}", len(q_trains[n])),
                    complete=complete if n == 0 else (),
                    zone=settings.request_zone,
                )
            )
        except ValueError as exc:
            if n:  # an earlier fold too thin to help: train on the newer ones
                break
            raise TrainingRefused(f"{exc}; {_thin_data_advice(plan.events)}") from exc
    rs = combine(sets)
    if len(rs.groups) < MIN_TRAIN_QUERIES:
        # a per-user split asks each user about their last positives only: a log of few returning users
        # (iPinYou's) gives the newest period more queries (76 against 3)
        other = (
            "; or SETLIST_SPLIT=global, which holds out the newest period instead of each user's last positives"
            if plan.split.kind == "per_user"
            else ""
        )
        raise TrainingRefused(
            f"only {len(rs.groups)} ranker training queries have a positive among their "
            f"candidates (need {MIN_TRAIN_QUERIES}): import more interactions per user{other}"
        )
    return rs, q_train_n, len(sets)


def gate_training_set(settings: Settings, rs: RankingSet, opted_out: set[str]) -> tuple[bool, str]:
    """The training set's gate (validation/), then the gated rows kept for audits. Refuses on failure."""
    from validation.api import validate_training_set

    # the rows the ranker learns from; the validation queries' full lists are far from balanced
    learned = rs.frame[~rs.frame[COMPLETE]]
    gate = validate_training_set(learned, list(rs.inputs), opted_out)
    if not gate.passed:
        record_gate(settings.lineage_dir, "training-set", False, "training_set:refused", failures=len(gate.failures))
        failing = (r for r in gate.rows if r.status == "fail")
        failed = "; ".join(f"{r.expectation}: {r.observed} (expected {r.expected})" for r in failing)
        raise TrainingRefused(
            f"training set failed validation: {failed}; the limits are in validation/thresholds.yaml "
            "(SETLIST_VALIDATION_THRESHOLDS_FILE points at a copy of your own)"
        )
    path = _keep_training_set(settings, learned)
    digest = file_digest(path)
    record_gate(settings.lineage_dir, "training-set", True, f"training_set:{digest}", rows=len(learned))
    return True, digest


@dataclass
class Evaluated:
    fitted: FittedRanker
    candidates: FittedCandidates
    results: dict[str, Evaluation]
    baselines: dict[str, Baseline]
    champion: dict[str, float] | None
    #: why an existing champion was not scored on this hold-out (None: scored, or there is none)
    champion_note: str | None = None

    @property
    def index(self) -> CandidateIndex:
        return self.candidates.index


def fit_and_evaluate(
    settings: Settings,
    plan: Plan,
    store: FeatureStore,
    rs: RankingSet,
    rp: RankerParams,
    report: Reporter,
    engine: Engine | None = None,
) -> Evaluated:
    """The ranker fitted, the candidate generator refitted on the whole training part, both scored on
    the hold-out beside the baselines and the current champion."""
    seed, split, svc, engine = settings.seed, plan.split, plan.svc, engine or local_engine()
    step = report.task("training XGBoost ranker (boosted from EASE: two weights, three depths)")
    fitted = engine.ranker(rs, rp, seed)
    step()
    pre = fitted.prerank
    if pre is not None and pre.keep:
        report.note(
            f"pre-ranker: the best {pre.keep} of up to {settings.candidate_pool} candidates by {pre.describe()} go to "
            f"the trees (the cascade keeps {pre.retention:.1%} of the ranker's validation ndcg@10 and recall@100; "
            f"cost per request in tree evaluations, a predict call counted as {CALL_COST:,}: "
            + ", ".join(f"{name} {cost:,} keeping {k}" for name, (k, cost) in pre.options.items())
            + ")"
        )
    elif pre is not None:
        report.note(f"no pre-ranker: {pre.reason}")
    step = report.task("refitting candidate generator on the whole training window")
    fitted_b = engine.candidates(split.train, plan.catalog, plan.candidate_params, seed)
    index_b = fitted_b.index
    step()
    report.note(f"for the hold-out: {fitted_b.popularity.describe()}")
    q_hold = _sample(split.queries, MAX_HOLDOUT_QUERIES, seed + 1)
    if len(q_hold) < len(split.queries):
        report.note(
            f"the hold-out is scored on a sample of {len(q_hold):,} of its {len(split.queries):,} queries (the same "
            "sample for every model and baseline, drawn by SETLIST_SEED)"
        )
    state = query_state(store, q_hold, str(index_b.item_ids[0]), svc)
    counts = split.train.groupby("user_id").size()
    cold = set(q_hold["user_id"]) - set(counts[counts >= COLD_EVENTS].index)
    baselines = {"als": als_baseline(index_b)}
    ease = fitted_b.ease
    if ease is not None:
        baselines["ease"] = ease_baseline(ease, fitted_b.interactions)
    if ease is None:
        report.note("EASE turned off (SETLIST_EASE_MAX_ITEMS=0)")
    elif not ease.covers_all:
        report.note(
            f"EASE over the {len(ease.items):,} items with the most users, of {ease.touched or ease.catalogue:,} "
            "with any (SETLIST_EASE_MAX_ITEMS); the other candidate sources cover the rest"
        )
    scorers = {"model": scorer(fitted.booster)}
    if fitted.prerank is not None and fitted.prerank.keep:  # the cascade's cost in quality, on the hold-out
        scorers[WITHOUT_PRERANK] = scorer(fitted.booster, prerank=False)
    results = evaluate(
        index_b,
        scorers,
        state,
        q_hold,
        split.labels,
        daily_item_matrix(store, index_b, svc, q_hold["event_timestamp"]),
        settings.candidate_pool,
        cold,
        svc,
        baselines,
        progress=report.task("evaluating on the hold-out", len(q_hold)),
        zone=settings.request_zone,
    )
    champion, champion_note = champion_metrics(
        settings, store, state, q_hold, split.labels, cold, split.train, svc, split.kind
    )
    # The registered model keeps the training part's weights, so that a later run can score it on
    # a hold-out it never learned from; but it serves with every user's whole history, so that
    # nothing they rated in the hold-out is offered again and their latest items count.
    index_b.seen = seen_matrix(plan.events, index_b.user_ids, pd.Index(index_b.item_ids))
    if index_b.live is not None:
        served = refit_popularity(index_b, plan.events, fitted_b.popularity, plan.candidate_params)
        report.note(f"serving's popularity over the whole log, as the catalogue turns over: {served.window.describe()}")
    # after the whole history is in: where seen items are left out, each user's row holds them on top
    step = report.task("finding each user's nearest items for serving")
    table = index_b.precompute_embedding_top(settings.candidate_pool, settings.embedding_top_max_mb * 2**20)
    step()
    report.note(table)
    return Evaluated(fitted, fitted_b, results, baselines, champion, champion_note)


#: the hold-out scorer that ranks every candidate with the trees, beside the cascade ("model")
WITHOUT_PRERANK = "without_prerank"


def _prerank_metrics(ev: Evaluated) -> dict[str, float]:
    """What the pre-ranker kept on validation, and the hold-out's ndcg and recall with the trees
    scoring every candidate: the cascade's price in quality, next to the model's own metrics."""
    pre = ev.fitted.prerank
    if pre is None or not pre.keep or WITHOUT_PRERANK not in ev.results:
        return {}
    full = ev.results[WITHOUT_PRERANK].metrics
    return {
        "prerank_validation_retention": pre.retention,
        **{f"{WITHOUT_PRERANK}_{m}": full[m] for m in ("ndcg_at_10", "recall_at_10", "recall_at_100")},
    }


def _run_params(settings: Settings, plan: Plan, rp: RankerParams, ev: Evaluated) -> dict[str, object]:
    split = plan.split
    return {
        **{f"candidates.{k}": v for k, v in plan.candidate_params.__dict__.items()},
        **{f"ranker.{k}": v for k, v in rp.__dict__.items()},
        "ranker.objective": ev.fitted.objective,
        "prerank.keep_chosen": ev.fitted.prerank.keep if ev.fitted.prerank else 0,
        "prerank.kind": ev.fitted.prerank.describe() if ev.fitted.prerank and ev.fitted.prerank.keep else "none",
        "prerank.features": ",".join(ev.fitted.prerank.features)[:500] if ev.fitted.prerank else "",
        "prerank.reason": (ev.fitted.prerank.reason if ev.fitted.prerank else "")[:500],
        "seed": settings.seed,
        "candidate_pool": settings.candidate_pool,
        "request_timezone": settings.timezone,
        "n_features": len(plan.svc.inputs),
        "feature_service": plan.svc.name,
        "split": split.kind,
        "split.reason": split.reason[:500],
        "split.holdout_days": f"{split.window.days:.3f}" if split.window else "per user",
        "split.holdout_fraction": settings.holdout_fraction,
        "exclude_seen": plan.exclude_seen,
        "repeat_share": round(plan.repeats, 4),
        "cohort_window_days": f"{ev.candidates.popularity.window.days:.3f}",
        "cohort_popularity": ev.candidates.popularity.describe()[:500],
    }


def train(
    settings: Settings,
    progress: bool = True,
    candidate_params: CandidateParams | None = None,
    ranker_params: RankerParams | None = None,
) -> TrainingResult:
    """Event log → plan → ranker training set (gated) → fit and evaluate → MLflow and the promotion gate."""
    rp = ranker_params or RankerParams(
        trees=settings.ranker_trees,
        ndcg_tolerance=settings.ranker_ndcg_tolerance,
        selection_se=settings.ranker_selection_se,
        prerank_keep=settings.prerank_keep,
        prerank_max_loss=settings.prerank_max_loss,
        pool=settings.candidate_pool,
    )
    log = EventLog(settings.events_dir)
    store = get_store(settings)
    with Reporter(progress, []) as report:
        plan = plan_run(settings, log, candidate_params, report.task)
        report.choices = plan.choices
        for line in plan.choices:
            report.say(line)
        _require_published(store)  # after the log's own refusals (too few positives, too big to fit)
        if unfinished := cut_short(settings.features_dir):  # a training set joined from two builds' files
            raise TrainingRefused(f"{unfinished}, then train")
        if running := in_progress(settings.features_dir):
            raise TrainingRefused(f"{running}: train once it has ended")
        engine = engine_for(settings, report)  # Spark in the cluster profile
        plan.publish = latest_version(settings)  # the publish the ranking set is about to be joined from
        rs, q_train_n, n_folds = ranker_set(settings, plan, store, report, engine)
        gate_passed, plan.training_set = gate_training_set(settings, rs, plan.opted_out)
        ev = fit_and_evaluate(settings, plan, store, rs, rp, report, engine)
    model = ev.results["model"]
    names = ("popularity", *ev.baselines)
    metrics = dict(model.metrics)
    metrics |= _prerank_metrics(ev)
    for name in names:
        for m in ("ndcg_at_10", "recall_at_10", "recall_at_100"):
            metrics[f"baseline_{name}_{m}"] = ev.results[name].metrics[m]
        # how far the gain over the baseline could move by the queries drawn alone (the promotion gate's)
        metrics[f"baseline_{name}_gain_se"] = paired_gain(model.per_query, ev.results[name].per_query)[1]
    rows = {
        "events": plan.raw_events,
        "personalizable_events": len(plan.events),
        "train_queries": q_train_n,
        "ranker_folds": n_folds,
        "train_rows": len(rs.frame),
        "holdout_queries": int(metrics["queries"]),
        "opted_out_users": len(plan.opted_out),
    }
    done = record(settings, log, plan, rs, _run_params(settings, plan, rp, ev), ev, metrics, rows, gate_passed)
    return TrainingResult(
        done.run_id,
        metrics,
        ev.results["popularity"].metrics,
        ev.champion,
        done.versions,
        done.decision.promote,
        done.decision.reason,
        ev.fitted.objective,
        rows,
        {name: ev.results[name].metrics for name in names},
        plan.choices,
    )


def _require_published(store: FeatureStore) -> None:
    """Training reads the published features: a data directory whose materialize never published
    any (its gate failed, or it never ran) is refused in words, not with Feast's
    FeatureViewNotFoundException from the middle of the run."""
    published = {view.name for view in store.list_feature_views()}
    if missing := [VIEW_OF[kind] for kind in ("user", "item") if VIEW_OF[kind] not in published]:
        raise TrainingRefused(
            f"no features are published yet ({', '.join(missing)} not in the feature registry): run `make "
            "materialize` first; if it failed, its message names the gate that stopped it"
        )


def _keep_training_set(settings: Settings, frame: pd.DataFrame) -> Path:
    """The training set as gated, for `python -m validation training-set` and for audits."""
    import pyarrow as pa

    from setlist.eventlog import write_atomic

    path = settings.training_set_path
    write_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def feature_service(settings: Settings) -> Service:
    """The service this run trains on: SETLIST_FEATURE_SERVICE, else the newest declared."""
    fs = declarations.load(settings)
    try:
        return fs.service(settings.feature_service or fs.newest)
    except DeclarationError as exc:
        raise TrainingRefused(f"{exc} (SETLIST_FEATURE_SERVICE)") from exc
