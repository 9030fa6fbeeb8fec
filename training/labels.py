"""Labels and ranking queries from the event log.

A *query* is one moment in a listening session when Rank would have been asked. Its labels are
what the user did next in that session:
positive — a play with high completion, a like, an add to a playlist;
negative — a skip, an impression that was not played, ``not_interested``.
Plays with middling completion are neither, and are left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from setlist.contract import NEGATIVE_TYPES, POSITIVE_PLAY_FRACTION, POSITIVE_TYPES

#: query time is this much before the session's first event, so that no feature row stamped at
#: the first event (session state, for instance) is visible to its own labels
QUERY_LEAD = pd.Timedelta(milliseconds=1)


@dataclass
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame
    cutoff: pd.Timestamp


def label(events: pd.DataFrame) -> pd.Series:
    """1 positive, 0 negative, -1 neither, per event."""
    t = events["type"]
    value = events["value"].astype("float64")
    positive = t.isin(POSITIVE_TYPES) | ((t == "play") & (value >= POSITIVE_PLAY_FRACTION))
    negative = t.isin(NEGATIVE_TYPES) | (t == "impression")
    return pd.Series(np.where(positive, 1, np.where(negative, 0, -1)), index=events.index)


def build_queries(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Queries and their labels.

    Rank is mostly called mid-session, after Track has pushed session state, so a query sits at
    the middle event of its session: the first half is context, the second half is the answer.
    Short sessions are asked at their start.
    """
    ev = events.sort_values(["user_id", "session_id", "timestamp", "event_id"], kind="mergesort")
    ev = ev.assign(_label=label(ev).to_numpy())
    grp = ev.groupby(["user_id", "session_id"], sort=False)
    pos = grp.cumcount().to_numpy()
    size = grp["event_id"].transform("size").to_numpy()
    split_at = np.where(size >= 4, size // 2, 0)
    ev = ev.assign(_after=pos >= split_at, _is_split=pos == split_at)
    q = ev[ev["_is_split"]][["user_id", "session_id", "timestamp", "device", "locale"]].copy()
    q["event_timestamp"] = q.pop("timestamp") - QUERY_LEAD
    q = q.sort_values(["event_timestamp", "user_id"], kind="mergesort").reset_index(drop=True)
    q["query_id"] = np.arange(len(q), dtype=np.int64)
    answers = ev[ev["_after"] & (ev["_label"] >= 0)]
    labels = (answers.groupby(["user_id", "session_id", "item_id"], sort=False)["_label"].max()
              .rename("label").reset_index())
    labels = labels.merge(q[["user_id", "session_id", "query_id"]], on=["user_id", "session_id"])
    q = q[q["query_id"].isin(labels.loc[labels["label"] == 1, "query_id"])].reset_index(drop=True)
    labels = labels[labels["query_id"].isin(q["query_id"])]
    return q, labels[["query_id", "item_id", "label"]].reset_index(drop=True)


def time_split(events: pd.DataFrame, holdout_days: int) -> Split:
    end = events["timestamp"].max().ceil("D")
    cutoff = end - pd.Timedelta(days=holdout_days)
    return Split(train=events[events["timestamp"] < cutoff], holdout=events[events["timestamp"] >= cutoff],
                 cutoff=cutoff)
