"""The users' clock of the request features (setlist.request_time): the setting, the model's record
of it, and the hour and weekday each zone reads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from serving.rollout.models import ModelLoadError, ranker_zone
from setlist.request_time import MODEL_ZONE_ATTR, hour_weekday, model_zone, parse_zone, set_model_zone, zone_name
from setlist.settings import Settings

MONDAY_2030_UTC = datetime(2026, 11, 2, 20, 30, tzinfo=UTC)


class Attrs:
    """A booster's attribute store, as xgboost.Booster keeps it."""

    def __init__(self, **attrs: str) -> None:
        self.attrs = dict(attrs)

    def attr(self, name: str) -> str | None:
        return self.attrs.get(name)

    def set_attr(self, **attrs: str | None) -> None:
        self.attrs.update({k: v for k, v in attrs.items() if v is not None})


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("UTC", "UTC"),
        ("utc", "UTC"),
        ("Z", "UTC"),
        ("+00:00", "UTC"),
        ("Asia/Kolkata", "Asia/Kolkata"),
        ("America/Sao_Paulo", "America/Sao_Paulo"),
        ("+05:30", "+05:30"),
        ("-0300", "-03:00"),
        ("+5", "+05:00"),
        ("GMT+8", "+08:00"),
        (" Europe/Paris ", "Europe/Paris"),
    ],
)
def test_a_zone_reads_as_an_iana_name_or_an_offset_and_has_one_spelling(text: str, name: str) -> None:
    zone = parse_zone(text)
    assert zone_name(zone) == name
    assert zone_name(parse_zone(zone_name(zone))) == name  # what a model records reads back the same


@pytest.mark.parametrize(
    "text", ["", "Mars/Olympus", "America", "../etc/passwd", "+25:00", "+05:75", "noon", "localtime"]
)
def test_what_is_no_zone_is_refused_saying_what_a_zone_is(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time zone"):
        parse_zone(text)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (UTC, (20, 0)),
        (ZoneInfo("Asia/Kolkata"), (2, 1)),  # 02:00 on Tuesday
        (ZoneInfo("America/Sao_Paulo"), (17, 0)),
        (timezone(timedelta(hours=-11)), (9, 0)),
        (ZoneInfo("Pacific/Kiritimati"), (10, 1)),  # +14: Tuesday already
    ],
)
def test_the_hour_and_weekday_are_read_on_the_zones_clock(zone, expected) -> None:
    assert hour_weekday(MONDAY_2030_UTC, zone) == expected


def test_a_naive_time_is_utc_and_a_clock_change_is_followed() -> None:
    assert hour_weekday(datetime(2026, 11, 2, 20, 30), ZoneInfo("Asia/Kolkata")) == (2, 1)
    paris = ZoneInfo("Europe/Paris")
    assert hour_weekday(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), paris) == (1, 6)  # before the change: +01:00
    assert hour_weekday(datetime(2026, 3, 29, 1, 30, tzinfo=UTC), paris) == (3, 6)  # after it: +02:00


def test_the_setting_keeps_one_spelling_and_refuses_what_is_no_zone(tmp_path: Path, monkeypatch) -> None:
    assert Settings(data_dir=tmp_path).timezone == "UTC"
    s = Settings(data_dir=tmp_path, timezone="-0300")
    assert s.timezone == "-03:00" and s.request_zone.utcoffset(None) == timedelta(hours=-3)
    monkeypatch.setenv("SETLIST_TIMEZONE", "Asia/Kolkata")
    assert Settings(data_dir=tmp_path).request_zone == ZoneInfo("Asia/Kolkata")
    monkeypatch.setenv("SETLIST_TIMEZONE", "Asia/Kolkatta")
    with pytest.raises(ValueError, match="'Asia/Kolkatta' is not a time zone"):
        Settings(data_dir=tmp_path)


def test_a_model_records_its_zone_and_one_trained_before_the_setting_reads_as_utc() -> None:
    booster = Attrs()
    assert model_zone(booster) is UTC
    set_model_zone(booster, ZoneInfo("America/Sao_Paulo"))
    assert booster.attr(MODEL_ZONE_ATTR) == "America/Sao_Paulo"
    assert model_zone(booster) == ZoneInfo("America/Sao_Paulo")


def test_serving_keeps_the_models_zone_says_when_the_setting_differs_and_refuses_a_damaged_one(
    tmp_path: Path, caplog
) -> None:
    settings = Settings(data_dir=tmp_path, timezone="Europe/Paris")
    with caplog.at_level(logging.WARNING, logger="setlist.serving.rollout.models"):
        assert ranker_zone(settings, Attrs(**{MODEL_ZONE_ATTR: "Europe/Paris"}), "3") == ZoneInfo("Europe/Paris")
        assert not caplog.records
        assert ranker_zone(settings, Attrs(), "2") is UTC  # trained before the setting: on UTC, as it learned
    assert "ranker v2 computes its request features (hour, weekday) in UTC" in caplog.text
    assert "SETLIST_TIMEZONE is Europe/Paris" in caplog.text
    with pytest.raises(ModelLoadError, match="ranker v4: its request time zone does not read"):
        ranker_zone(settings, Attrs(**{MODEL_ZONE_ATTR: "Nowhere/Land"}), "4")
