"""Suite for drift: every feature of a current window against a reference (training) window.

Each feature gets two custom expectations over the same metric: a ``warning``-severity one at the
warn threshold and a critical one at the fail threshold. Warnings show in the table and in Data
Docs but do not fail the gate.

The levels are the configured ones (``validation/thresholds.yaml``) unless the data says they
cannot be judged that finely:
- a feature with fewer than ``min_samples`` values in a window gets one warning-severity check at
  the fail level, labelled "not enough data": it can warn, never fail;
- when earlier slices of the reference, each as large as the current window, already score above
  the configured levels against the rest of the reference (a bursty log, a feature that wanders),
  or random sets of whole bursts (sessions, else a user's day) as large as the current window
  do, the levels are raised to that noise (``noise_quantile``, × ``noise_margin`` for fail): a
  window of a ratings log holds a few dozen bursts, not thousands of independent events. A reference
  shorter than two current windows (a small log) has no slices; its bursts are drawn from both windows
  pooled. The notes say which features were raised and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

import great_expectations as gx
import numpy as np
import pandas as pd
from great_expectations.expectations.metadata_types import FailureSeverity

from setlist.contract import HISTORY_SESSION_PREFIX
from validation.distributions import BinnedReference, categorical_reference, null_scores, numeric_reference
from validation.expectations import ExpectColumnDistributionDriftToBeLessThan
from validation.thresholds import DriftThresholds, Method

__all__ = ["DriftThresholds", "Check", "plan_checks", "drift_suite", "event_features", "sample", "usable_columns"]

#: numeric features derived from events for the drift gate (see ``event_features``)
EVENT_NUMERIC = ("value", "hour_of_day", "session_events")
EVENT_CATEGORICAL = ("type", "device", "locale", "genre", "consent_personalization", "consent_analytics")
#: distribution checks may run on a sample; uniqueness, nulls and types never do
DEFAULT_SAMPLE_ROWS = 250_000
NOT_ENOUGH = "not enough data"
SHORT_DAY = "less than a day"
#: features that describe the daily cycle: a current window shorter than a day holds only part of
#: it, so it differs from a reference of whole days by construction
DAILY_CYCLE = ("hour_of_day",)
#: the noise calibration looks at the newest this many reference events (it is O(rows) per draw)
MAX_NULL_ROWS = 2_000_000


@dataclass(frozen=True)
class Check:
    """One feature's drift check: its reference bins and the levels it is held to."""

    column: str
    method: Method
    reference: BinnedReference
    warn: float
    fail: float | None  # None: not enough data to fail on, warn at ``warn`` only
    meta: dict = field(default_factory=dict)


def plan_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    t: DriftThresholds,
) -> tuple[list[Check], list[str]]:
    """The checks for every usable column, and notes for levels that are not the configured ones.

    ``reference`` should be in time order (the noise slices are consecutive events)."""
    ref_sample = sample(reference)
    n_cur = len(current)
    null_ref = reference.iloc[-MAX_NULL_ROWS:]
    # a reference too short to hold two windows of the current one's size (a small log) has no slices to
    # score, so its noise comes from whole bursts drawn out of both windows pooled: a permutation test,
    # which holds when nothing changed and still leaves a real change standing out of the mixed draws
    pooled = len(null_ref) < 2 * n_cur
    if pooled:
        null_ref = pd.concat([null_ref, current.loc[:, current.columns.isin(null_ref.columns)]], ignore_index=True)
    bursts = burst_ids(null_ref)
    checks: list[Check] = []
    notes: list[str] = []
    scarce: list[str] = []
    span = _span_hours(current)
    for col in list(numeric) + list(categorical):
        is_numeric = col in numeric
        method: Method = "psi" if is_numeric else t.categorical_method
        binned = (
            numeric_reference(ref_sample[col], t.numeric_bins) if is_numeric else categorical_reference(ref_sample[col])
        )
        warn, fail = t.levels(method)
        n_ref = int(reference[col].notna().sum())
        if min(n_ref, n_cur) < t.min_samples:
            scarce.append(col if n_cur < t.min_samples else f"{col} ({n_ref:,} reference values)")
            checks.append(Check(col, method, binned, fail, None, {"label": NOT_ENOUGH}))
            continue
        if col in DAILY_CYCLE and span is not None and span < 24.0:
            # an untimed file stamped over its own short span, or a gate run on a few hours of events
            notes.append(
                f"{col}: the current window spans {span:.1f} hours, less than a day: the daily cycle is compared, "
                "but can warn, never fail"
            )
            checks.append(Check(col, method, binned, fail, None, {"label": SHORT_DAY}))
            continue
        slices = 0 if pooled else t.noise_slices
        scores = null_scores(method, binned.kind, binned.bins, null_ref[col], n_cur, slices, t.noise_draws, bursts)
        meta: dict = {"configured": [warn, fail]}
        if len(scores) >= t.noise_min_scores:
            noise = float(np.quantile(scores, t.noise_quantile))
            meta.update(noise=round(noise, 4), windows=len(scores))
            raised = (round(max(warn, noise), 4), round(max(fail, noise * t.noise_margin), 4))
            if raised != (warn, fail):
                notes.append(
                    f"{col}: levels raised to warn {raised[0]:g} / fail {raised[1]:g}: {len(scores)} "
                    f"{_NULL_WINDOWS[pooled]} of {n_cur:,} events scored "
                    f"up to {max(scores):.3g} against the rest ({t.noise_quantile:g} quantile {noise:.3g})"
                )
                warn, fail = raised
        checks.append(Check(col, method, binned, warn, fail, meta))
    if scarce:
        notes.insert(
            0,
            f"{NOT_ENOUGH} to fail on ({n_cur:,} current events; drift.min_samples {t.min_samples:,}), "
            f"these may warn, never fail: {', '.join(scarce)}",
        )
    return checks, notes


_NULL_WINDOWS = {
    False: "reference windows (slices and random sets of bursts)",
    True: "random sets of bursts from both windows (the reference is too short for windows of its own)",
}


def _span_hours(current: pd.DataFrame) -> float | None:
    if "timestamp" not in current.columns or current.empty:
        return None
    ts = pd.to_datetime(current["timestamp"], utc=True)
    return float((ts.max() - ts.min()).total_seconds() / 3600.0) if ts.notna().any() else None


def burst_ids(events: pd.DataFrame) -> np.ndarray:
    """Which events belong together: the session, else the user's UTC day (a ratings log's burst),
    else none (every event on its own). Events of one burst share an hour, a device, a mood."""
    n = len(events)
    key = pd.Series(np.arange(n).astype(str), index=events.index)
    if "user_id" in events and "timestamp" in events:
        day = pd.to_datetime(events["timestamp"], utc=True).dt.strftime("%Y%m%d")
        key = events["user_id"].astype(str) + "|" + day
    if "session_id" in events:
        key = events["session_id"].astype(object).where(events["session_id"].notna(), key)
    return pd.factorize(key.astype(str))[0]


def drift_suite(checks: Sequence[Check]) -> gx.ExpectationSuite:
    exps: list = []
    for c in checks:
        levels: list[tuple[str, float, FailureSeverity]] = [
            (c.meta.get("label", NOT_ENOUGH), c.warn, FailureSeverity.WARNING)
        ]
        if c.fail is not None:
            levels = [("warn", c.warn, FailureSeverity.WARNING), ("fail", c.fail, FailureSeverity.CRITICAL)]
        for label, threshold, severity in levels:
            exps.append(
                ExpectColumnDistributionDriftToBeLessThan(
                    column=c.column,
                    method=c.method,
                    threshold=threshold,
                    severity=severity,
                    meta={**c.meta, "label": label},
                    **c.reference.to_kwargs(),
                )
            )
    return gx.ExpectationSuite(name="drift", expectations=exps)


def usable_columns(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Columns present in both windows with at least one value in the reference."""
    return [c for c in columns if c in reference.columns and c in current.columns and reference[c].notna().any()]


def event_features(events: pd.DataFrame, zone: tzinfo = UTC) -> pd.DataFrame:
    """Event columns plus derived per-event features that do not depend on the window's length, for
    every event but an imported history's (see ``HISTORY_SESSION_PREFIX``). ``hour_of_day`` is read on
    ``zone``'s clock (``SETLIST_TIMEZONE``, as the ranker's request hour): the users' day keeps its hours
    across a daylight-saving change, where on UTC's it moves by one and reads as drift."""
    out = events
    if "session_id" in out:
        # an imported history (clicks listed before the log) has no times of its own: its hours and its
        # length are the import's, and a gap in the values would read as a null rate drifting
        history = out["session_id"].astype("string").str.startswith(HISTORY_SESSION_PREFIX).fillna(False)
        out = out[~history.to_numpy(dtype=bool)]
    out = out.copy()
    ts = pd.to_datetime(out["timestamp"], utc=True)
    out["hour_of_day"] = ts.dt.tz_convert(zone).dt.hour.astype("int64")
    if "session_id" in out and out["session_id"].notna().any():
        out["session_events"] = out.groupby("session_id")["event_id"].transform("size").astype("float64")
    for col in ("consent_personalization", "consent_analytics"):
        if col in out:
            out[col] = out[col].map(lambda v: None if v is None or v != v else str(bool(v)))
    return out


def sample(frame: pd.DataFrame, max_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    return frame if len(frame) <= max_rows else frame.sample(n=max_rows, random_state=seed)
