"""Which events drift and cardinality compare: a current window and the reference before it.

Taken from the data, not the calendar ("the last 3 days" is a tenth of a busy month and nothing of
a quiet decade). In order of preference:

1. ``--holdout-days`` (or ``settings.holdout_days``): the trailing window of that many days;
2. the newest ingestion batch, when it holds enough events and leaves enough for a reference
   (``window.min_events`` .. ``window.max_share`` of the log), and comes after the rest: it is what
   just came in (a batch reaching back into the log's own period, a second log of the same users
   or a backfill, is no newer window, and the trailing one is taken, which says so);
3. the trailing window holding ``window.share`` of the events, at least ``window.min_events``, at
   most ``window.max_share`` (``setlist.windows.trailing``).

Batches are read off the event log's file names (``<UTC stamp>-<tag>-<id>.parquet``, one stamp per
``EventLog.append``); files named otherwise (served traffic's journal segments) are a stream, not
a batch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from setlist.errors import InputMissing
from setlist.windows import Window, trailing
from validation.thresholds import WindowLimits

BATCH_FILE = re.compile(r"^(?P<stamp>\d{8}T\d{12})-(?P<tag>.+)-[0-9a-f]{8}$")
NAME = "current window"


@dataclass(frozen=True)
class Batch:
    tag: str
    written: datetime
    files: tuple[Path, ...]
    rows: int

    def event_ids(self) -> set[str]:
        return {e for f in self.files for e in pq.read_table(f, columns=["event_id"]).column("event_id").to_pylist()}


def newest_batch(root: Path | None) -> Batch | None:
    """The batch most recently appended to the log (or hive directory) at ``root``, if any."""
    if root is None or not Path(root).is_dir():
        return None
    groups: dict[tuple[str, str], list[Path]] = {}
    for f in Path(root).glob("date=*/*.parquet"):
        m = BATCH_FILE.match(f.stem)
        if m and not f.name.startswith("."):
            groups.setdefault((m["stamp"], m["tag"]), []).append(f)
    if not groups:
        return None
    stamp, tag = max(groups)  # the stamp's format sorts chronologically
    files = tuple(sorted(groups[(stamp, tag)]))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    written = datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    return Batch(tag, written, files, rows)


@dataclass(frozen=True)
class Split:
    reference: pd.DataFrame
    current: pd.DataFrame
    window: Window
    how: str  # one sentence: how the current window was chosen

    def notes(self) -> list[str]:
        return [
            self.window.describe(),
            f"{self.how}; current {len(self.current):,} events, reference {len(self.reference):,} events",
        ]


def split(events: pd.DataFrame, limits: WindowLimits, days: float | None = None, batch: Batch | None = None) -> Split:
    """(reference, current) out of one frame of events, by the rules in the module docstring."""
    ts = pd.to_datetime(events["timestamp"], utc=True)
    passed_over = ""
    if days is None and limits.prefer_batch and batch is not None:
        chosen = _from_batch(events, ts, limits, batch)
        if isinstance(chosen, Split):
            return chosen
        passed_over = chosen or ""
    window, how = trailing_window(ts, limits, days)
    how = passed_over + how
    inside = (ts >= window.start).to_numpy()
    if days is None and (tied := int(inside.sum()) - _newest(len(ts), limits)) > 0:
        # a window starts at a time: a log of dates ties a whole day's events with the oldest chosen
        how += f", and {tied:,} more stamped at the same moment as the oldest of them"
    reference, current = events[~inside], events[inside]
    if reference.empty:
        raise InputMissing(
            f"no reference: every event falls in the {window.describe()} "
            "(pass --reference PATH, or a shorter --holdout-days)"
        )
    return Split(reference, current, window, how)


#: a batch whose median time is before this quantile of the other events' times is no newer window
BATCH_AFTER_QUANTILE = 0.9


def _newest(n: int, limits: WindowLimits) -> int:
    """How many of ``n`` events the current window is sized to hold."""
    return min(max(math.ceil(limits.share * n), limits.min_events), math.floor(limits.max_share * n))


def trailing_window(ts: pd.Series, limits: WindowLimits, days: float | None = None) -> tuple[Window, str]:
    """The trailing current window of ``ts`` and a sentence saying how its size was chosen."""
    if ts.empty:
        raise InputMissing("no events to place a current window in")
    if days is not None:
        how = f"fixed at {days:g} day(s) (--holdout-days or settings.holdout_days)"
        return trailing(NAME, ts, limits.share, days=days), how
    n = len(ts)
    k = _newest(n, limits)
    if k < 1:
        raise InputMissing(f"only {n} event(s): too few to split into a current window and a reference")
    # (k - 0.5) / n: trailing() rounds share × n up, and this lands on exactly k events
    window = trailing(NAME, ts, (k - 0.5) / n)
    how = (
        f"chosen as the newest {k:,} of {n:,} events ({limits.share:.0%} share, at least "
        f"{limits.min_events:,}, at most {limits.max_share:.0%})"
    )
    return window, how


def _from_batch(events: pd.DataFrame, ts: pd.Series, limits: WindowLimits, batch: Batch) -> Split | str | None:
    """The split at the newest batch; or, when the batch is no newer window, why (a sentence's
    start, for the trailing window's); or None when it is too small or too large to be one."""
    n = len(events)
    if not limits.min_events <= batch.rows <= limits.max_share * n:
        return None
    inside = events["event_id"].isin(batch.event_ids()).to_numpy()
    size = int(inside.sum())  # erased users' events are gone from the frame
    if not (size and limits.min_events <= size <= limits.max_share * n):
        return None
    # most of the batch older than the rest's newest tenth: it reaches back into the log's own period
    if ts[inside].median() < ts[~inside].quantile(BATCH_AFTER_QUANTILE):
        return (
            f"the newest ingestion batch {batch.tag!r} reaches back into the log's own period (half its events "
            f"before {ts[~inside].quantile(BATCH_AFTER_QUANTILE):%Y-%m-%d}: a second log of the same users, or a "
            "backfill, is no newer window), so: "
        )
    window = Window(f"{NAME} (batch {batch.tag!r})", ts[inside].min(), ts[inside].max(), "data")
    how = f"chosen as the newest ingestion batch {batch.tag!r}, written {batch.written:%Y-%m-%d %H:%M} UTC"
    return Split(events[~inside], events[inside], window, how)
