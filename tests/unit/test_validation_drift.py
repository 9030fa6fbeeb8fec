"""Drift (custom PSI/JS expectations) and cardinality guards (learned, stored references)."""

import json

import numpy as np
import pandas as pd
import pytest

from validation.api import validate_cardinality, validate_drift
from validation.gx import Workspace
from validation.reference import CardinalityReference, learn_cardinality, reference_path, split_windows
from validation.suites.drift import EVENT_CATEGORICAL, EVENT_NUMERIC, DriftThresholds, event_features
from validation.testing import clean_events
from validation.thresholds import WindowLimits
from validation.windows import split


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("data") / "validation")


@pytest.fixture(scope="module")
def windows():
    events = clean_events(n=40_000, days=24, users=300, items=300)
    chosen = split(events, WindowLimits(), days=3)
    return event_features(chosen.reference), event_features(chosen.current)


def _drift(ws, ref, cur, **kw):
    return validate_drift(ref, cur, numeric=EVENT_NUMERIC, categorical=EVENT_CATEGORICAL, workspace=ws, **kw)


def test_same_distribution_passes_without_warnings(ws, windows):
    result = _drift(ws, *windows)
    assert result.passed and not result.warnings, result.summary()
    assert ws.docs_index.exists()


def test_shifted_numeric_distribution_fails(ws, windows):
    ref, cur = windows
    shifted = cur.assign(value=cur["value"] * 0.4)
    result = _drift(ws, ref, shifted, docs=False)
    assert result.failures == ["expect_column_distribution_drift_to_be_less_than(value)[fail]"]


def test_moderate_drift_only_warns(ws, windows):
    ref, cur = windows
    rng = np.random.default_rng(5)
    moved = cur.copy()
    plays = moved.index[(moved["type"] == "play").to_numpy() & (rng.random(len(moved)) < 0.2)]
    moved.loc[plays, "value"] = 0.99  # a modest pile-up at the top bin
    result = _drift(ws, ref, moved, docs=False)
    assert result.passed, result.summary()
    assert result.warnings == ["expect_column_distribution_drift_to_be_less_than(value)[warn]"]


def test_an_imported_history_is_no_session_to_the_drift_gate():
    """MIND's history column: a user's earlier clicks, imported as plays just before their first visit
    in a session marked as a history. It is no visit: counted, the reference's sessions looked dozens
    of events longer than the current window's (PSI 0.29 on a generated MIND), and left as a gap in
    the session lengths, their null rate drifted (0.65)."""
    events = clean_events(n=200, days=2, users=20, items=30)
    user = events["user_id"].iloc[0]
    history = events[events["user_id"] == user].head(1).copy()
    history = pd.concat([history] * 30, ignore_index=True)
    history["event_id"] = [f"h-{k}" for k in range(30)]
    history["session_id"] = "h_00000000000000ab"
    visit = events.head(3).assign(session_id="s_visit")
    features = event_features(pd.concat([events.iloc[3:], history, visit], ignore_index=True))
    assert not features["session_id"].eq("h_00000000000000ab").any()  # its hours and length are the import's
    assert (features.loc[features["session_id"] == "s_visit", "session_events"] == 3).all()
    assert len(features) == len(events) and features["session_events"].notna().all()


def test_the_daily_cycle_of_a_window_shorter_than_a_day_can_warn_not_fail(ws, windows):
    """Half a day of events holds half the hours of the day, however ordinary they are: against whole
    days its hour-of-day distribution differs by construction (an untimed import's short span, a gate run at
    00:24 on the last 17 minutes)."""
    ref, cur = windows
    ts = pd.to_datetime(cur["timestamp"], utc=True)
    start = ts.min().ceil("h")
    half = cur[(ts >= start) & (ts < start + pd.Timedelta(hours=12))]
    assert len(half) >= 500  # enough to judge on: the scarce-data rule does not apply
    short = _drift(ws, ref, half, docs=False)
    assert short.passed, short.summary()
    assert any("less than a day" in n and "hour_of_day" in n for n in short.notes)
    assert "expect_column_distribution_drift_to_be_less_than(hour_of_day)[less than a day]" in short.warnings
    # a whole day keeps the check's fail level: a day whose hours all moved still fails
    day = cur[(ts >= ts.min()) & (ts < ts.min() + pd.Timedelta(days=1, hours=1))]
    moved = day.assign(hour_of_day=3)
    result = _drift(ws, ref, moved, docs=False)
    assert "expect_column_distribution_drift_to_be_less_than(hour_of_day)[fail]" in result.failures


def test_categorical_drift_with_js(ws, windows):
    ref, cur = windows
    cur = cur.assign(device="mobile")
    result = _drift(ws, ref, cur, thresholds=DriftThresholds(categorical_method="js"), docs=False)
    assert "expect_column_distribution_drift_to_be_less_than(device)[fail]" in result.failures
    assert next(r.expected for r in result.rows if r.expectation.endswith("(device)[fail]")) == "js < 0.2"


def _reference(ref, cur):
    return learn_cardinality(ref, len(cur), source="test", window_days=3)


def test_clean_cardinality_passes(ws, windows):
    ref, cur = windows
    result = validate_cardinality(cur, _reference(ref, cur), workspace=ws)
    assert result.passed, result.summary()


def test_tenfold_item_explosion_fails(ws, windows):
    ref, cur = windows
    rng = np.random.default_rng(1)
    # every item now appears under ten ids (a bad join or id scheme change)
    suffix = pd.Series(rng.integers(0, 10, len(cur)), index=cur.index).astype(str)
    exploded = cur.assign(item_id=cur["item_id"] + "-" + suffix)
    reference = _reference(ref, cur)
    assert exploded["item_id"].nunique() > 2 * reference.distinct["item_id"]
    result = validate_cardinality(exploded, reference, workspace=ws, docs=False)
    assert "expect_column_unique_value_count_to_be_between(item_id)" in result.failures


def test_free_text_device_fails(ws, windows):
    ref, cur = windows
    bad = cur.copy()
    bad.loc[bad.index[:200], "device"] = [f"Mozilla/5.0 build {i}" for i in range(200)]
    result = validate_cardinality(bad, _reference(ref, cur), workspace=ws, docs=False)
    assert result.failures == ["expect_column_unique_value_count_to_be_between(device)"]


def test_duplicate_event_ids_fail_cardinality(ws, windows):
    ref, cur = windows
    bad = cur.copy()
    bad.loc[bad.index[1], "event_id"] = bad.loc[bad.index[0], "event_id"]
    result = validate_cardinality(bad, _reference(ref, cur), workspace=ws, docs=False)
    assert result.failures == ["expect_column_proportion_of_unique_values_to_be_between(event_id)"]


def test_reference_roundtrip_and_windows(tmp_path, windows):
    ref, _ = windows
    size = len(ref) // 7
    learned = learn_cardinality(ref, size, "test")
    assert learned.windows == len(split_windows(ref, size)) == 7
    assert all(len(w) == size for w in split_windows(ref, size))
    path = reference_path(tmp_path, "eventlog")
    learned.save(path)
    assert CardinalityReference.load(path) == learned
    assert json.loads(path.read_text())["distinct"]["device"] == 5


def test_a_drift_failure_on_one_big_day_names_it_and_the_ways_on():
    from validation.gates import _spike_note

    days = pd.date_range("2015-11-05", periods=7, freq="D", tz="UTC")
    ordinary = pd.DataFrame({"timestamp": np.repeat(days[:-1], 100)})
    assert _spike_note(ordinary) is None  # an even week: nothing to explain
    sale = pd.concat([ordinary, pd.DataFrame({"timestamp": [days[-1]] * 900})], ignore_index=True)
    note = _spike_note(sale)
    assert note is not None and note.startswith(
        "2015-11-11 holds 60% of the current window's events (9× its median day)"
    )
    assert "--holdout-days" in note and "SETLIST_VALIDATION_THRESHOLDS_FILE" in note


def test_a_window_of_one_sale_day_in_a_log_of_dates_is_named_against_the_days_before_it():
    # Tmall: dates alone, and November 11th holds the newest tenth of the log by itself
    from setlist.windows import trailing
    from validation.gates import _spike_note

    days = pd.date_range("2015-10-01", periods=41, freq="D", tz="UTC")
    before = pd.DataFrame({"timestamp": np.repeat(days[:-1], 20)})
    sale = pd.DataFrame({"timestamp": [days[-1]] * 300})
    window = trailing("hold-out", pd.concat([before, sale])["timestamp"], 0.1)
    assert window.describe() == "hold-out: the events stamped 2015-11-10 00:00 (one moment, from the data)"
    note = _spike_note(sale, before)
    assert note is not None and note.startswith(
        "2015-11-10 holds 100% of the current window's events (15× the median day before it)"
    )
    assert _spike_note(sale) is None  # nothing to compare one day with


def test_a_drift_failure_without_one_big_day_names_the_columns_and_the_ways_on():
    from validation.gates import _drift_note

    note = _drift_note(
        [
            "expect_column_distribution_drift_to_be_less_than(session_events)[fail]",
            "expect_column_distribution_drift_to_be_less_than(genre)[fail]",
        ]
    )
    assert note.startswith("the newest window differs from the history in genre, session_events by more than")
    assert "`make train` on its own" in note and "SETLIST_VALIDATION_THRESHOLDS_FILE" in note
    assert "drift: psi_fail" in note and "If it is real: to train anyway" in note


def test_a_cardinality_failure_names_the_columns_and_the_ways_on():
    from validation.gates import _cardinality_note

    note = _cardinality_note(["expect_column_unique_value_count_to_be_between(user_id)"])
    assert note.startswith("the newest window counts distinct user_id outside the range")
    assert "`make train` on its own" in note
    # the key that allows a real change is the range's, not the drift levels (which change nothing here)
    assert "cardinality: ratio" in note and "drift levels" not in note


def _small_session_log(seed: int, sessions: int = 260) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A browsing log of a few hundred sessions over a month (Coveo's shape): each session's events fall
    within minutes of its start, so a window of 1,000 events holds only ~100 independent hours."""
    rng = np.random.default_rng(seed)
    sizes = np.clip(np.round(rng.lognormal(1.8, 0.9, sessions)), 1, 80).astype(int)
    starts = pd.Timestamp("2019-02-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 30 * 86400, sessions), "s")
    rows = []
    for s, (start, n) in enumerate(zip(starts, sizes)):
        stamps = start + pd.to_timedelta(np.cumsum(rng.integers(2, 120, n)), "s")
        rows += [(f"s{s}", f"s{s}", t, "play", float(rng.random())) for t in stamps]
    events = pd.DataFrame(rows, columns=["session_id", "user_id", "timestamp", "type", "value"])
    events = events.sort_values("timestamp", ignore_index=True).assign(event_id=lambda f: f.index.astype(str))
    cut = max(len(events) - 1_000, len(events) // 2)  # as the gate chooses: at least 1,000, at most half
    return event_features(events.iloc[:cut]), event_features(events.iloc[cut:])


def test_a_small_log_of_sessions_is_judged_against_its_own_noise(ws):
    """Too short for reference windows of the current one's size, a small log's noise comes from whole
    sessions drawn out of both windows: unchanged, it passes; its evenings moved to the night, it fails."""
    passed = 0
    for seed in range(6):
        ref, cur = _small_session_log(seed)
        assert len(cur) <= len(ref) < 2 * len(cur)
        result = _drift(ws, ref, cur, docs=False)
        passed += result.passed
        assert any("from both windows" in n for n in result.notes), result.notes
    assert passed >= 5
    ref, cur = _small_session_log(0)
    ts = pd.to_datetime(cur["timestamp"], utc=True)
    night = cur.assign(hour_of_day=ts.dt.hour % 4)  # every session between midnight and 4 am
    result = _drift(ws, ref, night, docs=False)
    assert "expect_column_distribution_drift_to_be_less_than(hour_of_day)[fail]" in result.failures


def test_the_hour_of_day_is_read_on_the_users_clock_across_a_daylight_saving_change():
    """Listening at 20:00 in Berlin every evening: on UTC's clock the hour moves from 18 to 19 when summer
    time ends, a whole distribution shifted; on the users' clock (SETLIST_TIMEZONE) it stays at 20."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    days = pd.date_range("2026-10-18", "2026-11-07", freq="D")  # summer time ends on 25 October
    stamps = [(pd.Timestamp(d.date()) + pd.Timedelta(hours=20)).tz_localize(berlin) for d in days]
    events = pd.DataFrame(
        {"event_id": [f"e{i}" for i in range(len(stamps))], "timestamp": pd.to_datetime(stamps, utc=True)}
    )
    assert set(event_features(events)["hour_of_day"]) == {18, 19}
    assert set(event_features(events, berlin)["hour_of_day"]) == {20}


def test_the_drift_gate_holds_across_a_daylight_saving_change_on_the_users_clock(tmp_path):
    """The gate itself, on a log of evenings in Berlin around the end of summer time: on UTC's clock the hour of
    day fails as drift, on SETLIST_TIMEZONE's it holds."""
    from zoneinfo import ZoneInfo

    from setlist.settings import Settings
    from validation.gates import GateOptions, drift_gate

    events = clean_events(n=20_000, days=20, users=300, items=300)
    days = pd.date_range("2026-10-12", periods=20, freq="D")  # summer time ends on 25 October
    rng = np.random.default_rng(0)
    day = pd.to_datetime([days[i].date() for i in rng.integers(0, 20, len(events))])
    local = day + pd.to_timedelta(20 * 60 + rng.integers(0, 50, len(events)), unit="min")
    events["timestamp"] = local.tz_localize(ZoneInfo("Europe/Berlin")).tz_convert("UTC")
    events = events.sort_values("timestamp").reset_index(drop=True)
    verdicts = {}
    for zone in ("UTC", "Europe/Berlin"):
        opts = GateOptions()
        opts._events[str(None)] = events  # the log the gate would read, given
        [result] = drift_gate(Settings(data_dir=tmp_path / "data", timezone=zone), opts, Workspace(tmp_path / zone))
        verdicts[zone] = [f for f in result.failures if "hour_of_day" in f]
    assert verdicts["UTC"] and not verdicts["Europe/Berlin"]
