"""Batch features computed from the event log, as daily snapshots.

Each snapshot row is stamped at the *end* of its day and summarises events up to then, so a
point-in-time join at a label's timestamp only ever sees days that were already over. Rows are
written for (entity, day) pairs with activity that day; Feast's TTL bounds how long a row lasts.
Deterministic: the same log gives byte-identical frames (no wall clock, stable sorts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from setlist.contract import POSITIVE_TYPES
from setlist.features import SESSION_FIELDS, SessionState, update_session

DAY = pd.Timedelta(days=1)


@dataclass
class FeatureBatches:
    user_profile: pd.DataFrame
    item_stats: pd.DataFrame
    session: pd.DataFrame
    consent: pd.DataFrame
    genres: list[str]
    as_of: pd.Timestamp


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


def _window(daily: np.ndarray, width: int) -> np.ndarray:
    """Trailing-window sums along axis 1 (days) via cumulative sums."""
    c = np.cumsum(daily, axis=1, dtype=np.float64)
    out = c.copy()
    out[:, width:] -= c[:, :-width]
    return out


def _snapshots(t0: pd.Timestamp, day: np.ndarray) -> pd.DatetimeIndex:
    """Snapshot stamps: the end of each day, i.e. the start of the next."""
    return pd.DatetimeIndex(t0 + pd.to_timedelta(day + 1, unit="D"))


def _grid(codes: np.ndarray, day: np.ndarray, weights: np.ndarray, n: int, days: int) -> np.ndarray:
    grid = np.zeros((n, days), dtype=np.float64)
    np.add.at(grid, (codes, day), weights)
    return grid


def build_user_profile(ev: pd.DataFrame, t0: pd.Timestamp, days: int, genres: list[str],
                       item_genre: pd.Series) -> pd.DataFrame:
    users, ucode = np.unique(ev["user_id"].to_numpy(), return_inverse=True)
    d = ev["_day"].to_numpy()
    t = ev["type"].to_numpy()
    val = ev["value"].astype("float64").fillna(0).to_numpy()
    is_play, is_skip = t == "play", (t == "skip") | (t == "not_interested")
    is_like = np.isin(t, list(POSITIVE_TYPES))
    n = len(users)
    plays, skips, likes = (_grid(ucode, d, m.astype(float), n, days) for m in (is_play, is_skip, is_like))
    listen = _grid(ucode, d, np.where(is_play, val, 0.0), n, days)
    active = (_grid(ucode, d, (t != "impression").astype(float), n, days) > 0).astype(float)
    any_event = _grid(ucode, d, np.ones(len(ev)), n, days) > 0
    p7, p30, s30, l30, li30, a30 = (_window(plays, 7), _window(plays, 30), _window(skips, 30),
                                    _window(likes, 30), _window(listen, 30), _window(active, 30))
    gidx = pd.Categorical(ev["item_id"].map(item_genre).fillna("unknown"), categories=genres).codes
    positive = is_like | (is_play & (val >= 0.5))
    aff = np.zeros((n, days, len(genres)), dtype=np.float64)
    np.add.at(aff, (ucode[positive], d[positive], gidx[positive]), 1.0)
    aff = np.cumsum(aff, axis=1)
    aff[:, 30:] -= aff[:, :-30].copy()
    # groups come out sorted by (user, day), the same order np.nonzero walks the grid
    last_ns = ev["timestamp"].astype("int64").groupby([ucode, d]).max().to_numpy()

    rows_u, rows_d = np.nonzero(any_event)
    snap = _snapshots(t0, rows_d)
    a = aff[rows_u, rows_d]
    total = a.sum(axis=1, keepdims=True)
    norm = np.divide(a, total, out=np.zeros_like(a), where=total > 0).astype(np.float32)
    since = (snap.asi8 - last_ns) / DAY.value
    denom = p30[rows_u, rows_d] + s30[rows_u, rows_d]
    frame = pd.DataFrame({
        "user_id": users[rows_u],
        "event_timestamp": snap,
        "user_plays_7d": p7[rows_u, rows_d].astype(np.int64),
        "user_plays_30d": p30[rows_u, rows_d].astype(np.int64),
        "user_likes_30d": l30[rows_u, rows_d].astype(np.int64),
        "user_active_days_30d": a30[rows_u, rows_d].astype(np.int64),
        "user_skip_rate_30d": np.divide(s30[rows_u, rows_d], denom, out=np.zeros(len(rows_u)), where=denom > 0),
        "user_completion_30d": np.divide(li30[rows_u, rows_d], p30[rows_u, rows_d], out=np.zeros(len(rows_u)),
                                         where=p30[rows_u, rows_d] > 0),
        "user_days_since_last": np.maximum(since, 0.0),
        "user_genre_affinity": list(norm),
        "user_top_genre": np.where(total[:, 0] > 0, np.array(genres, dtype=object)[norm.argmax(axis=1)], ""),
    })
    return frame.sort_values(["event_timestamp", "user_id"], kind="mergesort").reset_index(drop=True)


def build_item_stats(ev: pd.DataFrame, items: pd.DataFrame, t0: pd.Timestamp, days: int) -> pd.DataFrame:
    ids, icode = np.unique(ev["item_id"].to_numpy(), return_inverse=True)
    d = ev["_day"].to_numpy()
    t = ev["type"].to_numpy()
    val = ev["value"].astype("float64").fillna(0).to_numpy()
    n = len(ids)
    is_play = t == "play"
    plays = _grid(icode, d, is_play.astype(float), n, days)
    skips = _grid(icode, d, ((t == "skip") | (t == "not_interested")).astype(float), n, days)
    likes = _grid(icode, d, np.isin(t, list(POSITIVE_TYPES)).astype(float), n, days)
    listen = _grid(icode, d, np.where(is_play, val, 0.0), n, days)
    any_event = _grid(icode, d, np.ones(len(ev)), n, days) > 0
    p1, p7, p30, s30, l30, li30 = (plays, _window(plays, 7), _window(plays, 30), _window(skips, 30),
                                   _window(likes, 30), _window(listen, 30))
    meta = items.set_index("item_id").reindex(ids)
    first_seen = ev["timestamp"].astype("int64").groupby(icode).min().to_numpy()
    release = pd.to_datetime(meta["release_date"], utc=True).dt.as_unit("ns")
    release_ns = np.where(release.isna().to_numpy(), first_seen, release.astype("int64").to_numpy())
    rows_i, rows_d = np.nonzero(any_event)
    snap = _snapshots(t0, rows_d)
    g = lambda a: a[rows_i, rows_d]  # noqa: E731
    denom = g(p30) + g(s30)
    frame = pd.DataFrame({
        "item_id": ids[rows_i],
        "event_timestamp": snap,
        "item_plays_1d": g(p1).astype(np.int64),
        "item_plays_7d": g(p7).astype(np.int64),
        "item_plays_30d": g(p30).astype(np.int64),
        "item_skip_rate_30d": np.divide(g(s30), denom, out=np.zeros(len(rows_i)), where=denom > 0),
        # likes can outnumber plays+skips (a like without a logged play), so the rate is capped
        "item_like_rate_30d": np.minimum(np.divide(g(l30), denom, out=np.zeros(len(rows_i)), where=denom > 0), 1.0),
        "item_completion_30d": np.divide(g(li30), g(p30), out=np.zeros(len(rows_i)), where=g(p30) > 0),
        "item_age_days": np.maximum((snap.asi8 - release_ns[rows_i]) / DAY.value, 0.0),
        "item_duration_s": meta["duration_s"].astype("float64").fillna(0.0).to_numpy()[rows_i],
        "item_genre": meta["genre"].fillna("unknown").astype(str).to_numpy()[rows_i],
    })
    return frame.sort_values(["event_timestamp", "item_id"], kind="mergesort").reset_index(drop=True)


def build_sessions(ev: pd.DataFrame, item_genre: pd.Series) -> pd.DataFrame:
    """One row per event with the session state *before* that event would be too late to be
    useful online, so rows hold the state after it; training labels join at ``ts - 1ms``."""
    genre = ev["item_id"].map(item_genre).fillna("").to_numpy()
    cols: dict[str, list] = {k: [] for k in ("user_id", "event_timestamp", *SESSION_FIELDS)}
    states: dict[str, SessionState] = {}
    ts_ms = (ev["timestamp"].astype("int64") // 1_000_000).to_numpy()
    for u, s, i, t, ms, g in zip(ev["user_id"].to_numpy(), ev["session_id"].fillna("").to_numpy(),
                                 ev["item_id"].to_numpy(), ev["type"].to_numpy(), ts_ms, genre):
        st = update_session(states.get(u, SessionState()), s, i, t, int(ms), g)
        states[u] = st
        if t == "impression":
            continue
        f = st.as_features()
        cols["user_id"].append(u)
        cols["event_timestamp"].append(ms)
        for k in SESSION_FIELDS:
            cols[k].append(f[k])
    frame = pd.DataFrame(cols)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], unit="ms", utc=True)
    for k in ("session_length", "session_updated_ms"):
        frame[k] = frame[k].astype(np.int64)
    return frame.drop_duplicates(["user_id", "event_timestamp"], keep="last").reset_index(drop=True)


def build(events: pd.DataFrame, items: pd.DataFrame) -> FeatureBatches:
    """Events (already free of erased users) + item metadata → the three feature batches."""
    events = events.sort_values(["timestamp", "event_id"], kind="mergesort").reset_index(drop=True)
    # the log stores milliseconds; the integer arithmetic below assumes nanoseconds
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True).dt.as_unit("ns")
    genres = sorted(set(items["genre"].fillna("unknown").astype(str)) | {"unknown"})
    item_genre = items.set_index("item_id")["genre"].fillna("unknown").astype(str)
    t0 = events["timestamp"].min().floor("D")
    days = int((events["timestamp"].max().floor("D") - t0) / DAY) + 1
    events = events.assign(_day=((events["timestamp"] - t0) // DAY).astype(np.int64))
    personal = personalizable(events).reset_index(drop=True)
    analytics = events[events["consent_analytics"].fillna(True).astype(bool)].reset_index(drop=True)
    return FeatureBatches(
        user_profile=build_user_profile(personal, t0, days, genres, item_genre),
        item_stats=build_item_stats(analytics, items, t0, days),
        session=build_sessions(personal, item_genre),
        consent=build_consent(events),
        genres=genres,
        as_of=t0 + days * DAY,
    )
