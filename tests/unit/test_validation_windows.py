"""The current window comes from the data: the newest batch, or a share of events with a floor,
or a length in days when one is set; never "the last N calendar days" by default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from setlist.eventlog import EventLog
from validation.reference import learn_cardinality, split_windows
from validation.sources import InputMissing
from validation.testing import clean_events, ratings_events
from validation.thresholds import WindowLimits
from validation.windows import newest_batch, split

LIMITS = WindowLimits()


@pytest.mark.parametrize("n,expected", [(50_000, 5_000), (6_000, 1_000), (1_200, 600)])
def test_the_window_holds_a_share_but_at_least_min_events_and_leaves_a_reference(n, expected):
    events = clean_events(n=n, days=30, seed=3)
    chosen = split(events, LIMITS)
    assert len(chosen.current) == expected and len(chosen.reference) == n - expected
    assert chosen.current["timestamp"].min() >= chosen.reference["timestamp"].max()
    assert chosen.window.source == "data" and f"the newest {expected:,} of {n:,} events" in chosen.how


def test_events_tied_with_the_oldest_chosen_go_with_the_window_and_are_said():
    # a log of dates (Ta-Feng): the day the newest 10% begins on comes whole
    events = clean_events(n=6000, days=30, seed=3)
    ts = pd.to_datetime(events["timestamp"], utc=True)
    events["timestamp"] = ts.dt.floor("D")
    chosen = split(events, LIMITS)
    extra = len(chosen.current) - 1_000
    assert extra > 0 and "the newest 1,000 of 6,000 events" in chosen.how
    assert f"and {extra:,} more stamped at the same moment as the oldest of them" in chosen.how


def test_a_fixed_length_may_be_a_fraction_of_a_day():
    events = clean_events(n=6000, days=15, seed=3)
    chosen = split(events, LIMITS, days=0.5)
    ts = pd.to_datetime(events["timestamp"], utc=True)
    assert len(chosen.current) == int((ts >= ts.max() - timedelta(hours=12)).sum())
    assert "12.0 hours (fixed by setting)" in chosen.window.describe()


def test_no_reference_is_input_missing():
    with pytest.raises(InputMissing):
        split(clean_events(n=500, days=2, seed=3), LIMITS, days=30)
    with pytest.raises(InputMissing):
        split(clean_events(n=1, days=1, seed=3), LIMITS)


def test_the_newest_ingestion_batch_is_the_current_window_when_big_enough(tmp_path):
    log = EventLog(tmp_path / "events")
    now = datetime.now(UTC)
    log.append(clean_events(n=8000, days=20, seed=1, end=now - timedelta(days=1)), tag="generator")
    log.append(clean_events(n=2000, days=1, seed=2, end=now), tag="import-extra")
    batch = newest_batch(tmp_path / "events")
    assert batch is not None and batch.tag == "import-extra" and batch.rows == 2000
    chosen = split(log.read(), LIMITS, batch=batch)
    assert len(chosen.current) == 2000 and chosen.current["event_id"].str.startswith("ev-2-").all()
    assert "newest ingestion batch 'import-extra'" in chosen.how
    # too big to leave a reference (or too small to judge): the share rule instead
    assert "the newest" in split(log.read(), LIMITS.model_copy(update={"max_share": 0.1}), batch=batch).how
    assert "the newest" in split(log.read(), LIMITS.model_copy(update={"min_events": 3000}), batch=batch).how
    # a fixed length wins over the batch
    assert split(log.read(), LIMITS, days=2, batch=batch).window.source == "setting"


def test_a_batch_reaching_back_into_the_logs_period_is_no_current_window(tmp_path):
    # MovieLens' tags.csv imported after its ratings: the same users over the same years
    log = EventLog(tmp_path / "events")
    now = datetime.now(UTC)
    log.append(clean_events(n=8000, days=20, seed=1, end=now), tag="import-ratings")
    log.append(clean_events(n=2000, days=20, seed=2, end=now), tag="import-tags")
    batch = newest_batch(tmp_path / "events")
    assert batch is not None and batch.tag == "import-tags"
    chosen = split(log.read(), LIMITS, batch=batch)
    assert "batch 'import-tags' reaches back into the log's own period" in chosen.how
    assert "chosen as the newest" in chosen.how and "(batch" not in chosen.window.name
    newest = log.read().sort_values("timestamp").tail(len(chosen.current))
    assert set(chosen.current["event_id"]) == set(newest["event_id"])


def test_cardinality_windows_hold_as_many_events_however_bursty_the_log():
    events = ratings_events(seed=4)
    windows = split_windows(events, 2500)
    assert len(windows) == len(events) // 2500 and all(len(w) == 2500 for w in windows)
    ref = learn_cardinality(events, 2500, "test", window_days=700.5)
    assert ref.window_days == 700.5 and ref.distinct_low["user_id"] >= 1  # no empty windows
    assert ref.distinct_low["user_id"] <= ref.distinct["user_id"] <= ref.distinct_high["user_id"]
