"""Trailing-window sums over the days that have events, per entity, without a calendar grid.

Events are reduced to one row per (entity, day) that has any event, ordered by (entity, day). A
window sum at row r is "cumulative sum up to r minus cumulative sum up to day(r) - width"; the
second position comes from ``np.searchsorted`` on an integer (entity, day) key. Cost grows with
events, not with the span of the log times the number of entities.

The cumulative sums restart at every entity (a segmented cumsum, compensated by pandas), so an
entity's values depend on its own events only: recomputing a few entities gives exactly their rows
of a full build. Counts are exact; float sums agree with a plain per-entity cumsum to rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY_NS = 86_400 * 10**9
#: the widest window any feature uses; the key's day stride must leave room below a day for it
MAX_WIDTH = 31


@dataclass(frozen=True)
class DayRows:
    """Rows for the (entity, day) pairs with at least one event, sorted by (entity, day)."""
    entity: np.ndarray   # entity code per row
    day: np.ndarray      # absolute day number (days since the epoch) per row
    key: np.ndarray      # entity * stride + day offset; sorted ascending
    of_event: np.ndarray  # row index of every input event

    def __len__(self) -> int:
        return len(self.key)

    def sum(self, weights: np.ndarray) -> np.ndarray:
        """Per-row sum of ``weights`` (one per event), added in event order."""
        return np.bincount(self.of_event, weights=np.asarray(weights, dtype=np.float64), minlength=len(self))

    def sum_by(self, mask: np.ndarray, column: np.ndarray, width: int) -> np.ndarray:
        """(rows × width) counts of the masked events per row and ``column`` code in [0, width)."""
        out = np.zeros((len(self), width), dtype=np.float64)
        np.add.at(out, (self.of_event[mask], column[mask]), 1.0)
        return out

    def last(self, values: np.ndarray) -> np.ndarray:
        """Per-row maximum of integer ``values``."""
        out = np.full(len(self), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(out, self.of_event, values.astype(np.int64))
        return out

    def first(self, values: np.ndarray) -> np.ndarray:
        """Per-row minimum of integer ``values``."""
        out = np.full(len(self), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(out, self.of_event, values.astype(np.int64))
        return out

    def snapshot_ns(self) -> np.ndarray:
        """Each row's snapshot stamp: the end of its day (the start of the next), in ns."""
        return (self.day + 1) * DAY_NS


def day_rows(codes: np.ndarray, day: np.ndarray) -> DayRows:
    """Group events by (entity code, absolute day)."""
    codes = np.asarray(codes, dtype=np.int64)
    day = np.asarray(day, dtype=np.int64)
    if len(day) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return DayRows(empty, empty, empty, empty)
    lo = int(day.min())
    stride = int(day.max()) - lo + 1 + MAX_WIDTH  # day - width never reaches the previous entity
    key, of_event = np.unique(codes * stride + (day - lo), return_inverse=True)
    return DayRows(entity=key // stride, day=key % stride + lo, key=key, of_event=of_event.reshape(-1))


def trailing(rows: DayRows, daily: np.ndarray, width: int) -> np.ndarray:
    """Sum of ``daily`` over each row's trailing ``width`` days (its own day included).

    ``daily`` is (rows,) or (rows, k); the result has the same shape."""
    if width > MAX_WIDTH:
        raise ValueError(f"windows wider than {MAX_WIDTH} days need a larger key stride")
    values = np.asarray(daily, dtype=np.float64)
    if len(rows) == 0:
        return values.copy()
    flat = values.reshape(len(rows), -1)
    # a segmented cumsum: restarts at each entity, so no entity's rounding depends on another's
    csum = pd.DataFrame(flat).groupby(rows.entity, sort=False).cumsum().to_numpy(dtype=np.float64)
    # rows at or before day - width, counted from the start: the last of them closes the window
    before = np.searchsorted(rows.key, rows.key - width, side="right") - 1
    inside = (before >= 0) & (rows.entity[np.maximum(before, 0)] == rows.entity)
    out = csum.copy()
    out[inside] -= csum[before[inside]]
    return out.reshape(values.shape)
