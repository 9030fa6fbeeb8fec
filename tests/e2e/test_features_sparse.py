"""The sparse feature builder gives the same frames as the dense grids it replaced.

``_dense_reference`` below is the previous implementation, kept verbatim (entity × day grids over
the whole span of the log, sessions built with a copy of every list) so the new builder is checked
against it on the generated tiny world and on a sparse ratings-shaped log spanning twenty years.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_repo import build as sparse
from setlist.consent import analytics_events, personalizable
from setlist.contract import POSITIVE_TYPES
from setlist.features import SESSION_FIELDS, SessionState, update_session

DAY = pd.Timedelta(days=1)


# --- the previous (dense) implementation, the reference ---------------------------------------
def _window(daily: np.ndarray, width: int) -> np.ndarray:
    c = np.cumsum(daily, axis=1, dtype=np.float64)
    out = c.copy()
    out[:, width:] -= c[:, :-width]
    return out


def _snapshots(t0: pd.Timestamp, day: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(t0 + pd.to_timedelta(day + 1, unit="D"))


def _grid(codes: np.ndarray, day: np.ndarray, weights: np.ndarray, n: int, days: int) -> np.ndarray:
    grid = np.zeros((n, days), dtype=np.float64)
    np.add.at(grid, (codes, day), weights)
    return grid


def _dense_user_profile(
    ev: pd.DataFrame, t0: pd.Timestamp, days: int, genres: list[str], item_genre: pd.Series
) -> pd.DataFrame:
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
    p7, p30, s30, l30, li30, a30 = (
        _window(plays, 7),
        _window(plays, 30),
        _window(skips, 30),
        _window(likes, 30),
        _window(listen, 30),
        _window(active, 30),
    )
    gidx = pd.Categorical(ev["item_id"].map(item_genre).fillna("unknown"), categories=genres).codes
    positive = is_like | (is_play & (val >= 0.5))
    aff = np.zeros((n, days, len(genres)), dtype=np.float64)
    np.add.at(aff, (ucode[positive], d[positive], gidx[positive]), 1.0)
    aff = np.cumsum(aff, axis=1)
    aff[:, 30:] -= aff[:, :-30].copy()
    last_ns = ev["timestamp"].astype("int64").groupby([ucode, d]).max().to_numpy()

    rows_u, rows_d = np.nonzero(any_event)
    snap = _snapshots(t0, rows_d)
    a = aff[rows_u, rows_d]
    total = a.sum(axis=1, keepdims=True)
    norm = np.divide(a, total, out=np.zeros_like(a), where=total > 0).astype(np.float32)
    since = (snap.asi8 - last_ns) / DAY.value
    denom = p30[rows_u, rows_d] + s30[rows_u, rows_d]
    frame = pd.DataFrame(
        {
            "user_id": users[rows_u],
            "event_timestamp": snap,
            "user_plays_7d": p7[rows_u, rows_d].astype(np.int64),
            "user_plays_30d": p30[rows_u, rows_d].astype(np.int64),
            "user_likes_30d": l30[rows_u, rows_d].astype(np.int64),
            "user_active_days_30d": a30[rows_u, rows_d].astype(np.int64),
            "user_skip_rate_30d": np.divide(s30[rows_u, rows_d], denom, out=np.zeros(len(rows_u)), where=denom > 0),
            "user_completion_30d": np.divide(
                li30[rows_u, rows_d], p30[rows_u, rows_d], out=np.zeros(len(rows_u)), where=p30[rows_u, rows_d] > 0
            ),
            "user_days_since_last": np.maximum(since, 0.0),
            "user_genre_affinity": list(norm),
            "user_top_genre": np.where(total[:, 0] > 0, np.array(genres, dtype=object)[norm.argmax(axis=1)], ""),
        }
    )
    return frame.sort_values(["event_timestamp", "user_id"], kind="mergesort").reset_index(drop=True)


def _dense_item_stats(ev: pd.DataFrame, items: pd.DataFrame, t0: pd.Timestamp, days: int) -> pd.DataFrame:
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
    p1, p7, p30, s30, l30, li30 = (
        plays,
        _window(plays, 7),
        _window(plays, 30),
        _window(skips, 30),
        _window(likes, 30),
        _window(listen, 30),
    )
    meta = items.set_index("item_id").reindex(ids)
    first_seen = ev["timestamp"].astype("int64").groupby(icode).min().to_numpy()
    release = pd.to_datetime(meta["release_date"], utc=True).dt.as_unit("ns")
    release_ns = np.where(release.isna().to_numpy(), first_seen, release.astype("int64").to_numpy())
    rows_i, rows_d = np.nonzero(any_event)
    snap = _snapshots(t0, rows_d)

    def g(a):
        return a[rows_i, rows_d]

    denom = g(p30) + g(s30)
    frame = pd.DataFrame(
        {
            "item_id": ids[rows_i],
            "event_timestamp": snap,
            "item_plays_1d": g(p1).astype(np.int64),
            "item_plays_7d": g(p7).astype(np.int64),
            "item_plays_30d": g(p30).astype(np.int64),
            "item_skip_rate_30d": np.divide(g(s30), denom, out=np.zeros(len(rows_i)), where=denom > 0),
            "item_like_rate_30d": np.minimum(np.divide(g(l30), denom, out=np.zeros(len(rows_i)), where=denom > 0), 1.0),
            "item_completion_30d": np.divide(g(li30), g(p30), out=np.zeros(len(rows_i)), where=g(p30) > 0),
            "item_age_days": np.maximum((snap.asi8 - release_ns[rows_i]) / DAY.value, 0.0),
            "item_duration_s": meta["duration_s"].astype("float64").fillna(0.0).to_numpy()[rows_i],
            "item_genre": meta["genre"].fillna("unknown").astype(str).to_numpy()[rows_i],
        }
    )
    return frame.sort_values(["event_timestamp", "item_id"], kind="mergesort").reset_index(drop=True)


def _reference_sessions(ev: pd.DataFrame, item_genre: pd.Series) -> pd.DataFrame:
    genre = ev["item_id"].map(item_genre).fillna("").to_numpy()
    cols: dict[str, list] = {k: [] for k in ("user_id", "event_timestamp", *SESSION_FIELDS)}
    states: dict[str, SessionState] = {}
    ts_ms = (ev["timestamp"].astype("int64") // 1_000_000).to_numpy()
    for u, s, i, t, ms, g in zip(
        ev["user_id"].to_numpy(),
        ev["session_id"].fillna("").to_numpy(),
        ev["item_id"].to_numpy(),
        ev["type"].to_numpy(),
        ts_ms,
        genre,
    ):
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


def _dense_reference(events: pd.DataFrame, items: pd.DataFrame) -> dict[str, object]:
    """The old ``build`` (consent was never dense and is taken from the module)."""
    events = events.sort_values(["timestamp", "event_id"], kind="mergesort").reset_index(drop=True)
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True).dt.as_unit("ns")
    genres = sorted(set(items["genre"].fillna("unknown").astype(str)) | {"unknown"})
    item_genre = items.set_index("item_id")["genre"].fillna("unknown").astype(str)
    t0 = events["timestamp"].min().floor("D")
    days = int((events["timestamp"].max().floor("D") - t0) / DAY) + 1
    events = events.assign(_day=((events["timestamp"] - t0) // DAY).astype(np.int64))
    personal = personalizable(events, True).reset_index(drop=True)
    analytics = analytics_events(events, True).reset_index(drop=True)
    return {
        "user_profile": _dense_user_profile(personal, t0, days, genres, item_genre),
        "item_stats": _dense_item_stats(analytics, items, t0, days),
        "session": _reference_sessions(personal, item_genre),
        "consent": sparse.build_consent(events, True),
        "genres": genres,
        "as_of": t0 + days * DAY,
    }


# --- data -------------------------------------------------------------------------------------
def sparse_ratings_log(
    seed: int = 3, users: int = 60, items: int = 400, years: float = 20.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A ratings-shaped log: each user rates in a few bursts scattered over ``years``; a few
    opted-out users and analytics-off events; some items missing from the catalogue."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2001-01-01", tz="UTC").value
    span = int(years * 365.25 * 86_400e9)
    rows = []
    for u in range(users):
        for _ in range(int(rng.integers(1, 5))):
            at = start + int(rng.integers(0, span))
            n = int(rng.integers(1, 40))
            # a burst: minutes to days apart, sometimes continuing past midnight
            ts = at + np.cumsum(rng.exponential(3_600e9 * rng.choice([0.05, 1, 24]), n)).astype(np.int64)
            rows.append(
                pd.DataFrame(
                    {"user_id": f"u{u:04d}", "ts": ts, "item_id": [f"m{i:05d}" for i in rng.zipf(1.3, n) % items]}
                )
            )
    ev = pd.concat(rows, ignore_index=True)
    n = len(ev)
    kind = rng.choice(
        ["play", "like", "skip", "impression", "add_to_playlist", "not_interested"],
        n,
        p=[0.5, 0.2, 0.12, 0.1, 0.05, 0.03],
    )
    value = np.where(kind == "play", rng.choice([0.1, 0.5, 0.7, 1.0], n), np.nan).astype(np.float32)
    opted_out = {f"u{u:04d}" for u in rng.choice(users, 3, replace=False)}
    last = ev.groupby("user_id")["ts"].transform("max") == ev["ts"]
    events = pd.DataFrame(
        {
            "event_id": [f"e{i:07d}" for i in range(n)],
            "schema_version": 1,
            "user_id": ev["user_id"],
            "session_id": None,
            "item_id": ev["item_id"],
            "type": kind,
            "timestamp": pd.to_datetime(ev["ts"], utc=True).dt.floor("ms"),
            "value": value,
            "device": "unknown",
            "locale": "unknown",
            "consent_personalization": ~(ev["user_id"].isin(opted_out) & last),
            "consent_analytics": rng.random(n) > 0.05,
            "arm": None,
        }
    )
    ids = [f"m{i:05d}" for i in range(items) if i % 17]  # every 17th item is not in the catalogue
    catalog = pd.DataFrame(
        {
            "item_id": ids,
            "artist": "a",
            "genre": rng.choice(["Drama", "Comedy", "Action", None], len(ids)),
            "duration_s": rng.uniform(60, 9000, len(ids)).astype(np.float32),
            "release_date": pd.to_datetime(
                np.where(
                    rng.random(len(ids)) < 0.3,
                    None,
                    pd.Timestamp("1990-01-01").value + rng.integers(0, 10**18, len(ids)),
                ),
                utc=True,
            ),
        }
    )
    return events, catalog


def assert_frames_equal(new: pd.DataFrame, old: pd.DataFrame) -> None:
    assert list(new.columns) == list(old.columns)
    assert list(new.dtypes) == list(old.dtypes)
    assert len(new) == len(old)
    for col in new.columns:
        a, b = new[col], old[col]
        if col == "user_genre_affinity":
            np.testing.assert_allclose(np.stack(a.to_numpy()), np.stack(b.to_numpy()), rtol=0, atol=1e-6)
            assert {x.dtype for x in a} == {x.dtype for x in b}
        elif a.dtype.kind == "f":
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12, atol=1e-9, err_msg=col)
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True, obj=col)


def _check(events: pd.DataFrame, items: pd.DataFrame) -> sparse.FeatureBatches:
    ref = _dense_reference(events.copy(), items)
    got = sparse.build(events.copy(), items, consent_default=True)
    assert got.genres == ref["genres"] and got.as_of == ref["as_of"]
    assert len(got.user_profile) > 0 and len(got.item_stats) > 0
    assert_frames_equal(got.user_profile, ref["user_profile"])
    assert_frames_equal(got.item_stats, ref["item_stats"])
    # sessions were in event order; now in (time, user) order, which a merge can reproduce
    want = ref["session"].sort_values(["event_timestamp", "user_id"], kind="mergesort").reset_index(drop=True)
    pd.testing.assert_frame_equal(got.session, want, check_exact=True)
    pd.testing.assert_frame_equal(got.consent, ref["consent"], check_exact=True)
    return got


# --- tests ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_generated() -> tuple[pd.DataFrame, pd.DataFrame]:
    from ingest.generate import generate
    from tests.world import END, SEED

    data = generate("tiny", seed=SEED, end=END, progress=False)
    return data.events, data.items


def test_sparse_builder_matches_the_dense_grids_on_the_tiny_world(tiny_generated):
    _check(*tiny_generated)


def test_sparse_builder_matches_the_dense_grids_on_a_twenty_year_bursty_log():
    events, items = sparse_ratings_log()
    span = events["timestamp"].max() - events["timestamp"].min()
    assert span > pd.Timedelta(days=19 * 365)
    got = _check(events, items)
    # the windows really did see bursts: some users have several plays within 7 days
    assert got.user_profile["user_plays_7d"].max() > 1


def test_sparse_builder_is_deterministic_and_independent_of_input_order():
    events, items = sparse_ratings_log(seed=11, users=25)
    a = sparse.build(events.copy(), items, consent_default=True)
    b = sparse.build(events.sample(frac=1.0, random_state=1).reset_index(drop=True), items, consent_default=True)
    for name in ("user_profile", "item_stats", "session", "consent"):
        fa, fb = getattr(a, name), getattr(b, name)
        assert fa.to_parquet() == fb.to_parquet(), name


def test_an_entity_subset_gives_exactly_that_entity_s_rows():
    """Incremental materialization recomputes a few entities from their own events only."""
    events, items = sparse_ratings_log(seed=5, users=30)
    whole = sparse.build(events.copy(), items, consent_default=True)
    users = sorted(events["user_id"].unique())[::7]
    part = sparse.build(events[events["user_id"].isin(users)].copy(), items, consent_default=True)
    mine = whole.user_profile[whole.user_profile["user_id"].isin(users)].reset_index(drop=True)
    assert_frames_equal(part.user_profile, mine)
    got_sessions = part.session.reset_index(drop=True)
    want_sessions = whole.session[whole.session["user_id"].isin(users)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got_sessions, want_sessions)


def test_empty_personal_events_give_empty_frames_with_the_right_columns():
    events, items = sparse_ratings_log(seed=2, users=5)
    events["consent_personalization"] = False
    got = sparse.build(events, items, consent_default=True)
    assert got.user_profile.empty and len(got.item_stats) > 0
    assert "user_genre_affinity" in got.user_profile.columns


def test_a_prepared_log_read_builds_the_same_frames_as_build(tmp_path):
    """Publishing reads the log already sorted in Arrow (``read_events(prepared=True)``)."""
    from feature_repo.incremental import read_events
    from setlist.eventlog import EventLog

    events, items = sparse_ratings_log(seed=9, users=20, years=1.5)
    log = EventLog(tmp_path / "events")
    log.append(events.sample(frac=1.0, random_state=2), tag="a")
    want = sparse.build(log.read(), items, consent_default=True)
    got = sparse.build_prepared(read_events(log.files(), set(), prepared=True), items, consent_default=True)
    assert got.as_of == want.as_of
    for name in ("user_profile", "item_stats", "session", "consent"):
        assert getattr(got, name).to_parquet() == getattr(want, name).to_parquet(), name


@pytest.mark.parametrize("world", ["tiny", "ratings"])
def test_a_build_in_shards_gives_the_frames_and_the_session_file_of_a_build_at_once(tmp_path, tiny_generated, world):
    """The full build takes the users, then the items, a shard at a time (``build_sharded``)."""
    import pyarrow.parquet as pq

    from feature_repo import declarations
    from feature_repo.build_sharded import build_in_shards, shards_for
    from feature_repo.gate import feature_table
    from feature_repo.incremental import read_events, read_events_table
    from setlist.eventlog import EventLog, write_atomic

    events, items = tiny_generated if world == "tiny" else sparse_ratings_log(seed=4, users=40, years=3)
    log = EventLog(tmp_path / "events")
    log.append(events, tag="a")
    want = sparse.build_prepared(read_events(log.files(), set(), prepared=True), items, consent_default=True)
    n = len(events)
    said: list[str] = []
    held = [read_events_table(log.files(), set(), prepared=True)]
    got = build_in_shards(
        held,
        items,
        declarations.load(),
        None,
        None,
        consent_default=True,
        shard_events=n // 5,
        session_file=tmp_path / "aside" / "session.parquet",
        step=said.append,
    )
    assert not held  # handed over: the builder freed the log before merging the sessions
    assert shards_for(n, n // 5) >= 5 and any("users, shard 5 of" in s for s in said)
    assert any("items, shard" in s for s in said)
    assert got.batches.as_of == want.as_of and got.batches.fresh_as_of == want.fresh_as_of
    for name in ("user_profile", "item_stats", "consent"):
        assert getattr(got.batches, name).to_parquet() == getattr(want, name).to_parquet(), name
    write_atomic(feature_table(want.session, declarations.load()), tmp_path / "want.parquet")
    assert pq.read_table(got.session_file).equals(pq.read_table(tmp_path / "want.parquet"))
    assert got.session_rows == len(want.session) and got.session_start == want.session["event_timestamp"].min()
    assert not (tmp_path / "aside" / "session.parquet.parts").exists()


def test_a_build_in_shards_cut_short_by_a_full_disk_leaves_no_parts_and_no_half_merge(
    tmp_path, tiny_generated, monkeypatch
):
    """The session parts take as much room as the sessions: a build that fails (a full disk while merging
    them) removes them and its half-merged file, so the room is there for every other writer."""
    import errno

    from feature_repo import build_sharded, declarations
    from feature_repo.incremental import read_events_table
    from setlist.eventlog import EventLog, write_atomic_groups

    events, items = tiny_generated
    log = EventLog(tmp_path / "events")
    log.append(events, tag="a")

    def full(parts, into, empty):
        assert len(parts) >= 2 and all(p.exists() for p in parts)  # written, as the disk filled up

        def groups():
            yield empty
            raise OSError(errno.ENOSPC, "No space left on device")  # the merge's second row group

        write_atomic_groups(empty.schema, groups(), into)

    monkeypatch.setattr(build_sharded, "_merge_sessions", full)
    session_file = tmp_path / "aside" / "session.parquet"
    with pytest.raises(OSError):
        build_sharded.build_in_shards(
            [read_events_table(log.files(), set(), prepared=True)],
            items,
            declarations.load(),
            None,
            None,
            consent_default=True,
            shard_events=len(events) // 3,
            session_file=session_file,
            step=lambda _: None,
        )
    assert not [p for p in (tmp_path / "aside").rglob("*") if p.is_file()]  # no parts, no half merge
