"""Training's item statistics by DuckDB's ASOF join give Feast's point-in-time answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from feature_repo.declarations import load
from feature_repo.store import apply, get_store
from training.asof import item_stats_at
from training.dataset import MAX_ITEM_MOMENTS, daily_item_matrix, historical, refs

ITEM = load().service("ranker_v1").block("item")


def _pairs(items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Moments at, just before and just after snapshots, before an item's first, and an unknown item."""
    snaps = items.sample(60, random_state=1)
    at = snaps["event_timestamp"]
    first = items.groupby("item_id")["event_timestamp"].min()
    moments = pd.concat(
        [
            at,
            at - pd.Timedelta(microseconds=1),
            at + pd.Timedelta(hours=rng.integers(1, 30)),
            first.iloc[:5] - pd.Timedelta(days=1),
        ]
    )
    ids = pd.concat([snaps["item_id"]] * 3 + [pd.Series(first.index[:5])])
    rows = pd.DataFrame({"item_id": ids.to_numpy(), "event_timestamp": moments.to_numpy()})
    rows.loc[len(rows)] = ["no-such-item", at.iloc[0]]
    # a user per row: Feast would otherwise step rows sharing a user and moment apart by microseconds
    return rows.assign(user_id=[f"u{k}" for k in range(len(rows))], device="mobile")


def _same(store, rows: pd.DataFrame) -> int:
    mine = item_stats_at(store, rows["item_id"].to_numpy(), rows["event_timestamp"], ITEM)
    feast = historical(store, rows, refs("item_stats", ITEM))
    assert mine is not None
    a = mine[list(ITEM)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    b = feast[list(ITEM)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True)
    return int(np.isnan(a).all(axis=1).sum())


def test_item_stats_at_equal_feasts_point_in_time_join(tiny_world):
    s = tiny_world.settings
    items = pd.read_parquet(s.features_dir / "item_stats.parquet")
    rows = _pairs(items, np.random.default_rng(0))
    missing = _same(get_store(s), rows)
    assert missing >= 6  # before the first snapshot, and the unknown item: no answer, as in Feast


def test_item_stats_at_honour_the_views_ttl(tiny_copy):
    s = tiny_copy.settings.model_copy(update={"feature_ttl_days": 2.0})
    store = get_store(s)
    apply(store, s)
    items = pd.read_parquet(s.features_dir / "item_stats.parquet")
    rows = _pairs(items, np.random.default_rng(0))
    late = rows.assign(event_timestamp=rows["event_timestamp"] + pd.Timedelta(days=3))
    ttl = pd.Timedelta(days=2)
    fresh = [
        bool(((items["item_id"] == i) & items["event_timestamp"].between(t - ttl, t)).any())
        for i, t in zip(late["item_id"], late["event_timestamp"])
    ]
    assert 0 < sum(fresh) < len(late)  # both kinds are compared
    assert _same(store, late) == len(late) - sum(fresh)  # no snapshot within the TTL: no answer


@pytest.mark.parametrize("count", [0, 1])
def test_item_stats_at_answer_in_the_rows_order(tiny_world, count):
    s = tiny_world.settings
    items = pd.read_parquet(s.features_dir / "item_stats.parquet").sort_values("event_timestamp")
    picked = items.iloc[[-1, 0, -1][: count + 2]]
    got = item_stats_at(get_store(s), picked["item_id"].to_numpy(), picked["event_timestamp"], ITEM)
    assert got is not None
    assert got[ITEM[0]].tolist() == picked[ITEM[0]].tolist()


def test_the_evaluations_item_matrix_is_feasts_answer_at_each_day_start(tiny_world):
    s = tiny_world.settings
    store = get_store(s)
    items = pd.read_parquet(s.features_dir / "item_stats.parquet")
    ids = np.array(sorted(items["item_id"].unique())[:40], dtype=object)
    ts = items["event_timestamp"]
    moments = pd.Series(pd.date_range(ts.min(), ts.max(), periods=6)) + pd.Timedelta(hours=13)
    assert (moments.max() - moments.min()).days < MAX_ITEM_MOMENTS  # a step of one day
    at = daily_item_matrix(store, SimpleNamespace(item_ids=ids), load().service("ranker_v1"), moments)
    for moment in moments:
        day = moment.floor("D")
        rows = pd.DataFrame({"item_id": ids, "event_timestamp": day, "device": "mobile"})
        rows["user_id"] = [f"u{k}" for k in range(len(ids))]
        feast = historical(store, rows, refs("item_stats", ITEM))
        expected = feast[list(ITEM)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        np.testing.assert_array_equal(at(moment), expected)
