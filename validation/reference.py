"""Learned cardinality references, stored as JSON beside the suites.

Distinct counts grow with the number of events a window holds, so a reference is learned from
windows holding as many events as the window it will be compared with (``window_events``), not
windows of as many days: in a log with bursts and quiet years, a day can hold ten thousand events
or none, and a same-length window would compare a burst with silence. The reference period, in
time order, is cut into consecutive windows of that size (newest first, no empty windows), and the
median, smallest and largest distinct count over them are kept. ``window_days`` records how long
the current window was, for the reader. The file records where and when it was learned;
``python -m validation learn-reference`` rewrites it, and a gate that finds none learns it on its
first run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from setlist.atomicfile import write_atomic_bytes

CARDINALITY_COLUMNS = ("user_id", "item_id", "genre", "device", "locale")
PROPORTION_COLUMNS = ("user_id", "item_id")
DEFAULT_RATIO = (0.5, 2.0)
MAX_WINDOWS = 24


class StaleReference(ValueError):
    """A stored reference in an older format (learned per calendar day count)."""


@dataclass
class CardinalityReference:
    window_events: int  # each reference window held this many events
    window_days: float  # how long the current window was, in days (for the record)
    distinct: dict[str, float]  # median distinct count per window
    distinct_low: dict[str, float]  # smallest over the windows
    distinct_high: dict[str, float]  # largest over the windows
    unique_proportion: dict[str, float]  # median distinct / rows per window
    proportion_low: dict[str, float]
    proportion_high: dict[str, float]
    windows: int
    reference_start: str
    reference_end: str
    source: str
    learned_at: str

    def save(self, path: Path) -> None:
        write_atomic_bytes(path, json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> CardinalityReference:
        data = json.loads(path.read_text())
        names = {f.name for f in fields(cls)}
        if not names <= data.keys():
            raise StaleReference(f"{path} is in an older format (missing {', '.join(sorted(names - data.keys()))})")
        return cls(**{k: v for k, v in data.items() if k in names})

    def fits(self, window_events: int, tolerance: float) -> bool:
        """Whether this reference was learned for windows of about ``window_events`` events."""
        return abs(self.window_events - window_events) <= tolerance * max(window_events, 1)


def window_days_of(frame: pd.DataFrame) -> float:
    """How long a frame's time span is, in (fractional) days; 0 for fewer than two events."""
    if frame.empty:
        return 0.0
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    return float((ts.max() - ts.min()) / pd.Timedelta(days=1))


def split_windows(frame: pd.DataFrame, window_events: int, max_windows: int = MAX_WINDOWS) -> list[pd.DataFrame]:
    """Consecutive windows of ``window_events`` events, in time order, newest first; at most
    ``max_windows``, spread evenly over the frame when it holds more. A leading remainder smaller
    than a window is dropped unless the frame holds less than one window (then it is the only one)."""
    if frame.empty:
        return []
    order = np.argsort(pd.to_datetime(frame["timestamp"], utc=True).to_numpy(), kind="stable")
    ordered = frame.iloc[order]
    size = max(1, int(window_events))
    count = len(ordered) // size
    if count == 0:
        return [ordered]
    picks = range(count) if count <= max_windows else np.unique(np.linspace(0, count - 1, max_windows).round())
    n = len(ordered)
    return [ordered.iloc[n - (int(k) + 1) * size : n - int(k) * size] for k in picks]


def learn_cardinality(
    reference: pd.DataFrame, window_events: int, source: str, window_days: float = 0.0, max_windows: int = MAX_WINDOWS
) -> CardinalityReference:
    windows = split_windows(reference, window_events, max_windows)
    cols = [c for c in CARDINALITY_COLUMNS if c in reference.columns and reference[c].notna().any()]
    counts = {c: [w[c].nunique() for w in windows] for c in cols}
    shares = {c: [w[c].nunique() / len(w) for w in windows] for c in PROPORTION_COLUMNS if c in reference.columns}
    ts = pd.to_datetime(reference["timestamp"], utc=True)
    return CardinalityReference(
        window_events=int(window_events),
        window_days=round(float(window_days), 4),
        distinct={c: float(np.median(v)) for c, v in counts.items()},
        distinct_low={c: float(min(v)) for c, v in counts.items()},
        distinct_high={c: float(max(v)) for c, v in counts.items()},
        unique_proportion={c: float(np.median(v)) for c, v in shares.items()},
        proportion_low={c: float(min(v)) for c, v in shares.items()},
        proportion_high={c: float(max(v)) for c, v in shares.items()},
        windows=len(windows),
        reference_start=ts.min().isoformat(),
        reference_end=ts.max().isoformat(),
        source=source,
        learned_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def reference_path(reference_dir: Path, key: str) -> Path:
    return reference_dir / f"cardinality-{key}.json"
