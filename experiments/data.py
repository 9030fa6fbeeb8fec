"""Join what was shown (the impression log) with what users did next (Track rows in the event log).

Each feedback event is credited to the most recent impression of the same item to the same user
at or before it, within the experiment's window; so an item shown twice is credited once, to the
showing the user reacted to. Impressions with no feedback in the window count as not played.

Days older than ``impressions_raw_days`` are kept as daily counts only (``setlist.downsample``): they
add to each arm's items shown and requests (:func:`arm_counts`), never to users or outcomes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from setlist.contract import POSITIVE_PLAY_FRACTION, POSITIVE_TYPES
from setlist.downsample import read_all
from setlist.eventlog import EventLog
from setlist.settings import Settings

OUTCOMES = {"play_rate": "played", "skip_rate": "skipped", "completion_rate": "completed", "positive_rate": "positive"}
#: the positive rate's feedback: a completed play, or a like or a save (a shop's purchase and cart,
#: where its log maps them so), which a play rate alone misses
FEEDBACK_TYPES = ("play", "skip", *sorted(POSITIVE_TYPES))
#: a client clock a little behind the server's must not lose the feedback to "before the impression"
CLOCK_SKEW = pd.Timedelta(seconds=1)


def outcomes(impressions: pd.DataFrame, events: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """The impression rows with boolean ``played``, ``skipped``, ``completed`` and ``positive`` columns."""
    imp = impressions.reset_index(drop=True).copy()
    imp["_id"] = np.arange(len(imp))
    for col in OUTCOMES.values():
        imp[col] = False
    fb = events[events["type"].isin(FEEDBACK_TYPES)][["user_id", "item_id", "timestamp", "type", "value"]]
    if imp.empty or fb.empty:
        return imp.drop(columns="_id")
    fb = fb.assign(_at=pd.to_datetime(fb["timestamp"], utc=True).astype("datetime64[ns, UTC]") + CLOCK_SKEW)
    shown = imp[["user_id", "item_id", "_id"]].assign(
        _at=pd.to_datetime(imp["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    )
    credited = pd.merge_asof(
        fb.sort_values("_at"),
        shown.sort_values("_at"),
        on="_at",
        by=["user_id", "item_id"],
        direction="backward",
        tolerance=pd.Timedelta(seconds=window_s) + CLOCK_SKEW,
    )
    credited = credited.dropna(subset=["_id"])
    ids = credited["_id"].astype(np.int64)
    value = credited["value"].astype("float64")
    play = credited["type"].eq("play").to_numpy()
    imp.loc[imp["_id"].isin(ids[play]), "played"] = True
    imp.loc[imp["_id"].isin(ids[credited["type"].eq("skip").to_numpy()]), "skipped"] = True
    completed = play & (value >= POSITIVE_PLAY_FRACTION).to_numpy()
    imp.loc[imp["_id"].isin(ids[completed]), "completed"] = True
    kept = credited["type"].isin(POSITIVE_TYPES).to_numpy()
    imp.loc[imp["_id"].isin(ids[completed | kept]), "positive"] = True
    return imp.drop(columns="_id")


def per_user(frame: pd.DataFrame, group: str = "arm") -> pd.DataFrame:
    """Per (group, user): items shown and the count of each outcome; the unit the statistics use."""
    agg = {"shown": ("item_id", "size"), "requests": ("request_id", "nunique")}
    agg.update({col: (col, "sum") for col in OUTCOMES.values()})
    return frame.groupby([group, "user_id"], sort=True).agg(**agg).reset_index()


def arm_counts(impressions: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Per arm: ``shown`` (items), ``requests`` and ``counted`` (the items of ``shown`` known from daily
    counts only), from raw rows and the down-sampled days together. Requests per user are counted as
    :func:`per_user` does; in the counts they are the rows at position 1."""
    raw = impressions.groupby(["arm", "user_id"]).agg(shown=("item_id", "size"), requests=("request_id", "nunique"))
    first = daily["position"] == 1
    counted = pd.DataFrame(
        {
            "counted": daily.groupby("arm")["impressions"].sum(),
            "counted_requests": daily[first].groupby("arm")["impressions"].sum(),
        }
    )
    out = raw.groupby(level="arm").sum().join(counted, how="outer").fillna(0).astype("int64")
    out["shown"] += out["counted"]
    out["requests"] += out["counted_requests"]
    out.index.name = "arm"
    return out[["shown", "requests", "counted"]].sort_index()


class Loaded(NamedTuple):
    impressions: pd.DataFrame  # raw rows
    events: pd.DataFrame  # the feedback that may follow them
    daily: pd.DataFrame  # the down-sampled days: items shown per day and ``setlist.downsample.KEYS``


def load(settings: Settings, experiment: str, window_s: float, since: datetime | None = None) -> Loaded:
    """The impressions of ``experiment`` [from ``since`` on; a counted day when it starts there], raw and
    counted, and the feedback events that may follow the raw ones."""
    imp, daily = read_all(settings.impressions_dir, experiment)
    if since is not None:
        imp = imp[imp["timestamp"] >= pd.Timestamp(since)].reset_index(drop=True)
        starts = pd.to_datetime(daily["date"]).dt.tz_localize("UTC")
        daily = daily[(starts >= pd.Timestamp(since)).to_numpy()].reset_index(drop=True)
    no_events = pd.DataFrame(columns=["user_id", "item_id", "timestamp", "type", "value"])
    if imp.empty:
        return Loaded(imp, no_events, daily)
    start = imp["timestamp"].min().to_pydatetime() - timedelta(seconds=CLOCK_SKEW.total_seconds())
    end = imp["timestamp"].max().to_pydatetime() + timedelta(seconds=window_s + 1)
    events = EventLog(settings.events_dir).read(
        columns=["user_id", "item_id", "timestamp", "type", "value"], start=start, end=end
    )
    events = events[events["user_id"].isin(set(imp["user_id"]))]
    return Loaded(imp, events, daily)


def has_impressions(root: Path, experiment: str) -> bool:
    """Whether ``root`` holds impressions of ``experiment``, raw or counted."""
    imp, daily = read_all(root, experiment)
    return not (imp.empty and daily.empty)
