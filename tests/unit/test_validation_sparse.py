"""A ratings log like the public ones (20 years, bursts, no devices or sessions) passes the event,
drift and cardinality gates when nothing changed; a drifted or exploded current window still fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from setlist.catalog import save_items
from setlist.eventlog import EventLog
from setlist.settings import get_settings
from validation.cli import app
from validation.testing import clean_items, ratings_events

runner = CliRunner()


@pytest.fixture(scope="module")
def ratings():
    return ratings_events(seed=4)


@pytest.fixture
def data_dir(tmp_path, monkeypatch, ratings):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    EventLog(tmp_path / "events").append(ratings, tag="import-ratings")
    save_items(clean_items(1500), get_settings().catalog_path)
    yield tmp_path
    get_settings.cache_clear()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


def _write_hive(frame: pd.DataFrame, root: Path) -> Path:
    frame = frame.assign(date=pd.to_datetime(frame["timestamp"], utc=True).dt.strftime("%Y-%m-%d"))
    pq.write_to_dataset(pa.Table.from_pandas(frame, preserve_index=False), str(root), partition_cols=["date"])
    return root


def _newest(frame: pd.DataFrame, share: float = 0.1) -> np.ndarray:
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    return (ts >= ts.quantile(1 - share)).to_numpy()


def test_the_ratings_log_is_what_the_issue_describes(ratings):
    ts = pd.to_datetime(ratings["timestamp"], utc=True)
    assert ts.min().year == 1996 and (ts.max() - ts.min()).days > 19 * 365
    assert ratings["session_id"].isna().all() and set(ratings["device"]) == {"unknown"}
    assert 20_000 < len(ratings) < 30_000 and ratings["user_id"].nunique() == 300


@pytest.mark.parametrize("gate", ["events", "drift", "cardinality"])
def test_an_unchanged_ratings_log_passes(data_dir, gate):
    code, out = _invoke(gate)
    assert code == 0, out
    if gate == "events":
        assert "no calendar floor" in out
    else:  # the window is the data's, printed, and not a few calendar days
        assert "chosen as the newest" in out and "(from the data)" in out
        assert "thresholds: packaged validation/thresholds.yaml" in out


def test_a_few_calendar_days_are_not_enough_data_to_fail_on(data_dir):
    # the last 3 days of a 20-year log hold a handful of ratings: reported, never failed
    code, out = _invoke("drift", "--holdout-days", "3")
    assert code == 0, out
    assert "not enough data" in out and "fixed by setting" in out


def test_a_drifted_current_window_still_fails(data_dir, ratings, tmp_path):
    bad = ratings.copy()
    newest = _newest(bad) & bad["value"].notna().to_numpy()
    bad.loc[newest, "value"] = 1.0  # every recent rating five stars: a broken rating scale
    code, out = _invoke("drift", "--path", str(_write_hive(bad, tmp_path / "drifted")))
    assert code == 1, out
    assert "expect_column_distribution_drift_to_be_less_than(value)[fail]" in out


def test_an_exploded_current_window_fails_cardinality(data_dir, ratings, tmp_path):
    bad = ratings.copy()
    newest = _newest(bad)
    bad.loc[newest, "item_id"] = [f"junk-{i}" for i in range(int(newest.sum()))]
    code, out = _invoke("cardinality", "--path", str(_write_hive(bad, tmp_path / "exploded")))
    assert code == 1, out
    assert "expect_column_unique_value_count_to_be_between(item_id)" in out
