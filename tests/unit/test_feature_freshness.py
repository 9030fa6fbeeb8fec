"""A feature batch is as fresh as the events its views may use: days of events from users without
consent after the last usable one must not get the batch rejected as stale."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from feature_repo.build import build
from feature_repo.declarations import load as load_declarations
from feature_repo.gate import gate
from validation.testing import clean_items, ratings_events


def test_a_batch_is_judged_against_the_newest_event_each_view_may_use(tmp_path, monkeypatch):
    from setlist.catalog import load_items, save_items

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))  # the gate writes its data docs there

    save_items(clean_items(300), tmp_path / "items.parquet")
    events = ratings_events(users=40, ratings=2000, years=1.0, items=300, seed=5)
    late = events.tail(30).copy()
    late["timestamp"] = events["timestamp"].max() + timedelta(days=5) + pd.to_timedelta(range(30), unit="min")
    late["event_id"] = late["event_id"] + "-late"
    late["user_id"] = "without-consent"
    late["consent_personalization"], late["consent_analytics"] = False, False
    both = pd.concat([events, late], ignore_index=True)
    features = load_declarations()

    batches = build(both, load_items(tmp_path / "items.parquet"), features, consent_default=True)
    usable_end = events["timestamp"].max().floor("D") + pd.Timedelta(days=1)
    assert batches.as_of == late["timestamp"].max().floor("D") + pd.Timedelta(days=1)
    assert batches.fresh_as_of == {"user_profile": usable_end, "item_stats": usable_end}
    assert gate(batches, features=features) == []
    # judged against the log's end, as before, the same batch is five days stale
    stale = gate(batches, {v: batches.as_of.to_pydatetime() for v in ("user_profile", "item_stats")}, features=features)
    assert len(stale) == 2 and all("event_timestamp" in f for f in stale)


def test_item_stats_are_judged_by_the_newest_event_they_count(tmp_path, monkeypatch):
    # a shop's log whose last week is views (sampled, not counted by item stats) after its last purchase
    from setlist.catalog import load_items, save_items

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    save_items(clean_items(300), tmp_path / "items.parquet")
    events = ratings_events(users=40, ratings=2000, years=1.0, items=300, seed=6)
    views = events.tail(40).copy()
    views["timestamp"] = events["timestamp"].max() + timedelta(days=7) + pd.to_timedelta(range(40), unit="min")
    views["event_id"] = views["event_id"] + "-view"
    views["type"], views["weight"] = "view", 5.0
    both = pd.concat([events, views], ignore_index=True)
    features = load_declarations()
    batches = build(both, load_items(tmp_path / "items.parquet"), features, consent_default=True)
    assert batches.freshness_as_of("item_stats") == events["timestamp"].max().floor("D") + pd.Timedelta(days=1)
    assert gate(batches, features=features) == []


def test_the_spark_build_reads_each_views_newest_usable_event_off_the_consent_rows(tmp_path):
    from feature_repo.publish_spark import _read_back

    day = pd.Timestamp("2026-05-01", tz="UTC")
    consent = pd.DataFrame(
        {
            "user_id": ["a", "b", "refused"],
            "event_timestamp": [day + pd.Timedelta(hours=3), day + pd.Timedelta(days=1), day + pd.Timedelta(days=6)],
            "consent_personalization": [True, False, False],
            "consent_analytics": [True, True, False],
        }
    )
    consent.to_parquet(tmp_path / "consent.parquet")
    for name in ("user_profile", "item_stats", "session"):
        pd.DataFrame({"event_timestamp": [day]}).to_parquet(tmp_path / f"{name}.parquet")
    batches = _read_back(str(tmp_path), ["pop"], day + pd.Timedelta(days=7))
    assert batches.freshness_as_of("user_profile") == day + pd.Timedelta(days=1)  # a's day
    assert batches.freshness_as_of("item_stats") == day + pd.Timedelta(days=2)  # b's day
    # the newest event item stats count, where the job knows it, judges them instead (views after it count not)
    counted = _read_back(str(tmp_path), ["pop"], day + pd.Timedelta(days=7), day + pd.Timedelta(hours=5))
    assert counted.freshness_as_of("item_stats") == day + pd.Timedelta(days=1)
    assert counted.freshness_as_of("user_profile") == day + pd.Timedelta(days=1)
