"""A column of how much of each item a play took (``--played-col``): the play's listen fraction, a
skip for a play stopped early, and every unreadable or implausible column said rather than guessed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.__main__ import app
from ingest.import_played import PlayedReading, SkipBelow
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions
from ingest.intake import READ_NOTE
from setlist.contract import POSITIVE_PLAY_FRACTION, SKIP_PLAY_FRACTION, reject_reason
from training.labels import label

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
T0 = 1_700_000_000


def _write(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _by_item(events: pd.DataFrame) -> dict[str, pd.Series]:
    return {row["item_id"]: row for _, row in events.iterrows()}


def _load(path: Path, played: PlayedReading, **options):
    return load_interactions(path, time_unit="s", now=NOW, played=played, **options)


def test_shares_of_the_item_become_listen_fractions_and_skips(tmp_path):
    # KuaiRec's watch_ratio: a share of the video, above 1 when it was watched again
    rows = [
        {"user_id": "u", "item_id": "replayed", "timestamp": T0, "watch_ratio": 1.27},
        {"user_id": "u", "item_id": "most", "timestamp": T0 + 60, "watch_ratio": 0.85},
        {"user_id": "u", "item_id": "half", "timestamp": T0 + 120, "watch_ratio": 0.5},
        {"user_id": "u", "item_id": "early", "timestamp": T0 + 180, "watch_ratio": 0.1},
        {"user_id": "v", "item_id": "blank", "timestamp": T0 + 240, "watch_ratio": None},
        {"user_id": "v", "item_id": "zero", "timestamp": T0 + 300, "watch_ratio": 0},
    ]
    events, _, summary = _load(_write(tmp_path / "k.csv", rows), PlayedReading("watch_ratio"))
    by = _by_item(events)
    assert by["replayed"]["type"] == "play" and by["replayed"]["value"] == 1.0  # past the end: a whole play
    assert by["most"]["value"] == pytest.approx(0.85) and by["half"]["value"] == pytest.approx(0.5)
    assert by["early"]["type"] == "skip" and np.isnan(by["early"]["value"])  # a skip carries no value
    assert by["zero"]["type"] == "skip"
    assert by["blank"]["type"] == "play" and np.isnan(by["blank"]["value"])  # a play of unknown value
    # the contract takes every row, and the labels read them: whole plays positive, skips negative
    assert all(reject_reason(r, NOW.to_pydatetime()) is None for r in events.to_dict("records"))
    labels = dict(zip(events["item_id"], label(events), strict=True))
    assert labels == {"replayed": 1, "most": 1, "half": -1, "early": 0, "blank": -1, "zero": 0}
    text = str(summary)
    assert f"6 plays, 2 of at least {POSITIVE_PLAY_FRACTION:g}" in text
    assert f"2 under {SKIP_PLAY_FRACTION:g} of the item read as skips" in text
    assert "1 play ran past the item's length" in text and "1 play without a share played in 'watch_ratio'" in text


def test_a_time_played_over_a_length_column_with_bad_cells_quarantined(tmp_path):
    # KuaiRec's play_duration over video_duration, both in milliseconds
    rows = [
        {"user_id": "u", "video_id": "a", "timestamp": T0, "play_duration": 9_000, "video_duration": 10_000},
        {"user_id": "u", "video_id": "b", "timestamp": T0 + 60, "play_duration": 1_000, "video_duration": 10_000},
        {"user_id": "u", "video_id": "c", "timestamp": T0 + 120, "play_duration": "lots", "video_duration": 10_000},
        {"user_id": "u", "video_id": "d", "timestamp": T0 + 180, "play_duration": -5, "video_duration": 10_000},
        {"user_id": "v", "video_id": "e", "timestamp": T0 + 240, "play_duration": 5_000, "video_duration": 0},
        {"user_id": "v", "video_id": "f", "timestamp": T0 + 300, "play_duration": "6,5", "video_duration": 10},
    ]
    src = _write(tmp_path / "k.csv", rows)
    events, _, summary = _load(src, PlayedReading("play_duration", "ms", "video_duration"), item_col="video_id")
    by = _by_item(events)
    assert by["a"]["value"] == pytest.approx(0.9) and by["b"]["type"] == "skip"
    assert by["c"]["type"] is None  # quarantined, with the cell quoted
    assert by["c"][READ_NOTE] == "'lots' in column 'play_duration' is no time played (a number)"
    assert by["d"]["type"] == "play" and np.isnan(by["d"]["value"])  # -5: a marker, a play of unknown value
    assert by["e"]["type"] == "play" and np.isnan(by["e"]["value"])  # a length of 0 is unknown
    assert by["f"]["value"] == pytest.approx(0.65)  # a decimal comma
    assert summary.problems["a time played that is not a number"] == 1
    assert "1 play with a time played below 0 in 'play_duration' (e.g. -5" in str(summary)
    assert "1 play without its item's length in 'video_duration' (empty, 0 or less" in str(summary)


def test_a_time_played_over_the_items_files_durations_and_a_skip_in_seconds(tmp_path):
    # 30Music: playtime in seconds; the tracks' durations are in the items file
    rows = [
        {"user": "u", "track": "long", "ts": T0, "playtime": 20},
        {"user": "u", "track": "long", "ts": T0 + 60, "playtime": 200},
        {"user": "u", "track": "jingle", "ts": T0 + 120, "playtime": 9},
        {"user": "u", "track": "nolength", "ts": T0 + 180, "playtime": 100},
        {"user": "v", "track": "absent", "ts": T0 + 240, "playtime": 100},
    ]
    src = _write(tmp_path / "30music.csv", rows)
    items = _write(
        tmp_path / "tracks.csv",
        [
            {"track": "long", "name": "Long", "duration": 240},
            {"track": "jingle", "name": "Jingle", "duration": 10},
            {"track": "nolength", "name": "Unknown", "duration": None},
        ],
    )
    options = dict(user_col="user", item_col="track", time_col="ts", items=items, item_id_col="track")
    played = PlayedReading("playtime", "s", skip_below=SkipBelow.parse("30s"))
    events, catalogue, summary = _load(src, played, **options)
    types = events.sort_values("timestamp")["type"].tolist()
    # 20 s of a 4-minute track is a skip; 9 s of a 10-second jingle is no skip, however short
    assert types == ["skip", "play", "play", "play", "play"]
    values = events.sort_values("timestamp")["value"].tolist()
    assert values[1] == pytest.approx(200 / 240) and values[2] == pytest.approx(0.9)
    assert np.isnan(values[3]) and np.isnan(values[4])  # no duration, or not in the items file
    assert (
        "2 plays without their item's length in tracks.csv's durations (empty, 0 or less, or no such item) are"
        in str(summary)
    )
    assert "1 shorter than 30 s read as skips" in str(summary)
    # the items file was read once for both: its catalogue is the import's
    assert set(catalogue["item_id"]) == {"long", "jingle", "nolength", "absent"}
    assert catalogue.set_index("item_id").loc["long", "title"] == "Long"


def test_percent_shares_beside_a_type_column_value_the_plays_only(tmp_path):
    # Yambda's multi_event: listens carry played_ratio_pct; likes and dislikes carry nothing
    rows = [
        {"uid": 1, "item_id": "a", "timestamp": T0, "event_type": "listen", "played_ratio_pct": 100},
        {"uid": 1, "item_id": "b", "timestamp": T0 + 5, "event_type": "listen", "played_ratio_pct": 12},
        {"uid": 1, "item_id": "c", "timestamp": T0 + 10, "event_type": "listen", "played_ratio_pct": 60},
        {"uid": 1, "item_id": "d", "timestamp": T0 + 15, "event_type": "like", "played_ratio_pct": None},
        {"uid": 1, "item_id": "e", "timestamp": T0 + 20, "event_type": "dislike", "played_ratio_pct": None},
    ]
    src = _write(tmp_path / "multi_event.csv", rows)
    events, _, summary = _load(src, PlayedReading("played_ratio_pct", "percent"), user_col="uid", type_col="event_type")
    by = _by_item(events)
    assert [by[k]["type"] for k in "abcde"] == ["play", "skip", "play", "like", "not_interested"]
    assert by["a"]["value"] == 1.0 and by["c"]["value"] == pytest.approx(0.6)
    assert by["d"]["value"] == 1.0  # a like keeps its own value
    assert "3 plays" in str(summary) and "without a share" not in str(summary)  # the like's blank is no play's


@pytest.mark.parametrize(
    ("played", "cells", "message"),
    [
        (PlayedReading("p"), [95, 120, 30], "no share of the item: --played-unit percent"),
        (PlayedReading("p", "s", "len"), [9_000, 5_000, 200_000], "in the same unit"),
    ],
)
def test_a_column_in_another_unit_than_said_is_refused(tmp_path, played, cells, message):
    rows = [{"user_id": "u", "item_id": f"i{k}", "timestamp": T0 + k, "p": c, "len": 200} for k, c in enumerate(cells)]
    with pytest.raises(ImportFormatError, match=message):
        _load(_write(tmp_path / "p.csv", rows), played)


def test_what_a_time_played_needs_and_what_it_does_not_combine_with(tmp_path):
    rows = [{"user_id": "u", "item_id": "a", "timestamp": T0, "p": 30, "r": 4}]
    src = _write(tmp_path / "p.csv", rows)
    with pytest.raises(ImportFormatError, match="--length-col\\) or an items file"):
        _load(src, PlayedReading("p", "s"))
    items = _write(tmp_path / "items.csv", [{"item_id": "a", "genre": "rock"}])
    with pytest.raises(ImportFormatError, match="items.csv gives no item a duration"):
        _load(src, PlayedReading("p", "s"), items=items)
    with pytest.raises(ImportFormatError, match="does not combine with a count"):
        _load(src, PlayedReading("p"), count_col="r")
    with pytest.raises(ImportFormatError, match="needs the time played"):
        PlayedReading("p", skip_below=SkipBelow.parse("30s")).check()
    with pytest.raises(ImportFormatError, match="fraction, percent or a unit of time"):
        PlayedReading("p", "weeks").check()
    for bad in ("1.5", "-0.1", "thirty", "30 weeks"):
        with pytest.raises(ImportFormatError, match="--skip-below is a share"):
            SkipBelow.parse(bad)
    assert SkipBelow.parse("0") == SkipBelow(0.0) and SkipBelow.parse(" 30s ") == SkipBelow(0.0, 30.0)
    assert SkipBelow.parse("2min") == SkipBelow(0.0, 120.0) and SkipBelow.parse("1h") == SkipBelow(0.0, 3600.0)


def test_an_import_in_chunks_reads_plays_as_an_import_at_once(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame(
        {
            "user_id": [f"u{k % 23}" for k in range(n)],
            "item_id": [f"i{rng.integers(60)}" for _ in range(n)],
            "timestamp": T0 + rng.integers(0, 86_400 * 20, n),
            "playtime": [str(rng.integers(0, 300)) if k % 37 else "?" for k in range(n)],
        }
    )
    src = tmp_path / "plays.csv"
    frame.to_csv(src, index=False)
    items = _write(tmp_path / "items.csv", [{"item_id": f"i{k}", "duration": 60 + 4 * k} for k in range(55)])
    options = dict(time_unit="s", now=NOW, items=items, played=PlayedReading("playtime", "s"))
    events, catalogue, summary = load_interactions(src, **options)
    stream = InteractionStream(src, ImportOptions(**options), 64)
    parts = list(stream)
    assert len(parts) > 3
    streamed = pd.concat(parts, ignore_index=True).sort_values("event_id", ignore_index=True)
    at_once = events.sort_values("event_id", ignore_index=True)
    for frame_ in (streamed, at_once):
        frame_[READ_NOTE] = frame_[READ_NOTE].astype(object).where(frame_[READ_NOTE].notna(), None)
    pd.testing.assert_frame_equal(at_once, streamed, check_dtype=False)
    pd.testing.assert_frame_equal(catalogue, stream.item_frame)
    assert str(summary) == str(stream.summary)
    assert (at_once["type"] == "skip").any() and at_once["type"].isna().sum() == (frame["playtime"] == "?").sum()


def test_the_command_line_refuses_played_options_without_the_column(tmp_path, monkeypatch):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _write(tmp_path / "p.csv", [{"user_id": "u", "item_id": "a", "timestamp": T0, "p": 0.9, "r": 3}])
    base = ["import", str(src), "--time-unit", "s"]
    result = CliRunner().invoke(app, [*base, "--skip-below", "0.3"])
    assert result.exit_code == 2 and "they need it" in result.output
    result = CliRunner().invoke(app, [*base, "--played-col", "p", "--count-col", "r"])
    assert result.exit_code == 2 and "does not combine" in result.output
    result = CliRunner().invoke(app, [*base, "--played-col", "p", "--skip-below", "2"])
    assert result.exit_code == 2 and "--skip-below is a share" in result.output
    result = CliRunner().invoke(app, [*base, "--played-col", "p"])
    assert result.exit_code == 0, result.output
    assert "listen shares in 'p' (fraction): 1 play," in result.output.replace("\n", " ")


def test_durations_written_out_percents_with_their_sign_and_duration_columns(tmp_path):
    rows = [
        {"user_id": "u", "item_id": "a", "timestamp": T0, "played": "3:25", "share": "85%"},
        {"user_id": "u", "item_id": "b", "timestamp": T0 + 60, "played": "1:02:03", "share": "0.5"},
        {"user_id": "u", "item_id": "c", "timestamp": T0 + 120, "played": "40", "share": "10%"},
    ]
    src = _write(tmp_path / "p.csv", rows)
    items = _write(tmp_path / "items.csv", [{"item_id": i, "duration": 250} for i in "abc"])
    events, _, summary = _load(src, PlayedReading("played", "s"), items=items)
    by = _by_item(events)
    assert by["a"]["value"] == pytest.approx(205 / 250) and by["b"]["value"] == 1.0  # an hour of a short track
    assert by["c"]["type"] == "skip"  # 40 s of 250
    assert "written as durations (e.g. '3:25': minutes:seconds" in str(summary)
    events, _, summary = _load(src, PlayedReading("share"))
    assert _by_item(events)["a"]["value"] == pytest.approx(0.85) and _by_item(events)["c"]["type"] == "skip"
    assert "2 cells of 'share' written as percents (e.g. '85%')" in str(summary)
    # a duration column (parquet's timedelta) is a time, whatever unit was said
    frame = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [T0, T0 + 60]})
    frame["played"] = pd.to_timedelta([200, 20], unit="s")
    frame.to_parquet(tmp_path / "p.parquet")
    played = PlayedReading("played", "ms", skip_below=SkipBelow.parse("30s"))
    events, _, summary = _load(tmp_path / "p.parquet", played, items=items)
    assert _by_item(events)["a"]["value"] == pytest.approx(0.8) and _by_item(events)["b"]["type"] == "skip"
    assert "'played' holds durations" in str(summary)


def test_a_column_mostly_unreadable_or_no_play_measured_is_refused_before_anything_is_written(tmp_path):
    rows = [
        {"user_id": "u", "item_id": f"i{k}", "timestamp": T0 + k, "p": f"{k} min", "len": "3:55x"} for k in range(5)
    ]
    src = _write(tmp_path / "p.csv", rows)
    with pytest.raises(ImportFormatError, match="5 of the 5 times played in 'p' are no numbers \\(e.g. '0 min'"):
        _load(src, PlayedReading("p", "s", "len"))
    rows = [{**r, "p": 30} for r in rows]
    src = _write(tmp_path / "p.csv", rows)
    with pytest.raises(ImportFormatError, match="none of the 5 plays has its item's length in 'len' .*'3:55x'"):
        _load(src, PlayedReading("p", "s", "len"))
    # an items file whose ids are of another form than the log's: said, with both
    items = _write(tmp_path / "items.csv", [{"item_id": f"x{k}", "duration": 200} for k in range(5)])
    with pytest.raises(ImportFormatError, match="the log's ids look like 'i0', the file's like 'x0'"):
        _load(src, PlayedReading("p", "s"), items=items)


def test_a_time_played_without_lengths_tells_skips_by_time_alone(tmp_path):
    # Spotify's streaming history: ms_played and no track lengths
    rows = [
        {"user_id": "u", "item_id": "a", "timestamp": T0, "ms_played": 215_000},
        {"user_id": "u", "item_id": "b", "timestamp": T0 + 60, "ms_played": 4_000},
        {"user_id": "u", "item_id": "c", "timestamp": T0 + 120, "ms_played": 180_000},
    ]
    src = _write(tmp_path / "history.csv", rows)
    with pytest.raises(ImportFormatError, match="or tell skips by time alone \\(--skip-below 30s\\)"):
        _load(src, PlayedReading("ms_played", "ms"))
    events, _, summary = _load(src, PlayedReading("ms_played", "ms", skip_below=SkipBelow.parse("30s")))
    by = _by_item(events)
    assert by["b"]["type"] == "skip" and by["a"]["type"] == by["c"]["type"] == "play"
    assert by["a"]["value"] == 1.0  # no length to measure it against: a whole play, as without the column
    assert "1 shorter than 30 s read as skips (negatives; --skip-below sets it), 2 more as whole plays" in str(summary)
    # NCM's view time: empty where the item was shown and never opened, neither counted as whole nor left unsaid
    rows += [{"user_id": "u", "item_id": f"m{k}", "timestamp": T0 + 200 + k, "ms_played": None} for k in range(3)]
    events, _, summary = _load(
        _write(tmp_path / "ncm.csv", rows), PlayedReading("ms_played", "ms", skip_below=SkipBelow.parse("30s"))
    )
    said = " ".join(str(summary).split())
    assert "6 plays, 1 shorter than 30 s read as skips (negatives; --skip-below sets it), 2 more as whole plays" in said
    assert "3 plays without a time played in 'ms_played' are plays of unknown value" in said
    assert "reads those as impressions (--type-col isClick --type-map 1=play,0=impression)" in said
    with pytest.raises(ImportFormatError, match="a median play of 1.8e\\+05 s"):  # milliseconds said to be seconds
        _load(src, PlayedReading("ms_played", "s", skip_below=SkipBelow.parse("30s")))


def test_plays_of_zero_are_said_and_do_not_make_the_unit_look_wrong(tmp_path):
    # KuaiRand: most rows are items shown and not clicked, with a play time of 0
    rows = [
        {"user_id": "u", "item_id": f"i{k}", "timestamp": T0 + k, "play_time_ms": 0 if k % 5 else 9_000, "len": 10_000}
        for k in range(20)
    ]
    events, _, summary = _load(_write(tmp_path / "kr.csv", rows), PlayedReading("play_time_ms", "ms", "len"))
    assert (events["type"] == "skip").sum() == 16
    assert "16 of the 20 plays in 'play_time_ms' are 0" in str(summary) and "--type-map 1=play,0=impression" in str(
        summary
    )


def test_percents_that_never_pass_one_are_shares_and_list_rows_have_no_time_of_each(tmp_path):
    rows = [{"user_id": "u", "item_id": f"i{k}", "timestamp": T0 + k, "p": 0.2 + k / 10} for k in range(6)]
    src = _write(tmp_path / "p.csv", rows)
    with pytest.raises(ImportFormatError, match="--played-unit fraction for shares of 1"):
        _load(src, PlayedReading("p", "percent"))
    with pytest.raises(ImportFormatError, match="--item-lists"):
        _load(src, PlayedReading("p"), item_lists=True)
    events, _, summary = _load(src, PlayedReading("p", skip_below=SkipBelow.parse("0")))
    assert not (events["type"] == "skip").any() and "no play read as a skip (--skip-below 0)" in str(summary)


def test_the_plays_fixture_is_seeded_and_shaped_as_the_public_log():
    from ingest.plays_fixture import make_plays

    a, b = make_plays(users=30, items=150, plays=900, seed=3), make_plays(users=30, items=150, plays=900, seed=3)
    pd.testing.assert_frame_equal(a.plays, b.plays)
    assert not a.plays.equals(make_plays(users=30, items=150, plays=900, seed=4).plays)
    p = a.plays
    assert len(p) == 900 and p["user_id"].nunique() == 30
    assert set(p["video_id"]) <= set(a.categories["video_id"])
    assert np.allclose(p["watch_ratio"], p["play_duration"] / p["video_duration"], atol=5e-4)
    share = p["watch_ratio"]
    assert 0.1 < (share < SKIP_PLAY_FRACTION).mean() < 0.6 and (share > 1).any()  # skips and replays, both
    # each user's rows are in time order, as in the public file
    times = pd.to_datetime(p["time"])
    assert (times.groupby(p["user_id"]).diff().dropna() >= pd.Timedelta(0)).all()
    with pytest.raises(ValueError, match="plays ≥ 20 per user"):
        make_plays(users=30, items=150, plays=100)


def test_rated_rows_keep_the_ratings_reading_beside_timed_ones(tmp_path):
    # ContentWise: a view carries the share watched (vision_factor), a rating row its stars, -1 elsewhere
    rows = [
        {"user_id": "u", "item_id": "watched", "timestamp": T0, "kind": 0, "vision_factor": 0.95, "stars": None},
        {"user_id": "u", "item_id": "left", "timestamp": T0 + 60, "kind": 0, "vision_factor": 0.05, "stars": None},
        {"user_id": "u", "item_id": "loved", "timestamp": T0 + 120, "kind": 2, "vision_factor": -1, "stars": 5.0},
        {"user_id": "u", "item_id": "meh", "timestamp": T0 + 180, "kind": 2, "vision_factor": -1, "stars": 3.0},
    ]
    src = _write(tmp_path / "cw.csv", rows)
    events, _, summary = _load(
        src, PlayedReading("vision_factor"), rating_col="stars", type_col="kind", type_map={"0": "play", "2": "play"}
    )
    by = _by_item(events)
    assert by["watched"]["value"] == pytest.approx(0.95) and by["left"]["type"] == "skip"
    assert by["loved"]["value"] == 1.0 and by["meh"]["value"] == pytest.approx(0.6)  # their stars, not the -1
    assert (
        "2 rows with a rating keep their rating as their value (the type column gives their types); 'vision_factor' "
        "reads the 2 plays without one"
    ) in str(summary)
    # without a type column the rating's own reading (like, skip, play) stands
    events, _, summary = _load(src, PlayedReading("vision_factor"), rating_col="stars")
    assert _by_item(events)["loved"]["type"] == "like" and _by_item(events)["left"]["type"] == "skip"
    assert "2 rows with a rating keep the rating's reading" in str(summary)


def test_without_lengths_a_play_without_a_time_is_of_unknown_value(tmp_path):
    # Adressa: activeTime is missing on many reads, -1 on some
    rows = [
        {"userId": "cx:a", "id": "art1", "time": T0, "activeTime": 40},
        {"userId": "cx:a", "id": "art2", "time": T0 + 60, "activeTime": None},
        {"userId": "cx:a", "id": "art3", "time": T0 + 120, "activeTime": -1},
        {"userId": "cx:a", "id": "art4", "time": T0 + 180, "activeTime": 3},
    ]
    src = _write(tmp_path / "adressa.csv", rows)
    played = PlayedReading("activeTime", "s", skip_below=SkipBelow.parse("10s"))
    events, _, summary = _load(src, played, user_col="userId", item_col="id", time_col="time")
    by = _by_item(events)
    assert by["art1"]["value"] == 1.0 and by["art4"]["type"] == "skip"
    assert np.isnan(by["art2"]["value"]) and np.isnan(by["art3"]["value"])  # no positives from nothing
    said = str(summary)
    assert "1 play without a time played in 'activeTime'" in said and "1 play with a time played below 0" in said


def test_a_play_as_long_as_its_item_is_whole_not_past_it(tmp_path):
    # Apple Music: Play Duration Milliseconds equal to Media Duration In Milliseconds, to the last bit
    rows = [
        {"user_id": "u", "item_id": k, "timestamp": T0 + 60 * i, "played_ms": k, "length_ms": k}
        for i, k in enumerate((200_003, 200_009, 187_001, 240_017))
    ]
    events, _, summary = _load(_write(tmp_path / "apple.csv", rows), PlayedReading("played_ms", "ms", "length_ms"))
    assert (events["value"] == 1.0).all() and "ran past" not in str(summary)
