"""A log of listening sessions in the shape of Spotify's Music Streaming Sessions Dataset (the sequential
skip challenge's ``log_*.csv``): no user id, a date and an hour of the day in two columns, a position
within the session, skips as true/false flags (``skip_1`` … ``skip_3``, ``not_skipped``), and a track
features file of numbers (``tf_*.csv``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions
from ingest.time_parts import date_hour_columns, part_units

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def _sessions(path: Path, sessions: int = 12, length: int = 10, bad_hour: bool = False) -> Path:
    rows = []
    for s in range(sessions):
        for pos in range(1, length + 1):
            skipped = (s + pos) % 3 == 0
            hour = 25 if bad_hour and (s, pos) == (0, 1) else (s * 5) % 24
            rows.append(
                {"session_id": f"0_{s:04d}-aa", "session_position": pos, "session_length": length,
                 "track_id_clean": f"t_{(s * 7 + pos) % 30:03d}", "skip_1": str(skipped and pos % 2 == 0).lower(),
                 "skip_2": str(skipped).lower(), "skip_3": str(skipped or pos == 4).lower(),
                 "not_skipped": str(not skipped).lower(), "hour_of_day": hour, "date": f"2018-07-{1 + s % 9:02d}",
                 "premium": "true", "context_type": "editorial_playlist"}
            )  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _features(path: Path) -> Path:
    pd.DataFrame(
        {"track_id": [f"t_{k:03d}" for k in range(30)], "duration": [180.5 + k for k in range(30)],
         "release_year": [1990 + k for k in range(30)], "acousticness": [k / 30 for k in range(30)],
         "energy": [0.5 + k / 100 for k in range(30)], "tempo": [100.0 + k for k in range(30)],
         "key": [k % 12 for k in range(30)], "mode": ["major", "minor"] * 15}
    ).to_csv(path, index=False)  # fmt: skip
    return path


def _options(**extra: object) -> dict:
    return dict(
        user_col="session_id", item_col="track_id_clean", time_col="date,hour_of_day",
        time_offset_col="session_position", time_offset_unit="s", session_col="session_id",
        type_col="skip_2", type_map={"true": "skip", "false": "play"}, now=NOW, **extra,
    )  # fmt: skip


def test_a_date_and_an_hour_make_each_rows_time_and_the_position_orders_the_session(tmp_path):
    events, _, summary = load_interactions(_sessions(tmp_path / "log.csv"), **_options())
    first = events[events["user_id"] == "0_0001-aa"].sort_values("timestamp")
    start = pd.Timestamp("2018-07-02 05:00", tz="UTC")
    assert first["timestamp"].tolist() == [start + pd.Timedelta(seconds=p) for p in range(1, 11)]
    assert first["item_id"].tolist() == [f"t_{(7 + p) % 30:03d}" for p in range(1, 11)]
    assert (events["type"] == "skip").sum() == sum((s + p) % 3 == 0 for s in range(12) for p in range(1, 11))
    said = " ".join(" ".join(summary.read_notes).split())
    assert "'skip_1', 'skip_3', 'not_skipped' not read beside 'skip_2'" in said
    assert "share their user's time" not in said  # the position orders them
    # in chunks alike
    stream = InteractionStream(_sessions(tmp_path / "log.csv"), ImportOptions(**_options()), chunk_rows=25)
    streamed = pd.concat(list(stream), ignore_index=True)
    assert sorted(streamed["event_id"]) == sorted(events["event_id"])


def test_an_hour_out_of_range_is_quarantined_with_its_cell_shown(tmp_path):
    events, _, summary = load_interactions(_sessions(tmp_path / "log.csv", bad_hour=True), **_options())
    assert events["timestamp"].isna().sum() == 1
    assert summary.problems["missing or unparseable timestamp"] == 1


def test_the_pair_is_named_by_its_words_and_a_day_beside_an_hour_is_no_date():
    assert part_units(["date", "hour_of_day"]) == {"date": "date", "hour_of_day": "hour_of_day"}
    assert part_units(["event_hour", "event_date"]) == {"event_date": "date", "event_hour": "hour_of_day"}
    with pytest.raises(ImportFormatError, match="has no year or month"):
        part_units(["day", "hour"])  # HetRec's parts, two of six: no date
    with pytest.raises(ImportFormatError, match="date,hour_of_day"):
        part_units(["date", "session_position"])
    with pytest.raises(ImportFormatError, match="has no month or day"):
        part_units(["date_year", "date_hour"])  # HetRec's year is no date
    frame = pd.DataFrame({"date": ["2018-07-01"] * 3, "hour_of_day": [0, 13, 23], "minutes": [1, 2, 3]})
    assert date_hour_columns(list(frame.columns), frame) == ["date", "hour_of_day"]
    assert date_hour_columns(["date", "hour_of_day"], frame.assign(hour_of_day=[0, 13, 90])) is None
    # hours played are a length of time, not the hour of the day
    played = pd.DataFrame({"date": ["2018-07-01"] * 3, "hours": [1, 2, 3], "hours_played": [1, 2, 3]})
    assert date_hour_columns(list(played.columns), played) is None
    # a date column with times of day already is no date alone
    timed = frame.assign(date=["2018-07-15 10:30:00"] * 3)
    assert date_hour_columns(list(timed.columns), timed) is None


def test_a_timestamp_column_of_midnights_is_a_date_beside_an_hour_both_ways(tmp_path):
    """Spark writes a date as a timestamp with its zone, every one a midnight: the hour still applies."""
    frame = pd.read_csv(_sessions(tmp_path / "log.csv"))
    frame["date"] = pd.to_datetime(frame["date"]).dt.tz_localize("UTC")
    frame.to_parquet(tmp_path / "log.parquet")
    events, _, _ = load_interactions(tmp_path / "log.parquet", **_options())
    first = events[events["user_id"] == "0_0001-aa"].sort_values("timestamp")
    assert first["timestamp"].iloc[0] == pd.Timestamp("2018-07-02 05:00:01", tz="UTC")
    stream = InteractionStream(tmp_path / "log.parquet", ImportOptions(**_options()), chunk_rows=25)
    assert sorted(pd.concat(list(stream))["timestamp"]) == sorted(events["timestamp"])
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(tmp_path / "log.parquet", now=NOW)  # and the pair is offered
    assert "--time-col date,hour_of_day" in " ".join(str(refused.value).split())


def test_a_date_column_holding_times_of_day_is_refused_beside_an_hour(tmp_path):
    frame = pd.read_csv(_sessions(tmp_path / "log.csv"))
    frame["date"] = frame["date"] + " 10:30:00"
    frame.to_csv(tmp_path / "timed.csv", index=False)
    with pytest.raises(ImportFormatError, match="holds times of day already"):
        load_interactions(tmp_path / "timed.csv", **_options())


def test_the_first_attempt_is_offered_the_date_and_hour_and_told_of_the_skip_flags(tmp_path):
    src = _sessions(tmp_path / "log.csv")
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(src, now=NOW)
    assert "--user-col session_id --item-col track_id_clean --time-col date,hour_of_day" in " ".join(
        str(refused.value).split()
    )
    events, _, summary = load_interactions(
        src, user_col="session_id", item_col="track_id_clean", time_col="date,hour_of_day", now=NOW
    )
    assert set(events["type"]) == {"play"}
    said = " ".join(" ".join(summary.read_notes).split())
    assert "'skip_1', 'skip_2', 'skip_3', 'not_skipped' not read: every row is imported as a whole play" in said
    # graded flags: the middle one, the challenge's target
    assert "--type-col skip_2 --type-map true=skip,false=play reads each skip" in said


def test_an_empty_middle_skip_flag_is_passed_over_for_a_filled_one(tmp_path):
    frame = pd.read_csv(_sessions(tmp_path / "log.csv")).assign(skip_2=None)
    frame.to_csv(tmp_path / "gap.csv", index=False)
    _, _, summary = load_interactions(
        tmp_path / "gap.csv", user_col="session_id", item_col="track_id_clean", time_col="date,hour_of_day", now=NOW
    )
    said = " ".join(" ".join(summary.read_notes).split())
    assert "--type-col skip_3 --type-map true=skip,false=play reads each skip" in said  # of skip_1 and skip_3


@pytest.mark.parametrize(
    "flag, cells, said",
    [
        ("not_skipped", ["true", "false"], "--type-col not_skipped --type-map true=play,false=skip"),
        ("is_skipped", [1, 0], "--type-col is_skipped --type-map 1=skip,0=play"),
    ],
)
def test_a_skip_flag_is_offered_its_reading(tmp_path, flag, cells, said):
    rows = [{"user": f"u{k % 4}", "item": f"i{k % 9}", "ts": 1541037460 + k, flag: cells[k % 2]} for k in range(30)]
    pd.DataFrame(rows).to_csv(tmp_path / "log.csv", index=False)
    _, _, summary = load_interactions(
        tmp_path / "log.csv", user_col="user", item_col="item", time_col="ts", time_unit="s", now=NOW
    )
    assert said in " ".join(" ".join(summary.read_notes).split())


def test_an_items_files_unread_columns_of_numbers_are_named(tmp_path):
    src = _sessions(tmp_path / "log.csv")
    _, items, summary = load_interactions(
        src, items=_features(tmp_path / "tf.csv"), item_id_col="track_id", **_options()
    )
    said = " ".join(" ".join(summary.read_notes).split())
    # a bare "key" is the musical key: a measure, not another catalogue's id
    assert "4 columns of numbers not read ('acousticness', 'energy', 'tempo', 'key')" in said and "Table(" in said
    assert items is not None and "acousticness" not in items.columns
    # other catalogues' ids and times are no measures to rank with
    tf = pd.read_csv(_features(tmp_path / "tf.csv")).drop(columns=["tempo", "key"])
    tf = tf.assign(work_id=range(30), isbn13=[9780000000000 + k for k in range(30)], published_time=1530000000)
    tf.to_csv(tmp_path / "tf2.csv", index=False)
    _, _, fewer = load_interactions(src, items=tmp_path / "tf2.csv", item_id_col="track_id", **_options())
    assert "columns of numbers not read" not in " ".join(fewer.read_notes)
    # a time spent is a measure, where a moment is not: watch_time makes three
    tf = tf.assign(watch_time=[120 + 7 * k for k in range(30)], last_watch_time=1530000000, last_played_time=1530000000)
    tf.to_csv(tmp_path / "tf3.csv", index=False)
    _, _, spent = load_interactions(src, items=tmp_path / "tf3.csv", item_id_col="track_id", **_options())
    assert "3 columns of numbers not read ('acousticness', 'energy', 'watch_time')" in " ".join(
        " ".join(spent.read_notes).split()
    )
