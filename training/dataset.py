"""Training and evaluation matrices: candidates from stage one, features from Feast.

User, session, item and context features come from ``get_historical_features`` at each query's
timestamp (point-in-time correct), restricted to the run's feature service (``ranker_vN``); the
user×item block comes from the candidate index, the same code serving runs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo

import numpy as np
import pandas as pd
from feast import FeatureStore

from setlist.blend import margin_basis
from setlist.candidate_sources import cohort_key
from setlist.candidates import CandidateIndex, Candidates
from setlist.feature_layout import Layout
from setlist.features import CROSS_NAMES, SESSION_FIELDS, USER_TOP_GENRE, USER_VECTOR, effective_session
from setlist.featureset import Service
from setlist.request_time import hour_weekday
from training.asof import ITEM_VIEW, item_stats_at

#: the frame's column holding ``margin_basis`` of each row's query, over all its candidates
MARGIN_BASIS = "margin_basis"
#: the frame's column marking rows of queries that keep all their candidates (validation)
COMPLETE = "complete"


@dataclass
class RankingSet:
    frame: pd.DataFrame  # query_id, user_id, item_id, event_timestamp, label, MARGIN_BASIS + the service's inputs
    groups: np.ndarray  # rows per query, in frame order
    inputs: tuple[str, ...]  # the ranker's input columns, in order

    @property
    def X(self) -> np.ndarray:
        return self.frame[list(self.inputs)].to_numpy(np.float32)

    @property
    def y(self) -> np.ndarray:
        return self.frame["label"].to_numpy(np.float32)


def refs(view: str, names: Sequence[str]) -> list[str]:
    return [f"{view}:{n}" for n in names]


# Subsets of the feature service for the calls that need only part of it: a point-in-time join
# against the session view costs far more than one against the daily item snapshots, and the
# candidate rows of a query share its user and session state, fetched once per query instead.
def user_state_refs(svc: Service) -> list[str]:
    return refs("user_profile", (*svc.block("user"), USER_VECTOR, USER_TOP_GENRE)) + refs("session", SESSION_FIELDS)


def item_features(store: FeatureStore, rows: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The item view's ``names`` at each row's (item_id, event_timestamp), in row order."""
    found = item_stats_at(store, rows["item_id"].to_numpy(), rows["event_timestamp"], names)
    if found is not None:
        return found
    return historical(store, rows[["user_id", "item_id", "event_timestamp", "device"]], refs(ITEM_VIEW, names))


def layout(svc: Service) -> Layout:
    """The service's inputs from blocks that hold exactly the service's columns (training)."""
    return Layout(
        svc.inputs,
        {
            "user": svc.block("user"),
            "session": svc.block("session"),
            "request": svc.block("request"),
            "item": svc.block("item"),
            "user_item": CROSS_NAMES,
        },
    )


def historical(
    store: FeatureStore, entity_df: pd.DataFrame, features: Sequence[str] | str, zone: tzinfo = UTC
) -> pd.DataFrame:
    """Point-in-time features for each entity row, in row order: a feature service by name, or
    the given ``view:feature`` references.

    Feast's file offline store de-duplicates rows that share a view's join key and timestamp, so
    rows that share a user and moment (one query's candidates) are made distinct by stepping their
    timestamps back by whole microseconds: earlier, never later, so nothing leaks.
    """
    service = store.get_feature_service(features) if isinstance(features, str) else None
    entity_df = entity_df.reset_index(drop=True)
    ts = pd.to_datetime(entity_df["event_timestamp"], utc=True).dt.as_unit("us")
    step = entity_df.assign(event_timestamp=ts).groupby(["user_id", "event_timestamp"]).cumcount()
    entity_df = entity_df.assign(
        event_timestamp=ts - pd.to_timedelta(step.to_numpy(), unit="us"),
        # the on-demand request view's inputs, on the users' clock as Rank computes them
        request_hour=ts.dt.tz_convert(zone).dt.hour.astype("int64"),
        request_weekday=ts.dt.tz_convert(zone).dt.weekday.astype("int64"),
    )
    out = store.get_historical_features(entity_df=entity_df, features=service or list(features)).to_df()
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).dt.as_unit("us")
    keys = ["user_id", "item_id", "event_timestamp"]
    feature_cols = [c for c in out.columns if c not in entity_df.columns]
    merged = entity_df.merge(out[keys + feature_cols], on=keys, how="left", validate="one_to_one")
    if len(merged) != len(entity_df):
        raise RuntimeError(f"feature retrieval returned {len(merged)} rows for {len(entity_df)} entity rows")
    return merged


def query_state(store: FeatureStore, queries: pd.DataFrame, any_item: str, svc: Service) -> pd.DataFrame:
    """User profile and session state at each query's moment (item columns are ignored).

    Session rows go through ``effective_session`` exactly as serving reads them."""
    entity = queries[["query_id", "user_id", "event_timestamp", "device"]].assign(item_id=any_item)
    state = historical(store, entity, user_state_refs(svc))
    # in milliseconds whatever unit the join handed back: it returns nanoseconds, and reading them as
    # microseconds put every query 1,000 times later than itself, so every session looked long over
    now_ms = pd.to_datetime(state["event_timestamp"], utc=True).dt.as_unit("ms").astype("int64").to_numpy()
    rows = [
        effective_session(_session_dict(r), int(t))
        for r, t in zip(state[list(SESSION_FIELDS)].to_dict("records"), now_ms)
    ]
    for name in SESSION_FIELDS:
        state[name] = [r[name] for r in rows]
    return state


def _session_dict(row: dict) -> dict | None:
    updated = row.get("session_updated_ms")
    if updated is None or (isinstance(updated, float) and np.isnan(updated)):
        return None
    return row


def _items(v: object) -> list[str]:
    return [] if v is None or (isinstance(v, float) and np.isnan(v)) else [str(i) for i in v]


def exclusions(index: CandidateIndex, state: pd.Series) -> tuple[list[str], set[int]]:
    """Recently played (unless the index keeps them) and blocked (skipped, not interested) items are
    not offered again."""
    last = _items(state.get("session_last_items"))
    return last, index.excluded(last, _items(state.get("session_blocked_items")))


def generate_for(
    index: CandidateIndex, state: pd.Series, locale: str, device: str, n: int
) -> tuple[Candidates, list[str]]:
    last, exclude = exclusions(index, state)
    genres = tuple(g for g in (state.get("session_genre"), state.get(USER_TOP_GENRE)) if isinstance(g, str))
    return index.generate(state["user_id"], last, cohort_key(locale, device), exclude, n, genres=genres), last


def _cross(index: CandidateIndex, c: Candidates, state: pd.Series, last: list[str]) -> np.ndarray:
    aff = state.get(USER_VECTOR)
    aff = None if aff is None or (isinstance(aff, float) and np.isnan(aff)) else np.asarray(aff, np.float32)
    genre = state.get("session_genre")
    return index.cross_features(
        c, aff, str(state.get(USER_TOP_GENRE) or ""), "" if not isinstance(genre, str) else genre, last
    )


def numeric(state: pd.Series, names: tuple[str, ...]) -> np.ndarray:
    return pd.to_numeric(pd.Series([state.get(n) for n in names]), errors="coerce").to_numpy(np.float32)


def _subset(c: Candidates, sel: np.ndarray) -> Candidates:
    return Candidates(
        c.idx[sel],
        c.emb_score[sel],
        c.covis_score[sel],
        c.n_sources[sel],
        c.pop_rank[sel],
        c.personalized,
        c.knn()[sel],
    )


def training_rows(
    store: FeatureStore,
    index: CandidateIndex,
    queries: pd.DataFrame,
    labels: pd.DataFrame,
    n_candidates: int,
    negatives: int,
    seed: int,
    svc: Service,
    progress=None,
    complete: Collection[int] = (),
    zone: tzinfo = UTC,
) -> RankingSet:
    """Candidates per query, labelled by what followed: positives, and a sample of the rest; every
    candidate of the queries in ``complete`` (the validation queries, ranked as Rank ranks them:
    sampled negatives are easy, and a ranker that sorts them well can still lose to EASE at the head
    of the full list)."""
    rng = np.random.default_rng(seed)
    user_cols, session_cols = svc.block("user"), svc.block("session")
    state = query_state(store, queries, str(index.item_ids[0]), svc)
    by_query = {q: grp for q, grp in labels.groupby("query_id")}
    parts, crosses, users, sessions, requests, bases = [], [], [], [], [], []
    for row, q in zip(state.itertuples(index=False), queries.itertuples(index=False)):
        s = pd.Series(row._asdict())
        c, last = generate_for(index, s, q.locale, q.device, n_candidates)
        lab = by_query[q.query_id]
        known = dict(zip(index.item_ids[c.idx], range(len(c.idx))))
        pos = [known[i] for i in lab.loc[lab["label"] == 1, "item_id"] if i in known]
        if progress is not None:
            progress()
        if not pos:
            continue
        # Negatives are drawn from the candidates themselves, as Rank will see them: "shown but
        # skipped" items alone would teach the ranker to avoid what is popular in the intent.
        others = np.setdiff1d(np.arange(len(c.idx)), np.array(pos, dtype=np.int64))
        whole = q.query_id in complete
        sampled = (
            others if whole or not len(others) else rng.choice(others, size=min(negatives, len(others)), replace=False)
        )
        sel = np.concatenate([np.array(pos, dtype=np.int64), np.sort(sampled)])
        y = np.concatenate([np.ones(len(pos)), np.zeros(len(sampled))])
        crosses.append(_cross(index, _subset(c, sel), s, last))
        bases.append(margin_basis(c.knn())[sel])  # blend.MARGIN_FEATURE, over the whole list as served
        users.append(np.repeat(numeric(s, user_cols)[None, :], len(sel), axis=0))
        sessions.append(np.repeat(numeric(s, session_cols)[None, :], len(sel), axis=0))
        # the request's context on the users' clock, as Rank and the evaluation compute it
        hour, weekday = hour_weekday(q.event_timestamp, zone)
        requests.append(np.repeat([svc.request_values(str(q.device), hour, weekday)], len(sel), axis=0))
        parts.append(
            pd.DataFrame(
                {
                    "query_id": q.query_id,
                    "user_id": q.user_id,
                    "item_id": index.item_ids[c.idx[sel]],
                    "event_timestamp": q.event_timestamp,
                    "device": q.device,
                    "label": y,
                    COMPLETE: whole,
                }
            )
        )
    if not parts:
        raise ValueError("no query had a positive among its candidates: too little data to train a ranker")
    rows = pd.concat(parts, ignore_index=True)
    frame = rows.copy()
    if user_cols:
        frame[list(user_cols)] = np.vstack(users)
    if session_cols:
        frame[list(session_cols)] = np.vstack(sessions)
    request_cols = svc.block("request")
    if request_cols:
        frame[list(request_cols)] = np.vstack(requests).astype(np.float32)
    item_cols = svc.block("item")
    if item_cols:
        feats = item_features(store, rows, item_cols)
        for name in item_cols:
            frame[name] = pd.to_numeric(feats[name], errors="coerce").astype("float32").to_numpy()
    cross = np.vstack(crosses)
    for k, name in enumerate(CROSS_NAMES):
        if name in svc.inputs:
            frame[name] = cross[:, k]
    frame[MARGIN_BASIS] = np.concatenate(bases)
    return RankingSet(frame=frame, groups=frame.groupby("query_id", sort=False).size().to_numpy(), inputs=svc.inputs)


#: at most this many point-in-time item lookups per evaluation (each is one Feast retrieval)
MAX_ITEM_MOMENTS = 64


def daily_item_matrix(
    store,
    index: CandidateIndex,
    svc: Service,
    moments: pd.Series | None = None,
):
    """The service's item inputs per catalog index as of a moment. Item stats are daily snapshots, so the
    matrix at the start of a day is the point-in-time answer for all of that day.

    A per-user split asks at hundreds of different days; ``moments`` (the query times) then set a
    coarser step, so that at most ``MAX_ITEM_MOMENTS`` retrievals run. Rounding down only ever
    shows older statistics, never future ones."""
    cache: dict[pd.Timestamp, np.ndarray] = {}
    step = pd.Timedelta(days=1)
    if moments is not None and len(moments):
        span = pd.Timestamp(moments.max()) - pd.Timestamp(moments.min())
        step = max(step, pd.Timedelta(days=int(np.ceil(span / pd.Timedelta(days=1) / MAX_ITEM_MOMENTS))))
    names = list(svc.block("item"))
    items = index.item_ids.astype(str)

    def day_of(ts: pd.Timestamp) -> pd.Timestamp:
        day = ts.floor("D")
        return day - pd.Timedelta(days=(day - pd.Timestamp(0, tz="UTC")).days % step.days)

    if names and moments is not None and len(moments):
        # every day at once: each lookup reads the view's whole file (12.9M rows at 16M events)
        days = sorted({day_of(pd.Timestamp(t)) for t in moments})
        when = pd.Series(np.repeat(np.array(days, dtype="datetime64[us]"), len(items))).dt.tz_localize("UTC")
        found = item_stats_at(store, np.tile(items, len(days)), when, names)
        if found is not None:
            values = found[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
            cache.update(zip(days, values.reshape(len(days), len(items), len(names))))

    def at(ts: pd.Timestamp) -> np.ndarray:
        day = day_of(ts)
        if day not in cache:
            entity = pd.DataFrame({"item_id": items, "user_id": "", "device": "unknown", "event_timestamp": day})
            if not names:
                cache[day] = np.zeros((len(items), 0), np.float32)
            else:
                feats = item_features(store, entity, names)
                cache[day] = feats[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        return cache[day]

    return at
