"""A log of several kinds of row in one file, in the shape of Trivago's RecSys Challenge 2019
``train.csv``: ``reference`` holds a hotel on clickouts and interactions, and a destination, a filter or
a sort order on the other rows; ``impressions`` lists hotels on clickouts only. Each misreading a first
attempt makes is refused before anything is stored, or said, with the way that works."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
#: the action types and what ``reference`` holds on their rows
ACTIONS = [
    ("clickout item", None),
    ("interaction item image", None),
    ("interaction item image", None),
    ("interaction item info", None),
    ("clickout item", None),
    ("search for destination", "Barcelona, Spain"),
    ("filter selection", "Focus on Distance"),
    ("change of sort order", "price only"),
]


def _trivago(path: Path, rows: int = 200) -> Path:
    lines = []
    for k in range(rows):
        action, text = ACTIONS[k % len(ACTIONS)]
        hotel = str(100 + k % 23)
        shown = "|".join(str(100 + (k + j) % 23) for j in range(5)) if action == "clickout item" else None
        lines.append(
            {"user_id": f"U{k % 9}", "session_id": f"s{k % 17}", "timestamp": 1541037460 + 30 * k,
             "action_type": action, "reference": text or hotel, "platform": "BR", "device": "mobile",
             "impressions": shown}
        )  # fmt: skip
    pd.DataFrame(lines).to_csv(path, index=False)
    return path


def _typed(**extra: object) -> dict:
    return dict(
        user_col="user_id", item_col="reference", time_col="timestamp", time_unit="s", type_col="action_type",
        type_map={"clickout_item": "play", "interaction_item_image": "view",
                  "interaction_item_info": "view", "search_for_destination": "search",
                  "filter_selection": "feature_use", "change_of_sort_order": "ignore"},
        now=NOW, **extra,
    )  # fmt: skip


def test_rows_read_as_searches_without_a_query_column_are_refused_naming_where_their_text_is(tmp_path):
    src = _trivago(tmp_path / "train.csv")
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(src, **_typed())
    said = " ".join(str(refused.value).split())
    assert "25 search, 25 feature_use rows, and no --query-col" in said
    assert "--query-col reference" in said  # the item column holds their text here: no column is named for it
    assert "'search for destination'" in said and "'filter selection'" in said and "NAME=ignore" in said
    # in chunks, refused alike, before any event is built
    with pytest.raises(ImportFormatError, match="and no --query-col"):
        next(iter(InteractionStream(src, ImportOptions(**_typed()), chunk_rows=50)))
    # with the column named, nothing is quarantined for a missing text and the text is no item
    events, _, summary = load_interactions(src, **_typed(query_col="reference"))
    assert "missing_query" not in str(summary) and summary.problems.get("search or feature_use without text", 0) == 0
    searches = events[events["type"] == "search"]
    assert len(searches) == 25 and set(searches["item_id"]) == {""}
    assert "Barcelona, Spain" not in set(events["item_id"])


def test_a_column_named_for_the_query_is_offered_before_the_item_column(tmp_path):
    frame = pd.read_csv(_trivago(tmp_path / "train.csv"))
    frame["search_term"] = frame["reference"].where(frame["action_type"].str.startswith(("search", "filter")))
    frame.to_csv(tmp_path / "typed.csv", index=False)
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(tmp_path / "typed.csv", **_typed())
    assert "'search_term' looks like their text: --query-col search_term reads it" in " ".join(
        str(refused.value).split()
    )


def test_words_among_numbered_items_are_warned_of_when_every_row_imports_as_a_play(tmp_path):
    src = _trivago(tmp_path / "train.csv")
    events, _, summary = load_interactions(src, user_col="user_id", item_col="reference", time_col="timestamp",
                                           time_unit="s", now=NOW)  # fmt: skip
    said = " ".join(" ".join(summary.read_notes).split())
    # the three phrases of the non-item rows, 75 of 200; the hotel numbers are the rest
    assert "warning: 75 rows (38%) of 'reference' hold words where the others hold numbers" in said
    assert "'Barcelona, Spain'" in said and "--query-col reference" in said
    assert (events["item_id"] == "Barcelona, Spain").sum() == 25  # imported as said: the note is no refusal
    # with the kinds given, the same file says nothing of the kind
    _, _, typed = load_interactions(src, **_typed(query_col="reference"))
    assert "hold words where" not in " ".join(typed.read_notes)


def test_ids_with_a_word_or_two_of_their_own_are_no_such_warning(tmp_path):
    rows = [{"user": f"u{k % 5}", "item": f"B00{k % 40}" if k % 3 else f"The Song {k % 7}", "ts": 1541037460 + k}
            for k in range(100)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "log.csv", index=False)
    _, _, summary = load_interactions(tmp_path / "log.csv", user_col="user", item_col="item", time_col="ts",
                                      time_unit="s", now=NOW)  # fmt: skip
    assert "hold words where" not in " ".join(summary.read_notes)  # the ids are no numbers: titles may be ids


def test_an_impressions_column_empty_on_most_rows_is_refused_with_the_split(tmp_path):
    src = _trivago(tmp_path / "train.csv")
    kw = dict(user_col="user_id", time_col="timestamp", time_unit="s", impressions_col="impressions", now=NOW)
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(src, clicked_col="reference", **kw)
    said = " ".join(str(refused.value).split())
    assert "is empty on 150 of 200 rows (75%)" in said
    assert "df[df['impressions'].astype(str).str.strip().ne('[]')" in said and "--type-col" in said
    with pytest.raises(ImportFormatError, match="is empty on"):
        next(iter(InteractionStream(src, ImportOptions(clicked_col="reference", **kw), chunk_rows=50)))
    # the rows with a list import alone: every shown hotel an event, each clickout's reference its play
    frame = pd.read_csv(src)
    frame[frame["impressions"].notna()].to_csv(tmp_path / "clickouts.csv", index=False)
    events, _, summary = load_interactions(tmp_path / "clickouts.csv", clicked_col="reference", **kw)
    assert len(events) == 50 * 5 and (events["type"] == "play").sum() == 50
    assert not summary.problems.get("empty item id") and "carry no click mark" not in str(summary)


def test_empty_lists_are_counted_over_the_whole_file_in_chunks_too(tmp_path):
    """Lists on the first rows only: the file is judged whole, not by its head, both ways; an empty
    list written out (``[]``) is empty too."""
    rows = [
        (f"U{k % 4}", 1541037460 + k, f"N{k}-1 N{k + 1}-0" if k < 30 else ("[]" if k % 2 else "")) for k in range(100)
    ]
    pd.DataFrame(rows, columns=["user", "ts", "impressions"]).to_csv(tmp_path / "b.csv", index=False)
    kw = dict(user_col="user", time_col="ts", time_unit="s", impressions_col="impressions", now=NOW)
    with pytest.raises(ImportFormatError, match="is empty on 70 of 100 rows"):
        load_interactions(tmp_path / "b.csv", **kw)
    warned: list[str] = []
    stream = InteractionStream(tmp_path / "b.csv", ImportOptions(**kw), chunk_rows=40, warn=warned.append)
    with pytest.raises(ImportFormatError, match="is empty on 70 of 100 rows"):
        next(iter(stream))
    # said once, as the count crossed half (10 of the first 40 rows, then 50 of 80), before the pass ended
    assert len(warned) == 1 and "is empty on 50 of the first 80 rows (62%)" in warned[0]
    assert "refuses it when this pass ends" in warned[0]
    # a share that crosses half again after falling below it is not said twice
    again = [(f"U{k % 4}", 1541037460 + k, "" if k < 30 or 60 <= k < 100 else f"N{k}-1") for k in range(100)]
    pd.DataFrame(again, columns=["user", "ts", "impressions"]).to_csv(tmp_path / "c.csv", index=False)
    twice: list[str] = []
    stream = InteractionStream(tmp_path / "c.csv", ImportOptions(**kw), chunk_rows=30, warn=twice.append)
    with pytest.raises(ImportFormatError, match="is empty on 70 of 100 rows"):
        next(iter(stream))
    assert len(twice) == 1 and "is empty on 30 of the first 30 rows" in twice[0]
    # the refusal's pandas line keeps the rows with a list, "[]" left out as well
    frame = pd.read_csv(tmp_path / "b.csv")
    shown = frame[frame["impressions"].astype(str).str.strip().ne("[]") & frame["impressions"].notna()]
    assert len(shown) == 30


def test_a_chunked_import_warns_of_empty_lists_before_its_first_pass_ends(tmp_path, monkeypatch):
    from ingest.__main__ import app

    rows = [(f"U{k % 4}", 1541037460 + k, f"N{k}-1 N{k + 1}-0" if k < 30 else "") for k in range(100)]
    pd.DataFrame(rows, columns=["user", "ts", "impressions"]).to_csv(tmp_path / "b.csv", index=False)
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_IMPORT_CHUNK_ROWS", "40")
    args = ["import", str(tmp_path / "b.csv"), "--user-col", "user", "--time-col", "ts", "--time-unit", "s"]
    refused = CliRunner().invoke(app, [*args, "--impressions-col", "impressions"])
    said = " ".join(refused.output.split())
    assert refused.exit_code != 0 and "Traceback" not in said
    # the chunks count import rows, two to a line here: the warning comes after some lines, before the refusal
    warned = re.search(r"warning: --impressions-col 'impressions' is empty on \d+ of the first \d+ rows", said)
    assert warned is not None and warned.start() < said.index("error: cannot import")
    assert "is empty on 70 of 100 rows (70%)" in said[warned.end() :]


def test_a_few_empty_lists_are_counted_once_as_empty_items_not_as_unmarked_ids(tmp_path):
    rows = [(f"U{k % 4}", 1541037460 + k, "" if k in (3, 7) else f"N{k}-1 N{k + 1}-0") for k in range(20)]
    pd.DataFrame(rows, columns=["user", "ts", "impressions"]).to_csv(tmp_path / "b.csv", index=False)
    events, _, summary = load_interactions(tmp_path / "b.csv", user_col="user", time_col="ts", time_unit="s",
                                           impressions_col="impressions", now=NOW)  # fmt: skip
    assert summary.problems["empty item id"] == 2
    assert not summary.problems.get("empty or unknown type")
    assert "carry no click mark" not in " ".join(summary.read_notes)
    assert len(events) == 18 * 2 + 2


def test_impressions_beside_a_type_column_are_refused_naming_the_two_imports(tmp_path, monkeypatch):
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _trivago(tmp_path / "train.csv")
    result = CliRunner().invoke(
        app,
        ["import", str(src), "--user-col", "user_id", "--time-col", "timestamp", "--time-unit", "s",
         "--impressions-col", "impressions", "--type-col", "action_type"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    said = " ".join((result.output + result.stderr).split())
    assert "two imports into one data directory" in said and "Impressions on some rows" in said
    assert not (tmp_path / "data" / "events").exists()
    # beside a rating column the shape is another: no word of two imports
    result = CliRunner().invoke(
        app, ["import", str(src), "--user-col", "user_id", "--impressions-col", "impressions", "--rating-col", "step"]
    )
    assert result.exit_code == 2 and "two imports" not in result.output + result.stderr
