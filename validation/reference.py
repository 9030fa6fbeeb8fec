"""Learned cardinality references, stored as JSON beside the suites.

Distinct counts grow with the length of a window, so a reference is learned per window of the
same length as the window it will be compared with (``window_days``): the reference period is cut
into consecutive windows of that length, and the median over them is kept. The file records where
and when it was learned; ``python -m validation learn-reference`` rewrites it, and a gate that finds
none learns it on its first run.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

CARDINALITY_COLUMNS = ("user_id", "item_id", "genre", "device", "locale")
PROPORTION_COLUMNS = ("user_id", "item_id")
DEFAULT_RATIO = (0.5, 2.0)
MAX_WINDOWS = 8


@dataclass
class CardinalityReference:
    window_days: int
    distinct: dict[str, float]  # median distinct count per window
    unique_proportion: dict[str, float]  # median distinct / rows per window
    windows: int
    reference_start: str
    reference_end: str
    source: str
    learned_at: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "CardinalityReference":
        return cls(**json.loads(path.read_text()))


def window_days_of(frame: pd.DataFrame) -> int:
    """Calendar days a frame covers (at least 1)."""
    if frame.empty:
        return 1
    days = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("D")
    return max(1, int((days.max() - days.min()) / timedelta(days=1)) + 1)


def split_windows(frame: pd.DataFrame, window_days: int, max_windows: int = MAX_WINDOWS) -> list[pd.DataFrame]:
    """Consecutive windows of ``window_days`` days ending at the frame's last day, newest first.
    A leading partial window is dropped unless it is the only one."""
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    last = ts.max().floor("D") + timedelta(days=1)
    first = ts.min().floor("D")
    out: list[pd.DataFrame] = []
    for k in range(max_windows):
        end = last - timedelta(days=k * window_days)
        start = end - timedelta(days=window_days)
        if end <= first:
            break
        if start < first and out:
            break
        out.append(frame[(ts >= start) & (ts < end)])
    return [w for w in out if not w.empty]


def learn_cardinality(reference: pd.DataFrame, window_days: int, source: str) -> CardinalityReference:
    windows = split_windows(reference, window_days)
    cols = [c for c in CARDINALITY_COLUMNS if c in reference.columns and reference[c].notna().any()]
    distinct = {c: float(np.median([w[c].nunique() for w in windows])) for c in cols}
    proportion = {c: float(np.median([w[c].nunique() / len(w) for w in windows]))
                  for c in PROPORTION_COLUMNS if c in reference.columns}
    ts = pd.to_datetime(reference["timestamp"], utc=True)
    return CardinalityReference(
        window_days=window_days, distinct=distinct, unique_proportion=proportion, windows=len(windows),
        reference_start=ts.min().isoformat(), reference_end=ts.max().isoformat(), source=source,
        learned_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def reference_path(reference_dir: Path, key: str) -> Path:
    return reference_dir / f"cardinality-{key}.json"
