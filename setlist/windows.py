"""Time windows taken from the data's own density, not from the calendar.

A ratings log spanning twenty years and a listening log spanning a month have nothing in common
in calendar terms: "the last 3 days" holds a tenth of the second and almost nothing of the first.
So a window is described by the share of events it must hold, and its length is read off the
timestamps; a setting fixes the length when a user wants it fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
#: the shortest window derived from the data: one holding only events of one time is this long
MOMENT = pd.Timedelta(seconds=1)


@dataclass(frozen=True)
class Window:
    """A trailing window: its start, its length and where the length came from."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    source: str  # "setting" or "data"

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY

    def describe(self) -> str:
        how = "fixed by setting" if self.source == "setting" else "from the data"
        if self.source == "data" and self.end - self.start <= MOMENT:
            # the newest events share one time (a log of dates whose last day holds the share): "0.0 hours,
            # 23:59 → 00:00" said nothing true
            return f"{self.name}: the events stamped {self.end:%Y-%m-%d %H:%M} (one moment, {how})"
        return f"{self.name}: {_human(self.days)} ({how}), {self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}"


def _human(days: float) -> str:
    if days >= 730:
        return f"{days / 365.25:.1f} years"
    if days >= 2:
        return f"{days:.1f} days"
    return f"{days * 24:.1f} hours"


def _as_utc(ts: pd.Series | np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("ns")


def trailing(
    name: str,
    timestamps: pd.Series | np.ndarray,
    share: float,
    days: float | None = None,
    end: pd.Timestamp | None = None,
) -> Window:
    """The trailing window ending at ``end`` (default: the newest timestamp) that holds ``share``
    of the events, or exactly ``days`` long when that is given.

    Derived windows are at least one second long and start at an event, so they always hold at
    least one event; ties at the boundary stay inside the window.
    """
    ts = _as_utc(timestamps)
    if len(ts) == 0:
        raise ValueError(f"cannot place the {name} window: there are no events")
    stop = pd.Timestamp(end) if end is not None else ts.max()
    if days is not None:
        if days <= 0:
            raise ValueError(f"the {name} window must be longer than 0 days (got {days})")
        return Window(name, stop - pd.Timedelta(days=days), stop, "setting")
    if not 0 < share < 1:
        raise ValueError(f"the {name} window's share of events must be between 0 and 1 (got {share})")
    inside = ts[ts <= stop]
    if len(inside) == 0:
        raise ValueError(f"cannot place the {name} window: no events before {stop}")
    k = max(int(np.ceil(len(inside) * share)), 1)
    start = np.sort(inside.asi8)[len(inside) - k]
    start_ts = pd.Timestamp(start, tz="UTC")
    if stop - start_ts < MOMENT:
        start_ts = stop - MOMENT
    return Window(name, start_ts, stop, "data")
