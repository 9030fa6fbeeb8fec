"""Times that are not plain epoch numbers or zoned ISO text: wall-clock times of a named zone,
counters from a start, year-less dates, dates alone; and the import's other words on unseen layouts
(plural type names, an import that keeps nothing, genre lists joined by a bare slash)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.__main__ import app
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, TextLayout, load_interactions
from setlist.settings import get_settings


def _csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_wall_clock_times_are_read_in_the_named_zone_and_zoned_ones_keep_theirs(tmp_path):
    src = _csv(
        tmp_path / "ratings.tsv",
        "UserId\tMovieId\tTimestamp\n"
        "u1\tm1\t2008-01-07 21:43:55\n"
        "u1\tm2\t2012-03-11T10:00:00Z\n"
        "u2\tm1\tTue Apr 03 18:00:09 +0000 2012\n",
    )
    args = dict(user_col="UserId", item_col="MovieId", time_col="Timestamp")
    events, _, summary = load_interactions(src, **args, time_zone="Asia/Shanghai")
    # China is 8 hours ahead of UTC: the wall-clock time is 8 hours later than the instant
    assert events["timestamp"].tolist() == [
        _utc("2008-01-07 13:43:55"),
        _utc("2012-03-11 10:00:00"),
        _utc("2012-04-03 18:00:09"),
    ]
    assert "1 time in 'Timestamp' without a zone read in Asia/Shanghai" in str(summary)
    # without a zone the wall clock is taken for UTC, and the import says how many times that was
    plain, _, said = load_interactions(src, **args)
    assert plain["timestamp"].iloc[0] == _utc("2008-01-07 21:43:55")
    assert "1 time in 'Timestamp' without a time zone read as UTC; --time-zone names theirs" in str(said)


@pytest.mark.parametrize("zone", [None, "America/New_York"])
def test_a_time_without_a_zone_after_one_with_an_offset_is_read_as_its_own(zone):
    """pandas 2.x parsing both in one call gave the naive time the offset of the zoned one before it."""
    from ingest.import_values import TimeReading, parse_time

    raw = pd.Series(
        ["2024-03-10T12:00:00+05:30", "2024-03-10 02:30:00", "2024-11-03T01:30:00-08:00", "2024-11-03 01:30:00"]
    )
    notes: list[str] = []
    got = parse_time(raw, None, "t", notes, reading=TimeReading(zone=zone)).tolist()
    naive = ["2024-03-10 02:30", "2024-11-03 01:30"] if zone is None else ["2024-03-10 07:00", "2024-11-03 06:30"]
    assert got == [_utc("2024-03-10 06:30"), _utc(naive[0]), _utc("2024-11-03 09:30"), _utc(naive[1])]
    assert notes and notes[0].startswith("2 times in 't' without")


def test_a_clock_change_neither_loses_nor_fails_a_row(tmp_path):
    # 02:30 does not exist in Paris on 2021-03-28 and happens twice on 2021-10-31
    src = _csv(tmp_path / "t.csv", "u,i,t\na,x,2021-03-28 02:30:00\na,y,2021-10-31 02:30:00\nb,x,2021-06-01 12:00:00")
    events, _, _ = load_interactions(src, user_col="u", item_col="i", time_col="t", time_zone="Europe/Paris")
    assert sorted(events["timestamp"]) == [
        _utc("2021-03-28 01:00:00"),  # moved forward to 03:00, summer time (UTC+2)
        _utc("2021-06-01 10:00:00"),  # summer time
        _utc("2021-10-31 01:30:00"),  # the repeated hour read as standard time (UTC+1)
    ]


def test_a_zone_whose_clocks_skip_midnight_reads_the_days_around_it(tmp_path):
    # Brazil's summer time began at midnight: 2017-10-15 00:00 never happened in Sao Paulo, and
    # the checks that look for dates without times of day once failed on any row of that day
    src = _csv(tmp_path / "o.csv", "u,i,t\na,x,2017-10-14 10:00:00\na,y,2017-10-15 10:00:00\nb,x,2017-10-16 00:00:00")
    events, _, summary = load_interactions(src, user_col="u", item_col="i", time_col="t", time_zone="America/Sao_Paulo")
    assert events["timestamp"].tolist() == [
        _utc("2017-10-14 13:00:00"),  # standard time, UTC-3
        _utc("2017-10-15 12:00:00"),  # summer time, UTC-2
        _utc("2017-10-16 02:00:00"),
    ]
    assert "date without a time of day" not in str(summary)


def test_epoch_numbers_are_instants_whatever_the_zone(tmp_path):
    src = _csv(tmp_path / "t.csv", "u,i,t\na,x,1600000000\nb,y,1600000060")
    events, _, summary = load_interactions(
        src, user_col="u", item_col="i", time_col="t", time_unit="s", time_zone="+08:00"
    )
    assert events["timestamp"].iloc[0] == pd.Timestamp(1_600_000_000, unit="s", tz="UTC")
    assert "--time-zone +08:00 not applied to 't': epoch numbers are UTC" in str(summary)


def test_counters_from_a_start_are_placed_by_an_origin(tmp_path):
    # Twitch 100k: headerless, times in 10-minute ticks since the crawl began
    src = _csv(
        tmp_path / "100k_a.csv", "1,33842865744,mithrain,0,3\n1,33846768288,alptv,3,5\n2,33886469056,mithrain,6148,6149"
    )
    names = TextLayout(names=("user_id", "stream_id", "streamer", "time_start", "time_stop"))
    args = dict(user_col="user_id", item_col="streamer", time_col="time_start", layout=names)
    with pytest.raises(ImportFormatError, match="--time-unit 10min --time-origin 2019-10-01"):
        load_interactions(src, **args)  # said how, rather than read as 1970
    events, _, summary = load_interactions(src, **args, time_unit="10min", time_origin="2019-10-01")
    assert events["timestamp"].tolist() == [
        _utc("2019-10-01 00:00"),  # tick 0 is the origin itself, not "epoch zero" (quarantined)
        _utc("2019-10-01 00:30"),
        _utc("2019-10-01") + pd.Timedelta(minutes=10 * 6148),
    ]
    assert "counted in units of 10min from 2019-10-01T00:00:00+00:00" in str(summary)
    # an origin in a zone is that zone's midnight
    zoned, _, _ = load_interactions(src, **args, time_unit="h", time_origin="2019-10-01", time_zone="America/New_York")
    assert zoned["timestamp"].iloc[0] == _utc("2019-10-01 04:00")


def test_dates_written_as_digits_without_the_century_are_named_with_their_format(tmp_path):
    # Avazu's hour: YYMMDDHH, 14102100 for 2014-10-21 00:00
    src = _csv(
        tmp_path / "train.csv",
        "id,click,hour,site_id,device_ip\n1,0,14102100,s1,d1\n2,1,14102123,s2,d1\n3,0,14103005,s1,d2",
    )
    args = dict(user_col="device_ip", item_col="site_id", time_col="hour")
    said = r"read as a year, month, day and hour \(%y%m%d%H: 14102100 … 14103005, the first as 2014-10-21 00:00\)"
    for more in ({}, {"time_unit": "s"}, {"time_unit": "h", "time_origin": "2014-10-21"}):
        with pytest.raises(ImportFormatError, match=said + ".*--time-format %y%m%d%H"):
            load_interactions(src, **args, **more)
    events, _, _ = load_interactions(src, **args, time_format="%y%m%d%H")
    assert events["timestamp"].tolist() == [
        _utc("2014-10-21 00:00"),
        _utc("2014-10-21 23:00"),
        _utc("2014-10-30 05:00"),
    ]
    # counters that leave every time past the calendar's years are refused, not quarantined row by row
    ticks = _csv(tmp_path / "ticks.csv", "user_id,item_id,t\n1,a,99000000\n2,b,99000500")
    with pytest.raises(ImportFormatError, match=r"falls outside the years 1677-2262 on every row \(e.g. '99000000'\)"):
        load_interactions(
            ticks, user_col="user_id", item_col="item_id", time_col="t", time_unit="h", time_origin="2014-10-21"
        )
    # small counters are no short dates: 50102 would pad to 2005-01-02
    small = _csv(tmp_path / "small.csv", "user_id,item_id,t\n1,a,50102\n2,b,50103")
    with pytest.raises(ImportFormatError, match="too small to be epoch times"):
        load_interactions(small, user_col="user_id", item_col="item_id", time_col="t")


def test_year_less_dates_read_by_a_format_and_a_year(tmp_path):
    # Tmall: MMDD without a year or leading zero
    src = _csv(tmp_path / "log.csv", "user_id,item_id,time_stamp\n1,a,511\n1,b,829\n2,a,1110\n2,c,1111")
    args = dict(user_col="user_id", item_col="item_id", time_col="time_stamp")
    # the naive import is told what the numbers are, not only that they are no epoch times
    with pytest.raises(ImportFormatError, match=r"month and a day without a year .*511 … 1111, the first as May 11.*"):
        load_interactions(src, **args)
    with pytest.raises(ImportFormatError, match=r"--time-format %m%d and --year YEAR"):
        load_interactions(src, **args, time_unit="s")
    counters = _csv(tmp_path / "ticks.csv", "user_id,item_id,time_stamp\n1,a,511\n1,b,845\n2,a,1110\n2,c,1111")
    with pytest.raises(ImportFormatError, match="too small to be epoch times"):  # 845 is no day of August
        load_interactions(counters, **args)
    with pytest.raises(ImportFormatError, match="has no year"):
        load_interactions(src, **args, time_format="%m%d")
    events, _, summary = load_interactions(src, **args, time_format="%m%d", time_year=2015)
    assert events["timestamp"].tolist() == [
        _utc("2015-05-11"),
        _utc("2015-08-29"),
        _utc("2015-11-10"),
        _utc("2015-11-11"),
    ]
    # dates alone: the order within a day is unknown, and said
    said = " ".join(str(summary).split())
    assert "is a date without a time of day" in said and "one day reads as one session" in said
    baskets = _csv(
        tmp_path / "b.csv", "user_id,item_id,time_stamp,basket\n1,a,511,x\n1,b,829,y\n2,a,1110,z\n2,c,1111,w"
    )
    _, _, told = load_interactions(baskets, **args, time_format="%m%d", time_year=2015, session_col="basket")
    said = " ".join(str(told).split())
    assert "sessions come from 'basket'" in said and "one day reads as one session" not in said
    with pytest.raises(ImportFormatError, match="matches --time-format '%d.%m.%Y'"):
        load_interactions(src, **args, time_format="%d.%m.%Y")


def test_a_time_of_day_anywhere_is_no_dates_alone_note(tmp_path):
    src = _csv(tmp_path / "t.csv", "u,i,t\na,x,2020-01-01\na,y,2020-01-02\nb,x,2020-01-03 10:00")
    _, _, summary = load_interactions(src, user_col="u", item_col="i", time_col="t")
    assert "without a time of day" not in str(summary)


def test_the_command_refuses_time_options_that_do_not_go_together(tmp_path, monkeypatch):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _csv(tmp_path / "t.csv", "user_id,item_id,timestamp\na,x,1\n")
    cases = {
        ("--time-unit", "10min"): "--time-unit 10min counts from a start: give it with --time-origin DATE",
        (
            "--time-origin",
            "2019-10-01",
        ): "--time-origin counts the time column's numbers from a date: it needs --time-unit",
        ("--year", "2015"): "--year completes a --time-format without a year",
        ("--time-zone", "Mars/Olympus"): "--time-zone 'Mars/Olympus' is not a time zone",
        ("--time-format", "%m%d", "--time-unit", "s"): "--time-format reads written times",
        ("--no-time", "--time-origin", "2019-10-01"): "--no-time: a file without times takes no --time-origin",
        ("--time-unit", "0min", "--time-origin", "2019-10-01"): "--time-unit must be s, ms, us, ns, min, h or d",
        ("--time-unit", "s", "--time-origin", "then"): "--time-origin 'then' is not a date",
    }
    for args, said in cases.items():
        result = CliRunner().invoke(app, ["import", str(src), *args])
        assert result.exit_code == 2, (args, result.output)
        assert said in " ".join(result.stderr.split()), (args, result.stderr)


def test_plural_type_names_are_read_and_an_import_that_keeps_nothing_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _csv(
        tmp_path / "otto.csv",
        "session,aid,ts,type\n1,10,1661724000278,clicks\n1,11,1661724001278,carts\n2,10,1661724002278,orders\n"
        "2,12,1661724003278,likes",
    )
    args = ["--user-col", "session", "--item-col", "aid", "--time-col", "ts", "--time-unit", "ms", "--type-col", "type"]
    events, _, summary = load_interactions(
        src, user_col="session", item_col="aid", time_col="ts", time_unit="ms", type_col="type"
    )
    assert events["type"].tolist()[0] == "play" and events["type"].tolist()[3] == "like"
    # every unknown name is in the suggested map, not only the first two
    assert "--type-map carts=TYPE,orders=TYPE" in " ".join(str(summary).split())
    mapped, _, _ = load_interactions(
        src,
        user_col="session",
        item_col="aid",
        time_col="ts",
        time_unit="ms",
        type_col="type",
        type_map={"cart": "add_to_playlist", "order": "like"},  # a singular map entry reads the plural too
    )
    assert mapped["type"].tolist() == ["play", "add_to_playlist", "like", "like"]
    nothing = _csv(tmp_path / "steam.csv", "u,i,kind\n1,a,purchase\n2,b,purchase")
    result = CliRunner().invoke(
        app, ["import", str(nothing), "--user-col", "u", "--item-col", "i", "--type-col", "kind", "--no-time"]
    )
    assert result.exit_code == 2, result.output
    assert "no row of steam.csv was accepted: 2 quarantined (unknown_type 2)" in " ".join(result.stderr.split())
    assert "nothing imported from steam.csv" in result.output and "imported steam.csv" not in result.output
    ok = CliRunner().invoke(app, ["import", str(src), *args, "--type-map", "carts=add_to_playlist,orders=like"])
    assert ok.exit_code == 0, ok.output
    # the same rows again are duplicates: nothing new, and no failure
    again = CliRunner().invoke(app, ["import", str(src), *args, "--type-map", "carts=add_to_playlist,orders=like"])
    assert again.exit_code == 0 and "were imported before" in again.output
    assert "nothing imported from" not in again.output  # a re-run fails nothing


def test_genre_lists_joined_by_a_bare_slash_split_when_their_parts_recur(tmp_path):
    genres = ["剧情", "爱情", "惊悚", "犯罪"]
    combos = [f"{a}/{b}" for a in genres for b in genres if a != b] + genres
    movies = "MovieId\tTitle\tGenres\n" + "\n".join(f"m{n}\t电影{n}\t{g}" for n, g in enumerate(combos))
    items = _csv(tmp_path / "movies.txt", movies)
    src = _csv(tmp_path / "ratings.txt", "UserId\tMovieId\tRating\tTimestamp\nu1\tm0\t5\t2008-10-15 05:38:08")
    args = dict(user_col="UserId", item_col="MovieId", time_col="Timestamp", rating_col="Rating")
    _, frame, summary = load_interactions(src, **args, items=items, item_id_col="MovieId")
    assert frame is not None
    by_id = frame.set_index("item_id")
    assert by_id.loc["m0", "genre"] == "剧情" and by_id.loc["m0", "genres"] == "剧情|爱情"
    assert set(frame["genre"]) == set(genres)
    assert "genre lists split at a bare '/' (4 genres in 12 combinations)" in str(summary)
    # names of their own: a few slashed genres whose parts never stand apart, and a spaced one
    shop = "id\tcategory\n" + "\n".join(
        f"v{n}\t{g}" for n, g in enumerate(["R&B/Soul", "Hip-Hop/Rap", "Rock", "Gym / Fitness Center", "Café"] * 4)
    )
    shop_items = _csv(tmp_path / "venues.tsv", shop)
    log = _csv(tmp_path / "checkins.tsv", "u\tid\tt\na\tv0\t2012-04-03T18:00:09Z")
    _, venues, said = load_interactions(
        log, user_col="u", item_col="id", time_col="t", items=shop_items, item_id_col="id"
    )
    assert venues is not None
    assert set(venues["genre"]) == {"r&b/soul", "hip-hop/rap", "rock", "gym / fitness center", "café"}
    assert "split at a bare" not in str(said)


def test_a_tracks_own_name_is_its_title_before_a_bare_name(tmp_path):
    # the Million Playlist Dataset flattened: `name` is the playlist's, `track_name` the track's
    src = _csv(
        tmp_path / "mpd.csv",
        "pid,name,modified_at,pos,track_uri,track_name,artist_name\n"
        "0,Throwbacks,1493424000,0,spotify:track:a,Lose Control,Missy Elliott\n"
        "1,Chill,1493424000,0,spotify:track:a,Lose Control,Missy Elliott\n",
    )
    _, frame, _ = load_interactions(
        src,
        user_col="pid",
        item_col="track_uri",
        time_col="modified_at",
        time_unit="s",
        items=src,
        item_id_col="track_uri",
    )
    assert frame is not None and frame["title"].tolist() == ["Lose Control"]


def test_a_count_that_is_a_measure_below_one_is_read(tmp_path):
    # Steam-200k's hours played: 0.1 h is a short try, not an unreadable count
    src = _csv(
        tmp_path / "steam.csv",
        '1,"Warhammer 40,000 Dawn of War II",play,273.0,0\n1,Dota 2,play,0.1,0\n1,Portal,play,12.0,0\n'
        "2,Dota 2,play,0,0",
    )
    events, _, summary = load_interactions(
        src,
        user_col="user",
        item_col="game",
        time_col=None,
        count_col="hours",
        layout=TextLayout(names=("user", "game", "behavior", "hours", "zero")),
    )
    by = dict(zip(zip(events["user_id"], events["item_id"]), events["type"]))
    assert by[("1", "Dota 2")] == "play" and by[("1", "Warhammer 40,000 Dawn of War II")] == "play"
    assert by[("2", "Dota 2")] is None  # zero hours: quarantined, and counted
    assert summary.problems["a play count that is not a number above 0"] == 1


def test_columns_nested_in_records_are_found_and_the_flattening_named(tmp_path):
    import json

    otto = tmp_path / "train.jsonl"
    otto.write_text(json.dumps({"session": 1, "events": [{"aid": 5, "ts": 1661724000278, "type": "clicks"}]}) + "\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(otto, user_col="session", item_col="aid", time_col="ts", time_unit="ms")
    said = str(caught.value)
    assert "'aid' is a key of the records nested in 'events' (aid, ts, type)" in said
    assert "json_normalize(rows, record_path='events', meta=['session'])" in said
    playlists = {
        "info": {"slice": "0-999"},
        "playlists": [{"pid": 0, "modified_at": 1493424000, "tracks": [{"pos": 0, "track_uri": "spotify:track:a"}]}],
    }
    pretty = tmp_path / "mpd.slice.0-999.json"
    pretty.write_text(json.dumps(playlists, indent=2))  # one document over many lines
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(pretty, user_col="pid", item_col="track_uri", time_col="modified_at", time_unit="s")
    said = str(caught.value)
    assert "one JSON document, an object whose 'playlists' holds 1 record. 'track_uri' is a key" in said
    assert "'playlists' → 'tracks'" in said and "Expected" not in said  # not the parser's own words
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(playlists))  # the same on one line: read as one row of two columns
    with pytest.raises(ImportFormatError, match="'track_uri' is a key of the records nested in 'playlists' → 'tracks'"):
        load_interactions(compact, user_col="pid", item_col="track_uri", time_col="modified_at", time_unit="s")
    # the call it names flattens the two levels, keeping each playlist's own keys beside its tracks
    said = str(caught.value)
    record_path = ast.literal_eval(re.search(r"record_path=(\[.*?\]), meta", said).group(1))
    meta = ast.literal_eval(re.search(r"meta=(\[.*\])\) written", said).group(1))
    flat = pd.json_normalize([playlists], record_path=record_path, meta=meta)
    assert flat[["track_uri", "playlists.pid", "playlists.modified_at"]].values.tolist() == [
        ["spotify:track:a", 0, 1493424000]
    ]


def test_numpy_printed_lists_are_their_elements_not_one_joined_id(tmp_path):
    # Amazon-M2: prev_items printed by NumPy (no commas, wrapped inside the quoted cell)
    src = _csv(
        tmp_path / "sessions.csv",
        "session,prev_items\n0,\"['B09W9FND7K' 'B09JSPLN1M'\n 'B09M7GY217']\"\n1,\"['B076THCGSG' 'B007MO8IME']\"\n",
    )
    events, _, _ = load_interactions(src, user_col="session", item_col="prev_items", time_col=None, item_lists=True)
    assert sorted(events["item_id"]) == sorted(["B09W9FND7K", "B09JSPLN1M", "B09M7GY217", "B076THCGSG", "B007MO8IME"])


def test_records_in_an_items_list_cell_give_their_names_not_their_reprs(tmp_path):
    import json

    books = tmp_path / "goodreads_books.json"
    rows = [
        {"book_id": "1", "title": "A", "authors": [{"author_id": "604031", "role": ""}],
         "popular_shelves": [{"count": "9", "name": "fantasy"}, {"count": "3", "name": "magic"}]},
        {"book_id": "2", "title": "B", "authors": [{"author_id": "7", "role": "Editor"}],
         "popular_shelves": [{"count": "5", "name": "romance"}]},
        # Meetup's group topics: the name under a longer key, beside a url key that is no id
        {"book_id": "3", "title": "C", "authors": [],
         "popular_shelves": [{"urlkey": "fun", "topic_name": "Outdoors"}, {"urlkey": "hike", "topic_name": "Hiking"}]},
    ]  # fmt: skip
    books.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    log = _csv(tmp_path / "log.csv", "user_id,book_id,date_added\nu,1,Mon Aug 28 14:21:11 -0700 2017")
    _, frame, _ = load_interactions(
        log,
        user_col="user_id",
        item_col="book_id",
        time_col="date_added",
        items=books,
        item_id_col="book_id",
        item_columns={"genre": "popular_shelves"},
    )
    assert frame is not None
    by_id = frame.set_index("item_id")
    assert by_id.loc["1", "artist"] == "604031" and by_id.loc["1", "genre"] == "fantasy"
    assert by_id.loc["1", "genres"] == "fantasy|magic" and by_id.loc["2", "genre"] == "romance"
    assert by_id.loc["3", "genres"] == "outdoors|hiking"


def test_a_zero_one_rating_is_said_with_its_reading(tmp_path):
    src = _csv(tmp_path / "train.csv", "msno,song_id,target\nFGtl+/a=,s1,1\nFGtl+/a=,s2,0\nxY/z=,s1,1")
    events, _, summary = load_interactions(src, user_col="msno", item_col="song_id", time_col=None, rating_col="target")
    assert sorted(events["type"]) == ["like", "like", "skip"]
    assert "'target' holds 0 and 1 only: 1 is a like, 0 a skip" in " ".join(str(summary).split())
    assert set(events["user_id"]) == {"FGtl+/a=", "xY/z="}  # base64 ids kept whole


def test_device_and_locale_columns_are_read_as_serving_reads_a_request(tmp_path):
    # Amazon-M2's locale per session, a log's platform: cohorts are kept by (device, locale)
    src = _csv(
        tmp_path / "log.csv",
        "user,item,ts,locale,platform\n"
        "a,x,1600000000,DE,Mobile\na,y,1600000060,JP,desktop\nb,x,1600000120,en_US,fridge\n"
        "b,y,1600000180,Germany!,\n",
    )
    args = dict(user_col="user", item_col="item", time_col="ts", time_unit="s")
    plain, _, said = load_interactions(src, **args)
    assert set(plain["locale"]) == {"unknown"} and set(plain["device"]) == {"unknown"}
    text = " ".join(str(said).split())
    assert "column 'locale' is not read: every event's locale is unknown; --locale-col locale reads it" in text
    # a platform may be a device (an app's) or a country (trivago's): both readings are offered
    assert (
        "column 'platform' is not read: every event's device is unknown; --device-col platform if it names devices"
        in text
    )
    assert "--locale-col platform" not in text  # the locale has its own column
    _, _, with_locale = load_interactions(src, **args, locale_col="locale")
    text = " ".join(str(with_locale).split())
    assert "every event's device is unknown; --device-col platform if it names devices" in text
    countries = _csv(tmp_path / "hotels.csv", "user,item,ts,platform\na,x,1600000000,AU\nb,y,1600000060,BR\n")
    _, _, either = load_interactions(countries, **args)
    text = " ".join(str(either).split())
    assert (
        "column 'platform' is not read: every event's device and locale are unknown; --device-col platform if it "
        "names devices or --locale-col platform if it names countries or languages" in text
    )
    # Twitter's hashed languages and EB-NeRD's numbered devices: read as they stand, each would be "other"
    coded = _csv(
        tmp_path / "coded.csv",
        "user,item,ts,language,device_type\na,x,1600000000,488B32D24BD4BB44172EB981C1BCA6FA,1\n"
        "b,y,1600000060,E7F038DE3EAD397AEC9193686C911677,2\n",
    )
    text = " ".join(str(load_interactions(coded, **args)[2]).split())
    assert "column 'language' is not read: every event's locale is unknown; its cells are codes" in text
    assert "--locale-col language needs --locale-map CODE=LOCALE" in text
    assert "--device-col device_type needs --device-map CODE=DEVICE" in text
    events, _, summary = load_interactions(src, **args, locale_col="locale", device_col="platform")
    by_item = events.sort_values("timestamp")
    assert by_item["locale"].tolist() == ["de", "jp", "en_US", "other"]  # as a request would carry them
    assert by_item["device"].tolist() == ["mobile", "desktop", "other", "unknown"]
    text = " ".join(str(summary).split())
    assert "device values outside what a request may name read as 'other': 'fridge'" in text
    assert "locale values outside what a request may name read as 'other': 'Germany!'" in text
    assert "is not read" not in text


def test_a_session_column_makes_the_visits(tmp_path):
    # Instacart, sorted by user, order_number and add_to_cart_order: one session per order
    lines = ["user_id,order_id,product_id"]
    for user, orders in (("7", [("o1", 3), ("o2", 14), ("o3", 1)]), ("8", [("o9", 2)])):
        for order, size in orders:
            lines += [f"{user},{order},p{user}{order}{k}" for k in range(size)]
    src = _csv(tmp_path / "instacart.csv", "\n".join(lines))
    args = dict(user_col="user_id", item_col="product_id", time_col=None, keep_file_order=True)
    events, _, summary = load_interactions(src, **args, session_col="order_id")
    seven = events[events["user_id"] == "7"].sort_values("timestamp")
    # each order is one session, its rows in cart order, the orders in the file's order
    assert seven["session_id"].nunique() == 3
    assert seven.groupby("session_id", sort=False).size().tolist() == [3, 14, 1]
    assert seven["item_id"].tolist() == [f"p7o1{k}" for k in range(3)] + [f"p7o2{k}" for k in range(14)] + ["p7o30"]
    assert "visits that are the sessions of 'order_id'" in " ".join(str(summary).split())
    # without it, a 14-item order is cut into visits of at most 10 rows
    cut, _, _ = load_interactions(src, **args)
    assert cut[cut["user_id"] == "7"]["session_id"].nunique() != 3
    # with times, the column names the sessions instead of 30-minute gaps
    timed = _csv(
        tmp_path / "timed.csv",
        "user_id,order_id,product_id,ts\n7,o1,a,1600000000\n7,o2,b,1600000010\n7,o1,c,1600000020\n8,,d,1600000000",
    )
    events, _, _ = load_interactions(
        timed, user_col="user_id", item_col="product_id", time_col="ts", time_unit="s", session_col="order_id"
    )
    by_item = events.set_index("item_id")["session_id"]
    assert by_item["a"] == by_item["c"] != by_item["b"] and by_item["d"] is not None


def test_edge_cases_of_reading_times():
    from ingest.import_values import TimeReading, parse_time

    said: list[str] = []
    # a date's own dashes are no offset: the zone applies (Paris is UTC+1 in November)
    dashed = parse_time(
        pd.Series(["13-11-2000 08:15", "01-11-2000 09:00"]), None, "t", said, reading=TimeReading(zone="Europe/Paris")
    )
    assert dashed.iloc[0] == _utc("2000-11-13 07:15") and "not applied" not in " ".join(said)
    # a count out of datetime's range is one unreadable row, not a failed import
    counted = parse_time(pd.Series([5, 1e20]), "d", "t", [], reading=TimeReading(origin="2019-10-01"))
    assert counted.iloc[0] == _utc("2019-10-06") and pd.isna(counted.iloc[1])
    # a format that reads each row's own offset, the offsets differing
    offsets = parse_time(
        pd.Series(["2019-10-01 12:00 +0800", "2019-10-01 12:00 +0000"]),
        None,
        "t",
        [],
        reading=TimeReading(time_format="%Y-%m-%d %H:%M %z"),
    )
    assert offsets.tolist() == [_utc("2019-10-01 04:00"), _utc("2019-10-01 12:00")]
    # an empty column with a unit: every row unreadable (quarantined), not "numbers too small"
    empty = parse_time(pd.Series([None, None], dtype=object), "s", "t", [])
    assert empty.isna().all()
    # an unparseable cell is not counted among the times read in a zone
    notes: list[str] = []
    parse_time(pd.Series(["2019-10-01 12:00", "garbage"]), None, "t", notes, reading=TimeReading(zone="Asia/Shanghai"))
    assert "1 time in 't' without a zone read in Asia/Shanghai (--time-zone)" in notes


def test_messy_exports_are_read_or_refused_in_words(tmp_path, monkeypatch):
    import gzip

    # a European spreadsheet: ';', decimal commas for the half stars, whole stars without one
    euro = tmp_path / "ratings.csv"
    euro.write_bytes(
        "\ufeffuserId;movieId;rating;timestamp\r\n1;2;4,5;31.12.2019 23:59\r\n1;3;4;30.12.2019 10:00\r\n".encode()
    )
    events, _, summary = load_interactions(
        euro, user_col="userId", item_col="movieId", time_col="timestamp", rating_col="rating"
    )
    assert len(events) == 2 and events["type"].notna().all()  # no half star lost
    assert "ratings scaled by the top rating 4.5" in str(summary)  # '4,5' read as 4.5
    assert "1 ratings in 'rating' written with a decimal comma (e.g. '4,5') read as decimals" in " ".join(
        str(summary).split()
    )
    # two exports appended: epoch numbers and written dates in one column are refused, not half dropped
    mixed = _csv(
        tmp_path / "mixed.csv", "u,i,t\n" + "".join(f"a,{k},1560967423\nb,{k},2019-06-19 18:03:43\n" for k in range(5))
    )
    for unit in (None, "s"):
        with pytest.raises(ImportFormatError, match="mixes numbers .* and written dates"):
            load_interactions(mixed, user_col="u", item_col="i", time_col="t", time_unit=unit)
    # a Windows export's curly quotes, not control characters
    movies = tmp_path / "movies.csv"
    movies.write_bytes("movieId,title\n2,\u201cLe Caf\u00e9\u201d\n3,Am\u00e9lie\u2019s\n".encode("cp1252"))
    _, frame, said = load_interactions(
        euro, user_col="userId", item_col="movieId", time_col="timestamp", rating_col="rating", items=movies,
        item_id_col="movieId",
    )  # fmt: skip
    assert frame is not None and set(frame["title"]) == {"\u201cLe Caf\u00e9\u201d", "Am\u00e9lie\u2019s"}
    assert "encoding cp1252" in str(said)
    # an items file keyed on something else, and ids on several rows that disagree
    other = _csv(tmp_path / "other.csv", "movieId,title\ntt1,A\ntt2,B\ntt2,C\n")
    _, _, keyed = load_interactions(
        euro, user_col="userId", item_col="movieId", time_col="timestamp", rating_col="rating", items=other,
        item_id_col="movieId",
    )  # fmt: skip
    text = " ".join(str(keyed).split())
    assert "none of the log's 2 items are in the items file's 'movieId'" in text
    # (IMDb's ids beside MovieLens' numbers: one of the two found once 'tt' is taken off)
    assert "the file's ids are the log's with 'tt' before them, so its rows were not added to the catalogue" in text
    assert "1 item id is on several rows that differ (e.g. 'tt2': 'B' / 'C'): the first row of each is kept" in text
    # a download cut short: said, not "Aborted."
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    rows = "userId,movieId,timestamp\n" + "".join(
        f"{u},{i},{1600000000 + u * 100 + i}\n" for u in range(40) for i in range(40)
    )
    packed = gzip.compress(rows.encode())
    cut = tmp_path / "r.csv.gz"
    cut.write_bytes(packed[: int(len(packed) * 0.7)])
    result = CliRunner().invoke(
        app, ["import", str(cut), "--user-col", "userId", "--item-col", "movieId", "--time-unit", "s"]
    )
    assert result.exit_code == 2 and "a file ends early or is corrupt" in " ".join(result.stderr.split())


@pytest.mark.parametrize("name", ["reviews.jsonl", "reviews.json"])
def test_epoch_numbers_in_json_stay_instants_under_any_date_like_name(tmp_path, name):
    """pandas' JSON reader turns a column named like a date (``timestamp``, ``*_at``) into clock times
    without a zone, which a --time-zone then shifted by hours (Amazon Reviews 2023's ``timestamp``)."""
    rows = [{"user_id": f"u{k}", "parent_asin": "B1", "timestamp": 1_600_000_000_000 + k} for k in range(3)]
    src = tmp_path / name
    if name.endswith(".jsonl"):
        src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        src.write_text(json.dumps(rows))
    args = dict(user_col="user_id", item_col="parent_asin", time_col="timestamp", time_unit="ms")
    events, _, summary = load_interactions(src, **args, time_zone="America/New_York")
    assert events["timestamp"].min() == pd.Timestamp(1_600_000_000_000, unit="ms", tz="UTC")
    assert "not applied to 'timestamp': epoch numbers are UTC" in " ".join(str(summary).split())


def test_rows_sharing_their_users_time_are_said_and_list_cells_point_to_positions(tmp_path):
    """Spotify's sessions log a date and an hour of day: a session's tracks share one hour."""
    rows = [f"s{k % 4},t{k},2018-07-1{k % 3},{k % 2}" for k in range(40)]
    src = _csv(tmp_path / "log.csv", "session_id,track,date,hour\n" + "\n".join(rows))
    options = dict(user_col="session_id", item_col="track", time_col="date")
    _, _, summary = load_interactions(src, **options, time_offset_col="hour", time_offset_unit="h")
    said = " ".join(str(summary).split())
    assert "40 of the 40 rows share their user's time with another row" in said and "even with 'hour' added" in said
    assert "--time-offset-col adds it" not in said  # the option is taken already
    _, _, plain = load_interactions(src, **options)
    assert "--time-offset-col" in str(plain)  # without it, the option is named
    lists = _csv(tmp_path / "pl.csv", "pid,songs,updt\n1,a b c,2013-12-19\n2,d e,2014-01-02\n")
    _, _, listed = load_interactions(lists, user_col="pid", item_col="songs", time_col="updt", item_lists=True)
    said = " ".join(str(listed).split())
    assert "the items of one list cell share its row's time" in said and "--time-offset-col and" not in said


def test_a_dates_only_log_is_said_as_such_before_its_shared_times(tmp_path):
    rows = [f"u{k % 3},i{k},2024-01-0{1 + k % 4}" for k in range(40)]
    src = _csv(tmp_path / "days.csv", "user,item,day\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, user_col="user", item_col="item", time_col="day")
    said = " ".join(str(summary).split())
    assert "every time in 'day' is a date without a time of day" in said
    assert "share their user's time" not in said
    months = ["December 2012", "January 2013", "March 2013", "June 2013"]
    stays = _csv(
        tmp_path / "stays.csv", "user,item,stayed\n" + "\n".join(f"u{k % 3},i{k},{months[k % 4]}" for k in range(40))
    )
    events, _, summary = load_interactions(stays, user_col="user", item_col="item", time_col="stayed")
    said = " ".join(str(summary).split())
    assert "every time in 'stayed' is the first of a month: months without a day" in said
    assert events["timestamp"].min() == pd.Timestamp("2012-12-01", tz="UTC")


def test_cells_listing_several_times_are_said_with_the_way_to_one_row_each(tmp_path):
    # Yelp's check-ins: one business's visits in one comma-separated date cell
    src = tmp_path / "checkin.csv"
    src.write_text(
        "visitor,business_id,date\n"
        'v1,b1,"2018-06-14 22:32:15, 2018-12-06 11:10:32"\n'
        "v2,b2,2019-11-15 02:54:44\n"
        'v3,b3,"2019-01-01 10:00:00, 2019-02-01 10:00:00, 2019-03-01 10:00:00"\n'
    )
    events, _, summary = load_interactions(src, user_col="visitor", item_col="business_id", time_col="date")
    said = " ".join(str(summary).split())
    assert "2 cells of 'date' list several times" in said and ".explode('date')" in said
    assert events["timestamp"].notna().sum() == 1  # the lists are quarantined, the single time read
    plain = tmp_path / "plain.csv"  # a cell that is no time and holds a comma is no list of times
    plain.write_text('visitor,business_id,date\nv1,b1,"soon, maybe"\nv2,b2,2019-11-15 02:54:44\n')
    _, _, summary = load_interactions(plain, user_col="visitor", item_col="business_id", time_col="date")
    assert "list several times" not in str(summary)


def test_times_counted_from_each_users_own_start_are_warned_of(tmp_path):
    # Riiid's train.csv: milliseconds since each user's first event, 0 on every user's first row
    rows = [f"{u},{k * 86_461_003 + u * 7},c{(u + k) % 40}" for u in range(30) for k in range(6)]
    src = _csv(tmp_path / "train.csv", "user_id,timestamp,content_id\n" + "\n".join(rows))
    args = dict(user_col="user_id", item_col="content_id", time_col="timestamp", time_unit="ms")
    with pytest.raises(ImportFormatError, match="--no-time --file-order keeps each user's rows in the file's order"):
        load_interactions(src, **args)
    rows = [f"{u},{k * 61_003},c{(u + k) % 40}" for u in range(30) for k in range(6)]
    src = _csv(tmp_path / "train.csv", "user_id,timestamp,content_id\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, **args, time_origin="2019-01-01")
    said = " ".join(str(summary).split())
    assert "warning: 100% of the users' first rows are at 2019-01-01T00:00:00+00:00, the file's earliest" in said
    assert "Import with --no-time --file-order instead" in said
    # users who start at their own times, and dates alone (a short log's first day is most users'), are not
    rows = [
        f"{u},{1_700_000_000_000 + u * 3_600_000 + k * 61_003},c{(u + k) % 40}" for u in range(30) for k in range(6)
    ]
    src = _csv(tmp_path / "timed.csv", "user_id,timestamp,content_id\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, **args)
    assert "first rows are at" not in str(summary)
    rows = [f"{u},2021-06-{1 + k:02d},c{(u + k) % 40}" for u in range(30) for k in range(6)]
    src = _csv(tmp_path / "days.csv", "user_id,date_,content_id\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, user_col="user_id", item_col="content_id", time_col="date_")
    assert "first rows are at" not in str(summary)
    # without a unit, the counter is said at once, not after --time-unit is given as first asked
    rows = [f"{u},{k * 86_461_003 + u * 7},c{(u + k) % 40}" for u in range(30) for k in range(6)]
    src = _csv(tmp_path / "train.csv", "user_id,timestamp,content_id\n" + "\n".join(rows))
    with pytest.raises(ImportFormatError, match="counts from near zero"):
        load_interactions(src, user_col="user_id", item_col="content_id", time_col="timestamp")


def test_fractional_epoch_seconds_keep_their_milliseconds():
    """GRU4Rec's preprocessed YOOCHOOSE: Time in seconds with three decimals. As binary floats they read
    a hair below (.896999931), which stored milliseconds would cut to .896."""
    from ingest.import_values import parse_time

    cells = pd.Series(["1396310460.897", "1396310517.492", "1396321724.606", "1396310460"])
    times = parse_time(cells, "s", "Time")
    assert [int(t.value // 1_000_000 % 1000) for t in times] == [897, 492, 606, 0]
    millis = parse_time(pd.Series(["1396310460897.5", "1396310460898"]), "ms", "Time")
    assert [int(t.value // 1_000 % 1_000_000) for t in millis] == [897500, 898000]


def test_a_spreadsheets_serial_dates_are_named_with_the_options_that_read_them(tmp_path):
    # a column of dates a spreadsheet kept as its numbers: days since 1899-12-30, the time of day a fraction
    src = _csv(tmp_path / "log.csv", "user_id,item_id,when\n1,a,45691.5\n1,b,45692.25\n2,a,45700\n2,c,45731.75")
    args = dict(user_col="user_id", item_col="item_id", time_col="when")
    for unit in (None, "s"):  # told the wrong unit or none, the same words
        with pytest.raises(ImportFormatError, match=r"serial dates, days since 1899-12-30 \(the median as 2025-02-"):
            load_interactions(src, **args, time_unit=unit)
    events, _, _ = load_interactions(src, **args, time_unit="d", time_origin="1899-12-30")
    assert events["timestamp"].tolist() == [
        _utc("2025-02-03 12:00"), _utc("2025-02-04 06:00"), _utc("2025-02-12 00:00"), _utc("2025-03-15 18:00")
    ]  # fmt: skip


def test_a_date_and_a_time_of_day_in_two_columns_are_one_time(tmp_path):
    # an export's Date and Time: named together they are read as one written time, day-first dates too
    rows = "".join(f"u{k % 3},i{k},{1 + k:02d}/03/2024,{k % 24}:{k % 60:02d}:05\n" for k in range(20))
    src = _csv(tmp_path / "log.csv", "user,item,Date,Time\n" + rows)
    args = dict(user_col="user", item_col="item")
    # alone, the time of day would be dated today: refused, with the pair that reads it
    with pytest.raises(ImportFormatError, match=r"holds times of day without a date .* --time-col Date,Time"):
        load_interactions(src, time_col="Time", **args)
    events, _, _ = load_interactions(src, time_col="Date,Time", **args)
    assert events["timestamp"].tolist()[:2] == [_utc("2024-03-01 00:00:05"), _utc("2024-03-02 01:01:05")]
    streamed = pd.concat(list(InteractionStream(src, ImportOptions(time_col="Date,Time", **args), 6)))
    assert sorted(streamed["event_id"]) == sorted(events["event_id"])
    # and the import's own advice names the pair
    with pytest.raises(ImportFormatError, match="--time-col Date,Time"):
        load_interactions(src)


def test_an_import_in_a_zone_says_how_the_hour_features_follow_it(tmp_path, monkeypatch):
    # --time-zone places the times as instants; the request features read them on SETLIST_TIMEZONE's clock
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _csv(tmp_path / "olist.csv", "u,i,t\n1,a,2018-03-01 21:00:00\n2,b,2018-03-01 22:00:00")
    args = ["import", str(src), "--user-col", "u", "--item-col", "i", "--time-col", "t"]
    result = CliRunner().invoke(app, [*args, "--time-zone", "America/Sao_Paulo"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "set SETLIST_TIMEZONE=America/Sao_Paulo before `make train` so they follow the users' clocks" in said
    assert "(UTC now)" in said
    monkeypatch.setenv("SETLIST_TIMEZONE", "-03:00")  # the offset spelt another way is the same clock
    get_settings.cache_clear()
    again = _csv(tmp_path / "olist2.csv", "u,i,t\n3,c,2018-03-02 21:00:00")
    offset = CliRunner().invoke(app, ["import", str(again), *args[2:], "--time-zone", "-0300"])
    assert offset.exit_code == 0 and "SETLIST_TIMEZONE" not in offset.output, offset.output
    plain = _csv(tmp_path / "olist3.csv", "u,i,t\n4,d,2018-03-03 21:00:00")
    assert "SETLIST_TIMEZONE" not in CliRunner().invoke(app, ["import", str(plain), *args[2:]]).output


def test_a_zone_pandas_alone_reads_is_named_as_the_setting_reads_it(tmp_path, monkeypatch):
    # pandas' dateutil/ zones place the times, but SETLIST_TIMEZONE refuses the prefix: the note names the zone
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _csv(tmp_path / "log.csv", "u,i,t\n1,a,2018-03-01 21:00:00\n2,b,2018-03-01 22:00:00")
    args = ["import", str(src), "--user-col", "u", "--item-col", "i", "--time-col", "t"]
    result = CliRunner().invoke(app, [*args, "--time-zone", "dateutil/Europe/Paris"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "set SETLIST_TIMEZONE=Europe/Paris before `make train`" in said
