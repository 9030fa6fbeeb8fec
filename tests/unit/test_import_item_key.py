"""An item named by several columns together (``--item-col artist,track``): logs without track ids
(Apple Music's play activity, Spotify's basic streaming history, Last.fm scrobbles with empty ids)
key each item by its artist and title, in the log and in the items file alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.__main__ import app
from ingest.import_files import TextLayout
from ingest.import_played import PlayedReading, SkipBelow
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions
from ingest.intake import READ_NOTE
from ingest.item_key import KEY_JOIN
from setlist.contract import reject_reason

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
T0 = 1_700_000_000
NAMES = ["user", "timestamp", "artid", "artist", "traid", "track"]


def _scrobbles(path: Path) -> Path:
    """Last.fm 1K's layout, headerless and tab-separated: a track id on some rows only, one row
    without an artist, and the same track written with stray spaces."""
    rows = [
        ("u1", "2009-05-04T23:08:57Z", "a1", "Deep Dish", "t1", "Fuck Me Im Famous"),
        ("u1", "2009-05-04T23:12:10Z", "a1", "Deep Dish", "", "Fuck Me Im Famous"),
        ("u2", "2009-05-04T23:15:00Z", "a2", " Crosby, Stills & Nash ", "", "Helplessly Hoping"),
        ("u2", "2009-05-04T23:20:00Z", "a2", "Crosby, Stills & Nash", "t2", "Helplessly Hoping"),
        ("u3", "2009-05-04T23:27:00Z", "", "[unknown]", "", "None"),
        ("u2", "2009-05-04T23:28:00Z", "", "", "", "Untitled"),
        ("u3", "2009-05-04T23:30:00Z", "a3", "Sigur Rós", "", ""),
    ]
    pd.DataFrame(rows).to_csv(path, sep="\t", header=False, index=False)
    return path


def _options(**extra) -> dict:
    return dict(
        layout=_layout(),
        user_col="user",
        item_col="artist,track",
        time_col="timestamp",
        now=NOW,
        **extra,
    )


def _layout() -> TextLayout:
    return TextLayout(names=tuple(NAMES))


def test_rows_without_a_track_id_keep_their_item_by_artist_and_title(tmp_path):
    src = _scrobbles(tmp_path / "scrobbles.tsv")
    events, items, summary = load_interactions(
        src, items=src, items_layout=_layout(), item_id_col="artist,track", **_options()
    )
    deep = f"Deep Dish{KEY_JOIN}Fuck Me Im Famous"
    csn = f"Crosby, Stills & Nash{KEY_JOIN}Helplessly Hoping"
    unknown = f"[unknown]{KEY_JOIN}None"  # names, not missing-value tokens: "None" is a song's title
    # with or without a track id; spaces stripped
    assert events["item_id"].tolist()[:5] == [deep, deep, csn, csn, unknown]
    # a row missing either part has no item: quarantined as a row with an empty id is, the part named
    assert events["item_id"].iloc[5:].isna().all()
    assert all(reject_reason(r, NOW.to_pydatetime()) is not None for r in events.iloc[5:].to_dict("records"))
    assert events[READ_NOTE].iloc[5:].tolist() == [
        "'artist' empty (a part of the item's name)",
        "'track' empty (a part of the item's name)",
    ]
    text = str(summary)
    assert "will be quarantined: 2 rows with empty 'artist' or 'track' (the item's name)" in text
    assert "items named by 'artist' and 'track' together" in text
    # the items file keyed the same way: one row per item, its title and artist from the parts
    assert items is not None
    by_id = items.set_index("item_id")
    assert set(by_id.index) == {deep, csn, unknown}
    assert by_id.loc[csn, "title"] == "Helplessly Hoping" and by_id.loc[csn, "artist"] == "Crosby, Stills & Nash"
    assert by_id.loc[unknown, "artist"] == "[unknown]"  # a name in brackets is no list of one


def test_an_import_in_chunks_keys_items_as_an_import_at_once(tmp_path):
    rng = np.random.default_rng(4)
    n = 900
    frame = pd.DataFrame(
        {
            "user": rng.choice([f"u{i}" for i in range(30)], n),
            "timestamp": T0 + np.sort(rng.integers(0, 86_400 * 20, n)),
            "artid": "",
            "artist": rng.choice(["Air", "Low", "Can", ""], n, p=[0.3, 0.3, 0.38, 0.02]),
            "traid": "",
            "track": rng.choice(["One", "Two", "Three"], n),
        }
    )
    src = tmp_path / "big.tsv"
    frame.to_csv(src, sep="\t", header=False, index=False)
    options = _options(time_unit="s")
    events, _, summary = load_interactions(src, **options)
    stream = InteractionStream(src, ImportOptions(**options), 200)
    streamed = pd.concat(list(stream), ignore_index=True)
    key = ["event_id", "item_id", "type", "timestamp"]
    pd.testing.assert_frame_equal(
        events[key].sort_values("event_id", ignore_index=True),
        streamed[key].sort_values("event_id", ignore_index=True),
        check_dtype=False,
    )
    assert str(summary) == str(stream.summary)
    assert events["item_id"].nunique() == 9 and events["item_id"].isna().sum() == (frame["artist"] == "").sum()


def test_a_basic_streaming_history_named_by_artist_and_track_with_skips_by_time(tmp_path):
    # Spotify's StreamingHistory_music_*.json: no track uri at all
    src = tmp_path / "history.csv"
    pd.DataFrame(
        [
            {
                "user": "a",
                "endTime": "2024-01-02 10:00",
                "artistName": "Björk",
                "trackName": "Joga",
                "msPlayed": 300_000,
            },
            {
                "user": "a",
                "endTime": "2024-01-02 10:06",
                "artistName": "Björk",
                "trackName": "Hyper",
                "msPlayed": 4_000,
            },
            {
                "user": "b",
                "endTime": "2024-01-02 11:00",
                "artistName": "Björk",
                "trackName": "Joga",
                "msPlayed": 12_000,
            },
        ]
    ).to_csv(src, index=False)
    played = PlayedReading("msPlayed", unit="ms", skip_below=SkipBelow.parse("30s"))
    events, _, _ = load_interactions(
        src, user_col="user", item_col="artistName,trackName", time_col="endTime", played=played, now=NOW
    )
    by = dict(zip(zip(events["user_id"], events["item_id"], strict=True), events["type"], strict=True))
    assert by == {
        ("a", f"Björk{KEY_JOIN}Joga"): "play",
        ("a", f"Björk{KEY_JOIN}Hyper"): "skip",
        ("b", f"Björk{KEY_JOIN}Joga"): "skip",
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (dict(item_col="artist,,track"), "names an empty column"),
        (dict(item_col="artist,artist"), "names a column twice"),
        (dict(item_col="user,track"), "--user-col and --item-col both name 'user'"),
        (dict(item_lists=True), "does not combine with --impressions-col or --item-lists"),
        (dict(item_col="artist,title"), "item (2 of 2) column 'title' not found"),
    ],
)
def test_a_key_that_cannot_be_read_is_refused_with_its_reason(tmp_path, extra, message):
    src = _scrobbles(tmp_path / "scrobbles.tsv")
    with pytest.raises(ImportFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_interactions(src, **{**_options(), **extra})


def test_an_items_file_keyed_by_a_column_it_lacks_names_the_part(tmp_path):
    src = _scrobbles(tmp_path / "scrobbles.tsv")
    with pytest.raises(ImportFormatError, match=r"item id \(2 of 2\) column 'song' not found"):
        load_interactions(src, items=src, items_layout=_layout(), item_id_col="artist,song", **_options())


def test_the_command_line_reads_a_key_of_two_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _scrobbles(tmp_path / "scrobbles.tsv")
    args = ["import", str(src), "--names", ",".join(NAMES), "--user-col", "user", "--item-col", "artist,track"]
    result = CliRunner().invoke(app, [*args, "--time-col", "timestamp"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "items named by 'artist' and 'track' together" in out and "missing_id │ 2" in out
    # the quarantine keeps each row's reason with the empty part named
    reasons = pd.concat(map(pd.read_parquet, (tmp_path / "data" / "quarantine").rglob("*.parquet")))["reason"]
    assert sorted(reasons) == [
        "missing_id: 'artist' empty (a part of the item's name)",
        "missing_id: 'track' empty (a part of the item's name)",
    ]


def test_a_log_with_empty_ids_beside_artist_and_title_is_told_of_the_key(tmp_path):
    src = _scrobbles(tmp_path / "scrobbles.tsv")
    _, _, summary = load_interactions(src, **{**_options(), "item_col": "traid"})
    said = " ".join(str(summary).split())
    assert "have no 'traid': --item-col artist,track names each item by its artist and title" in said
    # keyed so already, or with ids on nearly every row, nothing is said
    _, _, summary = load_interactions(src, **_options())
    assert "names each item by its artist and title" not in " ".join(str(summary).split())
