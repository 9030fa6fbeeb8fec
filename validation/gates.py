"""The gates as the CLI runs them: find the input, call the API, return a ``GateResult``.

A missing input raises ``InputMissing`` (``all`` turns it into "skipped: …"); an unreadable or
nonexistent ``--path`` raises ``BadInput``. Nothing here prints: the CLI owns the terminal.

The feature declarations and the parity pairs come from whoever builds the ``GateOptions`` (the CLI
resolves them from the settings), as plain callables: validation imports no pipeline package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from setlist import jobmetrics
from setlist.consent import newest_usable
from setlist.eventlog import EventLog
from setlist.featureset import FeatureSet
from setlist.publish import cut_short, in_progress
from setlist.settings import Settings
from setlist.windows import Window
from validation import api, sources
from validation.gx import Workspace
from validation.reference import CardinalityReference, StaleReference, learn_cardinality, reference_path, window_days_of
from validation.result import GateResult, Row
from validation.skew import ParityAdapter
from validation.suites.drift import EVENT_CATEGORICAL, EVENT_NUMERIC, event_features
from validation.suites.features import views_of
from validation.suites.training_set import BASE_COLUMNS
from validation.thresholds import Thresholds, thresholds_for
from validation.windows import Split, newest_batch, split, trailing_window


@dataclass
class GateOptions:
    path: Path | None = None
    reference: Path | None = None
    holdout_days: float | None = None  # None: settings.holdout_days; both None: derived from the data
    as_of: datetime | None = None  # None: the newest event in the log, else now
    limits: Thresholds | None = None  # None: the settings' thresholds file (command-line flags applied)
    #: the feature declarations the batches are checked against (called when the features gate runs)
    declarations: Callable[[], FeatureSet] | None = None
    #: the online/offline pairs of the parity gate (called when it runs: it may need the stores)
    parity: ParityAdapter | None = None
    #: events loaded once per run: ``all`` reads the same data for three gates
    _events: dict = field(default_factory=dict, repr=False)

    def events(self, settings: Settings) -> pd.DataFrame:
        key = str(self.path)
        if key not in self._events:
            self._events[key] = sources.load_events(settings, self.path)
        return self._events[key]

    def thresholds(self, settings: Settings) -> Thresholds:
        return self.limits or thresholds_for(settings)


Gate = Callable[[Settings, GateOptions, Workspace], list[GateResult]]


def _from(t: Thresholds) -> str:
    return f"thresholds: {t.source}"


def events_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    result = api.validate_events(opts.events(settings), workspace=ws)
    result.notes.append(
        f"timestamps after 1970-01-01 and at most {settings.max_future_skew_s} s after now "
        "(settings.max_future_skew_s); no calendar floor"
    )
    return [result]


def features_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    """One result per feature view (the same checks run on each, so one table would be ambiguous)."""
    if opts.declarations is None:
        raise sources.InputMissing("no feature declarations were given to check the batches against")
    features = opts.declarations()
    batches = {name: sources.load_feature_batch(settings, name) for name in views_of(features)}
    usable = {} if opts.as_of else _newest_usable(settings, opts)
    t = opts.thresholds(settings)
    results = []
    whole = "feature files are one publish's whole"
    if unfinished := cut_short(settings.features_dir):  # each file may pass its checks, the set is no one build
        results.append(GateResult("features", rows=[Row(whole, unfinished, "no publish cut short", "fail")]))
    elif running := in_progress(settings.features_dir):  # what is checked may change under the checks
        said = f"{running}: these checks may see some files of it and some of the last"
        results.append(GateResult("features", rows=[Row(whole, said, "no publish running", "warn")]))
    for name, frame in batches.items():
        as_of, what = (opts.as_of, "--as-of") if opts.as_of else usable.get(name, usable["log"])
        result = api.validate_feature_batch(
            name, frame, as_of, features=features, max_age=t.freshness.max_age, workspace=ws
        )
        result.notes += [
            f"freshness: newest snapshot at most {t.freshness.max_age_hours:g} h before "
            f"{as_of.isoformat(timespec='seconds')} ({what})",
            _from(t),
        ]
        results.append(result)
    return results


def training_set_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    frame = sources.load_training_set(settings)
    features = [c for c in frame.columns if c not in BASE_COLUMNS]
    t = opts.thresholds(settings)
    result = api.validate_training_set(
        frame,
        features,
        sources.opted_out(settings, frame["user_id"].unique()),
        positive_share=t.training_set.positive_share,
        workspace=ws,
    )
    result.notes.append(_from(t))
    return [result]


def parity_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    if opts.parity is None:
        raise sources.InputMissing("no parity adapter was given to read online and offline values")
    t = opts.thresholds(settings)
    result = api.check_parity(opts.parity, min_match=t.parity.min_match, tolerance=t.parity.tolerance, workspace=ws)
    result.notes.append(_from(t))
    return [result]


def drift_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    t = opts.thresholds(settings)
    chosen = _windows(settings, opts, t)
    reference = event_features(sources.with_genre(chosen.reference, settings), settings.request_zone)
    current = event_features(sources.with_genre(chosen.current, settings), settings.request_zone)
    result = api.validate_drift(
        reference, current, numeric=EVENT_NUMERIC, categorical=EVENT_CATEGORICAL, thresholds=t.drift, workspace=ws
    )
    result.notes[:0] = chosen.notes() + [_from(t)]
    if not result.passed:
        result.notes.append(_spike_note(chosen.current, chosen.reference) or _drift_note(result.failures))
    return [result]


#: one day holding at least this share of the current window, and this many times its median day, is a spike
SPIKE_SHARE, SPIKE_OVER_MEDIAN = 0.3, 3.0


def _per_day(events: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(events["timestamp"], utc=True).dt.floor("D").value_counts()


def _spike_note(current: pd.DataFrame, reference: pd.DataFrame | None = None) -> str | None:
    """Why a drift failure may be a known event rather than broken data: one day (a sale, a launch,
    Tmall's November 11th) holding much of the current window. Said with what to do about it. A
    window of one or two days (a log of dates whose last day is the sale) is compared with the
    reference's median day instead of its own."""
    if current.empty:
        return None
    days = _per_day(current)
    top, n = days.index[0], int(days.iloc[0])
    if len(days) >= 3:
        median, against = float(days.median()), "its median day"
    elif reference is not None and not reference.empty:
        median, against = float(_per_day(reference).median()), "the median day before it"
    else:
        return None
    share, over = n / len(current), n / median
    if share < SPIKE_SHARE or over < SPIKE_OVER_MEDIAN:
        return None
    return (
        f"{top.date()} holds {share:.0%} of the current window's events ({over:.0f}× {against}): if that day "
        f"is a known event (a sale, a launch), the drift is real and expected: {_ways_on(DRIFT_LEVELS)}"
    )


#: the thresholds.yaml keys that allow a real change for good, per gate
DRIFT_LEVELS = "the drift levels (drift: psi_fail, js_fail)"
CARDINALITY_RANGE = "the allowed range (cardinality: ratio)"


def _ways_on(levels: str) -> str:
    """What a user can do about a failure they judge real (the gate judges; it does not train)."""
    return (
        "to train anyway, run `make train` on its own; to judge another window, set --holdout-days "
        f"(SETLIST_HOLDOUT_DAYS); to allow such changes for good, widen {levels} in a copy of "
        "validation/thresholds.yaml (SETLIST_VALIDATION_THRESHOLDS_FILE)"
    )


def _failed_columns(failures: list[str]) -> str:
    """The columns named by failed expectations (``expect_…(session_events)[fail]``), joined."""
    return ", ".join(sorted({f.split("(", 1)[1].split(")", 1)[0] for f in failures if "(" in f}))


def _drift_note(failures: list[str]) -> str:
    """Why a drift failure may be no broken data, and the ways on, when no single day explains it."""
    return (
        f"the newest window differs from the history in {_failed_columns(failures) or 'the failed checks'} by more "
        "than the history's own windows differ from one another: broken data, or a real change (new users, a new "
        f"product, a different season). If it is real: {_ways_on(DRIFT_LEVELS)}"
    )


def cardinality_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    t = opts.thresholds(settings)
    chosen = _windows(settings, opts, t)
    current, size, trimmed = _same_size(chosen)
    ref, note = _cardinality_reference(settings, opts, ws, chosen.reference, size, window_days_of(chosen.current), t)
    result = api.validate_cardinality(
        sources.with_genre(current, settings), ref, ratio=t.cardinality.ratio, workspace=ws
    )
    result.notes[:0] = chosen.notes() + [note] + ([trimmed] if trimmed else []) + [_from(t)]
    if not result.passed:
        result.notes.append(_cardinality_note(result.failures))
    return [result]


def _cardinality_note(failures: list[str]) -> str:
    """What a cardinality failure may mean, and the ways on, as a drift failure says them."""
    return (
        f"the newest window counts distinct {_failed_columns(failures) or 'values'} outside the range the history's "
        "windows of the same size give: broken ids (a join that lost them, a placeholder), or a real change (a "
        f"log tapering off at its end, a launch). If it is real: {_ways_on(CARDINALITY_RANGE)}"
    )


def learn_reference(settings: Settings, opts: GateOptions, ws: Workspace) -> tuple[CardinalityReference, Path]:
    """(Re)learn and store the cardinality reference for the data ``opts`` points at."""
    t = opts.thresholds(settings)
    chosen = _windows(settings, opts, t)
    _, size, _ = _same_size(chosen)
    ref = learn_cardinality(
        sources.with_genre(chosen.reference, settings),
        size,
        _source_key(opts),
        window_days_of(chosen.current),
        t.cardinality.max_windows,
    )
    path = reference_path(ws.reference_dir, _source_key(opts))
    ref.save(path)
    return ref, path


GATES: dict[str, Gate] = {
    "events": events_gate,
    "features": features_gate,
    "training-set": training_set_gate,
    "parity": parity_gate,
    "drift": drift_gate,
    "cardinality": cardinality_gate,
}


def run_all(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    results: list[GateResult] = []
    for name, gate in GATES.items():
        jobmetrics.current().step(name)  # a span per gate when tracing is on
        try:
            results.extend(gate(settings, opts, ws))
        except sources.InputMissing as exc:
            results.append(GateResult(name, skipped=str(exc)))
    return results


# --- helpers ------------------------------------------------------------------------------------
def _windows(settings: Settings, opts: GateOptions, t: Thresholds) -> Split:
    """The current window and its reference (``validation.windows``). With ``--reference`` the
    reference is that data and the current window is all of ``--path`` (or the log's trailing
    window); otherwise both come from one source."""
    days = opts.holdout_days if opts.holdout_days is not None else settings.holdout_days
    key = ("split", str(opts.path), str(opts.reference), days, t.window)
    if key not in opts._events:  # drift and cardinality under ``all`` compare the same windows
        opts._events[key] = _choose(settings, opts, t, days)
    return opts._events[key]


def _choose(settings: Settings, opts: GateOptions, t: Thresholds, days: float | None) -> Split:
    data = opts.events(settings)
    if opts.reference is None:
        root = settings.events_dir if opts.path is None else opts.path
        return split(data, t.window, days, newest_batch(root) if Path(root).is_dir() else None)
    reference = sources.read_events_path(opts.reference)
    if reference.empty:
        raise sources.InputMissing(f"no events in --reference {opts.reference}")
    ts = pd.to_datetime(data["timestamp"], utc=True)
    if opts.path is not None:
        window = Window(f"current window (all of --path {opts.path})", ts.min(), ts.max(), "data")
        return Split(reference, data, window, f"reference: --reference {opts.reference}")
    window, how = trailing_window(ts, t.window, days)
    current = data[(ts >= window.start).to_numpy()]
    return Split(reference, current, window, f"{how}; reference: --reference {opts.reference}")


def _same_size(chosen: Split) -> tuple[pd.DataFrame, int, str]:
    """Distinct counts are compared at one size: the current window's, or the reference's when that
    is smaller (then only the current window's newest events of that number are counted)."""
    size = min(len(chosen.current), len(chosen.reference))
    if size == len(chosen.current):
        return chosen.current, size, ""
    order = pd.to_datetime(chosen.current["timestamp"], utc=True).argsort(kind="stable").to_numpy()
    note = (
        f"the reference holds fewer events ({size:,}) than the current window: distinct counts are "
        f"compared on the current window's newest {size:,}"
    )
    return chosen.current.iloc[order[-size:]], size, note


def _source_key(opts: GateOptions) -> str:
    if opts.path is None:
        return "eventlog"
    return "path-" + hashlib.sha1(str(Path(opts.path).resolve()).encode()).hexdigest()[:10]


def _cardinality_reference(
    settings: Settings,
    opts: GateOptions,
    ws: Workspace,
    reference: pd.DataFrame,
    size: int,
    window_days: float,
    t: Thresholds,
) -> tuple[CardinalityReference, str]:
    reference = sources.with_genre(reference, settings)
    c = t.cardinality

    def learn() -> CardinalityReference:
        return learn_cardinality(reference, size, _source_key(opts), window_days, c.max_windows)

    if opts.reference is not None:
        return learn(), f"cardinality reference learned from --reference (not stored), windows of {size:,} events"
    path = reference_path(ws.reference_dir, _source_key(opts))
    stored = None
    if path.exists():
        try:
            stored = CardinalityReference.load(path)
        except (StaleReference, ValueError, TypeError):
            stored = None  # an older format: replaced below
    if stored is not None and stored.fits(size, c.reuse_tolerance):
        return stored, (
            f"cardinality reference {path} (learned {stored.learned_at} from {stored.windows} "
            f"window(s) of {stored.window_events:,} events)"
        )
    ref = learn()
    if stored is not None:
        return ref, (
            f"stored reference {path} is for windows of {stored.window_events:,} events, the current "
            f"window has {size:,}; used one learned now from {ref.windows} window(s) "
            "(run learn-reference to replace it)"
        )
    ref.save(path)
    return ref, f"no stored reference: learned from {ref.windows} window(s) of {size:,} events, saved to {path}"


def _newest_usable(settings: Settings, opts: GateOptions) -> dict[str, tuple[datetime, str]]:
    """Per feature view, the newest event it may use, and in words; ``log`` the newest of all. A
    view's snapshots cannot be newer than the events its users' consent lets it use, so a day of
    events from users without consent must not make it stale."""
    out = {"log": (_newest_event(settings), "the newest event")}
    try:  # the log as the other gates of this run read it (--path names other events, not the log)
        events = opts.events(settings) if opts.path is None else sources.load_events(settings)
    except sources.InputMissing:
        return out
    user, item = newest_usable(events, settings.consent_granted_by_default)
    for view, ts, who in (("user_profile", user, "personalization"), ("item_stats", item, "analytics")):
        if ts is not None:
            out[view] = (pd.Timestamp(ts).to_pydatetime(), f"the newest event it may use: {who} consent")
    return out


def _newest_event(settings: Settings) -> datetime:
    """Features are fresh when they are not much older than the newest event they could reflect;
    on a live system that is now, on a replayed or imported log it is the log's end (however long
    ago that was)."""
    log = EventLog(settings.events_dir)
    if log.files():
        ts = log.read(columns=["timestamp"], include_erased=True)["timestamp"]
        if not ts.empty:
            return pd.Timestamp(ts.max()).to_pydatetime()
    return datetime.now(UTC)
