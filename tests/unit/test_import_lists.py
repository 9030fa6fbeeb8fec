"""Logs whose item cells list several items (MIND's impression lists, baskets) import as one event
per listed item, at once and in chunks alike."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.import_files import ImportFormatError
from ingest.import_lists import CLICK_TYPE_COL, explode
from ingest.importer import ImportOptions, InteractionStream, TextLayout, load_interactions, rows_per_line
from setlist.contract import HISTORY_SESSION_PREFIX

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
MIND_NAMES = "impression_id,user_id,time,history,impressions"


def _behaviors(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """MIND's behaviors.tsv: no header, tab-separated, US times with AM/PM."""
    path.write_text("".join(f"{k}\t{u}\t{t}\t{h}\t{imp}\n" for k, (u, t, h, imp) in enumerate(rows, start=1)))
    return path


def _same_events(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The same events, whatever their order (chunks come a stretch of time at a time)."""
    key = ["event_id"]
    pd.testing.assert_frame_equal(
        a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True), check_dtype=False
    )


def _mind(**extra) -> dict:
    return dict(
        layout=TextLayout.from_options(None, MIND_NAMES, None),
        user_col="user_id",
        time_col="time",
        impressions_col="impressions",
        now=NOW,
        **extra,
    )


def test_explode_cuts_click_marks_into_types_and_keeps_each_row_in_place():
    frame = pd.DataFrame({"u": ["a", "b", "c"], "imp": ["N1-1 N2-0", "N3-0", "N4 N5-1"], "t": [1, 2, 3]})
    out = explode(frame, "imp", clicks=True)
    assert out["u"].tolist() == ["a", "a", "b", "c", "c"]
    assert out["t"].tolist() == [1, 1, 2, 3, 3]
    assert out["imp"].tolist() == ["N1", "N2", "N3", "N4", "N5"]
    assert out[CLICK_TYPE_COL].tolist() == ["play", "impression", "impression", None, "play"]  # N4: no mark


def test_a_list_without_any_click_mark_is_all_unknown_not_an_error():
    """MIND's test split marks no id at all."""
    frame = pd.DataFrame({"u": ["a", "b"], "imp": ["N1 N2", "N3"]})
    out = explode(frame, "imp", clicks=True)
    assert out["imp"].tolist() == ["N1", "N2", "N3"] and out[CLICK_TYPE_COL].isna().all()


def test_explode_without_marks_keeps_ids_whole_and_an_empty_cell_as_one_missing_id():
    frame = pd.DataFrame({"u": ["a", "b", "c"], "basket": ["x-1, y;z", "", None], "r": [5, 4, 3]})
    out = explode(frame, "basket", clicks=False)
    assert out["basket"].tolist() == ["x-1", "y", "z", None, None]
    assert out["r"].tolist() == [5, 5, 5, 4, 3]
    assert CLICK_TYPE_COL not in out


def test_an_impression_log_becomes_clicks_and_impressions_that_training_labels(tmp_path):
    from training.labels import label

    src = _behaviors(
        tmp_path / "behaviors.tsv",
        [
            ("U1", "11/15/2019 8:55:22 AM", "N7 N8", "N10-1 N11-0 N12-0"),
            ("U2", "11/15/2019 9:05:22 PM", "", "N10-0 N13-1"),
            ("U1", "11/16/2019 10:00:00 AM", "N7 N8", "N14-0 N15"),
        ],
    )
    events, _, summary = load_interactions(src, **_mind())
    got = events[["user_id", "item_id", "type"]].itertuples(index=False, name=None)
    assert list(got) == [
        ("U1", "N10", "play"),
        ("U1", "N11", "impression"),
        ("U1", "N12", "impression"),
        ("U2", "N10", "impression"),
        ("U2", "N13", "play"),
        ("U1", "N14", "impression"),
        ("U1", "N15", None),  # no click mark: quarantined, not guessed
    ]
    assert events["timestamp"].iloc[3] == pd.Timestamp("2019-11-15 21:05:22", tz="UTC")
    assert events["value"].iloc[0] == 1.0 and pd.isna(events["value"].iloc[1])
    assert label(events.iloc[:6]).tolist() == [1, 0, 0, 0, 1, 0]
    assert summary.rows == 7 and summary.items == 6
    assert summary.problems["empty or unknown type"] == 1
    notes = " ".join(summary.read_notes)
    assert "3 rows became 7, one per item" in notes and "1 ids in 'impressions' carry no click mark" in notes
    # the event ids are stable: the same file gives the same ids, so a second import adds nothing
    again, _, _ = load_interactions(src, **_mind())
    assert again["event_id"].tolist() == events["event_id"].tolist()
    assert events["event_id"].is_unique


def test_an_impression_log_in_chunks_gives_the_events_of_an_import_at_once(tmp_path):
    rows = [
        (f"U{k % 7}", f"11/{10 + k % 5}/2019 {1 + k % 12}:0{k % 10}:00 {'AM' if k % 2 else 'PM'}", "", imp)
        for k, imp in enumerate(f"N{k}-1 N{k + 1}-0 N{k + 2}-0" for k in range(40))
    ]
    src = _behaviors(tmp_path / "behaviors.tsv", rows)
    whole, _, summary = load_interactions(src, **_mind())
    stream = InteractionStream(src, ImportOptions(**_mind()), chunk_rows=25, per_line=3.0)
    parts = list(stream)
    assert len(parts) > 1 and stream.summary is not None
    chunked = pd.concat(parts, ignore_index=True)
    _same_events(whole, chunked)
    assert str(stream.summary) == str(summary)
    assert rows_per_line(src, ImportOptions(**_mind())) == 3.0
    assert rows_per_line(src, ImportOptions(**_mind(history_col="no_such_column"))) == 1.0


def test_a_basket_log_repeats_its_rating_for_every_item(tmp_path):
    src = tmp_path / "baskets.csv"
    src.write_text('user,items,when,stars\nu1,"a1 b2 c3",1700000000,5\nu2,"b2",1700000100,1\n')
    events, _, summary = load_interactions(
        src, user_col="user", item_col="items", time_col="when", time_unit="s", rating_col="stars", item_lists=True
    )
    assert events[["item_id", "type"]].values.tolist() == [
        ["a1", "like"],
        ["b2", "like"],
        ["c3", "like"],
        ["b2", "skip"],
    ]
    assert not any("looks like lists" in n for n in summary.read_notes)


def test_pipe_separated_lists_split_and_are_warned_of_like_any_other(tmp_path):
    """trivago's impressions column is ``1|2|3``: a pipe separates ids as a comma does."""
    frame = pd.DataFrame({"u": ["a", "b"], "imp": ["h1|h2|h3", "h4-1|h5-0"]})
    assert explode(frame, "imp", clicks=False)["imp"].tolist() == ["h1", "h2", "h3", "h4-1", "h5-0"]
    assert explode(frame, "imp", clicks=True)[CLICK_TYPE_COL].tolist() == [None, None, None, "play", "impression"]
    src = tmp_path / "shown.csv"
    src.write_text("user,shown,when\nu1,101|102|103,1700000000\nu2,104|105,1700000100\n")
    plain = dict(user_col="user", item_col="shown", time_col="when", time_unit="s")
    with pytest.raises(ImportFormatError, match="'shown' looks like lists of ids"):
        load_interactions(src, **plain)
    events, _, _ = load_interactions(src, **plain, item_lists=True)
    assert events["item_id"].tolist() == ["101", "102", "103", "104", "105"]


def test_a_list_refusal_names_the_option_that_imports_it(tmp_path):
    src = _behaviors(tmp_path / "b.tsv", [(f"U{k}", "11/15/2019 8:55:22 AM", "", f"N{k}1-1 N{k}2-0") for k in range(5)])
    layout = TextLayout.from_options(None, MIND_NAMES, None)
    with pytest.raises(ImportFormatError, match="looks like lists of ids.*--impressions-col impressions"):
        load_interactions(src, layout=layout, time_col="time", item_col="impressions")


def test_click_marks_do_not_combine_with_a_rating(tmp_path):
    with pytest.raises(ImportFormatError, match="does not combine"):
        ImportOptions(impressions_col="impressions", rating_col="stars")


def test_the_command_refuses_contradicting_options_before_reading(tmp_path, monkeypatch):
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _behaviors(tmp_path / "b.tsv", [("U1", "11/15/2019 8:55:22 AM", "", "N1-1")])
    for extra, said in (
        (["--rating-col", "impression_id"], "does not combine"),
        (["--item-col", "history"], "leave out --item-col"),
    ):
        result = CliRunner().invoke(
            app, ["import", str(src), "--names", MIND_NAMES, "--impressions-col", "impressions", *extra]
        )
        assert result.exit_code == 2, result.output
        assert said in result.output + result.stderr
    assert not (tmp_path / "data" / "events").exists()


def test_the_impression_fixture_is_seeded_and_every_list_holds_a_click():
    from ingest.impressions_fixture import make_impressions

    a, b = (
        make_impressions(users=40, items=200, impressions=150, seed=3),
        make_impressions(users=40, items=200, impressions=150, seed=3),
    )
    pd.testing.assert_frame_equal(a.behaviors, b.behaviors)
    marks = a.behaviors["impressions"].str.split()
    assert marks.map(lambda ids: any(i.endswith("-1") for i in ids)).all()
    clicked = marks.explode().str.endswith("-1").mean()
    assert 0.02 < clicked < 0.3  # a few percent of what is shown, as in the public log
    shown = set(marks.explode().str.rsplit("-", n=1).str[0])
    assert shown <= set(a.news["news_id"])
    times = pd.to_datetime(a.behaviors["timestamp"], format="%m/%d/%Y %I:%M:%S %p")
    assert times.is_monotonic_increasing and times.dt.normalize().nunique() >= 5


def test_a_users_history_becomes_plays_just_before_their_first_listed_item_once(tmp_path):
    src = _behaviors(
        tmp_path / "behaviors.tsv",
        [
            ("U1", "11/15/2019 8:55:22 AM", "N7 N8", "N10-1 N11-0"),
            ("U2", "11/15/2019 9:05:22 PM", "", "N10-0 N13-1"),
            ("U1", "11/14/2019 10:00:00 AM", "N7 N8", "N14-0"),  # earlier than U1's first line in the file
        ],
    )
    events, _, summary = load_interactions(src, **_mind(history_col="history"))
    hist = events[events["item_id"].isin(["N7", "N8"])]
    assert hist["user_id"].tolist() == ["U1", "U1"] and (hist["type"] == "play").all()  # once, not per line
    first = pd.Timestamp("2019-11-14 10:00:00", tz="UTC")
    assert hist["timestamp"].tolist() == [first - pd.Timedelta(seconds=2), first - pd.Timedelta(seconds=1)]
    assert "2 ids of 'history'" in " ".join(summary.read_notes)
    # the history is a session of its own, marked as no visit: the first visit keeps its own length
    [history_session] = hist["session_id"].unique()
    assert history_session.startswith(HISTORY_SESSION_PREFIX)
    first_visit = events[(events["user_id"] == "U1") & (events["timestamp"] == first)]
    assert len(first_visit) == 1 and first_visit["session_id"].iloc[0] != history_session
    assert not events.loc[~events.index.isin(hist.index), "session_id"].str.startswith(HISTORY_SESSION_PREFIX).any()
    stream = InteractionStream(src, ImportOptions(**_mind(history_col="history")), chunk_rows=2, per_line=3.0)
    chunked = pd.concat(list(stream), ignore_index=True)
    _same_events(events, chunked)
    assert str(stream.summary) == str(summary)
    with pytest.raises(ImportFormatError, match="needs one"):
        ImportOptions(history_col="history")


def test_lists_written_out_or_read_from_json_give_their_elements_not_brackets_and_quotes(tmp_path):
    # a JSON array per line (ids as strings and as numbers), and the same lists written as Python text
    src = tmp_path / "baskets.jsonl"
    src.write_text(
        '{"user": "u1", "items": ["1000", "1001"], "ts": 1700000000}\n'
        '{"user": "u2", "items": [27, 9], "ts": 1700000100}\n'
        '{"user": "u3", "items": [], "ts": 1700000200}\n'
    )
    events, _, _ = load_interactions(
        src, user_col="user", item_col="items", time_col="ts", time_unit="s", item_lists=True
    )
    assert events["item_id"].tolist()[:4] == ["1000", "1001", "27", "9"] and pd.isna(events["item_id"].iloc[4])
    text = tmp_path / "baskets.csv"
    text.write_text("user,items,ts\nu1,\"['1000', '1001']\",1700000000\nu2,\"[27, 9]\",1700000100\n")
    events, _, _ = load_interactions(
        text, user_col="user", item_col="items", time_col="ts", time_unit="s", item_lists=True
    )
    assert events["item_id"].tolist() == ["1000", "1001", "27", "9"]
    # without --item-lists, written lists are said to be lists
    with pytest.raises(ImportFormatError, match="looks like lists of ids.*--item-lists"):
        load_interactions(text, user_col="user", item_col="items", time_col="ts", time_unit="s")


def test_a_list_of_artist_and_title_pairs_gives_items_keyed_as_artist_and_title(tmp_path):
    # AOTM-2011's mixes: each track an [artist, title] pair, keyed as --item-col artist,track keys one
    src = tmp_path / "aotm.json"
    mixes = [
        {"mix_id": 1, "user": {"user_id": "u1"}, "timestamp": "2004-10-05T00:00:00",
         "playlist": [["AC/DC", "T.N.T."], ["Sigur Rós", "Hoppípolla"]]},
        {"mix_id": 2, "user": {"user_id": "u2"}, "timestamp": "2004-10-06T00:00:00", "playlist": [["AC/DC", "T.N.T."]]},
    ]  # fmt: skip
    src.write_text(json.dumps(mixes))
    events, _, _ = load_interactions(
        src, user_col="user.user_id", item_col="playlist", time_col="timestamp", item_lists=True
    )
    assert events["item_id"].tolist() == ["AC/DC – T.N.T.", "Sigur Rós – Hoppípolla", "AC/DC – T.N.T."]


def test_a_list_of_records_is_refused_with_what_to_do(tmp_path):
    # Steam's users_items: each user's games as {'item_id': …, 'playtime_forever': …}
    src = tmp_path / "australian_users_items.json"
    src.write_text(
        "{'user_id': 'a', 'items': [{'item_id': '10', 'item_name': 'Counter-Strike', 'playtime_forever': 6}]}\n"
        "{'user_id': 'b', 'items': []}\n"
    )
    # with --item-lists or without: the same way out at once, not --item-lists first and a refusal after
    for lists in (True, False):
        with pytest.raises(ImportFormatError) as caught:
            load_interactions(src, user_col="user_id", item_col="items", time_col=None, item_lists=lists)
        message = str(caught.value)
        assert "'items' holds lists of records (item_id, item_name, playtime_forever, …), not ids" in message
        assert "json_normalize(rows, record_path='items', meta=['user_id'])" in message
        assert "--item-lists" not in message


def _ebnerd(path: Path) -> Path:
    """EB-NeRD's behaviors.parquet: the articles in view and the clicked ones, two list columns."""
    pd.DataFrame(
        {
            "impression_id": [1, 2, 3, 4],
            "user_id": [7, 8, 7, 9],
            "impression_time": pd.to_datetime(
                ["2023-05-18 07:00", "2023-05-18 07:05", "2023-05-18 08:00", "2023-05-18 09:00"]
            ),
            "article_ids_inview": [[10, 11, 12], [11, 13], [12, 14], [15]],
            "article_ids_clicked": [[11], [13], [99], []],  # 99 was clicked without being in view
            "history": [[1, 2], [3], [1, 2], []],
        }
    ).to_parquet(path)
    return path


def test_shown_and_clicked_lists_in_two_columns_become_plays_and_impressions(tmp_path):
    src = _ebnerd(tmp_path / "behaviors.parquet")
    kw = dict(user_col="user_id", time_col="impression_time", impressions_col="article_ids_inview", now=NOW)
    events, _, summary = load_interactions(src, **kw, clicked_col="article_ids_clicked")
    got = list(zip(events["user_id"], events["item_id"], events["type"], strict=True))
    assert sorted(got) == sorted(
        [("7", "10", "impression"), ("7", "11", "play"), ("7", "12", "impression"), ("8", "11", "impression"),
         ("8", "13", "play"), ("7", "12", "impression"), ("7", "14", "impression"), ("7", "99", "play"),
         ("9", "15", "impression")]
    )  # fmt: skip
    said = " ".join(summary.read_notes)
    assert "1 id of 'article_ids_clicked' is not among their row's 'article_ids_inview'" in said
    assert "typed 'impression'" not in said  # the marks say what was shown and not clicked
    assert "carry no click mark" not in said
    # without the clicked column the ids carry no marks: quarantined, and the option is named
    _, _, unmarked = load_interactions(src, **kw)
    assert "--clicked-col" in " ".join(unmarked.read_notes)
    # in chunks, with a history too, the same events
    opts = dict(kw, clicked_col="article_ids_clicked", history_col="history")
    whole, _, whole_summary = load_interactions(src, **opts)
    assert len(whole) == len(events) + 3  # users 7 and 8's histories, once each
    stream = InteractionStream(src, ImportOptions(**opts), chunk_rows=2, per_line=3.0)
    _same_events(whole, pd.concat(list(stream), ignore_index=True))
    assert str(stream.summary) == str(whole_summary)
    with pytest.raises(ImportFormatError, match="needs one"):
        ImportOptions(clicked_col="article_ids_clicked")


def test_a_column_of_real_lists_named_as_the_item_column_is_refused_with_the_options(tmp_path):
    src = _ebnerd(tmp_path / "behaviors.parquet")
    kw = dict(user_col="user_id", time_col="impression_time", now=NOW)
    with pytest.raises(
        ImportFormatError, match=r"holds lists of ids \(\[10, 11, 12\], …\).*--item-lists.*--clicked-col"
    ):
        load_interactions(src, item_col="article_ids_inview", **kw)
    events, _, _ = load_interactions(src, item_col="article_ids_inview", item_lists=True, **kw)
    assert len(events) == 8  # one per listed item


def test_minds_behaviors_without_names_get_an_example_that_imports_them(tmp_path, monkeypatch):
    """No header: the example names the running impression id apart from the user, the marked list as
    impressions and the plain one as the history, and followed literally it imports them."""
    import re

    from typer.testing import CliRunner

    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    rows = [
        (f"U{k % 7}", f"11/{10 + k % 5}/2019 {1 + k % 11}:05:58 AM", "N1 N2" if k % 3 else "", f"N{k}-1 N{k + 1}-0")
        for k in range(40)
    ]
    src = _behaviors(tmp_path / "behaviors.tsv", rows)
    result = CliRunner().invoke(app, ["import", str(src)])
    assert result.exit_code == 2
    example = re.search(r"\(e\.g\. (--names [^)]*)\)", " ".join(result.output.split()))
    assert example is not None, result.output
    assert example.group(1) == (
        "--names impression_id,user_id,timestamp,history,impressions "
        "--impressions-col impressions --history-col history"
    )
    result = CliRunner().invoke(app, ["import", str(src), *example.group(1).split()])
    assert result.exit_code == 0, result.output
    types = re.search(r"types: (.*)", result.output)
    assert types is not None and "impression 40" in types.group(1), types
