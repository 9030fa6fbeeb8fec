"""The Python API the pipeline calls: one function per gate, each returning a ``GateResult``.

Materialization and training call these and refuse to publish or train when ``result.passed`` is
false. Every call records its result in the GE store and refreshes Data Docs (``docs=False`` skips
the HTML, e.g. in tight loops).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pandas as pd

from setlist.featureset import FeatureSet
from setlist.settings import get_settings
from validation.gx import Workspace
from validation.reference import CardinalityReference
from validation.result import GateResult, from_validation
from validation.skew import FRESH_COLUMN, MATCH_PREFIX, ParityAdapter, ParityInput, parity_report
from validation.suites.cardinality import cardinality_suite
from validation.suites.drift import drift_suite, plan_checks, sample, usable_columns
from validation.suites.events import events_suite
from validation.suites.features import feature_suite, views_of
from validation.suites.parity import parity_suite
from validation.suites.training_set import OPTED_OUT_FLAG, training_set_suite
from validation.thresholds import DriftThresholds, Thresholds, thresholds_for


@lru_cache(maxsize=4)
def _workspace_at(root: Path) -> Workspace:
    return Workspace(root)


def default_workspace() -> Workspace:
    """The workspace under the current settings' data_dir (one GE context per data_dir)."""
    return _workspace_at(Workspace.from_settings(get_settings()).root.resolve())


def limits() -> Thresholds:
    """The thresholds of the current settings (``validation_thresholds_file``, else the packaged file).
    Every ``None`` threshold argument below means "from here"."""
    return thresholds_for(get_settings())


def _utc(when: datetime) -> datetime:
    """Naive times are taken as UTC: comparing them with the tz-aware columns would error."""
    when = pd.Timestamp(when).to_pydatetime()
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _run(gate: str, suite_name: str, suite, frame: pd.DataFrame, ws: Workspace | None, docs: bool) -> GateResult:
    ws = ws or default_workspace()
    validation = ws.run(suite_name, suite, frame, docs=docs)
    return from_validation(gate, validation, ws.docs_index if docs else None)


def validate_events(
    frame: pd.DataFrame,
    *,
    now: datetime | None = None,
    max_future_skew_s: float | None = None,
    workspace: Workspace | None = None,
    docs: bool = True,
) -> GateResult:
    """Contract checks on raw events (schema, types, ids, types of event, timestamps, values)."""
    skew = get_settings().max_future_skew_s if max_future_skew_s is None else max_future_skew_s
    return _run("events", "events", events_suite(_utc(now) if now else None, skew), frame, workspace, docs)


def validate_feature_batch(
    view_name: str,
    frame: pd.DataFrame,
    as_of: datetime,
    *,
    features: FeatureSet,
    max_age: timedelta | None = None,
    workspace: Workspace | None = None,
    docs: bool = True,
) -> GateResult:
    """Ranges, nulls, types and freshness of one feature view's batch before it is published,
    checked against the declarations ``features`` (the caller's: validation loads none itself)."""
    views = views_of(features)
    if view_name not in views:
        raise ValueError(f"unknown feature view {view_name!r} (known: {', '.join(sorted(views))})")
    suite = feature_suite(views[view_name], _utc(as_of), max_age or limits().freshness.max_age)
    return _run(f"features:{view_name}", f"features-{view_name}", suite, frame, workspace, docs)


def validate_training_set(
    frame: pd.DataFrame,
    feature_columns: Sequence[str],
    opted_out: Collection[str],
    *,
    positive_share: tuple[float, float] | None = None,
    workspace: Workspace | None = None,
    docs: bool = True,
) -> GateResult:
    """Label balance, no identifier features, no rows of opted-out users."""
    flag = frame["user_id"].isin(set(opted_out)) if "user_id" in frame else False
    suite = training_set_suite(list(feature_columns), positive_share or limits().training_set.positive_share)
    return _run("training-set", "training_set", suite, frame.assign(**{OPTED_OUT_FLAG: flag}), workspace, docs)


def check_parity(
    source: ParityAdapter | Iterable[ParityInput],
    *,
    tolerance: float | None = None,
    min_match: float | None = None,
    workspace: Workspace | None = None,
    docs: bool = True,
) -> GateResult:
    """Online vs offline values per feature view; fails when a feature's match rate < ``min_match``."""
    p = limits().parity
    tolerance = p.tolerance if tolerance is None else tolerance
    min_match = p.min_match if min_match is None else min_match
    inputs = list(source() if callable(source) else source)
    result = GateResult("parity")
    for item in inputs:
        report = parity_report(
            item.online, item.offline, item.entity_col, list(item.features), tolerance, ttl=item.ttl, as_of=item.as_of
        )
        frame = report.comparison.copy()
        for col in frame.columns:
            if col.startswith(MATCH_PREFIX) or col == FRESH_COLUMN:
                frame[col] = frame[col].astype("float64")  # match rate = mean of 0/1
        has_fresh = report.stale_online is not None
        suite = parity_suite(item.view, list(item.features), has_fresh, min_match, p.min_fresh)
        result.extend(_run("parity", f"parity-{item.view}", suite, frame, workspace, docs))
        for f in report.features:
            if f.missing_online or f.missing_offline:
                result.notes.append(
                    f"{item.view}.{f.feature}: missing online {f.missing_online}, "
                    f"missing offline {f.missing_offline} of {f.compared}"
                )
        if report.stale_online:
            result.notes.append(f"{item.view}: {report.stale_online} online values older than the TTL {item.ttl}")
    if not inputs:
        result.skipped = "the parity adapter returned no feature views"
    return result


def validate_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    thresholds: DriftThresholds | None = None,
    name: str = "drift",
    workspace: Workspace | None = None,
    docs: bool = True,
) -> GateResult:
    """PSI (numeric, reference quantile bins) and PSI/JS (categorical) per feature, warn and fail levels
    (raised where the reference's own slices are that noisy, warn-only where data is too scarce)."""
    num = usable_columns(reference, current, numeric)
    cat = usable_columns(reference, current, categorical)
    if "timestamp" in reference.columns:  # noise slices are consecutive events
        reference = reference.iloc[pd.to_datetime(reference["timestamp"], utc=True).argsort(kind="stable")]
    checks, notes = plan_checks(reference, current, num, cat, thresholds or limits().drift)
    result = _run("drift", name, drift_suite(checks), sample(current), workspace, docs)
    result.notes.extend(notes)
    missing = sorted((set(numeric) | set(categorical)) - set(num) - set(cat))
    if missing:
        result.notes.append(f"not compared (absent or empty in a window): {', '.join(missing)}")
    return result


def validate_cardinality(
    current: pd.DataFrame,
    reference: CardinalityReference,
    *,
    ratio: tuple[float, float] | None = None,
    workspace: Workspace | None = None,
    docs: bool = True,
) -> GateResult:
    """Distinct counts and unique proportions of ``current`` within ``ratio`` × the reference."""
    suite = cardinality_suite(reference, ratio or limits().cardinality.ratio)
    return _run("cardinality", "cardinality", suite, current, workspace, docs)
