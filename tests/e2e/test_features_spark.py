"""The Spark feature builder equals the pandas builder, value for value, on the fixture datasets:
the project's generated world and a real-shaped ratings log (bursty, two decades, opted-out users,
analytics-off events, items missing from the catalogue)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_repo import build as pandas_build
from feature_repo import declarations, spark_build
from feature_repo.incremental import build_columns
from setlist.eventlog import erasure_digest, to_table, write_atomic
from setlist.settings import Settings
from tests.e2e.test_features_sparse import assert_frames_equal, sparse_ratings_log

pytestmark = pytest.mark.spark

VIEW_OF = {"user_profile.parquet": "user_profile", "item_stats.parquet": "item_stats", "session.parquet": "session"}


def _spark_frames(spark, tmp_path: Path, events: pd.DataFrame, items: pd.DataFrame, erased=frozenset(), fs=None, **kw):
    """Events written as an event log would be (two files), built on Spark, read back."""
    log = tmp_path / "events"
    half = len(events) // 2
    write_atomic(to_table(events.iloc[:half]), log / "a.parquet")
    write_atomic(to_table(events.iloc[half:]), log / "b.parquet")
    fs = fs or declarations.load(Settings(data_dir=tmp_path / "data"))
    frames = spark_build.read_events(spark, [str(log)], erased, build_columns(fs))
    batches = spark_build.build(frames, items, fs, consent_default=kw.get("consent_default", True), buckets=3)
    rows = spark_build.write(batches, str(tmp_path / "features"))
    out = {}
    for name, _, keys in batches.files():
        got = pd.read_parquet(tmp_path / "features" / name)
        assert len(got) == rows[name]
        got["event_timestamp"] = got["event_timestamp"].dt.as_unit("ns")
        out[name] = got.sort_values(keys, kind="mergesort").reset_index(drop=True)
    return out, batches.genres, fs


def _assert_same(got: dict[str, pd.DataFrame], want: pandas_build.FeatureBatches) -> None:
    for name, view in VIEW_OF.items():
        ref = getattr(want, view)
        assert len(ref) > 0, view
        if view == "session":
            # lists come back from parquet as arrays; compare them as lists
            for col in ("session_last_items", "session_blocked_items"):
                assert [list(x) for x in got[name][col]] == [list(x) for x in ref[col]], col
            rest = [c for c in ref.columns if c not in ("session_last_items", "session_blocked_items")]
            pd.testing.assert_frame_equal(got[name][rest], ref[rest], check_exact=False, rtol=1e-12)
        else:
            g = got[name].copy()
            for f in ref.columns:
                if ref[f].dtype == object and len(ref) and isinstance(ref[f].iloc[0], np.ndarray):
                    g[f] = [np.asarray(x, dtype=np.float32) for x in g[f]]
                if str(ref[f].dtype) == "Int64" or str(g[f].dtype) == "Int64":
                    g[f], ref = g[f].astype("Int64"), ref.assign(**{f: ref[f].astype("Int64")})
            assert_frames_equal(g[list(ref.columns)], ref)
    pd.testing.assert_frame_equal(got["consent.parquet"], want.consent, check_exact=True)


def test_spark_builder_equals_the_pandas_builder_on_a_real_shaped_ratings_log(spark_session, tmp_path):
    events, items = sparse_ratings_log()
    got, genres, fs = _spark_frames(spark_session, tmp_path, events, items)
    want = pandas_build.build(events.copy(), items, fs, consent_default=True)
    assert genres == want.genres
    _assert_same(got, want)


def test_spark_builder_equals_the_pandas_builder_on_the_generated_world(spark_session, tmp_path):
    from ingest.generate import generate
    from tests.world import END, SEED

    data = generate("tiny", seed=SEED, end=END, progress=False)
    # a retried event stored twice must count once on both engines
    events = pd.concat([data.events, data.events.iloc[:50]], ignore_index=True)
    got, _, fs = _spark_frames(spark_session, tmp_path, events, data.items, consent_default=False)
    _assert_same(got, pandas_build.build(events.copy(), data.items, fs, consent_default=False))


def test_spark_builder_equals_the_pandas_builder_on_the_events_device_locale_and_weight(spark_session, tmp_path):
    """Declarations over the context columns, on the generated world with sampled views (weight 5) among its
    plays: Spark buckets see a few users each, and give every one the values of the build at once."""
    from ingest.generate import generate
    from setlist.featureset import Events, Feature, FeatureSet
    from tests.world import END, SEED

    data = generate("tiny", seed=SEED, end=END, progress=False)
    views = data.events[data.events["type"] == "play"].iloc[::7].copy()
    views["event_id"] = views["event_id"] + "-view"
    views["type"], views["value"], views["weight"] = "view", np.nan, np.float32(5.0)
    events = pd.concat([data.events, views], ignore_index=True)
    fs = FeatureSet.of(
        [
            Feature("user_top_device", "user", Events("top", column="device", types=("play",)), "string", missing=""),
            Feature(
                "user_locale_share",
                "user",
                Events("share", column="locale", types=("play",), categories=("de_DE", "en_US"), windows=(7, 30)),
                "float_list",
                missing=None,
            ),
            Feature("user_mobile_share", "user", Events("share", column="device", categories=("mobile",))),
            Feature("user_views", "user", Events("sum", column="weight", types=("view",), windows=(30,))),
            Feature("user_last_locale", "user", Events("last", column="locale"), "string", missing=""),
            Feature(
                "item_device_share",
                "item",
                Events("share", column="device", types=("play",), categories=("mobile", "desktop", "unknown")),
                "float_list",
                missing=None,
            ),
            Feature("item_top_locale", "item", Events("top", column="locale"), "string", missing=""),
        ]
    )
    got, _, _ = _spark_frames(spark_session, tmp_path, events, data.items, fs=fs, consent_default=False)
    want = pandas_build.build(events.copy(), data.items, fs, consent_default=False)
    assert (want.user_profile["user_views_30d"] > 0).any() and want.user_profile["user_top_device"].nunique() > 1
    _assert_same(got, want)


def test_erased_users_never_reach_the_spark_builder(spark_session, tmp_path):
    events, items = sparse_ratings_log(users=12)
    gone = events["user_id"].iloc[0]
    got, _, _ = _spark_frames(spark_session, tmp_path, events, items, erased=frozenset({erasure_digest(gone)}))
    for name in ("user_profile.parquet", "session.parquet", "consent.parquet"):
        users = set(got[name]["user_id"])
        assert users and gone not in users
    kept = events[events["user_id"] != gone]
    want = pandas_build.build(
        kept.copy(), items, declarations.load(Settings(data_dir=tmp_path / "d")), consent_default=True
    )
    assert len(got["item_stats.parquet"]) == len(want.item_stats)
