"""The feature batches a materialization publishes: the declared user and item views (run by
``engine`` from the declarations), the session history and the consent flags.

Every entity's rows depend on that entity's own events only, so a few entities can be recomputed
alone (incremental materialization). Deterministic: the same log gives byte-identical frames (no
wall clock, stable sorts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_repo import declarations, engine
from setlist.consent import FLAGS, latest, personalizable  # the consent rules live in the shared core
from setlist.contract import ITEM_TYPES
from setlist.features import LIGHT_SESSION_TYPES, SessionState, update_session
from setlist.featureset import FeatureSet
from setlist.search_terms import SearchGenres

DAY = pd.Timedelta(days=1)


@dataclass
class FeatureBatches:
    user_profile: pd.DataFrame
    item_stats: pd.DataFrame
    session: pd.DataFrame
    consent: pd.DataFrame
    genres: list[str]
    as_of: pd.Timestamp
    #: per view, the end of the last day with an event that view may use (consent decides which):
    #: its freshness is judged against that, not against events it must leave out; absent: ``as_of``
    fresh_as_of: dict[str, pd.Timestamp] = field(default_factory=dict)

    def freshness_as_of(self, view: str) -> pd.Timestamp:
        return self.fresh_as_of.get(view, self.as_of)


def fresh_as_of(user_newest: pd.Timestamp | None, item_newest: pd.Timestamp | None) -> dict[str, pd.Timestamp]:
    """``FeatureBatches.fresh_as_of`` from each view's newest usable event (None: it has none)."""
    ends = {"user_profile": user_newest, "item_stats": item_newest}
    return {view: pd.Timestamp(t).floor("D") + DAY for view, t in ends.items() if t is not None and pd.notna(t)}


def fresh_from_consent(consent: pd.DataFrame, items_newest: object = None) -> dict[str, pd.Timestamp]:
    """``fresh_as_of`` off the consent rows, each stamped at its user's last event: the newest row
    of the users with a consent is the newest event the view needing it may use. Item stats count
    item events only, not searches or the sampled light types: ``items_newest``, the newest event
    they count, judges them where the caller knows it (a shop's log that ends in views after its
    last purchase would otherwise fail freshness on every build)."""

    def newest_of(flag: str) -> pd.Timestamp | None:
        stamps = consent.loc[consent[flag].fillna(False).astype(bool), "event_timestamp"]
        return stamps.max() if len(stamps) else None

    items = items_newest if items_newest is not None and pd.notna(items_newest) else newest_of("consent_analytics")
    return fresh_as_of(newest_of("consent_personalization"), items)


@dataclass(frozen=True)
class Catalog:
    """What the builders need from the item catalogue. ``term_key``: the key stored search terms were
    hashed with (``Settings.secret_hmac_key``), so that the sessions match them as Track does."""

    items: pd.DataFrame
    genres: list[str]
    item_genre: pd.Series
    term_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, items: pd.DataFrame, term_key: bytes | None = None) -> Catalog:
        genres = sorted(set(items["genre"].fillna("unknown").astype(str)) | {"unknown"})
        return cls(items, genres, items.set_index("item_id")["genre"].fillna("unknown").astype(str), term_key)

    @cached_property
    def search_genre(self) -> SearchGenres:
        """A stored search → its genre, by the text index training builds from the same catalogue."""
        return SearchGenres.of(self.items, self.genres, self.term_key)

    def genre_of_search(self, stored: str | None) -> str:
        """``search_genre``, built on the first search: a log without searches never builds the index."""
        return self.search_genre(stored)


def build_consent(events: pd.DataFrame, default: bool) -> pd.DataFrame:
    """Every user's consent flags (the latest explicit ones, ``default`` where none was ever given),
    stamped at the user's last event."""
    last = events.groupby("user_id", sort=True).tail(1).sort_values("user_id", kind="mergesort")
    users = last["user_id"].to_numpy()
    return (
        pd.DataFrame(
            {
                "user_id": users,
                "event_timestamp": last["timestamp"].to_numpy(),
                **{flag: latest(events, flag, default).reindex(users).to_numpy() for flag in FLAGS},
            }
        )
        .sort_values("user_id", kind="mergesort")
        .reset_index(drop=True)
    )


def build_user_profile(
    ev: pd.DataFrame,
    catalog: Catalog,
    features: FeatureSet | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The ``user_profile`` view: every declared user feature, from personalizable events."""
    fs = features or declarations.load()
    return engine.compute("user", ev, fs.view("user_profile"), catalog.items, tables, quiet=fs.built_in())


def build_item_stats(
    ev: pd.DataFrame,
    catalog: Catalog,
    features: FeatureSet | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The ``item_stats`` view: every declared item feature."""
    fs = features or declarations.load()
    return engine.compute("item", ev, fs.view("item_stats"), catalog.items, tables, quiet=fs.built_in())


def build_sessions(
    ev: pd.DataFrame, item_genre: pd.Series, search_genre: Callable[[str | None], str] | None = None
) -> pd.DataFrame:
    """One row per event with the session state *before* that event would be too late to be
    useful online, so rows hold the state after it; training labels join at ``ts - 1ms``.
    Rows are ordered by (time, user), which identifies a row, so any subset of users merged
    back into the whole gives the same file.

    The columns are ``SessionState.as_features`` field by field (the tests hold them equal),
    filled into preallocated arrays. ``update_session`` replaces its lists and never changes one
    in place, so consecutive rows share the state's list objects instead of copies: the blocked
    list (up to 50 items) changes only on a skip, and copying it for every row was most of this
    frame's memory.

    A search steers the session's genre as it does online, through ``search_genre`` (the stored
    query → the genre the text index gives it; ``Catalog.search_genre``); without one it does not."""
    t_all = ev["type"].to_numpy()
    light = np.isin(t_all, list(LIGHT_SESSION_TYPES))
    n = int((~light).sum())
    obj = {
        k: np.empty(n, dtype=object)
        for k in ("user_id", "session_id", "session_last_items", "session_blocked_items", "session_genre")
    }
    rate, length, updated, stamp = np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    genre = ev["item_id"].map(item_genre).fillna("").to_numpy()
    if search_genre is not None and "query" in ev.columns:
        searches = np.flatnonzero(t_all == "search")
        genre[searches] = [search_genre(q) for q in ev["query"].to_numpy()[searches]]
    ts_ms = (ev["timestamp"].astype("int64") // 1_000_000).to_numpy()
    states: dict[str, SessionState] = {}
    k = 0
    for u, s, i, t, ms, g, skip in zip(
        ev["user_id"].to_numpy(),
        ev["session_id"].fillna("").to_numpy(),
        ev["item_id"].to_numpy(),
        t_all,
        ts_ms,
        genre,
        light,
    ):
        st = update_session(states.get(u, SessionState()), s, i, t, int(ms), g)
        states[u] = st
        if skip:
            continue
        obj["user_id"][k], obj["session_id"][k], obj["session_genre"][k] = u, st.session_id, st.genre
        obj["session_last_items"][k], obj["session_blocked_items"][k] = st.last_items, st.blocked_items
        rate[k], length[k], updated[k], stamp[k] = st.skip_rate, st.length, st.updated_ms, ms
        k += 1
    frame = pd.DataFrame(
        {
            "user_id": obj["user_id"],
            "event_timestamp": pd.to_datetime(stamp, unit="ms", utc=True),
            "session_id": obj["session_id"],
            "session_last_items": obj["session_last_items"],
            "session_blocked_items": obj["session_blocked_items"],
            "session_skip_rate": rate,
            "session_genre": obj["session_genre"],
            "session_length": length,
            "session_updated_ms": updated,
        }
    )
    # (time, user) order on integer keys; of several rows in the same millisecond the last wins
    user_code = pd.factorize(obj["user_id"], sort=True)[0]
    order = np.lexsort((user_code, stamp))
    key_t, key_u = stamp[order], user_code[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (key_t[1:] != key_t[:-1]) | (key_u[1:] != key_u[:-1])
    return frame.take(order[last]).reset_index(drop=True)


def _first_of_each_id(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Positions that keep the first row of each event id. Track stores a retried event once, but a
    crash between its journal and its dedupe mark can store it twice: counted once here."""
    first = pc.index_in(pc.unique(ids), value_set=ids).to_numpy()  # first position of each distinct id
    return np.sort(first) if len(first) < len(ids) else np.arange(len(ids))


def prepare(events: pd.DataFrame) -> pd.DataFrame:
    """Events in (timestamp, event_id) order with nanosecond timestamps, as the builders expect."""
    # the log stores milliseconds; the integer arithmetic assumes nanoseconds
    ts = pd.to_datetime(events["timestamp"], utc=True).dt.as_unit("ns")
    # a stable sort on (time, event id), as pandas' mergesort would do, in Arrow: comparing a
    # million Python strings dominated the whole build
    keys = pa.table({"t": ts.astype("int64").to_numpy(), "e": pa.array(events["event_id"].to_numpy(), pa.string())})
    order = pc.sort_indices(keys, sort_keys=[("t", "ascending"), ("e", "ascending")]).to_numpy()
    order = order[_first_of_each_id(keys["e"].take(order))]
    events = events.take(order).reset_index(drop=True)
    events["timestamp"] = ts.take(order).reset_index(drop=True)
    return events.drop(columns=["event_id"])  # only the order needed it; it is the widest column


def prepare_table(events: pa.Table) -> pa.Table:
    """``prepare`` for events still in Arrow (a log read): sorted while compact, so the pandas
    frame is made once, in its final order."""
    events = events.take(pc.sort_indices(events, sort_keys=[("timestamp", "ascending"), ("event_id", "ascending")]))
    events = events.take(_first_of_each_id(events["event_id"])).drop_columns(["event_id"])
    at = events.schema.get_field_index("timestamp")
    return events.set_column(at, "timestamp", events["timestamp"].cast(pa.timestamp("ns", tz="UTC")))


def as_of(events: pd.DataFrame) -> pd.Timestamp:
    """The end of the last day with events: every snapshot is stamped at or before it."""
    return pd.Timestamp(events["timestamp"].max()).floor("D") + DAY


def build_users(
    events: pd.DataFrame,
    catalog: Catalog,
    features: FeatureSet | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
    *,
    consent_default: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """User profile, sessions and consent from prepared events (all events of the users wanted).
    Users without personalization consent get no profile row at all, so none of their attributes
    (from events or from a registered user table) reaches the store."""
    personal = personalizable(events, consent_default).reset_index(drop=True)
    return (
        build_user_profile(personal, catalog, features, tables),
        build_sessions(personal, catalog.item_genre, catalog.genre_of_search),
        build_consent(events, consent_default),
    )


def build_items(
    events: pd.DataFrame,
    catalog: Catalog,
    features: FeatureSet | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
    *,
    analytics: pd.Series,
) -> pd.DataFrame:
    """Item stats from prepared events (all events of the items wanted), counting only users whose
    analytics consent (``analytics``: a flag per user, from all of each user's events) is on."""
    return build_item_stats(counted_events(events, analytics), catalog, features, tables)


def counted_events(events: pd.DataFrame, analytics: pd.Series) -> pd.DataFrame:
    """The events item stats count: item events of users whose analytics consent is on."""
    allowed = analytics.index[analytics.to_numpy(dtype=bool)]
    # item stats describe what was done to items: a search or a feature use names none, and the
    # light types are sampled (their counts would need their weights)
    about_items = events["type"].isin(ITEM_TYPES).to_numpy()
    return events[about_items & events["user_id"].isin(allowed).to_numpy()].reset_index(drop=True)


def build(
    events: pd.DataFrame,
    items: pd.DataFrame,
    features: FeatureSet | None = None,
    user_tables: dict[str, pd.DataFrame] | None = None,
    item_tables: dict[str, pd.DataFrame] | None = None,
    *,
    consent_default: bool,
) -> FeatureBatches:
    """Events (already free of erased users) + item metadata → the four feature batches."""
    return build_prepared(prepare(events), items, features, user_tables, item_tables, consent_default=consent_default)


def build_prepared(
    events: pd.DataFrame,
    items: pd.DataFrame,
    features: FeatureSet | None = None,
    user_tables: dict[str, pd.DataFrame] | None = None,
    item_tables: dict[str, pd.DataFrame] | None = None,
    *,
    consent_default: bool,
    term_key: bytes | None = None,
) -> FeatureBatches:
    """``build`` for events already ``prepare``d (e.g. read with ``read_events(prepared=True)``).
    Registered tables come loaded (``engine.load_tables``), user tables keyed by pseudonym.
    ``term_key``: what stored search terms were hashed with (``Catalog``)."""
    fs = features or declarations.load()
    catalog = Catalog.of(items, term_key)
    profile, session, consent = build_users(events, catalog, fs, user_tables, consent_default=consent_default)
    analytics = consent.set_index("user_id")["consent_analytics"]
    counted = counted_events(events, analytics)
    return FeatureBatches(
        user_profile=profile,
        item_stats=build_item_stats(counted, catalog, fs, item_tables),
        session=session,
        consent=consent,
        genres=catalog.genres,
        as_of=as_of(events),
        fresh_as_of=fresh_from_consent(consent, counted["timestamp"].max() if len(counted) else None),
    )
