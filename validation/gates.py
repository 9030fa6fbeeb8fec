"""The gates as the CLI runs them: find the input, call the API, return a ``GateResult``.

A missing input raises ``InputMissing`` (``all`` turns it into "skipped: …"); an unreadable or
nonexistent ``--path`` raises ``BadInput``. Nothing here prints: the CLI owns the terminal.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from setlist.eventlog import EventLog
from setlist.settings import Settings
from validation import api, sources
from validation.gx import Workspace
from validation.parity import DEFAULT_MIN_MATCH
from validation.reference import (DEFAULT_RATIO, CardinalityReference, learn_cardinality, reference_path,
                                  window_days_of)
from validation.result import GateResult
from validation.suites.drift import EVENT_CATEGORICAL, EVENT_NUMERIC, DriftThresholds, event_features
from validation.suites.features import DEFAULT_MAX_AGE, VIEWS
from validation.suites.training_set import BASE_COLUMNS


@dataclass
class GateOptions:
    path: Path | None = None
    reference: Path | None = None
    holdout_days: int | None = None  # None: settings.holdout_days
    as_of: datetime | None = None  # None: the newest event in the log, else now
    max_age: timedelta = DEFAULT_MAX_AGE
    ratio: tuple[float, float] = DEFAULT_RATIO
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    min_match: float = DEFAULT_MIN_MATCH
    parity_adapter: str = sources.DEFAULT_PARITY_ADAPTER
    #: events loaded once per run: ``all`` reads the same data for three gates
    _events: dict = field(default_factory=dict, repr=False)

    def events(self, settings: Settings) -> pd.DataFrame:
        key = str(self.path)
        if key not in self._events:
            self._events[key] = sources.load_events(settings, self.path)
        return self._events[key]


Gate = Callable[[Settings, GateOptions, Workspace], list[GateResult]]


def events_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    return [api.validate_events(opts.events(settings), workspace=ws)]


def features_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    """One result per feature view (the same checks run on each, so one table would be ambiguous)."""
    batches = {name: sources.load_feature_batch(settings, name) for name in VIEWS}
    as_of = opts.as_of or _newest_event(settings)
    results = []
    for name, frame in batches.items():
        result = api.validate_feature_batch(name, frame, as_of, max_age=opts.max_age, workspace=ws)
        result.notes.append(f"freshness relative to {as_of.isoformat(timespec='seconds')}")
        results.append(result)
    return results


def training_set_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    frame = sources.load_training_set(settings)
    features = [c for c in frame.columns if c not in BASE_COLUMNS]
    return [api.validate_training_set(frame, features, sources.opted_out(settings), workspace=ws)]


def parity_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    adapter = sources.parity_adapter(settings, opts.parity_adapter)
    return [api.check_parity(adapter, min_match=opts.min_match, workspace=ws)]


def drift_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    reference, current, where = _windows(settings, opts)
    reference = event_features(sources.with_genre(reference, settings))
    current = event_features(sources.with_genre(current, settings))
    result = api.validate_drift(reference, current, numeric=EVENT_NUMERIC, categorical=EVENT_CATEGORICAL,
                                thresholds=opts.thresholds, workspace=ws)
    result.notes.insert(0, where)
    return [result]


def cardinality_gate(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    reference, current, where = _windows(settings, opts)
    ref, note = _cardinality_reference(settings, opts, ws, reference, window_days_of(current))
    result = api.validate_cardinality(sources.with_genre(current, settings), ref, ratio=opts.ratio, workspace=ws)
    result.notes[:0] = [where, note]
    return [result]


def learn_reference(settings: Settings, opts: GateOptions, ws: Workspace) -> tuple[CardinalityReference, Path]:
    """(Re)learn and store the cardinality reference for the data ``opts`` points at."""
    reference, current, _ = _windows(settings, opts)
    ref = learn_cardinality(sources.with_genre(reference, settings), window_days_of(current), _source_key(opts))
    path = reference_path(ws.reference_dir, _source_key(opts))
    ref.save(path)
    return ref, path


GATES: dict[str, Gate] = {
    "events": events_gate, "features": features_gate, "training-set": training_set_gate,
    "parity": parity_gate, "drift": drift_gate, "cardinality": cardinality_gate,
}


def run_all(settings: Settings, opts: GateOptions, ws: Workspace) -> list[GateResult]:
    results: list[GateResult] = []
    for name, gate in GATES.items():
        try:
            results.extend(gate(settings, opts, ws))
        except sources.InputMissing as exc:
            results.append(GateResult(name, skipped=str(exc)))
    return results


# --- helpers ------------------------------------------------------------------------------------
def _windows(settings: Settings, opts: GateOptions) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(reference, current, description). With ``--reference`` the reference is that data and the
    current window is all of ``--path`` (or the log's last holdout days); otherwise both come from
    one source split at the holdout."""
    holdout = opts.holdout_days or settings.holdout_days
    data = opts.events(settings)
    if opts.reference is not None:
        reference = sources.read_events_path(opts.reference)
        current = data if opts.path is not None else sources.last_days(data, holdout)
        where = f"reference: {opts.reference}; current: {opts.path or 'last ' + str(holdout) + ' day(s) of the log'}"
    else:
        reference, current = sources.split_holdout(data, holdout)
        where = f"reference: all but the last {holdout} day(s) ({len(reference):,} events); current: last {holdout} day(s) ({len(current):,} events)"
    return reference, current, where


def _source_key(opts: GateOptions) -> str:
    if opts.path is None:
        return "eventlog"
    return "path-" + hashlib.sha1(str(Path(opts.path).resolve()).encode()).hexdigest()[:10]


def _cardinality_reference(settings: Settings, opts: GateOptions, ws: Workspace, reference: pd.DataFrame,
                           window_days: int) -> tuple[CardinalityReference, str]:
    reference = sources.with_genre(reference, settings)
    if opts.reference is not None:
        return learn_cardinality(reference, window_days, str(opts.reference)), "reference learned from --reference (not stored)"
    path = reference_path(ws.reference_dir, _source_key(opts))
    if path.exists():
        stored = CardinalityReference.load(path)
        if stored.window_days == window_days:
            return stored, f"reference {path} (learned {stored.learned_at})"
        fresh = learn_cardinality(reference, window_days, _source_key(opts))
        return fresh, (f"stored reference {path} is for {stored.window_days}-day windows, the current window has "
                       f"{window_days}; used one learned now (run learn-reference to replace it)")
    ref = learn_cardinality(reference, window_days, _source_key(opts))
    ref.save(path)
    return ref, f"no stored reference: learned from {ref.windows} window(s) of {window_days} day(s), saved to {path}"


def _newest_event(settings: Settings) -> datetime:
    """Features are fresh when they are not much older than the newest event they could reflect;
    on a live system that is now, on a replayed or imported log it is the log's end."""
    log = EventLog(settings.events_dir)
    if log.files():
        ts = log.read(columns=["timestamp"], include_erased=True)["timestamp"]
        if not ts.empty:
            return pd.Timestamp(ts.max()).to_pydatetime()
    return datetime.now(timezone.utc)
