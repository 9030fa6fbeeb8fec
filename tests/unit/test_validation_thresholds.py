"""Thresholds come from one YAML file (packaged defaults, or the user's copy); flags override them;
a bad file is one clear line; freshness is measured from the newest event with the file's max age."""

from __future__ import annotations

import re
from datetime import timedelta

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from feature_repo.declarations import load as load_declarations
from setlist.eventlog import EventLog
from setlist.settings import get_settings
from validation.cli import app
from validation.testing import clean_feature_batch, ratings_events
from validation.thresholds import PACKAGED, Thresholds, ThresholdsError, load_thresholds

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


def test_the_packaged_file_holds_every_default_each_documented():
    packaged = load_thresholds()
    assert packaged.model_dump() == Thresholds().model_dump()
    assert packaged.source == "packaged validation/thresholds.yaml"
    data = yaml.safe_load(PACKAGED.read_text())
    assert set(data) == set(Thresholds.model_fields)
    for section, values in data.items():
        assert set(values) == set(type(getattr(packaged, section)).model_fields), section
    leaves = [line for line in PACKAGED.read_text().splitlines() if re.match(r"^  \w+: ", line)]
    assert leaves and all("# default" in line for line in leaves), [x for x in leaves if "# default" not in x]


def test_a_copy_may_leave_keys_out(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("drift:\n  psi_fail: 0.5\nwindow:\n  share: 0.2\n")
    mine = load_thresholds(path)
    assert (mine.drift.psi_fail, mine.window.share, mine.drift.psi_warn) == (0.5, 0.2, 0.1)
    assert mine.source == str(path)


@pytest.mark.parametrize(
    "text,message",
    [
        ("drift:\n  psi_fial: 0.3\n", "drift.psi_fial: Extra inputs are not permitted"),
        ("cardinality:\n  ratio: [2, 3]\n", "cardinality.ratio"),
        ("window:\n  share: lots\n", "window.share"),
        ("drift: [\n", "not valid YAML at line"),
    ],
)
def test_a_bad_file_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ThresholdsError) as err:
        load_thresholds(path)
    assert message in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A 20-year ratings log whose last event was years ago, with feature batches made at its end."""
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    events = ratings_events(users=60, ratings=4000, seed=2)
    EventLog(tmp_path / "events").append(events)
    newest = events["timestamp"].max()
    (tmp_path / "features").mkdir()
    for view in ("user_profile", "item_stats"):
        clean_feature_batch(
            view, (newest - timedelta(hours=6)).to_pydatetime(), features=load_declarations()
        ).to_parquet(tmp_path / "features" / f"{view}.parquet")
    yield tmp_path
    get_settings.cache_clear()


def test_freshness_is_relative_to_the_newest_event_and_its_max_age_from_the_file(data_dir, tmp_path, monkeypatch):
    newest = EventLog(data_dir / "events").read()["timestamp"].max()
    assert pd.Timestamp.now(tz="UTC") - newest > timedelta(days=365 * 5)
    code, out = _invoke("features")
    assert code == 0, out
    assert "at most 48 h before" in out and "the newest event" in out
    strict = tmp_path / "strict.yaml"
    strict.write_text("freshness:\n  max_age_hours: 2\n")
    monkeypatch.setenv("SETLIST_VALIDATION_THRESHOLDS_FILE", str(strict))
    get_settings.cache_clear()
    code, out = _invoke("features")
    assert code == 1 and "expect_column_max_to_be_between(event_timestamp)" in out
    assert f"thresholds: {strict}" in out
    assert _invoke("features", "--max-age-hours", "12")[0] == 0  # a flag overrides the file


def test_freshness_is_relative_to_the_newest_event_each_view_may_use(data_dir):
    """Five days of events from a user without consent come after the features' last snapshot:
    nothing in them may reach the features, so the features are not stale for it."""
    log = EventLog(data_dir / "events")
    late = log.read().tail(20).copy()
    late["timestamp"] = late["timestamp"].max() + timedelta(days=5) + pd.to_timedelta(range(20), unit="min")
    late["event_id"] = late["event_id"] + "-late"
    late["user_id"] = "without-consent"
    late["consent_personalization"], late["consent_analytics"] = False, False
    log.append(late)
    code, out = _invoke("features")
    assert code == 0, out
    assert "the newest event it may use: personalization consent" in out and "analytics consent" in out
    # the same events from a consenting user would have been left out of the features: stale
    late["user_id"], late["consent_personalization"], late["consent_analytics"] = "consenting", True, True
    late["event_id"] = late["event_id"] + "-again"
    log.append(late)
    code, out = _invoke("features")
    assert code == 1 and "expect_column_max_to_be_between(event_timestamp)" in out


def test_flags_override_the_file_and_say_so(data_dir):
    code, out = _invoke("drift", "--psi-fail", "0.3")
    assert code == 0, out
    assert "psi_fail=0.3 from the command line" in out


def test_a_bad_thresholds_file_is_a_usage_error(data_dir, tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("drift:\n  psi_warn: 0.5\n  psi_fail: 0.2\n")
    monkeypatch.setenv("SETLIST_VALIDATION_THRESHOLDS_FILE", str(bad))
    get_settings.cache_clear()
    code, out = _invoke("events")
    assert code == 2 and "warn level must not be above its fail level" in out and "Traceback" not in out
