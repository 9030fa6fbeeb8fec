from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from numpy.random import PCG64, Generator

from ingest.generate import SCALES, generate
from ingest.latent import Latent, Reaction, affinity, respond
from ingest.world import build_world
from setlist.contract import (
    DEVICES,
    EVENT_COLUMNS,
    EVENT_SCHEMA,
    EVENT_TYPES,
    ITEM_SCHEMA,
    ITEM_TYPES,
    POSITIVE_PLAY_FRACTION,
    POSITIVE_TYPES,
    SCHEMA_VERSION,
    reject_reason,
)
from setlist.eventlog import to_table

END = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", seed=7, end=END, progress=False)


def _index(latent: Latent, events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    users = pd.Series(np.arange(latent.n_users), index=latent.user_ids)[events["user_id"]].to_numpy()
    items = pd.Series(np.arange(latent.n_items), index=latent.item_ids)[events["item_id"]].to_numpy()
    return users, items


def _positive(events: pd.DataFrame) -> pd.Series:
    return events["type"].isin(POSITIVE_TYPES) | (
        (events["type"] == "play") & (events["value"] >= POSITIVE_PLAY_FRACTION)
    )


def test_same_seed_and_end_give_identical_frames(tiny):
    again = generate("tiny", seed=7, end=END, progress=False)
    pd.testing.assert_frame_equal(tiny.users, again.users)
    pd.testing.assert_frame_equal(tiny.items, again.items)
    pd.testing.assert_frame_equal(tiny.events, again.events)
    np.testing.assert_array_equal(tiny.latent.user_taste, again.latent.user_taste)
    other = generate("tiny", seed=8, end=END, progress=False)
    assert not tiny.events["item_id"].equals(other.events["item_id"])


def test_event_frame_conforms_to_the_contract(tiny):
    ev = tiny.events
    assert tuple(ev.columns) == EVENT_COLUMNS
    assert to_table(ev).schema.equals(EVENT_SCHEMA)
    assert ev["event_id"].is_unique
    assert set(ev["type"]) <= set(EVENT_TYPES)
    assert (ev["schema_version"] == SCHEMA_VERSION).all()
    assert ev["arm"].isna().all()
    assert set(ev["device"]) <= set(DEVICES)
    assert str(ev["timestamp"].dt.tz) == "UTC"
    now = END + timedelta(minutes=1)
    assert all(reject_reason(r, now) is None for r in to_table(ev).to_pylist())


def test_items_and_users_frames(tiny):
    items, users = tiny.items, tiny.users
    assert tuple(items.columns) == tuple(ITEM_SCHEMA.names)
    pa.Table.from_pandas(items, schema=ITEM_SCHEMA, preserve_index=False)
    assert items["item_id"].iloc[0] == "track_000001" and items["item_id"].is_unique
    assert 8 <= items["genre"].nunique() <= 12
    assert list(users.columns) == [
        "user_id",
        "locale",
        "device",
        "signup_time",
        "consent_personalization",
        "consent_analytics",
    ]
    assert users["user_id"].str.fullmatch(r"user_\d{6}").all()
    start = END - timedelta(days=SCALES["tiny"].days)
    new_items = items["release_date"] >= pd.Timestamp(start)
    assert 0 < new_items.sum() < 0.2 * len(items)


def test_time_window_ordering_and_causality(tiny):
    ev = tiny.events
    assert ev["timestamp"].is_monotonic_increasing
    assert ev["timestamp"].min() >= pd.Timestamp(END - timedelta(days=SCALES["tiny"].days))
    assert ev["timestamp"].max() < pd.Timestamp(END)
    released = tiny.items.set_index("item_id")["release_date"]
    assert (ev["timestamp"].to_numpy() >= released[ev["item_id"]].to_numpy()).all()
    signup = tiny.users.set_index("user_id")["signup_time"]
    assert (ev["timestamp"].to_numpy() >= signup[ev["user_id"]].to_numpy()).all()


def test_values_consent_and_profile_are_consistent(tiny):
    ev = tiny.events
    plays = ev[ev["type"] == "play"]["value"]
    assert plays.notna().all() and plays.between(0, 1).all()
    assert (ev.loc[ev["type"] == "like", "value"] == 1.0).all()
    assert ev.loc[~ev["type"].isin(["play", "like"]), "value"].isna().all()
    profile = tiny.users.set_index("user_id")
    for col in ("locale", "consent_personalization", "consent_analytics"):
        assert (ev[col].to_numpy() == profile[col][ev["user_id"]].to_numpy()).all()


def test_opt_out_shares_are_about_right():
    start = int(END.timestamp()) - 35 * 86_400
    world = build_world(Generator(PCG64(1)), 20_000, 50, start, int(END.timestamp()))
    assert abs((~world.users["consent_personalization"]).mean() - 0.05) < 0.008
    assert abs((~world.users["consent_analytics"]).mean() - 0.10) < 0.01
    assert world.users["locale"].value_counts(normalize=True).iloc[0] > 0.3  # skewed shares


def test_size_and_heterogeneous_activity(tiny):
    assert 10_000 < len(tiny.events) < 22_000
    per_user = tiny.events.groupby("user_id").size()
    assert (per_user <= 3).sum() >= 2  # cold-start users exist
    assert per_user.max() > 5 * per_user.median()  # and heavy ones
    assert set(tiny.events["type"]) == set(ITEM_TYPES)


def test_positives_follow_latent_taste(tiny):
    ev, lat = tiny.events, tiny.latent
    users, items = _index(lat, ev)
    top = lat.user_genre_pref.argmax(axis=1)[users]
    in_top = lat.item_genre[items] == top
    genre_share = pd.Series(lat.item_genre[items]).value_counts(normalize=True)
    pos = _positive(ev).to_numpy()
    baseline = genre_share[top[pos]].to_numpy().mean()  # how often that genre occurs at all
    assert in_top[pos].mean() > 2.5 * baseline
    # and, among shown items, the positive rate rises with affinity
    z = affinity(lat, users, items)
    shown = ev["type"].isin(["impression", "play", "skip"]).to_numpy()
    high = z[shown] > np.median(z[shown])
    rate = pos[shown]
    assert rate[high].mean() > 2 * rate[~high].mean()


def test_latent_roundtrip_and_respond(tiny, tmp_path):
    path = tmp_path / "sub" / "latent.npz"
    tiny.latent.save(path)
    loaded = Latent.load(path)
    np.testing.assert_array_equal(loaded.item_vec, tiny.latent.item_vec)
    assert loaded.user_ids[0] == "user_000001" and loaded.affinity_std == tiny.latent.affinity_std
    items = np.arange(50)
    a = respond(loaded, 3, items, Generator(PCG64(0)))
    b = respond(tiny.latent, 3, items, Generator(PCG64(0)))
    assert a == b and all(isinstance(r, Reaction) for r in a)
    primary = [r for r in a if r.type in ("impression", "play", "skip")]
    assert [r.item_index for r in primary] == items.tolist()
    assert all(r.type in EVENT_TYPES for r in a)
    assert all(0 <= r.value <= 1 for r in a if r.type == "play")


def test_scales_and_unknown_scale():
    assert SCALES["bench"].users >= 100_000 and SCALES["bench"].items >= 50_000
    with pytest.raises(ValueError, match="unknown scale"):
        generate("huge", end=END, progress=False)
