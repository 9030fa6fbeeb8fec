"""Batch features computed from the event log, as daily snapshots.

Each snapshot row is stamped at the *end* of its day and summarises events up to then, so a
point-in-time join at a label's timestamp only ever sees days that were already over. Rows are
written for (entity, day) pairs with activity that day; Feast's TTL bounds how long a row lasts.

Every entity's rows depend on that entity's own events only (a user's on the user's events, an
item's on the item's events and catalogue row), and windows are computed over the days that have
events (``windows_agg``), so memory and time grow with events, not with the span of the log, and a
few entities can be recomputed alone (incremental materialization).
Deterministic: the same log gives byte-identical frames (no wall clock, stable sorts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from setlist.contract import POSITIVE_TYPES
from setlist.features import SessionState, update_session

from .windows_agg import DAY_NS, DayRows, day_rows, trailing

DAY = pd.Timedelta(days=1)
_NEGATIVE = ("skip", "not_interested")


@dataclass
class FeatureBatches:
    user_profile: pd.DataFrame
    item_stats: pd.DataFrame
    session: pd.DataFrame
    consent: pd.DataFrame
    genres: list[str]
    as_of: pd.Timestamp


@dataclass(frozen=True)
class Catalog:
    """What the builders need from the item catalogue."""
    items: pd.DataFrame
    genres: list[str]
    item_genre: pd.Series

    @classmethod
    def of(cls, items: pd.DataFrame) -> "Catalog":
        genres = sorted(set(items["genre"].fillna("unknown").astype(str)) | {"unknown"})
        return cls(items, genres, items.set_index("item_id")["genre"].fillna("unknown").astype(str))


def personalizable(events: pd.DataFrame) -> pd.DataFrame:
    """Events of users whose latest personalization consent is on. Consent is enforced here,
    at the only door to personalization features and training sets."""
    if events.empty:
        return events
    latest = events.sort_values("timestamp", kind="mergesort").groupby("user_id")["consent_personalization"].last()
    allowed = latest[latest.fillna(True).astype(bool)].index
    return events[events["user_id"].isin(allowed)]


def opted_out_users(events: pd.DataFrame) -> set[str]:
    latest = events.sort_values("timestamp", kind="mergesort").groupby("user_id")["consent_personalization"].last()
    return set(latest[~latest.fillna(True).astype(bool)].index)


def build_consent(events: pd.DataFrame) -> pd.DataFrame:
    """Every user's latest consent flags, stamped at the event that carried them."""
    last = events.groupby("user_id", sort=True).tail(1)
    return pd.DataFrame({
        "user_id": last["user_id"].to_numpy(),
        "event_timestamp": last["timestamp"].to_numpy(),
        "consent_personalization": last["consent_personalization"].fillna(True).astype(bool).to_numpy(),
        "consent_analytics": last["consent_analytics"].fillna(True).astype(bool).to_numpy(),
    }).sort_values("user_id", kind="mergesort").reset_index(drop=True)


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def _snapshots(rows: DayRows) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(rows.snapshot_ns(), utc=True))


def _in_time_order(frame: pd.DataFrame, rows: DayRows) -> pd.DataFrame:
    """Rows by (snapshot, entity id): entity codes follow the sorted ids, so integer keys do."""
    return frame.take(np.lexsort((rows.entity, rows.day))).reset_index(drop=True)


def _group(ev: pd.DataFrame, key: str) -> tuple[np.ndarray, DayRows, np.ndarray, np.ndarray, np.ndarray]:
    """Entity ids, (entity, day) rows, event types, play values and timestamps (ns)."""
    # factorize hashes and sorts only the distinct ids (np.unique sorts every row's string)
    code, ids = pd.factorize(ev[key].to_numpy(), sort=True)
    ids = np.asarray(ids, dtype=object)
    ts = ev["timestamp"].astype("int64").to_numpy()
    rows = day_rows(code.reshape(-1), ts // DAY_NS)
    return ids, rows, ev["type"].to_numpy(), ev["value"].astype("float64").fillna(0).to_numpy(), ts


def build_user_profile(ev: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    users, rows, t, val, ts = _group(ev, "user_id")
    genres = catalog.genres
    is_play, is_skip, is_like = t == "play", np.isin(t, _NEGATIVE), np.isin(t, list(POSITIVE_TYPES))
    plays, skips, likes = (rows.sum(m) for m in (is_play, is_skip, is_like))
    listen = rows.sum(np.where(is_play, val, 0.0))
    active = (rows.sum(t != "impression") > 0).astype(np.float64)
    p7 = trailing(rows, plays, 7)
    p30, s30, l30, li30, a30 = trailing(rows, np.column_stack([plays, skips, likes, listen, active]), 30).T
    gidx = pd.Categorical(ev["item_id"].map(catalog.item_genre).fillna("unknown"), categories=genres).codes
    positive = is_like | (is_play & (val >= 0.5))
    a = trailing(rows, rows.sum_by(positive, gidx.astype(np.int64), len(genres)), 30)
    snap = _snapshots(rows)
    total = a.sum(axis=1, keepdims=True)
    norm = np.divide(a, total, out=np.zeros_like(a), where=total > 0).astype(np.float32)
    frame = pd.DataFrame({
        "user_id": users[rows.entity],
        "event_timestamp": snap,
        "user_plays_7d": p7.astype(np.int64),
        "user_plays_30d": p30.astype(np.int64),
        "user_likes_30d": l30.astype(np.int64),
        "user_active_days_30d": a30.astype(np.int64),
        "user_skip_rate_30d": _rate(s30, p30 + s30),
        "user_completion_30d": _rate(li30, p30),
        "user_days_since_last": np.maximum((snap.asi8 - rows.last(ts)) / DAY.value, 0.0),
        "user_genre_affinity": list(norm),
        "user_top_genre": np.where(total[:, 0] > 0, np.array(genres, dtype=object)[norm.argmax(axis=1)], ""),
    })
    return _in_time_order(frame, rows)


def build_item_stats(ev: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    ids, rows, t, val, ts = _group(ev, "item_id")
    is_play = t == "play"
    daily = np.column_stack([rows.sum(is_play), rows.sum(np.isin(t, _NEGATIVE)),
                             rows.sum(np.isin(t, list(POSITIVE_TYPES))), rows.sum(np.where(is_play, val, 0.0))])
    p1 = daily[:, 0]
    p7 = trailing(rows, p1, 7)
    p30, s30, l30, li30 = trailing(rows, daily, 30).T
    meta = catalog.items.set_index("item_id").reindex(ids)
    first_seen = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_seen, rows.entity, rows.first(ts))
    release = pd.to_datetime(meta["release_date"], utc=True).dt.as_unit("ns")
    release_ns = np.where(release.isna().to_numpy(), first_seen, release.astype("int64").to_numpy())
    snap = _snapshots(rows)
    e = rows.entity
    frame = pd.DataFrame({
        "item_id": ids[e],
        "event_timestamp": snap,
        "item_plays_1d": p1.astype(np.int64),
        "item_plays_7d": p7.astype(np.int64),
        "item_plays_30d": p30.astype(np.int64),
        "item_skip_rate_30d": _rate(s30, p30 + s30),
        # likes can outnumber plays+skips (a like without a logged play), so the rate is capped
        "item_like_rate_30d": np.minimum(_rate(l30, p30 + s30), 1.0),
        "item_completion_30d": _rate(li30, p30),
        "item_age_days": np.maximum((snap.asi8 - release_ns[e]) / DAY.value, 0.0),
        "item_duration_s": meta["duration_s"].astype("float64").fillna(0.0).to_numpy()[e],
        "item_genre": meta["genre"].fillna("unknown").astype(str).to_numpy()[e],
    })
    return _in_time_order(frame, rows)


def build_sessions(ev: pd.DataFrame, item_genre: pd.Series) -> pd.DataFrame:
    """One row per event with the session state *before* that event would be too late to be
    useful online, so rows hold the state after it; training labels join at ``ts - 1ms``.
    Rows are ordered by (time, user), which identifies a row, so any subset of users merged
    back into the whole gives the same file.

    The columns are ``SessionState.as_features`` field by field (the tests hold them equal),
    filled into preallocated arrays. ``update_session`` replaces its lists and never changes one
    in place, so consecutive rows share the state's list objects instead of copies: the blocked
    list (up to 50 items) changes only on a skip, and copying it for every row was most of this
    frame's memory."""
    t_all = ev["type"].to_numpy()
    n = int((t_all != "impression").sum())
    obj = {k: np.empty(n, dtype=object) for k in ("user_id", "session_id", "session_last_items",
                                                  "session_blocked_items", "session_genre")}
    rate, length, updated, stamp = np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    genre = ev["item_id"].map(item_genre).fillna("").to_numpy()
    ts_ms = (ev["timestamp"].astype("int64") // 1_000_000).to_numpy()
    states: dict[str, SessionState] = {}
    k = 0
    for u, s, i, t, ms, g in zip(ev["user_id"].to_numpy(), ev["session_id"].fillna("").to_numpy(),
                                 ev["item_id"].to_numpy(), t_all, ts_ms, genre):
        st = update_session(states.get(u, SessionState()), s, i, t, int(ms), g)
        states[u] = st
        if t == "impression":
            continue
        obj["user_id"][k], obj["session_id"][k], obj["session_genre"][k] = u, st.session_id, st.genre
        obj["session_last_items"][k], obj["session_blocked_items"][k] = st.last_items, st.blocked_items
        rate[k], length[k], updated[k], stamp[k] = st.skip_rate, st.length, st.updated_ms, ms
        k += 1
    frame = pd.DataFrame({
        "user_id": obj["user_id"], "event_timestamp": pd.to_datetime(stamp, unit="ms", utc=True),
        "session_id": obj["session_id"], "session_last_items": obj["session_last_items"],
        "session_blocked_items": obj["session_blocked_items"], "session_skip_rate": rate,
        "session_genre": obj["session_genre"], "session_length": length, "session_updated_ms": updated,
    })
    # (time, user) order on integer keys; of several rows in the same millisecond the last wins
    user_code = pd.factorize(obj["user_id"], sort=True)[0]
    order = np.lexsort((user_code, stamp))
    key_t, key_u = stamp[order], user_code[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (key_t[1:] != key_t[:-1]) | (key_u[1:] != key_u[:-1])
    return frame.take(order[last]).reset_index(drop=True)


def prepare(events: pd.DataFrame) -> pd.DataFrame:
    """Events in (timestamp, event_id) order with nanosecond timestamps, as the builders expect."""
    # the log stores milliseconds; the integer arithmetic assumes nanoseconds
    ts = pd.to_datetime(events["timestamp"], utc=True).dt.as_unit("ns")
    # a stable sort on (time, event id), as pandas' mergesort would do, in Arrow: comparing a
    # million Python strings dominated the whole build
    keys = pa.table({"t": ts.astype("int64").to_numpy(), "e": pa.array(events["event_id"].to_numpy(), pa.string())})
    order = pc.sort_indices(keys, sort_keys=[("t", "ascending"), ("e", "ascending")]).to_numpy()
    events = events.take(order).reset_index(drop=True)
    events["timestamp"] = ts.take(order).reset_index(drop=True)
    return events.drop(columns=["event_id"])  # only the order needed it; it is the widest column


def prepare_table(events: pa.Table) -> pa.Table:
    """``prepare`` for events still in Arrow (a log read): sorted while compact, so the pandas
    frame is made once, in its final order."""
    events = events.take(pc.sort_indices(events, sort_keys=[("timestamp", "ascending"), ("event_id", "ascending")]))
    events = events.drop_columns(["event_id"])
    at = events.schema.get_field_index("timestamp")
    return events.set_column(at, "timestamp", events["timestamp"].cast(pa.timestamp("ns", tz="UTC")))


def as_of(events: pd.DataFrame) -> pd.Timestamp:
    """The end of the last day with events: every snapshot is stamped at or before it."""
    return pd.Timestamp(events["timestamp"].max()).floor("D") + DAY


def build_users(events: pd.DataFrame, catalog: Catalog) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """User profile, sessions and consent from prepared events (all events of the users wanted)."""
    personal = personalizable(events).reset_index(drop=True)
    return build_user_profile(personal, catalog), build_sessions(personal, catalog.item_genre), build_consent(events)


def build_items(events: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Item stats from prepared events (all events of the items wanted)."""
    analytics = events[events["consent_analytics"].fillna(True).astype(bool)].reset_index(drop=True)
    return build_item_stats(analytics, catalog)


def build(events: pd.DataFrame, items: pd.DataFrame) -> FeatureBatches:
    """Events (already free of erased users) + item metadata → the four feature batches."""
    return build_prepared(prepare(events), items)


def build_prepared(events: pd.DataFrame, items: pd.DataFrame) -> FeatureBatches:
    """``build`` for events already ``prepare``d (e.g. read with ``read_events(prepared=True)``)."""
    catalog = Catalog.of(items)
    profile, session, consent = build_users(events, catalog)
    return FeatureBatches(user_profile=profile, item_stats=build_items(events, catalog), session=session,
                          consent=consent, genres=catalog.genres, as_of=as_of(events))
