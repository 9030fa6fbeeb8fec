"""A full feature build the machine's memory cannot hold stops before it starts, with what to do
instead, rather than being killed by the kernel half-way."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import setlist.memory as memory
from feature_repo.publish_full import check_build_memory
from setlist.errors import Refused
from setlist.settings import Settings

GB = 2**30


def test_a_build_that_fits_goes_on_and_one_that_does_not_is_refused(monkeypatch):
    settings = Settings(build_bytes_per_event=1_000)
    monkeypatch.setattr(memory, "resident_memory", lambda: 2 * GB)
    monkeypatch.setattr(memory, "available_memory", lambda: 10 * GB)
    check_build_memory(10_000_000, settings)  # 10 GB at the peak, 2 held: 8 more of 9 usable
    with pytest.raises(Refused, match=r"12,000,000 events needs about 11.2 GB.*SETLIST_PROFILE=cluster"):
        check_build_memory(12_000_000, settings)  # 10 more than 2 held: above 9 usable
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # unknown: not guessed
    check_build_memory(12_000_000, settings)


def test_materialize_stops_before_building_and_writes_no_feature_file(tmp_path, monkeypatch):
    from feature_repo.__main__ import app as features_app
    from ingest.__main__ import app as ingest_app
    from ingest.sparse import write_fixture

    data = tmp_path / "data"
    monkeypatch.setenv("SETLIST_DATA_DIR", str(data))
    write_fixture(tmp_path / "fx", users=30, items=100, ratings=900, seed=2)
    args = ["import", str(tmp_path / "fx" / "ratings.csv"), "--user-col", "userId", "--item-col", "movieId"]
    imported = CliRunner().invoke(ingest_app, [*args, "--time-unit", "s", "--rating-col", "rating"])
    assert imported.exit_code == 0, imported.output
    monkeypatch.setenv("SETLIST_BUILD_BYTES_PER_EVENT", str(64 * GB))  # no machine holds 900 × 64 GB
    from setlist.settings import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(features_app, ["materialize"])
    assert result.exit_code == 1
    assert "stopped before it rather than be killed half-way" in result.stderr
    assert not list(data.rglob("user_profile*.parquet"))  # no feature file was written


def test_training_stops_before_reading_the_events_when_it_cannot_fit(tmp_path, monkeypatch):
    from ingest.__main__ import app as ingest_app
    from setlist.settings import get_settings
    from training.__main__ import app as train_app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    assert CliRunner().invoke(ingest_app, ["generate", "--scale", "tiny"]).exit_code == 0
    monkeypatch.setenv("SETLIST_TRAIN_BYTES_PER_EVENT", str(64 * GB))
    get_settings.cache_clear()
    result = CliRunner().invoke(train_app, [])
    assert result.exit_code == 1, result.output
    assert "training on" in result.stderr and "SETLIST_TRAIN_BYTES_PER_EVENT" in result.stderr
    assert "The champion keeps serving" in result.stderr


def test_training_counts_eases_fit_beside_the_events(monkeypatch):
    from training.ease import ease_peak_bytes
    from training.run import check_training_memory

    monkeypatch.setattr(memory, "resident_memory", lambda: 1 * GB)
    monkeypatch.setattr(memory, "available_memory", lambda: 10 * GB)
    settings = Settings(train_bytes_per_event=500, ease_max_items=30_000)
    events = 4_000_000  # ~1.9 GB for the events
    assert ease_peak_bytes(10_000) < 9 * GB - events * 500 < ease_peak_bytes(30_000)
    check_training_memory(events, 10_000, settings)  # a catalogue of 10k: EASE over all of it fits
    with pytest.raises(Refused, match=r"lower SETLIST_EASE_MAX_ITEMS \(EASE over 30,000 items takes"):
        check_training_memory(events, 50_000, settings)  # EASE over 30k of 50k items does not
    check_training_memory(events, 50_000, Settings(train_bytes_per_event=500, ease_max_items=10_000))
    check_training_memory(events, 50_000, Settings(train_bytes_per_event=500, ease_max_items=0))  # turned off
