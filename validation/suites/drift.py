"""Suite for drift: every feature of a current window against a reference (training) window.

Each feature gets two custom expectations over the same metric: a ``warning``-severity one at the
warn threshold and a critical one at the fail threshold. Warnings show in the table and in Data
Docs but do not fail the gate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import great_expectations as gx
from great_expectations.expectations.metadata_types import FailureSeverity
import pandas as pd

from validation.expectations import ExpectColumnDistributionDriftToBeLessThan
from validation.stats import DEFAULT_NUMERIC_BINS, categorical_reference, numeric_reference

Method = Literal["psi", "js"]
#: numeric features derived from events for the drift gate (see ``event_features``)
EVENT_NUMERIC = ("value", "hour_of_day", "session_events")
EVENT_CATEGORICAL = ("type", "device", "locale", "genre", "consent_personalization", "consent_analytics")
#: distribution checks may run on a sample; uniqueness, nulls and types never do
DEFAULT_SAMPLE_ROWS = 250_000


@dataclass(frozen=True)
class DriftThresholds:
    psi_warn: float = 0.1
    psi_fail: float = 0.25
    js_warn: float = 0.1
    js_fail: float = 0.2
    categorical_method: Method = "psi"
    numeric_bins: int = DEFAULT_NUMERIC_BINS

    def levels(self, method: Method) -> tuple[float, float]:
        return (self.psi_warn, self.psi_fail) if method == "psi" else (self.js_warn, self.js_fail)


def drift_suite(reference: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str],
                thresholds: DriftThresholds = DriftThresholds()) -> gx.ExpectationSuite:
    exps: list = []
    for col in numeric:
        _add(exps, col, "psi", numeric_reference(reference[col], thresholds.numeric_bins).to_kwargs(), thresholds)
    for col in categorical:
        _add(exps, col, thresholds.categorical_method, categorical_reference(reference[col]).to_kwargs(), thresholds)
    return gx.ExpectationSuite(name="drift", expectations=exps)


def _add(exps: list, col: str, method: Method, ref: dict, t: DriftThresholds) -> None:
    warn, fail = t.levels(method)
    for label, threshold, severity in (("warn", warn, FailureSeverity.WARNING), ("fail", fail, FailureSeverity.CRITICAL)):
        exps.append(ExpectColumnDistributionDriftToBeLessThan(
            column=col, method=method, threshold=threshold, severity=severity, meta={"label": label}, **ref))


def usable_columns(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Columns present in both windows with at least one value in the reference."""
    return [c for c in columns if c in reference.columns and c in current.columns and reference[c].notna().any()]


def event_features(events: pd.DataFrame) -> pd.DataFrame:
    """Event columns plus derived per-event features that do not depend on the window's length."""
    out = events.copy()
    ts = pd.to_datetime(out["timestamp"], utc=True)
    out["hour_of_day"] = ts.dt.hour.astype("int64")
    if "session_id" in out and out["session_id"].notna().any():
        out["session_events"] = out.groupby("session_id")["event_id"].transform("size").astype("float64")
    for col in ("consent_personalization", "consent_analytics"):
        if col in out:
            out[col] = out[col].map(lambda v: None if v is None or v != v else str(bool(v)))
    return out


def sample(frame: pd.DataFrame, max_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    return frame if len(frame) <= max_rows else frame.sample(n=max_rows, random_state=seed)
