"""A time written over several columns (HetRec 2011's ``user_ratedmovies.dat``: ``date_day``,
``date_month``, ``date_year``, ``date_hour``, ``date_minute``, ``date_second``): named together with
``--time-col``, suggested so, and warned of when ``--no-time`` would leave it unread."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions
from ingest.intake import READ_NOTE
from ingest.time_parts import split_time_columns

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
PARTS = "date_year,date_month,date_day,date_hour,date_minute,date_second"


def _hetrec(tmp_path: Path, rows: int = 60, broken: bool = False) -> Path:
    """Tab-separated ratings whose times are split over six columns, day first as HetRec writes them."""
    lines = ["userID\tmovieID\trating\tdate_day\tdate_month\tdate_year\tdate_hour\tdate_minute\tdate_second"]
    for k in range(rows):
        t = pd.Timestamp("2001-01-01") + pd.Timedelta(hours=37 * k)
        day = "31" if broken and k == 5 else str(t.day)  # 31 February: no such day
        month = "2" if broken and k == 5 else str(t.month)
        lines.append(f"u{k % 6}\tm{k % 11}\t{1 + k % 5}\t{day}\t{month}\t{t.year}\t{t.hour}\t{t.minute}\t{k % 60}")
    path = tmp_path / "user_ratedmovies.dat"
    path.write_text("\n".join(lines) + "\n")
    return path


def _options(**extra: object) -> dict:
    return dict(user_col="userID", item_col="movieID", rating_col="rating", time_col=PARTS, now=NOW, **extra)


def test_the_parts_make_each_rows_time(tmp_path):
    events, _, summary = load_interactions(_hetrec(tmp_path), **_options())
    expected = [pd.Timestamp("2001-01-01", tz="UTC") + pd.Timedelta(hours=37 * k, seconds=k % 60) for k in range(60)]
    assert sorted(events["timestamp"]) == expected
    assert "without a time zone read as UTC" in " ".join(str(summary).split())


def test_a_row_whose_parts_make_no_date_is_quarantined_with_them_shown(tmp_path):
    events, _, summary = load_interactions(_hetrec(tmp_path, broken=True), **_options())
    assert len(events) == 60 and events["timestamp"].isna().sum() == 1
    assert "1 row with missing or unparseable timestamp" in " ".join(str(summary).split())
    # the quarantine's note shows the parts as written, year first
    note = events.loc[events["timestamp"].isna(), READ_NOTE].iloc[0]
    assert "'2001-2-31-" in note and PARTS.replace(",", " + ") in note


def test_time_parts_read_the_same_in_chunks(tmp_path):
    src = _hetrec(tmp_path, rows=90)
    whole, _, summary = load_interactions(src, **_options())
    stream = InteractionStream(src, ImportOptions(**_options()), 20)
    streamed = pd.concat(list(stream), ignore_index=True)
    key = ["event_id"]
    pd.testing.assert_frame_equal(
        whole.sort_values(key).reset_index(drop=True), streamed.sort_values(key).reset_index(drop=True)
    )
    assert str(summary) == str(stream.summary)


@pytest.mark.parametrize(
    ("time_col", "extra", "message"),
    [
        ("date_year,date_month", {}, "has no day: a time over several columns needs the year, month and day"),
        ("date_year,date_month,date_day,rating", {}, "its name says no one part"),
        ("date_year,date_month,date_day,date_day", {}, "names a column twice"),
        (PARTS, {"time_unit": "s"}, "writes a date by its parts: --time-unit"),
    ],
)
def test_parts_that_make_no_time_are_refused_in_words(tmp_path, time_col, extra, message):
    with pytest.raises(ImportFormatError, match=message):
        load_interactions(_hetrec(tmp_path), **{**_options(**extra), "time_col": time_col})


def test_the_split_date_is_suggested_whole_and_warned_of_when_left_unread(tmp_path):
    src = _hetrec(tmp_path)
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(src, now=NOW)
    assert f"--rating-col rating --time-col {PARTS}" in str(refused.value)
    _, _, summary = load_interactions(src, **{**_options(), "time_col": None})
    said = " ".join(str(summary).split())
    assert "warning: --no-time leaves the date written over 'date_year', 'date_month', 'date_day'" in said
    assert f"--time-col {PARTS} reads them as one time" in said


def test_split_columns_need_a_year_month_and_day_of_whole_numbers():
    frame = pd.DataFrame({"year": [2001], "month": [2], "day": [3], "hour": [4]})
    assert split_time_columns(list(frame.columns), frame) == ["year", "month", "day", "hour"]
    assert split_time_columns(["year", "month"], None) is None
    decimals = pd.DataFrame({"year": [2001], "month": [2], "day": [3.5]})
    assert split_time_columns(list(decimals.columns), decimals) is None


def test_nullable_integer_parts_from_parquet_make_times_and_a_missing_one_is_quarantined(tmp_path):
    frame = pd.read_csv(_hetrec(tmp_path), sep="\t")
    for col in ("date_year", "date_month", "date_day", "date_hour", "date_minute", "date_second"):
        frame[col] = frame[col].astype("Int64")
    frame.loc[3, "date_day"] = pd.NA
    src = tmp_path / "ratings.parquet"
    frame.to_parquet(src)
    events, _, _ = load_interactions(src, **_options())
    assert len(events) == 60 and events["timestamp"].isna().sum() == 1
