from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ingest.import_values import MAP_EVERY_NAME
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, TextLayout, load_interactions
from ingest.intake import OTHER_ID
from setlist.contract import EVENT_COLUMNS, EVENT_SCHEMA, ITEM_SCHEMA, SCHEMA_VERSION
from setlist.eventlog import to_table

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def _csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


def test_column_mapping_iso_times_and_defaults(tmp_path):
    src = _csv(
        tmp_path / "log.csv",
        """
listener,track,when
007,a,2024-01-01T10:00:00Z
007,b,2024-01-01T10:10:00+00:00
008,a,2024-01-01 12:00:00
""",
    )
    events, items, summary = load_interactions(src, user_col="listener", item_col="track", time_col="when")
    assert tuple(events.columns) == (*EVENT_COLUMNS, OTHER_ID)  # the last for ingestion alone: never stored
    assert to_table(events).schema.equals(EVENT_SCHEMA)
    assert events["user_id"].tolist() == ["007", "007", "008"]  # ids stay strings, zeros kept
    assert (events["type"] == "play").all() and (events["value"] == 1.0).all()
    assert (events["device"] == "unknown").all() and (events["locale"] == "unknown").all()
    # no consent column and no --assume-consent: the rows carry no flag (SETLIST_CONSENT_DEFAULT decides)
    assert events["consent_personalization"].isna().all() and events["consent_analytics"].isna().all()
    assert "SETLIST_CONSENT_DEFAULT" in summary.consent
    assert (events["schema_version"] == SCHEMA_VERSION).all() and events["arm"].isna().all()
    assert events["timestamp"].iloc[2] == pd.Timestamp("2024-01-01 12:00:00", tz="UTC")
    assert events["timestamp"].is_monotonic_increasing
    assert items["item_id"].tolist() == ["a", "b"] and (items["genre"] == "unknown").all()
    assert tuple(items.columns) == tuple(ITEM_SCHEMA.names)
    assert summary.rows == 3 and summary.users == 2 and summary.items == 2
    assert summary.type_counts == {"play": 3}
    assert "3 rows" in str(summary) and "2 users" in str(summary)


@pytest.mark.parametrize("unit,scale", [("s", 1), ("ms", 1000), ("us", 10**6), ("ns", 10**9)])
def test_epoch_time_units(tmp_path, unit, scale):
    src = _csv(tmp_path / "e.csv", f"user_id,item_id,timestamp\nu,i,{T0 * scale}\nu,j,{(T0 + 60) * scale}")
    events, _, _ = load_interactions(src, time_unit=unit)
    assert events["timestamp"].tolist() == [
        pd.Timestamp(T0, unit="s", tz="UTC"),
        pd.Timestamp(T0 + 60, unit="s", tz="UTC"),
    ]


def test_dates_written_as_yyyymmdd_numbers_are_dates_not_epoch_seconds(tmp_path):
    src = _csv(tmp_path / "e.csv", "user_id,item_id,date\nu,i,20200705.0\nu,j,20200706\nv,i,")
    events, _, _ = load_interactions(src, time_col="date")
    assert events["timestamp"].iloc[:2].tolist() == [
        pd.Timestamp("2020-07-05", tz="UTC"),
        pd.Timestamp("2020-07-06", tz="UTC"),
    ]
    assert events["timestamp"].iloc[2] is pd.NaT  # an empty cell stays missing: quarantined at ingestion
    with pytest.raises(ImportFormatError, match="YYYYMMDD"):
        load_interactions(src, time_col="date", time_unit="s")
    # not every 8-digit number is a date: 20201399 is not, and as epoch seconds it would be 1970
    odd = _csv(tmp_path / "o.csv", "user_id,item_id,date\nu,i,20200705\nu,j,20201399")
    with pytest.raises(ImportFormatError, match="too small to be epoch times"):
        load_interactions(odd, time_col="date")


def test_wrong_or_missing_time_unit_is_a_clear_error(tmp_path):
    src = _csv(tmp_path / "e.csv", f"user_id,item_id,timestamp\nu,i,{T0 * 1000}")
    with pytest.raises(ImportFormatError, match="--time-unit ms"):
        load_interactions(src, time_unit="s")
    with pytest.raises(ImportFormatError, match="--time-unit s or ms"):
        load_interactions(src)
    micro = _csv(tmp_path / "us.csv", f"user_id,item_id,timestamp\nu,i,{T0 * 10**6}")
    with pytest.raises(ImportFormatError, match="looks like microseconds.*--time-unit us"):
        load_interactions(micro, time_unit="ms")  # would be the year 33,000 and quarantined as bad times
    with pytest.raises(ImportFormatError, match="these look like microseconds"):
        load_interactions(micro)
    # milliseconds since a session began (Diginetica's timeframe) are no epoch times in any unit
    offsets = _csv(tmp_path / "off.csv", "user_id,item_id,timeframe\nu,i,526309\nu,j,1411032\nv,i,0")
    with pytest.raises(ImportFormatError, match="too small to be epoch times.*offsets or counters.*--no-time"):
        load_interactions(offsets, time_col="timeframe")
    # told the unit alone, still no: a log in 1970 is a mistake; an origin places them, 1970 itself if meant
    with pytest.raises(ImportFormatError, match="would fall in 1970.*--time-origin 1970-01-01 reads them"):
        load_interactions(offsets, time_col="timeframe", time_unit="ms")
    events, _, summary = load_interactions(offsets, time_col="timeframe", time_unit="ms", time_origin="1970-01-01")
    assert events["timestamp"].max() == pd.Timestamp(1_411_032, unit="ms", tz="UTC")
    assert "counted in units of ms from 1970-01-01T00:00:00+00:00 (--time-origin)" in str(summary)
    bad = _csv(tmp_path / "bad.csv", "user_id,item_id,timestamp\nu,i,yesterday-ish\nu,j,soon")
    with pytest.raises(ImportFormatError, match="parses as a datetime"):
        load_interactions(bad)


def test_missing_column_lists_available_columns(tmp_path):
    src = _csv(tmp_path / "r.csv", "userId,movieId,rating,timestamp\n1,2,4.0,978300760")
    with pytest.raises(
        ImportFormatError, match=r"user column 'user_id'.*available columns: userId, movieId, rating, timestamp"
    ):
        load_interactions(src, time_unit="s")
    with pytest.raises(ImportFormatError, match="rating column 'stars'"):
        load_interactions(src, user_col="userId", item_col="movieId", time_unit="s", rating_col="stars")


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(ImportFormatError, match="x.xlsx is a spreadsheet, which the import does not read"):
        load_interactions(tmp_path / "x.xlsx")
    with pytest.raises(ImportFormatError, match="not found"):
        load_interactions(tmp_path / "nope.csv")


def test_ratings_map_to_types_and_values(tmp_path):
    rows = "\n".join(f"u,i{k},{T0 + k * 60},{r}" for k, r in enumerate([1, 2, 3, 4, 5, ""]))
    src = _csv(tmp_path / "r.csv", "user_id,item_id,timestamp,stars\n" + rows)
    events, _, summary = load_interactions(src, time_unit="s", time_origin="1970-01-01", rating_col="stars")
    # an empty rating is a play of unknown value (see the test of rows without a rating)
    assert events["type"].tolist() == ["skip", "skip", "play", "like", "like", "play"]
    np.testing.assert_allclose(events["value"].to_numpy(), [np.nan, np.nan, 0.6, 0.8, 1.0, np.nan], rtol=1e-6)
    assert summary.problems["unparseable rating"] == 0

    half = _csv(tmp_path / "h.csv", "user_id,item_id,timestamp,r\nu,a,1,0.5\nu,b,2,3.5\nu,c,3,4.0\nu,d,4,5.0")
    events, _, _ = load_interactions(half, time_unit="s", time_origin="1970-01-01", rating_col="r")
    assert events["type"].tolist() == ["skip", "play", "like", "like"]
    assert events["value"].iloc[1] == pytest.approx(0.7)


def test_type_column_synonyms_and_unknown_types(tmp_path):
    from ingest.import_values import parse_type_map

    src = _csv(
        tmp_path / "t.csv",
        "user_id,item_id,timestamp,action\n"
        + "\n".join(
            f"u,i,{T0 + k},{a}"
            for k, a in enumerate(["Listen", "click", "VIEW", "like", "Thumbs-Up", "skip", "weird", ""])
        ),
    )
    events, _, summary = load_interactions(src, time_unit="s", time_origin="1970-01-01", type_col="action")
    # a viewed item page is the contract's own light type, not an impression (which would be a negative)
    assert events["type"].tolist() == ["play", "play", "view", "like", "like", "skip", "weird", None]
    assert events["value"].tolist()[:4] == [1.0, 1.0, pytest.approx(np.nan, nan_ok=True), 1.0]
    assert summary.problems["empty or unknown type"] == 2
    assert "'weird' 1" in str(summary) and "--type-map weird=TYPE" in str(summary)
    # Sobazaar's nine actions: the map to fill in names every one, the rarest too, not the five commonest
    actions = [f"act{k}" for k in range(7) for _ in range(7 - k)]
    many = _csv(
        tmp_path / "m.csv",
        "user_id,item_id,timestamp,action\n" + "\n".join(f"u,i{k},{T0 + k},{a}" for k, a in enumerate(actions)),
    )
    _, _, told = load_interactions(many, time_unit="s", type_col="action")
    said = " ".join(str(told).split())
    assert "and 2 more" in said and "--type-map " + ",".join(f"act{k}=TYPE" for k in range(7)) in said
    # past MAP_EVERY_NAME, the map to fill in starts with the commonest and says where the rest are
    crowd = [f"act{k}" for k in range(MAP_EVERY_NAME + 3) for _ in range(MAP_EVERY_NAME + 3 - k)]
    lots = _csv(
        tmp_path / "lots.csv",
        "user_id,item_id,timestamp,action\n" + "\n".join(f"u,i{k},{T0 + k},{a}" for k, a in enumerate(crowd)),
    )
    _, _, crowded = load_interactions(lots, time_unit="s", type_col="action")
    said = " ".join(str(crowded).split())
    assert f"act0=TYPE,act1=TYPE,act2=TYPE,act3=TYPE,act4=TYPE,… (the {MAP_EVERY_NAME + 3} names are on" in said
    # a synonym is a reading the log's owner may not share: said, with the option that reads it otherwise
    said = " ".join(str(summary).split())
    assert "type names read as event types: 'listen' → play, 'click' → play, 'thumbs_up' → like" in said
    assert "'view' →" not in said and "'like' →" not in said  # event types already
    # Plista's "impression" is an article read: the contract's impression is a negative, so it is said
    shown = _csv(tmp_path / "p.csv", f"user_id,item_id,timestamp,action\nu,i,{T0},impression\nu,j,{T0 + 1},click")
    plista = " ".join(str(load_interactions(shown, time_unit="s", type_col="action")[2]).split())
    assert "1 row typed 'impression' read as the contract's: an item shown and not chosen" in plista
    mapped = parse_type_map("impression=view")
    plista = " ".join(str(load_interactions(shown, time_unit="s", type_col="action", type_map=mapped)[2]).split())
    assert "typed 'impression'" not in plista
    assert "1 row with an empty 'action': no type, quarantined" in said and "--type-map =TYPE" in said
    # names of several words (Segment's "Song Played"): the map to fill in guesses from the words the
    # import reads alone, and leaves a name that names no type, or two, to the log's owner
    segment = ["Song Played", "Song Played", "skip_song", "App Opened", "search_results_shown"]
    named = _csv(
        tmp_path / "s.csv",
        "user_id,item_id,timestamp,event\n" + "\n".join(f"u,i{k},{T0 + k},{a}" for k, a in enumerate(segment)),
    )
    _, _, guessed = load_interactions(named, time_unit="s", type_col="event")
    said_named = " ".join(str(guessed).split())
    assert "--type-map song_played=play,skip_song=skip,app_opened=TYPE,search_results_shown=TYPE" in said_named
    assert "filled in where a name's words hold one event type" in said_named and "ignore leaves" in said_named
    assert "filled in" not in said  # nothing guessed for 'weird'

    assert "'' 1" not in said  # the empty cell is no unknown name
    # an empty cell that means one kind of event (a plain view beside the typed rows) is mapped by no name
    events, _, summary = load_interactions(
        src, time_unit="s", time_origin="1970-01-01", type_col="action", type_map=parse_type_map("=view,weird=skip")
    )
    assert events["type"].tolist()[-2:] == ["skip", "view"]
    assert summary.problems["empty or unknown type"] == 0 and "empty 'action'" not in str(summary)


def _shop_log(tmp_path: Path) -> Path:
    """An e-commerce log in its own words (Retailrocket's, Taobao's): none of them is an event type."""
    kinds = ["view", "addtocart", "transaction", "view", "pv", "Add-To-Cart", "buy", "view"]
    return _csv(
        tmp_path / "shop.csv",
        "visitorid,itemid,timestamp,event\n" + "\n".join(f"v{k % 2},i{k},{T0 + k},{a}" for k, a in enumerate(kinds)),
    )


def test_a_type_map_names_the_files_own_types(tmp_path):
    from ingest.import_values import parse_type_map

    src = _shop_log(tmp_path)
    kw = dict(user_col="visitorid", item_col="itemid", time_unit="s", type_col="event")
    events, _, summary = load_interactions(src, **kw)
    assert summary.problems["empty or unknown type"] == 5
    said = str(summary)
    # the commonest unknown names first, each with its count, and the option that maps them
    assert "'addtocart' 1" in said and "'add_to_cart' 1" in said and "--type-map" in said

    mapping = parse_type_map(
        "addtocart=add_to_playlist, Add-To-Cart=add_to_playlist,transaction=LIKE,buy=like,view=play,pv=play"
    )
    events, _, summary = load_interactions(src, **kw, type_map=mapping)
    assert events["type"].tolist() == [
        "play", "add_to_playlist", "like", "play", "play", "add_to_playlist", "like", "play"
    ]  # fmt: skip
    assert summary.problems["empty or unknown type"] == 0 and "--type-map" not in str(summary)
    # a mapped play carries a full value, as an unrated play does
    assert events.loc[events["type"] == "play", "value"].eq(1.0).all()


def test_rows_of_a_kind_mapped_to_ignore_are_left_out_and_counted(tmp_path):
    from ingest.import_values import parse_type_map

    # GH Archive: stars and forks among pushes and issues the import is not about
    kinds = ["WatchEvent", "PushEvent", "ForkEvent", "PushEvent", "IssuesEvent", "WatchEvent", "Mystery"]
    src = _csv(
        tmp_path / "gh.csv",
        "actor,repo,created_at,type\n"
        + "\n".join(f"a{k % 3},r{k},2015-01-01T10:0{k}:00Z,{t}" for k, t in enumerate(kinds)),
    )
    mapping = parse_type_map("WatchEvent=like,ForkEvent=add_to_playlist,PushEvent=ignore,IssuesEvent=ignore")
    kw = dict(user_col="actor", item_col="repo", time_col="created_at", type_col="type")
    events, _, summary = load_interactions(src, **kw, type_map=mapping)
    assert events["type"].tolist() == ["like", "add_to_playlist", "like", "mystery"]  # quarantined as unknown
    assert summary.ignored == {"PushEvent": 2, "IssuesEvent": 1} and summary.rows == 4
    said = str(summary)
    assert "left out as --type-map asks (=ignore): 3 rows ('PushEvent' 2 · 'IssuesEvent' 1)" in said
    assert "'mystery' 1" in said and "'pushevent'" not in said  # unknown names are said; ignored ones are not
    assert summary.problems["empty or unknown type"] == 1
    from ingest.importer import InteractionStream

    stream = InteractionStream(src, ImportOptions(**kw, type_map=mapping, now=pd.Timestamp("2024-01-01", tz="UTC")), 2)
    chunked = pd.concat(list(stream))
    assert sorted(chunked["event_id"]) == sorted(events["event_id"]) and stream.summary.ignored == summary.ignored


@pytest.mark.parametrize(
    "spec, message",
    [
        ("addtocart", "NAME=TYPE"),
        ("addtocart=", "NAME=TYPE"),
        ("addtocart=basket", "not an event type"),
        ("stars=ratings", "or rating: the row's rating says which"),
        ("buy=like,BUY=play", "twice"),
        ("=play,=like", "maps the empty cell twice"),
        ("=", "NAME=TYPE"),
        ("push=drop", "or ignore: such rows are left out"),
    ],
)
def test_a_bad_type_map_is_refused_by_name(spec, message):
    from ingest.import_values import parse_type_map

    with pytest.raises(ImportFormatError, match=message):
        parse_type_map(spec)


def test_rows_typed_as_ratings_are_read_by_their_rating(tmp_path):
    # a log of views and ratings (ContentWise's interaction types, an app's "rate" events): the rated
    # rows are likes, skips or plays by their rating, as in a file without a type column; the others
    # keep their type, a rating on them only their value
    rows = [("view", ""), ("rate", "5"), ("Rated", "1"), ("review", "3"), ("rate", ""), ("play", "1"), ("1", "4")]
    src = _csv(
        tmp_path / "mixed.csv",
        "user_id,item_id,timestamp,kind,stars\n"
        + "\n".join(f"u,i{k},{T0 + k},{kind},{stars}" for k, (kind, stars) in enumerate(rows)),
    )
    from ingest.import_values import parse_type_map

    events, _, summary = load_interactions(
        src, time_unit="s", type_col="kind", rating_col="stars", type_map=parse_type_map("1=rating")
    )
    assert events["type"].tolist() == ["view", "like", "skip", "play", "play", "play", "like"]
    values = events["value"].tolist()
    assert values[1] == 1.0 and values[3] == pytest.approx(0.6) and values[6] == pytest.approx(0.8)
    assert np.isnan(values[2]) and np.isnan(values[4])  # a skip carries none; a rate without stars is unknown
    assert values[5] == pytest.approx(0.2)  # a play keeps its rating as its value, and stays a play
    said = " ".join(str(summary).split())
    assert "5 rows typed 'rate', 'rated', 'review' read by their rating in 'stars'" in said
    assert "like 2" in said and "skip 1" in said
    # without a rating column such rows have no type: quarantined, with the option that reads them
    events, _, summary = load_interactions(src, time_unit="s", type_col="kind")
    assert events["type"].isna().sum() == 4 and summary.problems["empty or unknown type"] == 5  # and "1"
    assert "--rating-col names the column of their ratings" in " ".join(str(summary).split())


def test_play_counts_become_plays_weighted_by_their_count(tmp_path):
    # a heavy listener (median 40) and a light one (median 2); one unreadable and one zero count
    rows = [("heavy", "a", 400), ("heavy", "b", 40), ("heavy", "c", 10), ("light", "a", 2), ("light", "b", 1),
            ("light", "c", 3), ("light", "d", "x"), ("light", "e", 0)]  # fmt: skip
    src = _csv(tmp_path / "counts.tsv", "\n".join("\t".join(map(str, r)) for r in rows))
    events, _, summary = load_interactions(
        src,
        user_col="user",
        item_col="song",
        time_col=None,
        count_col="plays",
        layout=TextLayout(names=("user", "song", "plays")),
    )
    by = {(u, i): row for u, i, row in zip(events["user_id"], events["item_id"], events.itertuples())}
    assert all(by[(u, i)].type == "play" for u, i, c in rows if c not in ("x", 0))
    assert by[("light", "d")].type is None and by[("light", "e")].type is None
    assert summary.problems["a play count that is not a number above 0"] == 2
    # a count's value is relative to its user's median count: 10 plays is little for the heavy listener
    values = {k: by[k].value for k in by if by[k].type == "play"}
    assert values[("heavy", "a")] == 1.0 and values[("heavy", "b")] == 1.0
    assert values[("heavy", "c")] == pytest.approx(10 / 40)
    assert values[("light", "b")] == pytest.approx(0.5) and values[("light", "c")] == 1.0
    # the count is kept as the event's weight (what it stands for); one play is the default weight
    assert by[("heavy", "a")].weight == 400 and np.isnan(by[("light", "b")].weight)
    assert "4 of 6 rows count as positives" in str(summary)  # heavy a, b; light a, c


def test_a_count_column_does_not_combine_with_ratings_and_needs_counts(tmp_path):
    src = _csv(tmp_path / "c.csv", "user_id,item_id,timestamp,n\nu,i,1,a\nu,j,2,0")
    with pytest.raises(ImportFormatError, match="does not combine"):
        load_interactions(src, time_unit="s", time_origin="1970-01-01", count_col="n", rating_col="n")
    with pytest.raises(ImportFormatError, match="no play counts above 0"):
        load_interactions(src, time_unit="s", time_origin="1970-01-01", count_col="n")


def test_bad_rows_are_kept_for_quarantine(tmp_path):
    src = _csv(
        tmp_path / "b.csv",
        "user_id,item_id,timestamp\nu,i,2024-01-01T00:00:00Z\n,i,2024-01-01T00:01:00Z\n"
        "u,,2024-01-01T00:02:00Z\nu,i,not a time\n,i,1999-01-01T00:00:00Z\nu,j,1956-05-31T00:00:00Z",
    )
    events, _, summary = load_interactions(src)
    assert len(events) == 6
    assert events["user_id"].isna().sum() == 2 and events["item_id"].isna().sum() == 1
    assert events["timestamp"].isna().sum() == 1
    assert summary.problems == {"missing or unparseable timestamp": 1, "empty user id": 2, "empty item id": 1}
    # the time range printed is the events': the quarantined 1999 and 1956 rows are not in it
    assert summary.start == summary.end == pd.Timestamp("2024-01-01", tz="UTC")
    assert "will be quarantined: 1 row with missing or unparseable timestamp" in str(summary)


def test_missing_value_tokens_are_not_ids_and_one_id_holding_most_rows_is_said(tmp_path):
    # Diginetica's userId: "NA" for every anonymous session; a literal "NA" would be one giant user
    rows = [f"NA,i{k % 7},{1_700_000_000 + k}" for k in range(30)]
    rows += [f"u{k},i{k % 5},{1_700_000_100 + k}" for k in range(25)] + ["null,i1,1700000200", "N/A,i2,1700000201"]
    src = _csv(tmp_path / "v.csv", "userId,item,t\n" + "\n".join(rows))
    events, _, summary = load_interactions(src, user_col="userId", item_col="item", time_col="t", time_unit="s")
    assert events["user_id"].isna().sum() == 32 and summary.problems["empty user id"] == 32
    said = str(summary)
    assert "column 'userId': 'NA' (30)" in said and "read as missing ids" in said
    assert "most rows have none" in said and "one user id holds" not in said
    # an id that is no token but holds most rows ("0" for guests) is said, without naming it
    busy = _csv(tmp_path / "b.csv", "userId,item,t\n" + "\n".join(r.replace("NA,", "0,", 1) for r in rows))
    _, _, summary = load_interactions(busy, user_col="userId", item_col="item", time_col="t", time_unit="s")
    said = str(summary)
    assert "one user id holds 55% of the rows (30; the next busiest 1)" in said and "'0'" not in said
    # the same ids spread evenly: nothing to say
    even = _csv(tmp_path / "e.csv", "userId,item,t\n" + "\n".join(rows[30:55]))
    _, _, summary = load_interactions(even, user_col="userId", item_col="item", time_col="t", time_unit="s")
    assert "read as missing ids" not in str(summary) and "one user id holds" not in str(summary)


def test_an_anonymous_id_far_busier_than_any_user_is_said_and_can_be_read_as_missing(tmp_path):
    # Plista's reader 0: 16% of the rows, ten times more than anyone else
    rows = [f"{1 + k % 80},a{k % 30},{T0 + k}" for k in range(800)] + [
        f"0,a{k % 30},{T0 + 900 + k}" for k in range(150)
    ]
    src = _csv(tmp_path / "plista.csv", "user,item,ts\n" + "\n".join(rows))
    kw = dict(user_col="user", item_col="item", time_col="ts", time_unit="s")
    _, _, summary = load_interactions(src, **kw)
    said = " ".join(str(summary).split())
    assert "one user id holds 16% of the rows (150; the next busiest 10)" in said and "--missing-user ID" in said
    events, _, summary = load_interactions(src, **kw, missing_users=("0",))
    assert (
        events["user_id"].isna().sum() == 150 and summary.problems["empty user id, or one --missing-user names"] == 150
    )
    assert summary.users == 80 and "one user id holds" not in str(summary)
    assert set(events["user_id"].dropna()) == {str(k) for k in range(1, 81)}  # ints kept as written
    # a parquet column of ids with a gap is float: its 0.0 is the id 0
    floats = tmp_path / "plista.parquet"
    pd.read_csv(src).astype({"user": float}).pipe(lambda f: pd.concat([f, f.head(1).assign(user=np.nan)])).to_parquet(
        floats
    )
    events, _, summary = load_interactions(floats, **kw, missing_users=("0",))
    assert summary.problems["empty user id, or one --missing-user names"] == 151 and "one user id holds" not in str(
        summary
    )
    # two stand-ins of like size hide each other from that test: said as a group
    pair = rows[:800] + [f"{('other-search', 'other-empty')[k % 2]},a{k % 30},{T0 + 900 + k}" for k in range(300)]
    src = _csv(tmp_path / "clicks.csv", "user,item,ts\n" + "\n".join(pair))
    _, _, summary = load_interactions(src, **kw)
    said = " ".join(str(summary).split())
    assert "2 user ids hold 27% of the rows (150 to 150 each; the next busiest 10)" in said
    assert "--missing-user ID,ID" in said and "other-search" not in said  # ids are never named
    _, _, summary = load_interactions(src, **kw, missing_users=("other-search", "other-empty"))
    assert "user ids hold" not in str(summary) and summary.problems["empty user id, or one --missing-user names"] == 300


def test_event_ids_are_deterministic_and_sessions_split_at_30_minutes(tmp_path):
    times = [0, 10 * 60, 10 * 60, 50 * 60, 51 * 60]
    body = "\n".join(f"alice,i,{T0 + t}" for t in times) + f"\nbob,i,{T0}"
    src = _csv(tmp_path / "s.csv", "user_id,item_id,timestamp\n" + body)
    first, _, _ = load_interactions(src, time_unit="s")
    again, _, _ = load_interactions(src, time_unit="s")
    assert first["event_id"].equals(again["event_id"]) and first["event_id"].is_unique
    alice = first[first["user_id"] == "alice"]["session_id"].tolist()
    bob = first[first["user_id"] == "bob"]["session_id"].tolist()
    assert alice[0] == alice[1] == alice[2] != alice[3] == alice[4]
    assert bob[0] not in alice
    assert not any("alice" in s for s in alice)  # a session id must not leak the raw user id


def test_an_events_id_is_its_content_and_copy_not_its_line(tmp_path):
    rows = [f"u{k % 3},i{k % 4},{T0 + 60 * k}" for k in range(8)] + [f"u0,i0,{T0}"]  # the last a copy of the first
    first, _, _ = load_interactions(
        _csv(tmp_path / "a.csv", "user_id,item_id,timestamp\n" + "\n".join(rows)), time_unit="s"
    )
    assert first["event_id"].is_unique and len(first) == 9  # a copy is an event of its own
    # a longer export: new rows before and among the old ones, which keep their ids
    longer = [f"u9,i9,{T0 - 60}", *rows[:4], f"u1,i7,{T0 + 1}", *rows[4:]]
    again, _, _ = load_interactions(
        _csv(tmp_path / "b.csv", "user_id,item_id,timestamp\n" + "\n".join(longer)), time_unit="s"
    )
    assert set(first["event_id"]) < set(again["event_id"]) and len(set(again["event_id"]) - set(first["event_id"])) == 2
    # in chunks, the same ids
    from ingest.importer import InteractionStream

    stream = InteractionStream(tmp_path / "b.csv", ImportOptions(time_unit="s"), 3)
    assert set(pd.concat(list(stream))["event_id"]) == set(again["event_id"])
    # without times, a row is told by its place: Yahoo! R3's test file rates pairs its train file rated
    train = _csv(tmp_path / "train.txt", "u\ti\tr\n1\t28\t3\n1\t29\t4")
    test = _csv(tmp_path / "test.txt", "u\ti\tr\n1\t28\t1\n2\t99\t5")
    kw = dict(user_col="u", item_col="i", rating_col="r", time_col=None)
    a, b = load_interactions(train, **kw)[0], load_interactions(test, **kw)[0]
    assert not set(a["event_id"]) & set(b["event_id"])
    assert load_interactions(train, **kw)[0]["event_id"].tolist() == a["event_id"].tolist()  # the same file again


def test_movielens_style_ratings_with_movies_file(tmp_path):
    ratings = _csv(
        tmp_path / "ratings.csv",
        """
userId,movieId,rating,timestamp
1,1,4.0,964982703
1,3,4.5,964981247
1,6,2.0,964982224
2,1,3.0,964983815
2,999,5.0,964983900
""",
    )
    movies = _csv(
        tmp_path / "movies.csv",
        """
movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
3,"Grumpier Old Men, The (1995)",Comedy|Romance
6,Heat (1995),(no genres listed)
7,Sabrina,Comedy|Romance
""",
    )
    events, items, summary = load_interactions(
        ratings,
        user_col="userId",
        item_col="movieId",
        time_unit="s",
        rating_col="rating",
        items=movies,
        item_id_col="movieId",
    )
    assert events["type"].tolist() == ["like", "skip", "like", "play", "like"]  # sorted by time
    by_item = events.set_index("item_id")
    assert by_item.loc["3", "type"] == "like" and by_item.loc["6", "type"] == "skip"
    assert by_item.loc["999", "type"] == "like"
    assert by_item.loc["3", "value"] == pytest.approx(0.9)
    assert to_table(events).num_rows == 5
    genre = items.set_index("item_id")["genre"]
    assert genre.to_dict() == {"1": "adventure", "3": "comedy", "6": "unknown", "7": "comedy", "999": "unknown"}
    every = items.set_index("item_id")["genres"]  # kept whole for multi-hot features
    assert every["1"] == "adventure|animation|children|comedy|fantasy" and every["3"] == "comedy|romance"
    assert pd.isna(every["6"]) and pd.isna(every["999"])
    assert (items["artist"] == "unknown").all()
    title = items.set_index("item_id")["title"]  # kept as the file has it: searches match its words
    assert title["1"] == "Toy Story (1995)" and title["7"] == "Sabrina" and pd.isna(title["999"])
    released = items.set_index("item_id")["release_date"]
    assert released["1"] == pd.Timestamp("1995-01-01", tz="UTC")  # the year at the end of the title
    assert pd.isna(released["7"]) and pd.isna(released["999"])  # no year, no date (never a guess)
    pa.Table.from_pandas(items, schema=ITEM_SCHEMA, preserve_index=False)
    assert summary.catalog_rows == 4 and summary.items_without_metadata == 1
    assert summary.start == pd.Timestamp(964981247, unit="s", tz="UTC")
    assert "items file: 4 items described" in str(summary)


def test_parquet_input_and_rich_items_file(tmp_path):
    pd.DataFrame({"user": [1, 2, 2], "item": [10, 11, 10], "ts": [T0 * 1000, T0 * 1000 + 5, T0 * 1000 + 9]}).to_parquet(
        tmp_path / "p.parquet"
    )
    pd.DataFrame(
        {
            "id": [10, 11],
            "artist_name": ["A|B", "C"],
            "genre": ["Rock", "Jazz"],
            "duration_ms": [180_000, 240_500],
            "year": [1999, 2020],
        }
    ).to_parquet(tmp_path / "items.parquet")
    events, items, _ = load_interactions(
        tmp_path / "p.parquet",
        user_col="user",
        item_col="item",
        time_col="ts",
        time_unit="ms",
        items=tmp_path / "items.parquet",
        item_id_col="id",
    )
    assert events["user_id"].tolist() == ["1", "2", "2"] and events["item_id"].tolist() == ["10", "11", "10"]
    row = items.set_index("item_id").loc["11"]
    assert row["artist"] == "C" and row["genre"] == "jazz" and row["duration_s"] == pytest.approx(240.5)
    assert row["release_date"] == pd.Timestamp("2020-01-01", tz="UTC")
    assert items.set_index("item_id").loc["10", "artist"] == "A"


def test_consent_columns_and_the_assumed_legal_basis(tmp_path):
    src = _csv(
        tmp_path / "log.csv",
        f"""
user,item,t,opt_in
u1,a,{T0},yes
u2,a,{T0 + 1},0
u3,a,{T0 + 2},
u4,a,{T0 + 3},n
""",
    )
    events, _, summary = load_interactions(
        src, user_col="user", item_col="item", time_col="t", time_unit="s", consent_col="opt_in"
    )
    assert events["consent_personalization"].tolist() == ["yes", "0", None, "n"]  # checked by ingestion
    assert events["consent_analytics"].isna().all()
    assert summary.problems["bad consent value"] == 1 and "'opt_in'" in summary.consent
    assumed, _, summary = load_interactions(
        src, user_col="user", item_col="item", time_col="t", time_unit="s", consent_col="opt_in", assume_consent=True
    )
    assert assumed["consent_personalization"].tolist() == ["yes", "0", True, "n"]  # a column's "no" still wins
    assert assumed["consent_analytics"].tolist() == [True] * 4
    assert "--assume-consent" in summary.consent


def test_ingestion_quarantines_a_bad_consent_value_and_keeps_absent_flags_null(tmp_path):
    from ingest.intake import ingest
    from setlist.eventlog import EventLog, Quarantine
    from setlist.settings import Settings

    src = _csv(tmp_path / "log.csv", f"user,item,t,opt_in\nu1,a,{T0},yes\nu2,a,{T0 + 1},\nu3,a,{T0 + 2},n")
    events, _, _ = load_interactions(
        src, user_col="user", item_col="item", time_col="t", time_unit="s", consent_col="opt_in"
    )
    settings = Settings(data_dir=tmp_path / "data", hmac_key="k")
    report = ingest(events, settings, source="import", identities=FakeIdentities())
    assert report.accepted == 2 and report.quarantined == 1 and set(report.reasons) == {"bad_consent"}
    stored = EventLog(settings.events_dir).read().sort_values("timestamp")
    assert stored["consent_personalization"].tolist() == [True, None]
    assert "'n'" in Quarantine(settings.quarantine_dir).read()["reason"].iloc[0]


class FakeIdentities:
    def remember(self, pairs) -> None:
        list(pairs)


def test_repeated_header_lines_are_skipped_and_said_but_a_row_naming_one_column_stays(tmp_path):
    # two files joined with their headers: the second header is not a row, a user named "user" is
    src = _csv(
        tmp_path / "log.csv",
        f"user,item,t\nu1,a,{T0}\nuser,item,t\nuser,b,{T0 + 1}\nu2,item,{T0 + 2}\n user , item ,t\nu3,c,{T0 + 3}",
    )
    events, _, summary = load_interactions(src, user_col="user", item_col="item", time_col="t", time_unit="s")
    assert events["user_id"].tolist() == ["u1", "user", "u2", "u3"]
    assert events["item_id"].tolist() == ["a", "b", "item", "c"]
    assert summary.rows == 4 and not summary.problems.get("missing or unparseable timestamp")
    said = " ".join(str(summary).split())
    assert "skipped 2 repeated header lines" in said
    assert "quoted fields" not in said  # the skipped lines are counted as lines read, not as lost
    # a file whose columns are named with --names has no header to repeat: its rows are all rows
    named = _csv(tmp_path / "named.csv", f"u1,a,{T0}\nuser,item,{T0 + 1}")
    events, _, summary = load_interactions(
        named, user_col="user", item_col="item", time_col="t", time_unit="s",
        layout=TextLayout(names=["user", "item", "t"]),
    )  # fmt: skip
    assert events["user_id"].tolist() == ["u1", "user"] and "repeated header" not in str(summary)


def test_quarantine_reasons_quote_the_cell_that_could_not_be_read(tmp_path):
    from ingest.intake import READ_NOTE, ingest
    from setlist.eventlog import EventLog, Quarantine
    from setlist.settings import Settings

    src = _csv(
        tmp_path / "log.csv",
        "user,item,rating,when\n"
        "u1,a,5,2024-01-01 10:00\n"
        "u1,b,lots,2024-01-01 11:00\n"
        "u2,a,3,yesterday\n"
        "u2,b,4,\n"
        ",c,4,not a time either\n"
        f"u3,c,2,2024-01-02 {'9' * 80}",
    )
    events, _, _ = load_interactions(src, user_col="user", item_col="item", time_col="when", rating_col="rating")
    settings = Settings(data_dir=tmp_path / "data", hmac_key="k")
    report = ingest(events, settings, source="import", identities=FakeIdentities())
    assert report.accepted == 1 and report.quarantined == 5
    assert report.reasons == {"bad_timestamp": 3, "unknown_type": 1, "missing_id": 1}  # codes stay as they were
    q = Quarantine(settings.quarantine_dir).read()
    reasons = sorted(q["reason"])
    assert reasons[:3] == [
        "bad_timestamp: '2024-01-02 " + "9" * 49 + "…' in column 'when' is no time this import reads",
        "bad_timestamp: 'yesterday' in column 'when' is no time this import reads",
        "bad_timestamp: column 'when' is empty",
    ]
    assert reasons[3] == "missing_id: user_id is empty"  # the contract's reason where the cell is not the cause
    assert reasons[4] == "unknown_type: 'lots' in column 'rating' is no rating"
    # the note is for the reason only: neither the log nor the quarantine stores it as a column
    assert READ_NOTE not in q.columns and READ_NOTE not in EventLog(settings.events_dir).read().columns


def test_an_unreadable_play_count_is_quoted_in_its_quarantine_reason(tmp_path):
    from ingest.intake import ingest
    from setlist.eventlog import Quarantine
    from setlist.settings import Settings

    src = _csv(tmp_path / "plays.tsv", "user\tartist\tplays\nu1\ta\t12\nu1\tb\t-3\nu2\ta\tmany")
    events, _, _ = load_interactions(src, user_col="user", item_col="artist", count_col="plays", time_col=None)
    settings = Settings(data_dir=tmp_path / "data", hmac_key="k")
    report = ingest(events, settings, source="import", identities=FakeIdentities())
    assert report.accepted == 1 and report.reasons == {"unknown_type": 2}
    kept = Quarantine(settings.quarantine_dir).read()
    assert sorted(kept["reason"]) == [
        "unknown_type: '-3' in column 'plays' is no play count above 0",
        "unknown_type: 'many' in column 'plays' is no play count above 0",
    ]
    assert kept["query"].isna().all()  # a field the file never had stays missing, not the text "nan"


def test_the_item_column_says_its_missing_tokens_and_when_it_holds_a_handful_of_values(tmp_path):
    # Wikipedia's clickstream: pages titled "NaN" or "None" read as missing, said for the item column too
    rows = [f"u{k % 40},p{k % 60},{1_700_000_000 + k}" for k in range(120)] + [
        "u1,NaN,1700000300",
        "u2,None,1700000301",
    ]
    src = _csv(tmp_path / "c.csv", "user,page,t\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, user_col="user", item_col="page", time_col="t", time_unit="s")
    said = " ".join(str(summary).split())
    assert "column 'page': 'NaN' (1), 'None' (1) read as missing ids" in said and "holds only" not in said
    # Airbnb's sessions: the action named as the item imports, a handful of "items" on many rows
    acts = ("search", "show", "book")
    rows = [f"u{k % 30},{acts[k % 3]},{1_700_000_000 + k}" for k in range(3 * 20)]
    src = _csv(tmp_path / "a.csv", "user_id,action,t\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, user_col="user_id", item_col="action", time_col="t", time_unit="s")
    said = " ".join(str(summary).split())
    assert "column 'action' holds only 3 distinct items over 60 rows ('" in said and "--type-col" in said
    # as many rows, but each item on a few of them: a small catalogue sampled, nothing to say
    few = _csv(tmp_path / "f.csv", "user_id,item,t\n" + "\n".join(rows[:50]).replace(",search,", ",x,"))
    _, _, summary = load_interactions(few, user_col="user_id", item_col="item", time_col="t", time_unit="s")
    assert "holds only" not in str(summary)


def test_the_import_ledger_records_the_file_and_its_consent_basis(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ingest.__main__ import app
    from setlist.lineage import file_digest, imports
    from setlist.settings import get_settings

    src = _csv(tmp_path / "log.csv", f"user,item,t\nu1,a,{T0}\nu2,b,{T0 + 1}")
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "t", "--time-unit", "s"]
    done = CliRunner().invoke(app, [*args, "--assume-consent"])
    assert done.exit_code == 0, done.output
    monkeypatch.setenv("SETLIST_CONSENT_DEFAULT", "deny")
    get_settings.cache_clear()
    _csv(src, f"user,item,t\nu3,a,{T0 + 5}")
    denied = CliRunner().invoke(app, args)
    assert denied.exit_code == 0 and "--assume-consent" in denied.output  # told why nobody will be personalized
    first, second = imports(tmp_path / "data" / "lineage")
    assert first["source"] == "log.csv" and first["accepted"] == 2 and second["sha256"] == file_digest(src)
    assert "--assume-consent" in first["consent"] and first["consent_default"] == "grant"
    assert "SETLIST_CONSENT_DEFAULT" in second["consent"] and second["consent_default"] == "deny"
    assert "u1" not in (tmp_path / "data" / "lineage" / "imports.jsonl").read_text()  # never a user id


def test_the_import_ledger_accounts_for_every_row(tmp_path, monkeypatch):
    # Sobazaar's log: views sampled by the batch tier, pixel rows left out by --type-map; the ledger
    # said rows 139,303, accepted 119,523 and nothing of the rest
    from typer.testing import CliRunner

    from ingest.__main__ import app
    from setlist.lineage import imports

    lines = [f"u{k % 7},i{k % 11},{T0 + k},{('click', 'view', 'view', 'pixel')[k % 4]}" for k in range(400)]
    src = _csv(tmp_path / "log.csv", "user,item,t,action\n" + "\n".join(lines))
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "t", "--time-unit", "s"]
    mapping = ["--type-col", "action", "--type-map", "click=play,view=view,pixel=ignore"]
    done = CliRunner().invoke(app, [*args, *mapping, "--assume-consent"])
    assert done.exit_code == 0, done.output
    (record,) = imports(tmp_path / "data" / "lineage")
    assert record["ignored"] == {"pixel": 100} and record["rows"] == 300
    assert 0 < record["sampled_out"] < 200  # views are sampled (tiers.yaml), plays never
    assert record["accepted"] + record["quarantined"] + record["sampled_out"] == record["rows"]


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler writes a last word."""


@pytest.mark.parametrize("end", ["killed", "failed"])
def test_an_import_cut_short_is_on_record_and_its_rerun_finishes_it(tmp_path, monkeypatch, end):
    from typer.testing import CliRunner

    import ingest.__main__ as cli
    from setlist import lineage
    from setlist.eventlog import EventLog, Quarantine
    from setlist.settings import get_settings

    lines = [f"u{k % 7},i{k % 11},{T0 + k}" for k in range(60)]
    src = _csv(tmp_path / "log.csv", "user,item,t\n" + "\n".join(lines))
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "t", "--time-unit", "s"]
    real = cli.ingest

    def cut_short(events, settings, **kw):
        real(events.iloc[:25], settings, **kw)
        raise _Killed if end == "killed" else RuntimeError("the disk is full")

    monkeypatch.setattr(cli, "ingest", cut_short)
    if end == "killed":
        monkeypatch.setattr(lineage, "record_import_failure", lambda *a, **kw: None)  # no last word
    with pytest.raises((_Killed, RuntimeError)):
        CliRunner().invoke(cli.app, args, catch_exceptions=False)
    ledger = tmp_path / "data" / "lineage"
    (cut,) = lineage.unfinished_imports(ledger)
    assert lineage.imports(ledger) == [] and cut["source"] == "log.csv" and cut["sha256"] == lineage.file_digest(src)
    assert cut["ended"] == (None if end == "killed" else "RuntimeError: the disk is full")
    # status names the file, however many imports of other files report meanwhile
    line = _status_line(get_settings(), "import cut short")
    assert line is not None and line.mark == "warn"
    how = "killed" if end == "killed" else "ended by RuntimeError: the disk is full"
    assert line.value.startswith(f"1 import wrote to the event log and never finished: log.csv ({how})")
    monkeypatch.setattr(cli, "ingest", real)
    # its rows are in the log: read with other options, they would be a second reading of the file
    other = CliRunner().invoke(cli.app, [*args, "--time-zone", "Europe/Paris"])
    assert other.exit_code == 2 and "imported before with other options" in " ".join(other.stderr.split())
    again = CliRunner().invoke(cli.app, args)
    assert again.exit_code == 0, again.output
    (record,) = lineage.imports(ledger)
    assert (record["accepted"], record["already_logged"], record["quarantined"]) == (35, 25, 0)
    assert lineage.unfinished_imports(ledger) == [] and EventLog(tmp_path / "data" / "events").count() == 60
    assert Quarantine(tmp_path / "data" / "quarantine").read().empty
    assert _status_line(get_settings(), "import cut short") is None


def _status_line(settings, name):
    import time

    from ops.status import event_lines

    return {line.name: line for line in event_lines(settings, time.time())}.get(name)


def test_an_import_running_now_is_not_called_cut_short(tmp_path, monkeypatch):
    import time
    from datetime import UTC, datetime

    from ingest.intake import ingest
    from setlist import jobmetrics, lineage, liveness
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    settings = get_settings()
    now = pd.Timestamp.now(tz="UTC").floor("s")
    ingest(
        pd.DataFrame({"event_id": ["e1"], "user_id": "u1", "item_id": "i1", "timestamp": [now], "type": "play"}),
        settings,
        "t",
    )
    earlier = datetime.fromtimestamp(time.time() - 60, UTC).isoformat(timespec="seconds")
    killed = {"status": "started", "run": "r-killed", "source": "old.csv", "sha256": "1" * 64, "at": earlier}
    lineage._append(settings.lineage_dir, lineage.IMPORTS, killed)
    lineage.record_import_writing(settings.lineage_dir, "r-killed")
    # the running import's mark is taken a moment before its first record, stamped to the second
    facts = {"job": "import", "pid": 1, "host": "h", "started": time.time()}
    mark = liveness.Mark.take(settings.status_dir / f"import.now{jobmetrics.RUNNING}", facts)
    try:
        # a record naming no process (written before records did): told by time
        lineage.record_import_start(settings.lineage_dir, "r-now", source="log.csv", sha256="2" * 64)
        lineage.record_import_writing(settings.lineage_dir, "r-now")
        line = _status_line(settings, "import cut short")
        # the import that started before the running one is cut short; the running one's record is not
        assert line is not None and "old.csv (killed)" in line.value and "log.csv" not in line.value
        # records naming their process: the running one's own is not cut short, another's is, however
        # late it started (a second import killed while the first still runs)
        lineage.record_import_start(settings.lineage_dir, "r-mine", source="mine.csv", sha256="3" * 64, pid=1, host="h")
        lineage.record_import_writing(settings.lineage_dir, "r-mine")
        lineage.record_import_start(settings.lineage_dir, "r-other", source="b.csv", sha256="4" * 64, pid=2, host="h")
        lineage.record_import_writing(settings.lineage_dir, "r-other")
        line = _status_line(settings, "import cut short")
        assert "b.csv (killed)" in line.value and "mine.csv" not in line.value
    finally:
        mark.release(remove=True)
    # once no import runs, a record with no end is a run killed
    assert "log.csv (killed)" in _status_line(settings, "import cut short").value
    assert "mine.csv (killed)" in _status_line(settings, "import cut short").value


def test_an_import_killed_before_its_first_write_leaves_its_options_free(tmp_path, monkeypatch):
    # the OOM killer while the file is read: nothing of it reached the log
    from typer.testing import CliRunner

    import ingest.__main__ as cli
    from setlist import lineage

    src = _csv(tmp_path / "log.csv", "user,item,t\n" + "\n".join(f"u{k % 3},i{k % 4},{T0 + k}" for k in range(20)))
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "t", "--time-unit", "s"]

    def killed(*a, **kw):
        raise _Killed

    monkeypatch.setattr(cli, "ingest", killed)
    monkeypatch.setattr(lineage, "record_import_failure", lambda *a, **kw: None)  # no last word
    with pytest.raises(_Killed):
        CliRunner().invoke(cli.app, [*args, "--time-zone", "Europe/Paris"], catch_exceptions=False)
    monkeypatch.undo()
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    assert lineage.unfinished_imports(tmp_path / "data" / "lineage") == []
    fixed = CliRunner().invoke(cli.app, args)  # the zone dropped: let through
    assert fixed.exit_code == 0, fixed.output
    assert [r["accepted"] for r in lineage.imports(tmp_path / "data" / "lineage")] == [20]


def test_an_import_that_fails_after_some_chunks_says_what_stays(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import ingest.__main__ as cli
    from setlist import lineage
    from setlist.eventlog import EventLog

    lines = [f"u{k % 7},i{k % 11},{T0 + 60 * k}" for k in range(300)]
    src = _csv(tmp_path / "log.csv", "user,item,t\n" + "\n".join(lines))
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    monkeypatch.setenv("SETLIST_IMPORT_CHUNK_ROWS", "100")
    real, calls = cli.ingest, []

    def second_fails(events, settings, **kw):
        if calls:
            raise ImportFormatError("column 't' holds 'soon' on line 170, which is no time")
        calls.append(len(events))
        return real(events, settings, **kw)

    monkeypatch.setattr(cli, "ingest", second_fails)
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "t", "--time-unit", "s"]
    failed = CliRunner().invoke(cli.app, args)
    said = " ".join(failed.stderr.split())
    kept = EventLog(tmp_path / "data" / "events").count()
    assert failed.exit_code == 2 and kept == calls[0] > 0
    assert f"put {kept:,} events in the log, and they stay" in said and "start from an empty data directory" in said
    (cut,) = lineage.unfinished_imports(tmp_path / "data" / "lineage")
    assert cut["ended"].startswith("UsageError: cannot import")


def test_an_import_that_fails_before_writing_leaves_no_unfinished_run(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ingest.__main__ import app
    from setlist import lineage

    src = _csv(tmp_path / "log.csv", f"user,item,t\nu1,a,{T0}\nu2,b,{T0 + 1}")
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    wrong = CliRunner().invoke(app, ["import", str(src), "--user-col", "user", "--item-col", "nope"])
    assert wrong.exit_code == 2
    records = [json.loads(line) for line in (tmp_path / "data" / "lineage" / "imports.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["started", "failed"] and records[1]["kept_rows"] is False
    assert lineage.unfinished_imports(tmp_path / "data" / "lineage") == []  # its fix is let through


def test_a_second_import_adds_to_the_catalogue_and_never_erases_it(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ingest.__main__ import app
    from setlist.catalog import load_items
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    get_settings.cache_clear()
    first = _csv(tmp_path / "a.csv", f"user,item,t\nu1,a,{T0}\nu2,b,{T0 + 1}")
    items = _csv(tmp_path / "items.csv", "item_id,genre\na,Rock\nb,Jazz")
    args = ["--user-col", "user", "--item-col", "item", "--time-col", "t", "--time-unit", "s"]
    assert CliRunner().invoke(app, ["import", str(first), *args, "--items", str(items)]).exit_code == 0
    second = _csv(tmp_path / "b.csv", f"user,item,t\nu3,a,{T0 + 2}\nu3,c,{T0 + 3}")
    assert CliRunner().invoke(app, ["import", str(second), *args]).exit_code == 0  # no items file this time
    catalog = load_items(tmp_path / "data" / "catalog" / "items.parquet").set_index("item_id")["genre"].to_dict()
    assert catalog == {"a": "rock", "b": "jazz", "c": "unknown"}  # a keeps its genre; c is added
    fixed = _csv(tmp_path / "items2.csv", "item_id,genre\nc,Blues")
    again = CliRunner().invoke(app, ["import", str(second), *args, "--items", str(fixed)])
    assert again.exit_code == 0
    catalog = load_items(tmp_path / "data" / "catalog" / "items.parquet").set_index("item_id")["genre"].to_dict()
    assert catalog == {"a": "rock", "b": "jazz", "c": "blues"}  # an items file's metadata wins
    # every row was imported before: the note says the items file was taken all the same
    assert "items2.csv's metadata was taken all the same" in " ".join(again.output.split())


def test_search_and_feature_use_rows_need_no_item_but_their_text(tmp_path):
    src = _csv(
        tmp_path / "log.csv",
        """
user,item,when,kind,text
u1,a,2024-01-01T10:00:00Z,play,
u1,,2024-01-01T10:01:00Z,search,Miles Davis
u1,,2024-01-01T10:02:00Z,feature_use,create playlist
u2,,2024-01-01T10:03:00Z,search,
""",
    )
    events, items, summary = load_interactions(
        src, user_col="user", item_col="item", time_col="when", type_col="kind", query_col="text"
    )
    assert events["type"].tolist() == ["play", "search", "feature_use", "search"]
    assert events["item_id"].tolist() == ["a", "", "", ""]  # the contract's "no item", not a missing id
    assert events["query"].tolist()[:3] == [None, "Miles Davis", "create playlist"]  # ingestion normalizes
    assert summary.items == 1 and items is not None and items["item_id"].tolist() == ["a"]
    assert summary.problems["empty item id"] == 0
    assert summary.problems["search or feature_use without text"] == 1
    with pytest.raises(ImportFormatError, match="text"):
        load_interactions(src, user_col="user", item_col="item", time_col="when", type_col="kind", query_col="words")


def test_a_file_of_one_kind_of_event_gives_every_row_its_type(tmp_path):
    # GitHub's stars: every row a like, whatever else the file holds (an outcome-like count column)
    src = _csv(
        tmp_path / "stars.csv",
        """
user,repo,created_at,click_cnt
u1,a/x,2015-01-01T10:00:00Z,3
u1,b/y,2015-01-01T11:00:00Z,0
u2,a/x,2015-01-02T10:00:00Z,1
""",
    )
    kw = dict(user_col="user", item_col="repo", time_col="created_at")
    events, _, summary = load_interactions(src, **kw, event_type="like")
    assert events["type"].tolist() == ["like"] * 3
    assert events["value"].tolist() == [1.0] * 3  # a like carries its value, as a file's rated likes do
    assert "types: like 3" in str(summary)
    assert "click_cnt" not in str(summary)  # --type is the reading: no word of columns left unread
    plays, _, plays_summary = load_interactions(src, **kw)
    assert plays["type"].tolist() == ["play"] * 3 and "click_cnt" in str(plays_summary)
    # a type that carries no value in the contract keeps none
    carts, _, _ = load_interactions(src, **kw, event_type="add_to_playlist")
    assert carts["type"].tolist() == ["add_to_playlist"] * 3 and carts["value"].isna().all()


def test_a_file_of_one_kind_of_event_at_another_files_times_holds_other_events(tmp_path):
    """Yambda's flat files: a like in likes.parquet at a listen's 5 s stamp in listens.parquet is a second
    event, whichever file comes first; each file imported again adds nothing."""
    from ingest.intake import ingest
    from setlist.eventlog import EventLog, Quarantine
    from setlist.settings import Settings

    kw = dict(user_col="user", item_col="item", time_col="t", time_unit="s")
    listens = _csv(tmp_path / "listens.csv", f"user,item,t\nu1,a,{T0}\nu1,b,{T0 + 5}\nu2,a,{T0 + 10}")
    likes = _csv(tmp_path / "likes.csv", f"user,item,t\nu1,a,{T0}\nu2,a,{T0 + 10}")
    plays, _, _ = load_interactions(listens, **kw)
    liked, _, _ = load_interactions(likes, **kw, event_type="like")
    # read as plays, the likes file's rows would be the listens' events: the clash the type in the ids avoids
    as_plays, _, _ = load_interactions(likes, **kw)
    assert set(as_plays["event_id"]) < set(plays["event_id"]) and not set(liked["event_id"]) & set(plays["event_id"])
    for order in ("plays first", "likes first"):
        settings = Settings(data_dir=tmp_path / order, hmac_key="k")
        files = [plays, liked] if order == "plays first" else [liked, plays]
        reports = [ingest(f, settings, source="import", identities=FakeIdentities()) for f in files]
        assert [r.accepted for r in reports] == [len(f) for f in files] and not any(r.quarantined for r in reports)
        again = [ingest(f, settings, source="import", identities=FakeIdentities()) for f in files]
        assert [r.already_logged for r in again] == [len(f) for f in files]
        assert not any(r.accepted or r.quarantined for r in again)
        log = EventLog(settings.events_dir).read()
        assert sorted(log["type"]) == ["like", "like", "play", "play", "play"]
        assert log["event_id"].is_unique and Quarantine(settings.quarantine_dir).read().empty


def test_one_event_read_by_a_type_column_and_by_type_is_stored_once_whichever_comes_first(tmp_path):
    """A file of plays imported with ``--type play`` and a log read by its type column hold the same plays:
    whichever is imported second finds them logged, under the id the first gave them."""
    from ingest.intake import ingest
    from setlist.eventlog import EventLog
    from setlist.settings import Settings

    kw = dict(user_col="user", item_col="item", time_col="t", time_unit="s")
    plays_file = _csv(tmp_path / "plays.csv", f"user,item,t\nu1,a,{T0}\nu2,b,{T0 + 5}")
    multi_file = _csv(
        tmp_path / "multi.csv", f"user,item,t,kind\nu1,a,{T0},play\nu2,b,{T0 + 5},play\nu2,c,{T0 + 9},like"
    )
    plays, _, _ = load_interactions(plays_file, **kw, event_type="play")
    multi, _, _ = load_interactions(multi_file, **kw, type_col="kind")
    for order in ((plays, multi), (multi, plays)):
        settings = Settings(data_dir=tmp_path / str(len(order[0])), hmac_key="k")
        first, second = (ingest(f, settings, source="import", identities=FakeIdentities()) for f in order)
        assert first.accepted == len(order[0]) and second.already_logged == 2 and not second.quarantined
        log = EventLog(settings.events_dir).read()
        assert sorted(log["type"]) == ["like", "play", "play"] and log["event_id"].is_unique


def test_a_file_of_one_kind_finds_its_events_read_by_a_type_column_after_it(tmp_path):
    """A file of likes (``--type like``), then a log read by its type column holding them: a like after a
    play at one stamp, a row of a kind left out before another like, a search whose item cell repeats its
    text. Each is found under the id the file of one kind gave it; a like of another value is a conflict,
    quarantined as before; a row quarantined for another event is no reason to leave this one out."""
    from ingest.intake import ingest
    from setlist.eventlog import EventLog, Quarantine
    from setlist.settings import Settings

    kw = dict(user_col="user", item_col="item", time_col="t", time_unit="s")
    likes = _csv(tmp_path / "likes.csv", f"user,item,t\nu1,i1,{T0}\nu4,i4,{T0 + 30}\nu2,i2,{T0 + 60}")
    searches = _csv(tmp_path / "searches.csv", f"user,q,t\nu5,jazz,{T0 + 90}")
    log = _csv(
        tmp_path / "log.csv",
        f"user,item,t,event,q\nu1,i1,{T0},play,\nu1,i1,{T0},like,\nu4,i4,{T0 + 30},view_x,\nu4,i4,{T0 + 30},like,\n"
        f"u2,i2,{T0 + 60},like,\nu5,jazz,{T0 + 90},search,jazz",
    )
    settings = Settings(data_dir=tmp_path / "data", hmac_key="k")
    first = ingest(load_interactions(likes, **kw, event_type="like")[0], settings, "import", FakeIdentities())
    found = load_interactions(searches, **{**kw, "item_col": "item"}, event_type="search", query_col="q")[0]
    assert first.accepted == 3 and ingest(found, settings, "import", FakeIdentities()).accepted == 1
    both = load_interactions(log, **kw, type_col="event", type_map={"view_x": "ignore"}, query_col="q")[0]
    second = ingest(both, settings, "import", FakeIdentities())
    assert (second.accepted, second.already_logged, second.quarantined) == (1, 4, 0)  # the play alone is new
    stored = EventLog(settings.events_dir).read()
    assert sorted(stored["type"]) == ["like", "like", "like", "play", "search"] and stored["event_id"].is_unique
    # rated 4 of 5 (a like of 0.8) against the file's like (1.0): one event read two ways disagreeing
    rated = _csv(tmp_path / "rated.csv", f"user,item,t,stars\nu2,i2,{T0 + 60},4")
    conflict = ingest(
        load_interactions(rated, **kw, rating_col="stars", rating_max=5)[0], settings, "i", FakeIdentities()
    )
    assert conflict.accepted == 0 and conflict.reasons == {"duplicate_event_id": 1}
    # a play quarantined for its time, then a like of the same user, item and time cell: quarantined too
    good = [f"u{k},i{k},{T0 + 200 + k}" for k in range(10, 14)]  # a column of times, one of them unreadable
    bad_play = _csv(
        tmp_path / "bad_play.csv", "\n".join(["user,item,t,event", "u9,i9,soon,play", *(g + ",play" for g in good)])
    )
    bad_like = _csv(tmp_path / "bad_like.csv", "\n".join(["user,item,t", "u9,i9,soon", *good]))
    first_bad = ingest(load_interactions(bad_play, **kw, type_col="event")[0], settings, "i", FakeIdentities())
    assert first_bad.quarantined == 1
    again = ingest(load_interactions(bad_like, **kw, event_type="like")[0], settings, "i", FakeIdentities())
    assert (again.quarantined, again.quarantined_before) == (1, 0)
    # the conflict, the play and the like, each held
    assert sorted(Quarantine(settings.quarantine_dir).read()["type"]) == ["like", "like", "play"]


def test_a_file_of_one_kind_imported_by_an_earlier_release_is_not_read_twice(tmp_path):
    """Before the type was part of a ``--type`` file's ids, its events were logged under the ids a file read
    without it gets (as a file of plays still does): the same file imported again finds them there and adds
    nothing, and its bad rows, quarantined then, are not written to the quarantine again."""
    from ingest.intake import OTHER_ID, ingest
    from setlist.eventlog import EventLog, Quarantine
    from setlist.settings import Settings

    src = _csv(tmp_path / "stars.csv", f"user,repo,t\nu1,a,{T0}\nu1,b,{T0 + 60}\nu2,a,{T0 + 120}\nu3,c,later\n,d,{T0}")
    kw = dict(user_col="user", item_col="repo", time_col="t", time_unit="s")
    events, _, _ = load_interactions(src, **kw, event_type="like")
    # that release's ids: the ids the file's rows get without --type (that reading's formula did not change)
    old, _, _ = load_interactions(src, **kw)
    then = events.drop(columns=[OTHER_ID]).assign(event_id=old["event_id"].to_numpy())
    settings = Settings(data_dir=tmp_path / "data", hmac_key="k")
    first = ingest(then, settings, source="import", identities=FakeIdentities())
    assert (first.accepted, first.quarantined) == (3, 2)
    again = ingest(events, settings, source="import", identities=FakeIdentities())
    assert (again.accepted, again.already_logged, again.quarantined, again.quarantined_before) == (0, 3, 2, 2)
    logged = EventLog(settings.events_dir).read()["event_id"]
    assert len(logged) == 3 and set(logged) < set(then["event_id"])  # under that release's ids still
    assert len(Quarantine(settings.quarantine_dir).read()) == 2
    # an earlier id logged for another event (a play at the like's time) is no reason to take it: a new like
    settings = Settings(data_dir=tmp_path / "other", hmac_key="k")
    ingest(then.assign(type="play"), settings, source="import", identities=FakeIdentities())
    assert ingest(events, settings, source="import", identities=FakeIdentities()).accepted == 3


def test_a_file_of_searches_takes_its_text_from_the_query_column(tmp_path):
    src = _csv(tmp_path / "q.csv", "user,q,ts\nu1,Miles Davis,2024-01-01T10:00:00Z\nu2,,2024-01-01T10:01:00Z")
    events, _, summary = load_interactions(
        src, user_col="user", item_col="item", time_col="ts", event_type="search", query_col="q"
    )
    assert events["type"].tolist() == ["search", "search"]
    assert events["query"].tolist()[0] == "Miles Davis"
    assert summary.problems["search or feature_use without text"] == 1
    with pytest.raises(ImportFormatError, match="--query-col names the column"):
        load_interactions(src, user_col="user", item_col="item", time_col="ts", event_type="search")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"event_type": "purchase"}, "'purchase' is not an event type"),
        ({"event_type": "like", "rating_col": "n"}, "does not combine with --rating-col, which gives"),
        ({"event_type": "like", "type_col": "n", "count_col": "n"}, "with --type-col, --count-col, which give"),
    ],
)
def test_a_type_for_every_row_is_refused_beside_columns_that_give_each_its_own(tmp_path, given, message):
    src = _csv(tmp_path / "c.csv", "user_id,item_id,timestamp,n\nu,i,2024-01-01T10:00:00Z,1")
    with pytest.raises(ImportFormatError, match=message):
        load_interactions(src, **given)


def test_rows_repeating_an_earlier_one_exactly_are_imported_and_counted(tmp_path):
    """REES46 writes some views twice: whether they are two events only the log's owner knows."""
    src = _csv(tmp_path / "log.csv", f"u,i,t\na,x,{T0}\na,x,{T0}\na,x,{T0}\na,y,{T0}\nb,x,{T0}\na,x,{T0 + 1}")
    events, _, summary = load_interactions(src, user_col="u", item_col="i", time_col="t", time_unit="s")
    assert len(events) == 6 and events["event_id"].is_unique
    said = " ".join(str(summary).split())
    assert "2 rows repeat an earlier row's user, item, time and type exactly" in said
    # a tag file's rows differing in an unread tag id are no copies: the note says so, not only "drop them"
    assert "rows that differ in a column the import does not read, a tag or a context, are no copies" in said
    # rows quarantined for a missing user are no repeats of one another (Avazu's placeholder device)
    anon = _csv(tmp_path / "anon.csv", f"u,i,t\nz,x,{T0}\nz,x,{T0}\nz,x,{T0}\na,x,{T0}\na,x,{T0}")
    _, _, summary = load_interactions(
        anon, user_col="u", item_col="i", time_col="t", time_unit="s", missing_users=("z",)
    )
    said = " ".join(str(summary).split())
    assert "1 row repeats an earlier row's user, item, time and type exactly" in said
    _, _, untimed = load_interactions(src, user_col="u", item_col="i", time_col=None)
    # without times every row gets a stamp of its own: a repeat is told by user and item alone
    assert "3 rows repeat an earlier row's user and item exactly (no times" in " ".join(str(untimed).split())
    days = _csv(tmp_path / "days.csv", "u,i,t\na,x,2024-01-01\na,x,2024-01-01\nb,x,2024-01-02")
    _, _, dated = load_interactions(days, user_col="u", item_col="i", time_col="t")
    # a date alone: two events of one day (a basket's lines) are no copies, but are said as such
    said = " ".join(str(dated).split())
    assert "exactly" not in said and "1 row repeats an earlier row's user, item, type and date" in said
    _, _, zoned = load_interactions(days, user_col="u", item_col="i", time_col="t", time_zone="Europe/Berlin")
    zoned_said = " ".join(str(zoned).split())  # a midnight of the file's clock, not of UTC's
    assert "exactly" not in zoned_said and "1 row repeats an earlier row's user, item, type and date" in zoned_said
    # among times of day, a midnight is a time too (Dunnhumby's 0000): its repeat is an exact one
    clock = _csv(tmp_path / "clock.csv", "u,i,t\na,x,2024-01-01 00:00\na,x,2024-01-01 00:00\nb,x,2024-01-02 14:35")
    _, _, clocked = load_interactions(clock, user_col="u", item_col="i", time_col="t")
    assert "1 row repeats an earlier row's user, item, time and type exactly" in " ".join(str(clocked).split())
    # in chunks, a copy far from its original in the file is counted alike
    far = "\n".join(f"u{k},i{k},{T0 + k}" for k in range(20))
    spread = _csv(tmp_path / "spread.csv", f"u,i,t\nz,x,{T0 + 5}\n{far}\nz,x,{T0 + 5}")
    options = dict(user_col="u", item_col="i", time_col="t", time_unit="s")
    _, _, whole = load_interactions(spread, **options)
    stream = InteractionStream(spread, ImportOptions(**options), 5)
    list(stream)
    assert stream.summary is not None
    assert "1 row repeats an earlier row's" in " ".join(str(whole).split())
    assert "1 row repeats an earlier row's" in " ".join(str(stream.summary).split())


def test_an_item_cell_on_a_search_row_is_no_item_of_the_catalogue(tmp_path):
    """A session log's one "reference" column holds an item on a click and the search text on a
    search (trivago's layout): the text must not become an item id, nor be stored raw as one."""
    src = _csv(
        tmp_path / "log.csv",
        """
user,reference,when,kind
u1,h1,2024-01-01T10:00:00Z,play
u1,Berlin Germany,2024-01-01T10:01:00Z,search
u1,h2,2024-01-01T10:02:00Z,play
""",
    )
    options = dict(user_col="user", item_col="reference", time_col="when", type_col="kind")
    events, items, summary = load_interactions(src, **options, query_col="reference")
    assert events["item_id"].tolist() == ["h1", "", "h2"]
    assert events["query"].tolist()[1] == "Berlin Germany"  # read as the search's text, normalized at ingestion
    assert summary.items == 2 and items is not None and sorted(items["item_id"]) == ["h1", "h2"]
    assert "1 search or feature_use row had a value in 'reference': not read as an item" in str(summary)
    assert summary.problems["search or feature_use without text"] == 0
    # no text column: refused before anything is stored (the search would be quarantined), the item column named
    with pytest.raises(ImportFormatError, match="1 search row, and no --query-col.*--query-col reference"):
        load_interactions(src, **options)


def test_ratings_written_as_fractions_read_as_their_share_and_words_are_quoted(tmp_path):
    """A beer review's "13/20": a share of its own scale, not an unreadable cell."""
    src = _csv(tmp_path / "r.csv", f"u,i,t,r\na,x,{T0},18/20\na,y,{T0 + 1},4/5\nb,x,{T0 + 2},5/20\nb,y,{T0 + 3},3/0")
    events, _, summary = load_interactions(src, user_col="u", item_col="i", time_col="t", time_unit="s", rating_col="r")
    assert events["type"].tolist()[:3] == ["like", "like", "skip"]
    assert events["value"].tolist()[:2] == pytest.approx([0.9, 0.8])
    assert summary.problems["unparseable rating"] == 1  # 3/0 is no fraction
    said = " ".join(str(summary).split())
    assert "3 ratings in 'r' written as fractions (e.g. '18/20')" in said and "top rating 1 (a whole fraction" in said
    mixed = _csv(tmp_path / "m.csv", f"u,i,t,r\na,x,{T0},4/5\nb,y,{T0 + 1},3")
    with pytest.raises(ImportFormatError, match="mixes fractions \\(e.g. '4/5'\\) with plain numbers \\(e.g. '3'\\)"):
        load_interactions(mixed, user_col="u", item_col="i", time_col="t", time_unit="s", rating_col="r")
    flags = _csv(tmp_path / "f.csv", f"u,i,t,r\na,x,{T0},true\nb,y,{T0 + 1},false")
    with pytest.raises(ImportFormatError, match="a column of false/true flags is no rating: --type-col r --type-map"):
        load_interactions(flags, user_col="u", item_col="i", time_col="t", time_unit="s", rating_col="r")
    words = _csv(tmp_path / "w.csv", f"u,i,t,r\na,x,{T0},great\nb,y,{T0 + 1},meh")
    with pytest.raises(ImportFormatError, match="holds no positive numbers \\(its cells read e.g. 'great', 'meh'\\)"):
        load_interactions(words, user_col="u", item_col="i", time_col="t", time_unit="s", rating_col="r")


def test_an_unrated_marker_is_a_play_of_unknown_value_not_the_lowest_rating(tmp_path):
    """Book-Crossing's 0 (and an anime list's -1) means "no rating given", not "hated it"."""
    rows = "\n".join(f"u,b{k},{T0 + k},{r}" for k, r in enumerate([0, 10, 8, 1, 0, 6]))
    src = _csv(tmp_path / "bx.csv", "user_id,item_id,timestamp,rating\n" + rows)
    plain, _, said = load_interactions(src, time_unit="s", rating_col="rating")
    assert plain["type"].tolist()[0] == "skip"  # read as a rating, 0 is the worst, and said
    text = " ".join(str(said).split())
    assert "2 rows rated 0 in 'rating', whose other ratings run from 1 to 10" in text and "--unrated 0" in text
    events, _, summary = load_interactions(src, time_unit="s", rating_col="rating", unrated=0)
    assert "whose other ratings run" not in str(summary)
    assert events["type"].tolist() == ["play", "like", "like", "skip", "play", "play"]
    values = events["value"].to_numpy()
    assert np.isnan(values[[0, 4]]).all() and values[5] == pytest.approx(0.6)
    assert "2 rows rated 0 read as unrated plays" in str(summary)
    assert summary.problems["unparseable rating"] == 0
    with pytest.raises(ImportFormatError, match="needs --rating-col"):
        load_interactions(src, time_unit="s", unrated=0)


def test_an_unrated_play_is_neither_a_positive_nor_a_negative_label(tmp_path):
    from training.labels import label

    src = _csv(tmp_path / "a.csv", "user_id,item_id,timestamp,rating\nu,a,1,-1\nu,b,2,10\nu,c,3,1")
    events, _, _ = load_interactions(src, time_unit="s", time_origin="1970-01-01", rating_col="rating", unrated=-1)
    assert label(events).tolist() == [-1, 1, 0]


def test_an_item_column_of_id_lists_is_refused_and_a_partly_listed_one_warned_about(tmp_path):
    """MIND's behaviour logs keep a whole impression list in one cell: refused before anything is
    stored. A log where only some ids hold spaces and digits imports, warned."""
    rows = "\n".join(f"u{k},{k},2019-11-1{k % 9} 09:05:58,N{k}1-1 N{k}2-0 N{k}3-0" for k in range(6))
    src = _csv(tmp_path / "behaviors.csv", "user_id,impression_id,timestamp,item_id\n" + rows)
    with pytest.raises(ImportFormatError, match=r"looks like lists of ids \(100% of rows, e.g. 'N01-1 N02-0 N03-0'\)"):
        load_interactions(src)
    some = "\n".join(f"u{k},{k},2019-11-1{k % 9} 09:05:58,{f'A{k} B{k}' if k % 3 else f'C{k}'}" for k in range(6))
    _, _, summary = load_interactions(_csv(tmp_path / "some.csv", "user_id,impression_id,timestamp,item_id\n" + some))
    (note,) = [n for n in summary.read_notes if "looks like lists of ids" in n]
    assert "67% of rows" in note and "--item-lists" in note
    titles = _csv(
        tmp_path / "plays.csv",
        "user_id,item_id,timestamp\n" + "\n".join(f"u{k},Symphony No {k},2019-11-11" for k in range(6)),
    )
    _, _, summary = load_interactions(titles)
    assert not any("lists of ids" in n for n in summary.read_notes)


def test_ingestion_in_slices_keeps_and_refuses_exactly_what_one_frame_would(tmp_path, monkeypatch):
    """A large import goes in slices to bound its memory; a duplicate whose first copy passed in an
    earlier slice is still a duplicate, and a bad row is still quarantined with its reason."""
    import ingest.intake as intake
    from setlist.eventlog import EventLog, Quarantine
    from setlist.settings import Settings

    rows = [f"u{k % 5},i{k % 7},{T0 + 60 * k},{1 + k % 5}" for k in range(40)]
    rows[9] = "u4,i2,not-a-time,3"
    src = _csv(tmp_path / "log.csv", "user,item,t,rating\n" + "\n".join(rows))
    events, _, _ = load_interactions(
        src, user_col="user", item_col="item", time_col="t", time_unit="s", rating_col="rating"
    )
    assert events["event_id"].duplicated().sum() == 0  # an id hashes the row's line: same content, new id
    events = pd.concat([events, events.iloc[[3, 30]]], ignore_index=True)  # the same events sent twice

    def run(slice_rows: int, where: str):
        monkeypatch.setattr(intake, "INGEST_SLICE_ROWS", slice_rows)
        settings = Settings(data_dir=tmp_path / where, hmac_key="k")
        report = intake.ingest(events, settings, source="import", identities=FakeIdentities())
        stored = EventLog(settings.events_dir).read().sort_values(["timestamp", "event_id"])
        reasons = sorted(Quarantine(settings.quarantine_dir).read()["reason"].str.split(":").str[0])
        return report, stored.reset_index(drop=True), reasons

    whole, stored_whole, reasons_whole = run(10_000, "whole")
    sliced, stored_sliced, reasons_sliced = run(7, "sliced")
    assert (sliced.received, sliced.accepted, sliced.quarantined) == (whole.received, whole.accepted, whole.quarantined)
    assert sliced.reasons == whole.reasons and whole.reasons["duplicate_event_id"] == 2
    assert whole.reasons["bad_timestamp"] == 1
    assert reasons_sliced == reasons_whole
    pd.testing.assert_frame_equal(stored_sliced, stored_whole)


def test_ratings_below_zero_a_marker_is_said_and_a_scale_through_zero_is_scaled_from_its_lowest():
    from ingest.import_values import types_and_values

    # an anime list: -1 is "watched, not rated", apart from the 1 … 10 scale
    anime = pd.DataFrame({"r": ["-1", "-1", "10", "1", "7"]})
    notes: list[str] = []
    types, _ = types_and_values(anime, "r", None, notes=notes)
    assert types.tolist() == ["skip", "skip", "like", "skip", "play"]
    assert any("2 rows rated -1, apart from the rest of the scale (1 … 10)" in n and "--unrated -1" in n for n in notes)
    notes = []
    types, _ = types_and_values(anime, "r", None, notes=notes, unrated=-1)
    assert types.tolist()[:2] == ["play", "play"] and not any("apart from" in n for n in notes)
    # Jester's -10 … 10: zero is the middle of the scale, not the bottom
    jester = pd.DataFrame({"r": ["-10", "-3.5", "0", "6", "10"]})
    notes = []
    types, value = types_and_values(jester, "r", None, notes=notes)
    assert types.tolist() == ["skip", "skip", "play", "like", "like"]
    assert value[2] == pytest.approx(0.5) and "scaled from the lowest -10 to the top 10" in " ".join(notes)
    # one note on the scale: not "scaled by the top rating" first and its correction after
    assert sum("scaled" in n for n in notes) == 1 and not any("scaled by the top" in n for n in notes)
    notes = []
    types_and_values(jester, "r", None, notes=notes, rating_max=10)
    assert [n for n in notes if "scaled" in n] == [
        "ratings run below zero: scaled from the lowest -10 to the top 10 (--rating-max)"
    ]
    notes = []
    types_and_values(anime, "r", None, notes=notes)
    assert any("scaled by the top rating 10" in n for n in notes)


def test_a_log_of_dates_says_its_ties_and_an_offset_column_orders_them(tmp_path):
    # Diginetica: a session's rows share its date; timeframe is milliseconds since the session began
    rows = ["sessionId;itemId;timeframe;eventdate"]
    rows += [f"{s};i{(s + k) % 9};{k * 60_000 + s};2016-05-0{1 + s % 5}" for s in range(1, 13) for k in range(4)]
    rows += ["13;i1;soon;2016-05-02"]
    src = _csv(tmp_path / "train-item-views.csv", "\n".join(rows))
    events, _, summary = load_interactions(src, user_col="sessionId", item_col="itemId", time_col="eventdate")
    assert "12 of the 12 users with several rows have them all at one time" in str(summary)
    assert "--time-offset-col" in str(summary)
    events, _, summary = load_interactions(
        src,
        user_col="sessionId",
        item_col="itemId",
        time_col="eventdate",
        time_offset_col="timeframe",
        time_offset_unit="ms",
    )
    said = str(summary)
    assert "'eventdate' plus 'timeframe' in milliseconds" in said and "at one time" not in said
    assert "1 row with an offset in 'timeframe' that is not a number" in said
    first = events[events["user_id"] == events["user_id"].iloc[0]].sort_values("timestamp")
    assert first["timestamp"].diff().dropna().eq(pd.Timedelta(minutes=1)).all()
    # 13's row keeps its date alone
    assert (events["timestamp"] == pd.Timestamp("2016-05-02", tz="UTC")).sum() == 1


def test_an_offset_may_count_minutes_or_a_multiple_of_a_unit(tmp_path):
    src = _csv(tmp_path / "v.csv", "u,i,day,minute\na,x,2024-01-01,0\na,y,2024-01-01,90\na,z,2024-01-01,1.5")
    options = dict(user_col="u", item_col="i", time_col="day", time_offset_col="minute")
    events, _, summary = load_interactions(src, **options, time_offset_unit="min")
    day = pd.Timestamp("2024-01-01", tz="UTC")
    at = events.set_index("item_id")["timestamp"].to_dict()
    assert at == {"x": day, "y": day + pd.Timedelta(minutes=90), "z": day + pd.Timedelta(seconds=90)}
    assert "'day' plus 'minute' in minutes" in str(summary)
    tens, _, _ = load_interactions(src, **options, time_offset_unit="10s")
    assert tens.set_index("item_id")["timestamp"]["y"] == day + pd.Timedelta(seconds=900)


def test_offsets_written_as_clock_times_are_warned_of(tmp_path):
    clocks = [905, 1435, 2359, 1200, 830, 1759, 2001, 1010, 1111, 1545, 700, 1930, 2245, 1305, 950, 1620, 1840, 2130]
    rows = [f"u{k % 4},i{k},2024-01-0{1 + k % 3},{c}" for k, c in enumerate(clocks + [2300, 0])]
    src = _csv(tmp_path / "v.csv", "u,i,day,hhmm\n" + "\n".join(rows))
    options = dict(user_col="u", item_col="i", time_col="day", time_offset_col="hhmm", time_offset_unit="min")
    _, _, summary = load_interactions(src, **options)
    assert "'hhmm' look like clock times written as hhmm" in " ".join(str(summary).split())
    minutes = _csv(
        tmp_path / "m.csv", "u,i,day,m\n" + "\n".join(r.rsplit(",", 1)[0] + f",{k * 7}" for k, r in enumerate(rows))
    )
    _, _, plain = load_interactions(minutes, **{**options, "time_offset_col": "m"})
    assert "clock times" not in str(plain)
    assert "--time-offset-unit hhmm" in " ".join(str(summary).split())


def test_hhmm_offsets_read_as_clock_times(tmp_path):
    rows = [
        "a,x,2024-01-01,1435",
        "a,y,2024-01-01,905",
        "a,z,2024-01-02,0",
        "b,x,2024-01-01,2359",
        "b,y,2024-01-01,1290",
    ]
    src = _csv(tmp_path / "t.csv", "u,i,day,trans_time\n" + "\n".join(rows))
    options = dict(user_col="u", item_col="i", time_col="day", time_offset_col="trans_time")
    events, _, summary = load_interactions(src, **options, time_offset_unit="hhmm")
    at = {(r.user_id, r.item_id): r.timestamp for r in events.itertuples()}
    day = pd.Timestamp("2024-01-01", tz="UTC")
    assert at[(events["user_id"][events["item_id"] == "z"].iloc[0], "z")] == day + pd.Timedelta(days=1)
    stamps = sorted(events["timestamp"])
    assert day + pd.Timedelta(hours=14, minutes=35) in stamps and day + pd.Timedelta(hours=9, minutes=5) in stamps
    assert day + pd.Timedelta(hours=23, minutes=59) in stamps
    said = " ".join(str(summary).split())
    assert "read as clock times written hhmm" in said
    # 12:90 is no clock time: its row keeps its date alone, and is counted
    assert "1 row with an offset in 'trans_time' that is no hhmm clock time" in said
    assert (events["timestamp"] == day).sum() == 1
    counts = _csv(
        tmp_path / "c.csv", "u,i,day,trans_time\n" + "\n".join(f"a,x{k},2024-01-01,{k * 4000 + 70}" for k in range(9))
    )
    with pytest.raises(ImportFormatError, match="no clock time written as hhmm"):
        load_interactions(counts, **options, time_offset_unit="hhmm")


def test_the_offset_options_are_checked(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _csv(tmp_path / "v.csv", "user_id,item_id,timestamp,tf\nu,i,2024-01-01,5")
    for args, said in (
        (["--time-offset-col", "tf"], "needs --time-offset-unit"),
        (["--time-offset-unit", "ms"], "needs it"),
        (["--time-offset-col", "tf", "--time-offset-unit", "fortnights"], "or hhmm for clock times"),
        (["--time-offset-col", "tf", "--time-offset-unit", "ms", "--no-time"], "does not combine with --no-time"),
    ):
        result = CliRunner().invoke(app, ["import", str(src), *args])
        assert result.exit_code == 2 and said in result.output + (result.stderr or ""), result.output


def test_a_row_without_a_rating_is_a_play_of_unknown_value_and_text_is_still_unreadable(tmp_path):
    src = _csv(tmp_path / "r.csv", "u,i,t,r\na,x,1700000000,5\na,y,1700000001,\nb,x,1700000002,NA\nb,y,1700000003,five")
    events, _, summary = load_interactions(src, user_col="u", item_col="i", time_col="t", time_unit="s", rating_col="r")
    assert events["type"].tolist()[:3] == ["like", "play", "play"] and events["value"].isna().tolist()[1:3] == [
        True,
        True,
    ]
    assert "2 rows without a rating read as plays of unknown value" in str(summary)
    assert summary.problems["unparseable rating"] == 1  # "five"
    frame = pd.DataFrame(
        {"u": ["a", "a", "b"], "i": ["x", "y", "x"], "t": pd.to_datetime([1, 2, 3], unit="D"), "r": [5.0, None, 1.0]}
    )
    frame.to_parquet(tmp_path / "r.parquet")
    events, _, summary = load_interactions(
        tmp_path / "r.parquet", user_col="u", item_col="i", time_col="t", rating_col="r"
    )
    assert events["type"].tolist() == ["like", "play", "skip"] and "unparseable rating" not in str(summary)
    assert "times in 't' without a time zone read as UTC" in str(summary)


def test_numeric_dates_are_read_day_or_month_first_for_the_whole_column(tmp_path):
    # Ta-Feng writes 11/1/2000 for November 1st; a European export writes 13/11/2000
    def load(dates: list[str], **kw):
        rows = "\n".join(f"u,i{k},{d}" for k, d in enumerate(dates))
        return load_interactions(_csv(tmp_path / "d.csv", "user_id,item_id,when\n" + rows), time_col="when", **kw)

    events, _, summary = load(["1/11/2000", "13/11/2000 08:15"])
    assert events["timestamp"].dt.strftime("%Y-%m-%d").tolist() == ["2000-11-01", "2000-11-13"]
    assert "read day first (a number above 12 says so)" in str(summary)
    events, _, _ = load(["11/1/2000", "11/13/2000"])
    assert events["timestamp"].dt.strftime("%Y-%m-%d").tolist() == ["2000-11-01", "2000-11-13"]
    events, _, summary = load(["11/1/2000", "12/2/2000"])
    assert events["timestamp"].dt.strftime("%m-%d").tolist() == ["11-01", "12-02"] and "--dayfirst" in str(summary)
    events, _, _ = load(["11/1/2000", "12/2/2000"], dayfirst=True)
    assert events["timestamp"].dt.strftime("%m-%d").tolist() == ["01-11", "02-12"]
    with pytest.raises(ImportFormatError, match="day first .* and others with the month first"):
        load(["13/11/2000", "11/13/2000"])
    with pytest.raises(ImportFormatError, match="--no-dayfirst contradicts"):
        load(["13/11/2000"], dayfirst=False)


def test_an_offset_written_as_a_time_of_day_is_read_as_one_and_words_are_refused(tmp_path):
    """Yahoo! Music's ratings give a day number and a time, 23:41:00."""
    src = _csv(
        tmp_path / "v.csv", "u,i,day,time\na,x,2024-01-01,23:41:00\na,y,2024-01-01,7:05\nb,x,2024-01-02,00:00:30"
    )
    options = dict(user_col="u", item_col="i", time_col="day", time_offset_col="time", time_offset_unit="s")
    events, _, summary = load_interactions(src, **options)
    got = sorted(events["timestamp"].tolist())
    day = pd.Timestamp("2024-01-01", tz="UTC")
    # two parts under a unit of seconds are minutes and seconds (a track's 7:05)
    assert got == [day + pd.Timedelta("7min5s"), day + pd.Timedelta("23h41min"), day + pd.Timedelta("1d30s")]
    assert "'day' plus 'time' read as hours:minutes:seconds (two parts: minutes:seconds" in str(summary)
    hours, _, _ = load_interactions(src, **{**options, "time_offset_unit": "min"})
    assert day + pd.Timedelta("7h5min") in hours["timestamp"].tolist()
    words = _csv(tmp_path / "w.csv", "u,i,day,time\na,x,2024-01-01,noon\na,y,2024-01-01,dusk\nb,x,2024-01-02,5")
    with pytest.raises(ImportFormatError, match="2 of the 3 offsets in 'time' are not numbers \\(e.g. 'noon'\\)"):
        load_interactions(words, **options)


def test_an_item_id_holding_a_third_of_the_rows_is_said_to_be_a_placeholder(tmp_path):
    # Avazu's site_id 85f751fd: "an app, no site" on a third of its rows
    rows = [f"d{k % 9},85f751fd,{T0 + k}" for k in range(40)]
    rows += [f"d{k % 9},s{k % 30:02d},{T0 + 100 + k}" for k in range(90)]
    src = _csv(tmp_path / "train.csv", "device_ip,site_id,hour\n" + "\n".join(rows))
    plain = dict(user_col="device_ip", item_col="site_id", time_col="hour", time_unit="s")
    said = _said(src, **plain)
    assert "item id '85f751fd' holds 40 rows (31%; the next busiest 3): if it stands for 'no item'" in said
    # one item ten times as busy as the next, on a tenth of the rows, stands apart too; a popular one does not
    apart = rows[:30] + rows[40:]
    said = _said(_csv(tmp_path / "apart.csv", "device_ip,site_id,hour\n" + "\n".join(apart)), **plain)
    assert "item id '85f751fd' holds 30 rows (25%; the next busiest 3)" in said
    # rows quarantined for a missing user hold no popular item (Avazu's app rows of its placeholder device)
    anon = [f"a99f214a,{r.split(',', 1)[1]}" for r in rows[:40]] + rows[40:]
    said = _said(
        _csv(tmp_path / "anon.csv", "device_id,site_id,hour\n" + "\n".join(anon)),
        user_col="device_id", item_col="site_id", time_col="hour", time_unit="s", missing_users=("a99f214a",),
    )  # fmt: skip
    assert "holds 40 rows" not in said
    popular = rows[:30] + [r.replace("s00,", "s01,") for r in rows[40:]]  # s01 now holds 6
    said = _said(_csv(tmp_path / "popular.csv", "device_ip,site_id,hour\n" + "\n".join(popular)), **plain)
    assert "holds 30 rows" not in said


def test_an_item_id_of_zeros_holding_many_rows_is_said_to_be_a_placeholder(tmp_path):
    # Brightkite's check-ins at location 000…0: "no place", which would train as the most popular one
    zero = "0" * 32
    rows = [f"u{k % 7},{zero if k % 5 == 0 else f'loc{k % 40}'},{T0 + k}" for k in range(400)]
    rows += [f"u{k % 7},0,{T0 + 500 + k}" for k in range(20)]  # a lone 0 is a catalogue's first id
    src = _csv(tmp_path / "checkins.csv", "user,location,time\n" + "\n".join(rows))
    events, _, summary = load_interactions(src, user_col="user", item_col="location", time_col="time", time_unit="s")
    said = " ".join(str(summary).split())
    assert f"item id {zero!r} holds 80 rows (19.0%)" in said and "blank it or drop those rows" in said
    assert "item id '0' holds" not in said
    assert (events["item_id"] == zero).sum() == 80  # imported as it stands: said, not changed


def _said(src, **options) -> str:
    """What an import of ``src`` says, on one line."""
    return " ".join(str(load_interactions(src, **options)[2]).split())


def test_click_columns_of_ad_and_search_logs_are_named_with_the_reading_of_a_click(tmp_path):
    """Taobao's display-ad raw_sample (nonclk, clk), Expedia's click_bool and booking_bool, Criteo's
    conversion: unread, every row shown would train as a play."""
    taobao = _csv(
        tmp_path / "raw_sample.csv",
        "user,time_stamp,adgroup_id,pid,nonclk,clk\n"
        + "\n".join(f"{k % 3},{T0 + k},{k},430548_1007,{1 - k % 2},{k % 2}" for k in range(8)),
    )
    plain = dict(user_col="user", item_col="adgroup_id", time_col="time_stamp", time_unit="s")
    _, _, summary = load_interactions(taobao, **plain)
    said = " ".join(str(summary).split())
    assert "columns 'nonclk', 'clk' not read: every row is imported as a whole play" in said
    assert "--type-col clk --type-map 1=play,0=impression reads each row shown and not clicked" in said
    from ingest.import_values import parse_type_map

    events, _, _ = load_interactions(taobao, **plain, type_col="clk", type_map=parse_type_map("1=play,0=impression"))
    assert events["type"].value_counts().to_dict() == {"play": 4, "impression": 4}
    expedia = _csv(
        tmp_path / "train.csv",
        "srch_id,date_time,prop_id,position,click_bool,gross_bookings_usd,booking_bool\n"
        + "\n".join(f"{k // 4},2013-04-04 08:32:{k:02d},{k},{k % 4 + 1},{k % 2},NULL,{k % 4 // 3}" for k in range(8)),
    )
    said = _said(expedia, user_col="srch_id", item_col="prop_id", time_col="date_time")
    assert "columns 'click_bool', 'booking_bool' not read" in said and "--type-col click_bool --type-map 1=pl" in said
    # only a lone non-click column: its 1 is the impression
    lines = "\n".join(f"u{k % 3},c{k},{T0 + k},{k % 2},0" for k in range(6))
    criteo = _csv(tmp_path / "ads.csv", "uid,campaign,timestamp,nonclick,conversion\n" + lines)
    said = _said(criteo, user_col="uid", item_col="campaign", time_unit="s")
    assert "columns 'nonclick', 'conversion' not read" in said
    assert "--type-col nonclick --type-map 0=play,1=impression" in said


def test_outcome_columns_left_unread_are_named_when_every_row_is_a_play(tmp_path):
    # KuaiSAR's rec_inter.csv: a row shown and not clicked would train as a play
    src = _csv(
        tmp_path / "rec_inter.csv",
        "user_id,item_id,timestamp,click_cnt,like_cnt,search_session_id\n"
        + "\n".join(f"u{k % 3},i{k},{T0 + k},{k % 2},0," for k in range(6)),
    )
    _, _, summary = load_interactions(src, time_unit="s")
    said = " ".join(str(summary).split())
    assert "columns 'click_cnt', 'like_cnt' not read: every row is imported as a whole play" in said
    assert "search_session_id" not in said.split("not read")[0]
    # once a column gives the rows their values, the others left beside it are said as such
    _, _, summary = load_interactions(src, time_unit="s", count_col="click_cnt")
    said = " ".join(str(summary).split())
    assert "not read: every row" not in said
    assert "column 'like_cnt' not read beside 'click_cnt', which alone gives each row's type" in said
    # NCM's flags: isClick read as the type, isLike and isShare beside it
    ncm = _csv(
        tmp_path / "impression_data.csv",
        "userId,mlogId,impressTime,isClick,isLike,isShare\n"
        + "\n".join(f"u{k % 3},m{k},{T0 + k},{k % 2},0,0" for k in range(6)),
    )
    kw = dict(user_col="userId", item_col="mlogId", time_col="impressTime", time_unit="s", type_col="isClick")
    from ingest.import_values import parse_type_map

    _, _, summary = load_interactions(ncm, **kw, type_map=parse_type_map("0=impression,1=play"))
    assert "columns 'isLike', 'isShare' not read beside 'isClick'" in " ".join(str(summary).split())
    kuai = _csv(  # KuaiRand's outcomes beside is_click (is_rand is how the video was chosen, no outcome)
        tmp_path / "log_standard.csv",
        "user_id,video_id,time_ms,is_click,is_comment,is_forward,is_hate,long_view,is_rand\n"
        + "\n".join(f"u{k % 3},v{k},{T0 + k},{k % 2},0,0,0,1,0" for k in range(6)),
    )
    _, _, summary = load_interactions(
        kuai,
        user_col="user_id",
        item_col="video_id",
        time_col="time_ms",
        time_unit="s",
        type_col="is_click",
        type_map=parse_type_map("0=impression,1=play"),
    )
    said = " ".join(str(summary).split())
    assert "columns 'is_comment', 'is_forward', 'is_hate', 'long_view' not read beside 'is_click'" in said
    assert "is_rand" not in said
    _, _, summary = load_interactions(
        ncm, user_col="userId", item_col="mlogId", time_col="impressTime", time_unit="s", event_type="play"
    )
    assert "not read" not in str(summary)  # --type says what every row is
    # Zhihu's inquiry log: a read time, 0 for a question shown and not opened
    zhihu = _csv(
        tmp_path / "inquiry.csv",
        "user,question,show_time,read_time\n" + "\n".join(f"u{k},q{k},{T0 + k},0" for k in range(4)),
    )
    _, _, summary = load_interactions(zhihu, user_col="user", item_col="question", time_col="show_time", time_unit="s")
    assert "column 'read_time' not read: every row is imported as a whole play" in " ".join(str(summary).split())


def test_type_codes_read_as_floats_are_mapped_as_the_whole_numbers_they_are(tmp_path):
    # a parquet type column of numbers with gaps is float: 2.0, not "2"
    from ingest.import_values import parse_type_map

    frame = pd.DataFrame(
        {
            "user_id": ["u", "u", "v", "v"],
            "item_id": ["a", "b", "a", "c"],
            "timestamp": [T0, T0 + 1, T0 + 2, T0 + 3],
            "kind": [1.0, 2.0, np.nan, 2.0],
            "stars": [np.nan, 5.0, np.nan, 1.0],
        }
    )
    src = tmp_path / "coded.parquet"
    frame.to_parquet(src)
    events, _, _ = load_interactions(
        src, time_unit="s", type_col="kind", rating_col="stars", type_map=parse_type_map("1=play,2=rating")
    )
    assert events["type"].tolist() == ["play", "like", None, "skip"]


def test_a_log_counting_items_from_0_beside_a_file_counting_from_1_is_warned_of(tmp_path):
    # CiteULike: users.dat's indices from 0, raw-data.csv's doc.id from 1
    log = _csv(tmp_path / "rows.csv", "user,item\n0,0\n0,5\n1,2\n2,3")
    articles = _csv(tmp_path / "raw-data.csv", "doc.id,title\n" + "\n".join(f"{k},t{k}" for k in range(1, 7)))
    options = dict(user_col="user", item_col="item", time_col=None, item_id_col="doc.id")
    _, _, summary = load_interactions(log, **options, items=articles)
    assert "item ids count from 0 and the items file's 'doc.id' from 1" in " ".join(str(summary).split())
    shifted = _csv(tmp_path / "shifted.csv", "user,item\n0,1\n0,6\n1,3\n2,4")
    _, _, summary = load_interactions(shifted, **options, items=articles)
    assert "count from 0" not in str(summary)


def test_a_column_of_type_words_left_unread_is_named(tmp_path):
    # Meetup's RSVPs: a declined one ("no") would train as a play
    rows = [f"u{k % 5},e{k},{1_600_000_000 + 60 * k},{'no' if k % 3 == 0 else 'yes'}" for k in range(30)]
    src = _csv(tmp_path / "rsvps.csv", "user_id,item_id,timestamp,response\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, time_unit="s")
    said = " ".join(str(summary).split())
    assert "column 'response' ('no', 'yes') not read: every row is imported as a whole play" in said
    assert "--type-col response reads it" in said
    events, _, typed = load_interactions(
        src, time_unit="s", type_col="response", type_map={"yes": "like", "no": "not_interested"}
    )
    assert "not read" not in str(typed) and set(events["type"]) == {"like", "not_interested"}
    ids = _csv(
        tmp_path / "ids.csv",
        "user_id,item_id,timestamp,event\n"
        + "\n".join(f"u{k % 5},i{k},{1_600_000_000 + 60 * k},ev{k}" for k in range(40)),
    )
    _, _, plain = load_interactions(ids, time_unit="s")
    assert "not read" not in str(plain)  # a column of many distinct values is no column of type words


def test_display_names_as_user_ids_and_a_spelled_out_stand_in_are_said(tmp_path):
    # Coursera's reviews: reviewers named "By Robert S", and "By Deleted A" on 4% of the rows
    first = ["Robert", "Maria", "Wei", "Aisha", "John", "Priya", "Lucas", "Emma", "Omar", "Yuki"]
    names = [f"By {first[k % 10]} {chr(65 + k // 10)}" for k in range(60)]
    rows = [f"{names[k % 60]},c{k % 40},{1_600_000_000 + 60 * k}" for k in range(1_200)]
    rows += [f"By Deleted A,c{k % 40},{1_600_100_000 + 60 * k}" for k in range(50)]
    src = _csv(tmp_path / "reviews.csv", "reviewers,course_id,date\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, user_col="reviewers", item_col="course_id", time_col="date", time_unit="s")
    said = " ".join(str(summary).split())
    assert "ids in 'reviewers' are written as names of several words" in said
    assert "the busiest user id, on 4.0% of the rows (50; the next busiest 20), reads as a stand-in" in said
    plain = _csv(
        tmp_path / "ids.csv",
        "user,item,t\n" + "\n".join(f"u{k % 60},c{k % 40},{1_600_000_000 + k}" for k in range(1_200)),
    )
    _, _, quiet = load_interactions(plain, user_col="user", item_col="item", time_col="t", time_unit="s")
    assert "names of several words" not in str(quiet) and "stand-in" not in str(quiet)
    # GitHub's deleted accounts star as "ghost"
    logins = ["ghost" if k % 20 == 0 else f"u{k % 60}" for k in range(1_200)]
    ghost = _csv(
        tmp_path / "stars.csv",
        "user_login,repo,starred_at\n" + "\n".join(f"{u},r{k % 40},{1_600_000_000 + k}" for k, u in enumerate(logins)),
    )
    _, _, said = load_interactions(ghost, user_col="user_login", item_col="repo", time_col="starred_at", time_unit="s")
    assert "reads as a stand-in" in " ".join(str(said).split())


def test_ids_written_as_whole_floats_read_as_the_whole_numbers_they_are(tmp_path):
    # JData's user_id 266079.0 beside its user file's 266079; a code with a leading zero stays as written
    log = _csv(
        tmp_path / "JData_Action.csv", "user_id,sku_id,time\n266079.0,007.0,1454284802\n200001.0,12.0,1454284803"
    )
    products = _csv(tmp_path / "JData_Product.csv", "sku_id,cate\n12,8\n007.0,4")
    events, frame, summary = load_interactions(
        log, item_col="sku_id", time_col="time", time_unit="s", items=products, item_id_col="sku_id"
    )
    assert sorted(events["user_id"]) == ["200001", "266079"] and sorted(events["item_id"]) == ["007.0", "12"]
    assert "every interacted item is in it" in str(summary)


def test_an_item_column_of_values_each_on_one_row_is_warned_of(tmp_path):
    # Ali-CCP's feature lists named as the item: every "item" on a row of its own
    rows = [f"u{k % 90},f{k}\x02{k * 7},{1_600_000_000 + k}" for k in range(1_200)]
    src = _csv(tmp_path / "skeleton.csv", "user_id,item_id,timestamp\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, time_unit="s")
    said = " ".join(str(summary).split())
    assert "column 'item_id' names 1,200 distinct items over 1,200 rows, nearly each on a row of its own" in said
    shared = _csv(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp\n" + "\n".join(f"u{k % 90},i{k % 300},{1_600_000_000 + k}" for k in range(1_200)),
    )
    _, _, plain = load_interactions(shared, time_unit="s")
    assert "row of its own" not in str(plain)


def test_durations_written_out_are_read_as_seconds(tmp_path):
    # Anime 2023's Duration: "24 min per ep", "1 hr 55 min"; "Unknown" stays unknown, and both are said
    log = _csv(tmp_path / "log.csv", "user_id,item_id\n" + "\n".join(f"u{k % 5},a{k % 4}" for k in range(20)))
    anime = _csv(
        tmp_path / "anime.csv",
        "anime_id,Name,Duration\na0,A,24 min per ep\na1,B,1 hr 55 min\na2,C,3:45\na3,D,Unknown",
    )
    _, frame, summary = load_interactions(log, time_col=None, items=anime, item_id_col="anime_id")
    assert frame is not None
    seconds = frame.set_index("item_id")["duration_s"]
    assert seconds[["a0", "a1", "a2"]].tolist() == [1440.0, 6900.0, 225.0] and np.isnan(seconds["a3"])
    said = " ".join(str(summary).split())
    assert "3 durations in 'Duration' written out ('24 min per ep'): read" in said
    assert "1 duration in 'Duration' is no length (e.g. 'Unknown'): left unknown" in said


def test_a_title_spelled_like_a_missing_token_in_mixed_case_is_kept(tmp_path):
    # Anime 2023 has titles "Na"; Yahoo! Music writes "None" for an unknown artist
    log = _csv(tmp_path / "log.csv", "user_id,item_id\n" + "\n".join(f"u{k % 5},a{k % 3}" for k in range(15)))
    anime = _csv(tmp_path / "anime.csv", "item_id,title,artist\na0,Na,None\na1,NA,Studio\na2,Naruto,NULL")
    _, frame, _ = load_interactions(log, time_col=None, items=anime)
    assert frame is not None
    by_id = frame.set_index("item_id")
    assert by_id.loc["a0", "title"] == "Na" and by_id.loc["a2", "title"] == "Naruto"
    assert pd.isna(by_id.loc["a1", "title"])
    assert by_id.loc["a0", "artist"] != "None" and by_id.loc["a2", "artist"] != "NULL"


def test_shop_category_columns_are_genres(tmp_path):
    # JData's product file (cate) and Tianchi's item file (item_category)
    log = _csv(tmp_path / "log.csv", "user_id,item_id\n" + "\n".join(f"u{k % 5},s{k % 3}" for k in range(15)))
    for name in ("cate", "item_category"):
        products = _csv(tmp_path / f"{name}.csv", f"item_id,a1,{name}\ns0,1,8\ns1,2,4\ns2,-1,8")
        _, frame, summary = load_interactions(log, time_col=None, items=products)
        assert frame is not None and sorted(frame["genre"]) == ["4", "8", "8"], name
        assert f"genre from '{name}'" in str(summary)


def test_negative_quantities_left_unread_are_said(tmp_path):
    # Online Retail II: cancellations ("C" invoices) carry negative quantities; with --type like they are likes
    rows = [f"5{k // 3},8512{k % 20}A,{6 if k % 9 else -6},2009-12-01 07:{k % 60:02d}:00,1{k % 40}" for k in range(90)]
    src = _csv(
        tmp_path / "online_retail_II.csv", "Invoice,StockCode,Quantity,InvoiceDate,Customer ID\n" + "\n".join(rows)
    )
    options = dict(user_col="Customer ID", item_col="StockCode", time_col="InvoiceDate", event_type="like")
    _, _, summary = load_interactions(src, **options)
    said = " ".join(str(summary).split())
    assert "column 'Quantity' holds negative numbers (e.g. -6): returns or cancellations" in said
    _, _, counted = load_interactions(src, **{**options, "event_type": None, "count_col": "Quantity"})
    assert "holds negative numbers" not in str(counted)  # read: its negatives are quarantined and counted


def test_a_name_column_under_the_catalogues_own_word_gives_titles(tmp_path):
    # X-Wines' WineName; a user name column of a log is no title of an item
    log = _csv(tmp_path / "log.csv", "user_id,item_id\n" + "\n".join(f"u{k % 5},w{k % 3}" for k in range(15)))
    wines = _csv(
        tmp_path / "wines.csv", "WineID,WineName,Type\nw0,Espumante Moscatel,Sparkling\nw1,Ancellotta,Red\nw2,Rosso,Red"
    )
    _, frame, summary = load_interactions(log, time_col=None, items=wines, item_id_col="WineID")
    assert frame is not None and frame.set_index("item_id").loc["w1", "title"] == "Ancellotta"
    assert "title from 'WineName'" in str(summary)
    scores = _csv(tmp_path / "scores.csv", "item_id,Username,rating\nw0,Ann Lee,7\nw1,Bo,5\nw2,Cy,9")
    _, scored, _ = load_interactions(log, time_col=None, items=scores)
    assert scored is not None and scored["title"].isna().all()  # a user's name is no item's title


def test_a_large_file_of_a_handful_of_users_is_warned_of(tmp_path):
    # Booking.com's reviews name no reviewer: a nationality named as the user
    nations = [" United Kingdom ", " Germany ", " France "]
    rows = [f"{nations[k % 3]},h{k % 50},{1_600_000_000 + 60 * k}" for k in range(1_200)]
    src = _csv(tmp_path / "Hotel_Reviews.csv", "Reviewer_Nationality,Hotel_Name,date\n" + "\n".join(rows))
    _, _, summary = load_interactions(
        src, user_col="Reviewer_Nationality", item_col="Hotel_Name", time_col="date", time_unit="s"
    )
    assert "'Reviewer_Nationality' holds only 3 distinct users over 1,200 rows" in " ".join(str(summary).split())


def test_a_time_zone_offset_given_as_a_time_offset_is_warned_of(tmp_path):
    # Foursquare's TIST2015: UTC times, the venue's offset in minutes beside them
    rows = [f"u{k % 3},v{k},Tue Apr 03 18:{k:02d}:09 +0000 2012,-240" for k in range(12)]
    src = _csv(tmp_path / "checkins.csv", "user,venue,utc_time,tz_offset\n" + "\n".join(rows))
    options = dict(user_col="user", item_col="venue", time_col="utc_time")
    _, _, summary = load_interactions(src, **options, time_offset_col="tz_offset", time_offset_unit="min")
    assert "'tz_offset' looks like a time zone offset" in " ".join(str(summary).split())


def test_a_column_of_review_text_named_like_an_outcome_is_no_outcome(tmp_path):
    # BoardGameGeek's reviews: "comment" is the review's text, not a count of comments
    rows = [f"u{k % 9},g{k % 20},{1 + k % 10},{'Great game!' if k % 2 else 'Too long, fun though'}" for k in range(60)]
    src = _csv(tmp_path / "bgg-19m-reviews.csv", "user,ID,rating,comment\n" + "\n".join(rows))
    _, _, summary = load_interactions(src, user_col="user", item_col="ID", time_col=None, rating_col="rating")
    assert "'comment'" not in str(summary)
    counts = _csv(
        tmp_path / "kuai.csv",
        "user,ID,is_click,comment\n" + "\n".join(f"u{k % 9},g{k % 20},{k % 2},{k % 3}" for k in range(60)),
    )
    _, _, counted = load_interactions(counts, user_col="user", item_col="ID", time_col=None, rating_col="is_click")
    assert "'comment' not read beside 'is_click'" in " ".join(str(counted).split())


def test_a_type_column_made_of_outcome_columns_leaves_no_stale_notes(tmp_path):
    """Goodreads' interactions made into one type column, the README's way (shelved, read, rated),
    beside the is_read it was made of and a rating whose 0 is unrated: no note says is_read goes
    unread beside the rating, nor counts every 0 as an unrated play when shelved rows are not plays."""
    from ingest.import_values import parse_type_map

    rows = [
        ("u1", "b1", 0, 0, "shelved"),
        ("u1", "b2", 1, 0, "read"),
        ("u2", "b1", 1, 5, "rated"),
        ("u2", "b3", 0, 0, "shelved"),
    ]
    src = _csv(
        tmp_path / "gr_typed.csv",
        "user_id,book_id,is_read,rating,outcome\n" + "\n".join(",".join(map(str, r)) for r in rows),
    )
    events, _, summary = load_interactions(
        src,
        item_col="book_id",
        time_col=None,
        rating_col="rating",
        unrated=0,
        type_col="outcome",
        type_map=parse_type_map("shelved=add_to_playlist,read=play,rated=rating"),
    )
    by = dict(zip(zip(events["user_id"], events["item_id"]), events["type"]))
    assert by == {
        ("u1", "b1"): "add_to_playlist",
        ("u1", "b2"): "play",
        ("u2", "b1"): "like",
        ("u2", "b3"): "add_to_playlist",
    }
    said = " ".join(str(summary).split())
    assert "not read beside" not in said and "read as unrated plays" not in said
    assert "1 row typed 'rated' read by their rating in 'rating'" in said


def test_counts_ratings_and_type_codes_left_unread_are_said(tmp_path):
    """HetRec's Last.fm weight (listen counts), ContentWise's explicit_rating beside its coded
    interaction_type: imported as plays without a word, they lost what each row was."""
    lastfm = _csv(
        tmp_path / "user_artists.dat",
        "userID,artistID,weight\n" + "\n".join(f"u{k % 4},a{k},{13 + k}" for k in range(8)),
    )
    _, _, summary = load_interactions(lastfm, user_col="userID", item_col="artistID", time_col=None)
    assert "column 'weight' not read: every row is imported as a whole play" in " ".join(str(summary).split())
    cw = _csv(
        tmp_path / "interactions.csv",
        "utc_ts_milliseconds,user_id,item_id,interaction_type,explicit_rating\n"
        + "\n".join(f"{T0 * 1000 + k},u{k % 3},i{k},{k % 4},{-1 if k % 4 != 2 else 4.5}" for k in range(12)),
    )
    _, _, summary = load_interactions(cw, time_col="utc_ts_milliseconds", time_unit="ms")
    said = " ".join(str(summary).split())
    assert "column 'explicit_rating' not read" in said
    assert "column 'interaction_type' ('0', '1', '2', '3') not read" in said
    assert "--type-col interaction_type --type-map 0=TYPE,1=TYPE,2=TYPE,3=TYPE" in said


def test_a_second_import_whose_items_share_no_id_with_the_log_is_warned_about(tmp_path, monkeypatch):
    # Taobao's ad samples keyed by adgroup_id, then its behaviour log keyed by category and brand
    from typer.testing import CliRunner

    from ingest.__main__ import app
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    args = ["--user-col", "user", "--item-col", "item", "--time-col", "t", "--time-unit", "s"]
    ads = _csv(
        tmp_path / "raw_sample.csv", "user,item,t\n" + "\n".join(f"u{k % 9},{k % 30},{T0 + k}" for k in range(90))
    )
    assert CliRunner().invoke(app, ["import", str(ads), *args]).exit_code == 0
    keyed = "\n".join(f"u{k % 9},c{k % 25}–b{k % 3},{T0 + 100 + k}" for k in range(90))
    second = CliRunner().invoke(
        app, ["import", str(_csv(tmp_path / "behavior_log.csv", "user,item,t\n" + keyed)), *args]
    )
    assert second.exit_code == 0, second.output
    said = " ".join(second.output.split())
    assert "none of the 75 items of behavior_log.csv is among the 30 items the event log held before it" in said
    # a later log of the same catalogue shares its ids: nothing said
    more = "\n".join(f"u{k % 9},{k % 40},{T0 + 200 + k}" for k in range(90))
    third = CliRunner().invoke(app, ["import", str(_csv(tmp_path / "later.csv", "user,item,t\n" + more)), *args])
    assert third.exit_code == 0 and "is among the" not in third.output


@pytest.mark.parametrize(
    ("name", "guess"),
    [
        ("song_played", "play"), ("skip_song", "skip"), ("product_added", "add_to_playlist"),
        ("item_saved", "add_to_playlist"), ("dislike_song", "not_interested"), ("songs_played", "play"),
        # a word that negates or undoes leaves the name to its owner: a dislike must never train as a like
        ("song_not_liked", None), ("undo_like", None), ("remove_favorite", None), ("track_unliked", None),
        ("not_played", None), ("search_results_shown", None), ("app_opened", None), ("played", None),
        # a search for an item names the item found, not the words typed (trivago's action types); Segment's
        # "Products Searched" carries the words typed
        ("search_for_item", None), ("search_for_destination", "search"), ("products_searched", "search"),
    ],
)  # fmt: skip
def test_a_type_name_of_several_words_is_guessed_only_when_its_words_agree(name, guess):
    from ingest.import_values import guessed_type

    assert guessed_type(name) == guess


@pytest.mark.parametrize("profile", ["local", "production", "cluster"])
def test_the_advice_to_start_over_names_every_store_of_the_profile(tmp_path, profile):
    from ingest.__main__ import _start_over
    from setlist.settings import Settings

    said = _start_over(Settings(data_dir=tmp_path / "data", profile=profile))
    assert said.startswith(f"start from an empty data directory: move {tmp_path / 'data'} aside")
    assert ("SETLIST_DATABASE_URL" in said) == (profile != "local")
    assert ("SETLIST_REDIS_URL" in said) == (profile == "production")
    assert ("SETLIST_REDIS_CLUSTER_NODES" in said) == (profile == "cluster")


def test_a_file_imported_by_a_version_that_kept_no_options_is_not_read_a_second_way(tmp_path, monkeypatch):
    """An upgraded data directory: the earlier import's ledger line has no options, so whether a re-run's
    match cannot be told; it is not read again (exit 0: the same options would add nothing), and says so."""
    from typer.testing import CliRunner

    import ingest.__main__ as cli
    from setlist import lineage
    from setlist.eventlog import EventLog, Quarantine

    lines = [f"u{k % 7},i{k % 11},{T0 + k},{1 + k % 5}" for k in range(60)]
    src = _csv(tmp_path / "log.csv", "user,item,t,r\n" + "\n".join(lines))
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "t", "--time-unit", "s"]
    first = CliRunner().invoke(cli.app, [*args, "--rating-col", "r"])
    assert first.exit_code == 0, first.output
    ledger = tmp_path / "data" / "lineage" / "imports.jsonl"
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    ledger.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "options"}) + "\n" for r in records))
    logged = EventLog(tmp_path / "data" / "events").count()
    for rerun in ([*args, "--rating-col", "r", "--rating-max", "10"], [*args, "--rating-col", "r"]):
        said = CliRunner().invoke(cli.app, rerun)
        assert said.exit_code == 0, said.output
        text = " ".join(said.output.split())
        assert "by an earlier version of Setlist, which did not record the options" in text
        assert "nothing was read again" in text and "start from an empty data directory" in text
    assert EventLog(tmp_path / "data" / "events").count() == logged and logged > 0
    assert Quarantine(tmp_path / "data" / "quarantine").read().empty
    assert len(lineage.imports(tmp_path / "data" / "lineage")) == 1  # nothing imported, nothing recorded


def test_epoch_numbers_of_another_unit_among_a_files_are_quarantined_with_the_unit_they_look_like(tmp_path):
    from ingest.intake import ingest
    from setlist.eventlog import Quarantine
    from setlist.settings import Settings

    rows = [f"u{k % 5},i{k % 7},{T0 + k}" for k in range(40)] + [f"u1,i2,{T0 * 1000 + k}" for k in range(3)]
    src = _csv(tmp_path / "log.csv", "user,item,t\n" + "\n".join(rows))
    events, _, _ = load_interactions(src, user_col="user", item_col="item", time_col="t", time_unit="s")
    settings = Settings(data_dir=tmp_path / "data", hmac_key="k")
    report = ingest(events, settings, source="import", identities=FakeIdentities())
    assert report.accepted == 40 and report.quarantined == 3
    reasons = set(Quarantine(settings.quarantine_dir).read()["reason"])
    assert reasons == {
        f"bad_timestamp: '{T0 * 1000 + k}' in column 't' is no time this import reads as --time-unit s: "
        "it looks like milliseconds"
        for k in range(3)
    }


def test_a_target_column_left_unread_is_said(tmp_path):
    """KKBox's ``target`` (1: replayed within a month, 0: not) imported without --rating-col made
    every row a play, its 0s positives, without a word."""
    kkbox = _csv(
        tmp_path / "train.csv",
        "msno,song_id,source_type,target\n" + "\n".join(f"u{k % 3},s{k},radio,{k % 2}" for k in range(8)),
    )
    _, _, summary = load_interactions(kkbox, user_col="msno", item_col="song_id", time_col=None)
    assert "column 'target' not read: every row is imported as a whole play" in " ".join(str(summary).split())
    # a column named after a target, no outcome itself (a time, a count), is not said to be one
    timed = _csv(
        tmp_path / "targets.csv",
        "user_id,item_id,target_time,target_count\n"
        + "\n".join(f"u{k % 3},i{k},{1_700_000_000 + k},{k}" for k in range(8)),
    )
    _, _, said = load_interactions(timed, time_col=None)
    assert "not read: every row is imported as a whole play" not in " ".join(str(said).split())
