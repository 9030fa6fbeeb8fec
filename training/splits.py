"""Evaluation splits: which events the models learn from, and which positives they must find.

Two protocols from the recommender literature:

* ``global``: a trailing period of the log is held out; each user active in it is asked once, just
  before their first event there, for the items they went on to like. Honest about time, but on
  a sparse log (a few hundred users over twenty years) the period holds almost nobody.
* ``per_user``: each user's last share of positives, by time, is held out and the user is asked
  just before the first of them. Every user with enough history is evaluated, whatever the span.

``auto`` takes ``global`` only when its period holds enough users and queries, most of them users
the training part has seen. The same protocol is
applied again inside the training part to make the ranker's training queries, so the ranker learns
the very task it is evaluated on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from setlist.features import SessionState, update_session
from setlist.windows import Window, trailing
from training.labels import label

#: query time is this much before the first held-out event, so that nothing stamped at that event
#: (a session push, for instance) is visible to its own question
QUERY_LEAD = pd.Timedelta(milliseconds=1)
DAY_NS = 86_400 * 10**9
#: a time of day this share of the rows carries is a date's stamp (``_with_copies``)
DATED_SHARE = 0.3
#: a user needs this many positives to give some to the hold-out and keep some to learn from
MIN_POSITIVES = 2

Kind = Literal["global", "per_user"]


@dataclass(frozen=True)
class SplitParams:
    kind: Literal["auto", "global", "per_user"] = "auto"
    holdout_days: float | None = None
    holdout_share: float = 0.1
    holdout_fraction: float = 0.2
    min_users: int = 50
    min_queries: int = 100
    #: ``auto`` also needs this share of the global period's queries to come from users the training
    #: part knows: a period of newcomers only (a file sorted by user and stamped in file order, a shop
    #: of one-visit visitors) can be answered by popularity alone, so it cannot tell models apart
    min_warm_share: float = 0.5


@dataclass
class Split:
    train: pd.DataFrame  # the events models may learn from
    queries: pd.DataFrame  # query_id, user_id, session_id, event_timestamp, device, locale
    labels: pd.DataFrame  # query_id, item_id, label (1: a held-out positive)
    kind: Kind
    reason: str
    window: Window | None = None  # the held-out period (global only)

    def describe(self) -> str:
        what = self.window.describe() if self.window is not None else "each user's last positives"
        return (
            f"{self.kind} split ({self.reason}): {what}; {len(self.queries):,} queries, "
            f"{len(self.train):,} training events"
        )


def _sort_key(column: pd.Series) -> np.ndarray:
    """Integers in the column's order (never-null columns: times, ids, users)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.array.asi8
    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy()
    return pd.factorize(column, sort=True)[0]


def log_order(frame: pd.DataFrame, *, by_user: bool = False) -> np.ndarray:
    """Positions sorting ``frame`` by (timestamp, event_id), within user_id when ``by_user``: the
    order of ``sort_values(kind="mergesort")``, from integer keys. sort_values first turns every
    key into a Categorical, which took minutes per sort on a 16M-event log."""
    keys = [_sort_key(frame["event_id"]), _sort_key(frame["timestamp"])]
    if by_user:
        keys.append(_sort_key(frame["user_id"]))
    return np.lexsort(keys)


def _queries(held: pd.DataFrame, first: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One query per user in ``first`` (their first held-out event), labelled with ``held``."""
    q = first[["user_id", "session_id", "timestamp", "device", "locale"]].copy()
    q["event_timestamp"] = q.pop("timestamp") - QUERY_LEAD
    q = q.sort_values(["event_timestamp", "user_id"], kind="mergesort").reset_index(drop=True)
    q["query_id"] = np.arange(len(q), dtype=np.int64)
    labels = (
        held[["user_id", "item_id"]].drop_duplicates().merge(q[["user_id", "query_id"]], on="user_id").assign(label=1)
    )
    return q, labels[["query_id", "item_id", "label"]].sort_values(["query_id", "item_id"]).reset_index(drop=True)


def _positives(events: pd.DataFrame) -> pd.DataFrame:
    return events[label(events).to_numpy() == 1]


def _unseen(held: pd.DataFrame, train: pd.DataFrame, exclude_seen: bool) -> pd.DataFrame:
    """Held-out positives the user had not already interacted with (when seen items are excluded,
    finding one again is impossible by construction, so it cannot count)."""
    if not exclude_seen or held.empty:
        return held
    seen = pd.MultiIndex.from_frame(train[["user_id", "item_id"]])
    return held[~pd.MultiIndex.from_frame(held[["user_id", "item_id"]]).isin(seen)]


def global_split(events: pd.DataFrame, p: SplitParams, exclude_seen: bool) -> Split:
    window = trailing("hold-out", events["timestamp"], p.holdout_share, p.holdout_days)
    late = events["timestamp"] >= window.start
    train, hold = events[~late], events[late]
    held = _unseen(_positives(hold), train, exclude_seen)
    first = hold[hold["user_id"].isin(held["user_id"])]
    first = first.iloc[log_order(first)]
    q, labels = _queries(held, first.drop_duplicates("user_id"))
    return Split(train, q, labels, "global", "", window)


def per_user_split(events: pd.DataFrame, p: SplitParams, exclude_seen: bool) -> Split:
    # Worked on positions and integer keys: the frame is copied once, into its two parts. Sorted
    # copies of the whole frame (by user, its positives, its parts, the re-sorted training part)
    # made this training's peak on a 16M-event log.
    if events.empty:
        raise ValueError("no events to split")
    users = pd.factorize(events["user_id"], sort=True)[0]
    by_user = np.lexsort([_sort_key(events["event_id"]), _sort_key(events["timestamp"]), users])
    u = users[by_user]
    positive = (label(events).to_numpy() == 1)[by_user]
    pu = u[positive]
    n = np.bincount(pu, minlength=int(users.max()) + 1)[pu]
    rank = np.arange(len(pu)) - np.searchsorted(pu, pu)  # place among the user's positives, by time
    n_hold = np.maximum(np.round(n * p.holdout_fraction), 1)
    first_held = (n >= MIN_POSITIVES) & (rank == n - n_hold)
    # The cut is a place in the user's ordered rows, not a time: where a log stamps whole sessions
    # or days with one time (dates without hours), a time cut would hold out every row tied with
    # the first held positive, and for a user whose rows all tie, the user's whole history.
    cut = np.full(int(users.max()) + 1, np.iinfo(np.int64).max)  # users with no cut hold nothing out
    cut[pu[first_held]] = np.flatnonzero(positive)[first_held]
    late = _with_copies(events, by_user, u, np.arange(len(u)) >= cut[u])
    del u, positive, pu, n, rank
    in_log = log_order(events)
    late_at = np.empty(len(events), dtype=bool)
    late_at[by_user] = late
    # the training part in the log's order, the held-out part by user then time
    train, hold = events.take(in_log[~late_at[in_log]]), events.take(by_user[late])
    held = _unseen(_positives(hold), train, exclude_seen)
    first = hold[hold["user_id"].isin(held["user_id"])].drop_duplicates("user_id")
    q, labels = _queries(held, first)
    return Split(train, q, labels, "per_user", "")


def _with_copies(events: pd.DataFrame, by_user: np.ndarray, u: np.ndarray, late: np.ndarray) -> np.ndarray:
    """``late`` (in ``by_user`` order), and every copy of a late event: the user's rows of the same
    item at the same time (a log writing one row per hashtag or tag of one listen) go to one side.
    Cut between them, the training part would hold the very positive the hold-out asks for, at the
    time it asks. A user's rows are in time order, so copies split by the cut are the rows tied in
    time with the user's first late row: only those runs are looked at. Runs at the time of day most
    rows share are left alone: a log of dates only ties a day's rows, and two rows of one item on one
    day there are two events (the cut is a place in the log for that reason)."""
    n = len(u)
    if not late.any() or late.all():
        return late
    ns = events["timestamp"].array.asi8[by_user]
    new_run = np.r_[True, (u[1:] != u[:-1]) | (ns[1:] != ns[:-1])]
    run = np.cumsum(new_run) - 1
    first = np.flatnonzero(late & ~np.r_[False, late[:-1] & (u[1:] == u[:-1])])  # each user's cut
    first = first[first > 0]
    straddle = run[first][run[first - 1] == run[first]]  # runs that the cut divides
    if not len(straddle):
        return late
    # dates only (in any zone: midnight in Copenhagen is 22:00 or 23:00 UTC) put most rows at one second of the day
    of_day = (ns // 10**9) % 86_400
    dated = np.flatnonzero(np.bincount(of_day, minlength=86_400) >= DATED_SHARE * n)
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], n]
    straddle = straddle[~np.isin(of_day[starts[straddle]], dated)]
    if not len(straddle):
        return late
    lengths = ends[straddle] - starts[straddle]
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = np.repeat(starts[straddle], lengths) + offsets
    tied = pd.DataFrame({"run": run[rows], "item": events["item_id"].to_numpy()[by_user[rows]], "late": late[rows]})
    held = tied[tied["late"]][["run", "item"]].drop_duplicates()
    copies = tied.reset_index().merge(held, on=["run", "item"])["index"].to_numpy()
    out = late.copy()
    out[rows[copies]] = True
    return out


def make_split(events: pd.DataFrame, p: SplitParams, exclude_seen: bool) -> Split:
    """The split ``p.kind`` asks for; ``auto`` tries the global period first."""
    if p.kind == "per_user":
        s = per_user_split(events, p, exclude_seen)
        s.reason = "set by SETLIST_SPLIT"
        return s
    g = global_split(events, p, exclude_seen)
    users, queries = g.queries["user_id"].nunique(), len(g.queries)
    if p.kind == "global":
        g.reason = "set by SETLIST_SPLIT"
        return g
    warm = float(g.queries["user_id"].isin(g.train["user_id"]).mean()) if queries else 0.0
    if users >= p.min_users and queries >= p.min_queries and warm >= p.min_warm_share:
        g.reason = (
            f"auto: the held-out period has {users:,} users with positives (≥ {p.min_users}), "
            f"{warm:.0%} of them seen in training"
        )
        return g
    del g  # its parts are a copy of the log: not kept while the per-user split makes its own
    s = per_user_split(events, p, exclude_seen)
    short = [f"{users:,} users with positives (< {p.min_users})"] if users < p.min_users else []
    short += [f"{queries:,} queries (< {p.min_queries})"] if queries < p.min_queries else []
    if queries and warm < p.min_warm_share:
        short += [f"{warm:.0%} of its users seen in training (< {p.min_warm_share:.0%})"]
    s.reason = f"auto: the trailing held-out period has only {' and '.join(short)}"
    return s


#: events replayed to measure ``recent_repeat_share``: whole users, chosen by a stable hash, up to this many
RECENT_SAMPLE_EVENTS = 300_000


def recent_repeat_share(events: pd.DataFrame, sample_events: int = RECENT_SAMPLE_EVENTS) -> float:
    """The share of positives on an item that is among the user's recent items just before it: the
    session state's last ``SESSION_LAST_N`` different items played, liked or added (a skip takes one
    out), which Rank leaves out of its candidates, as a player does not offer again what it just
    played. Low for music and ratings, whose users move on; most positives where users stay with a
    few items (posts to the same forums, ten-minute ticks of one stream). Measured by replaying the
    session state itself (``setlist.features.update_session``) over whole users, up to
    ``sample_events`` events of them, so that it is the list Rank reads, not an approximation."""
    positive = label(events).to_numpy() == 1
    if not positive.any():
        return 0.0
    users = events["user_id"].astype(str)
    sizes = users.value_counts()
    # whole users in a stable pseudo-random order, as many as the sample holds (at least one)
    shuffled = sizes.iloc[np.argsort(pd.util.hash_pandas_object(sizes.index.to_series(), index=False).to_numpy())]
    chosen = shuffled.index[: max(1, int(np.searchsorted(shuffled.cumsum().to_numpy(), sample_events, "right")))]
    mine = np.flatnonzero(users.isin(chosen).to_numpy())
    sub = events.iloc[mine]
    order = log_order(sub, by_user=True)
    ms = sub["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)[order]
    states: dict[str, SessionState] = {}
    hits = total = 0
    rows = zip(
        users.to_numpy()[mine][order].tolist(),
        sub["session_id"].fillna("").astype(str).to_numpy()[order].tolist(),
        sub["item_id"].astype(str).to_numpy()[order].tolist(),
        sub["type"].astype(str).to_numpy()[order].tolist(),
        ms.tolist(),
        positive[mine][order].tolist(),
        strict=True,
    )
    previous: dict[str, tuple[str, int]] = {}
    for user, session, item, etype, at, good in rows:
        state = states.get(user) or SessionState()
        # a copy of the row before (one listen written once per hashtag) is that event again, no repeat
        if good and previous.get(user) != (item, at):
            total += 1
            hits += item in state.last_items
        previous[user] = (item, at)
        states[user] = update_session(state, session, item, etype, at, "")
    return hits / total if total else 0.0


def repeat_share(events: pd.DataFrame) -> float:
    """The share of positives on an item the user had touched in an earlier session (impressions
    aside): high for music (replays), near zero for ratings (each item rated once). Events on the
    item in the same session are one engagement going on, not a return to it: a game bought then
    played (Steam), a product clicked, carted and bought (OTTO), a track played then liked. Whether
    the user comes back to an item in a later visit is what leaving seen items out decides."""
    positive = label(events).to_numpy() == 1
    if not positive.any():
        return 0.0
    # on integer keys, and only the order copied, instead of a sorted copy of the whole frame
    # hashed as (user, item) string pairs
    order = log_order(events)
    users = pd.factorize(events["user_id"])[0][order].astype(np.int64)
    items = pd.factorize(events["item_id"])[0][order].astype(np.int64)
    sessions = pd.factorize(events["session_id"])[0][order]
    # an event without a session (a client that sent none) is a visit of its own, not one shared visit
    blank = events["session_id"].fillna("").astype(str).eq("").to_numpy()[order]
    sessions = np.where(blank, -1 - np.arange(len(sessions)), sessions)
    touched = (events["type"] != "impression").to_numpy()[order]
    key = users * (int(items.max()) + 1) + items
    # a user's sessions follow one another in time, so "first touched in another session" is "earlier"
    first = pd.Series(sessions[touched]).groupby(key[touched]).first()
    returned = first.reindex(key).to_numpy() != sessions
    return float(returned[positive[order]].mean())
