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
#: the default widest window; ``day_rows`` takes the widest declared one, as the key's day stride
#: must leave room below a day for it
MAX_WIDTH = 31


@dataclass(frozen=True)
class DayRows:
    """Rows for the (entity, day) pairs with at least one event, sorted by (entity, day)."""

    entity: np.ndarray  # entity code per row
    day: np.ndarray  # absolute day number (days since the epoch) per row
    key: np.ndarray  # entity * stride + day offset; sorted ascending
    of_event: np.ndarray  # row index of every input event
    max_width: int = MAX_WIDTH

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


def day_rows(codes: np.ndarray, day: np.ndarray, max_width: int = MAX_WIDTH) -> DayRows:
    """Group events by (entity code, absolute day); windows up to ``max_width`` days can be summed."""
    codes = np.asarray(codes, dtype=np.int64)
    day = np.asarray(day, dtype=np.int64)
    if len(day) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return DayRows(empty, empty, empty, empty, max_width)
    lo = int(day.min())
    stride = int(day.max()) - lo + 1 + max_width  # day - width never reaches the previous entity
    key, of_event = np.unique(codes * stride + (day - lo), return_inverse=True)
    return DayRows(
        entity=key // stride, day=key % stride + lo, key=key, of_event=of_event.reshape(-1), max_width=max_width
    )


def trailing(rows: DayRows, daily: np.ndarray, width: int) -> np.ndarray:
    """Sum of ``daily`` over each row's trailing ``width`` days (its own day included).

    ``daily`` is (rows,) or (rows, k); the result has the same shape."""
    if width > rows.max_width:
        raise ValueError(f"windows wider than {rows.max_width} days need day_rows(max_width=...)")
    values = np.asarray(daily, dtype=np.float64)
    if len(rows) == 0:
        return values.copy()
    flat = values.reshape(len(rows), -1)
    csum = _segmented_cumsum(rows, flat)
    # rows at or before day - width, counted from the start: the last of them closes the window
    before = np.searchsorted(rows.key, rows.key - width, side="right") - 1
    inside = (before >= 0) & (rows.entity[np.maximum(before, 0)] == rows.entity)
    out = csum.copy()
    out[inside] -= csum[before[inside]]
    return out.reshape(values.shape)


def cumulative(rows: DayRows, daily: np.ndarray) -> np.ndarray:
    """Sum of ``daily`` over all of each entity's rows up to and including this one."""
    values = np.asarray(daily, dtype=np.float64)
    if len(rows) == 0:
        return values.copy()
    return _segmented_cumsum(rows, values.reshape(len(rows), -1)).reshape(values.shape)


def _segmented_cumsum(rows: DayRows, flat: np.ndarray) -> np.ndarray:
    # restarts at each entity, so no entity's rounding depends on another's
    return pd.DataFrame(flat).groupby(rows.entity, sort=False).cumsum().to_numpy(dtype=np.float64)


def distinct(rows: DayRows, values: np.ndarray, mask: np.ndarray, width: int | None) -> np.ndarray:
    """Per row, how many distinct ``values`` the entity's masked events took in the trailing
    ``width`` days (all history when None).

    Each (entity, value) occurrence day opens a span that lasts ``width`` days or until the value's
    next occurrence; +1 where a span opens and -1 where it ends, summed up to each row's day."""
    out = np.zeros(len(rows), dtype=np.float64)
    if len(rows) == 0 or not mask.any():
        return out
    ent = rows.entity[rows.of_event[mask]]
    day = rows.day[rows.of_event[mask]]
    vcode = pd.factorize(np.asarray(values)[mask])[0].astype(np.int64)
    trip = np.unique(np.column_stack([ent, vcode, day]), axis=0)  # sorted by (entity, value, day)
    e, v, d = trip[:, 0], trip[:, 1], trip[:, 2]
    same_next = np.zeros(len(trip), dtype=bool)
    same_next[:-1] = (e[1:] == e[:-1]) & (v[1:] == v[:-1])
    nxt = np.full(len(trip), np.iinfo(np.int64).max, dtype=np.int64)
    nxt[:-1] = np.where(same_next[:-1], d[1:], nxt[:-1])
    if width is None:
        opens = ~np.concatenate([[False], same_next[:-1]])  # only a value's first day counts
        starts, ends = d[opens], np.full(int(opens.sum()), np.iinfo(np.int64).max, dtype=np.int64)
        ents = e[opens]
    else:
        starts, ends, ents = d, np.minimum(d + width, nxt), e
    hi = int(rows.day.max()) + 1
    ends = np.minimum(ends, hi)  # nothing is asked after the last day
    lo = int(min(rows.day.min(), starts.min()))
    stride = hi - lo + 2
    keys = np.concatenate([ents * stride + (starts - lo), ents * stride + (ends - lo)])
    delta = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.argsort(keys, kind="stable")
    keys, csum = keys[order], np.cumsum(delta[order])
    row_keys = rows.entity * stride + (rows.day - lo)
    at = np.searchsorted(keys, row_keys, side="right") - 1
    # the running sum is global; an entity's count is its sum minus what came before its first key
    first = np.searchsorted(keys, rows.entity * stride, side="left") - 1
    before = np.where(first >= 0, csum[np.maximum(first, 0)], 0.0)
    inside = at >= 0
    out[inside] = csum[at[inside]] - before[inside]
    return out
