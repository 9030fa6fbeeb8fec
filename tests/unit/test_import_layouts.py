"""Public logs in layouts other than a comma-separated file with a header: "::" or tab separated,
no header line, Latin-1 text, genres as 0/1 columns, extensions such as .dat and .data."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.import_files import TextLayout, read_table, sniff_separator
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions
from setlist.compressed import ArchiveError

T0 = 978_300_760  # 2000-12-31
RATINGS = [(1, 10, 5, T0), (1, 20, 3, T0 + 60), (2, 10, 1, T0 + 7200), (3, 30, 4, T0 + 86_400)]
GENRE_FLAGS = ("Action", "Comedy", "Drama")


def _dat(path: Path, rows, sep: str, encoding: str = "utf-8") -> Path:
    path.write_bytes("".join(sep.join(map(str, r)) + "\n" for r in rows).encode(encoding))
    return path


def _check_ratings(events: pd.DataFrame) -> None:
    assert events["user_id"].tolist() == ["1", "1", "2", "3"]
    assert events["item_id"].tolist() == ["10", "20", "10", "30"]
    assert events["type"].tolist() == ["like", "play", "skip", "like"]
    assert events["timestamp"].iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")


def test_double_colon_headerless_latin1_files_in_the_movielens_1m_shape(tmp_path):
    ratings = _dat(tmp_path / "ratings.dat", RATINGS, "::")
    movies = _dat(
        tmp_path / "movies.dat",
        [
            (10, "Amélie (2001)", "Comedy|Romance"),
            (20, "Star Wars: Episode IV (1977)", "Action|Sci-Fi"),
            (30, "Heat, The (1995)", "Drama"),
        ],
        "::",
        encoding="latin-1",
    )
    events, items, summary = load_interactions(
        ratings,
        user_col="user",
        item_col="movie",
        time_col="time",
        time_unit="s",
        rating_col="stars",
        layout=TextLayout(names=("user", "movie", "stars", "time")),
        items=movies,
        item_id_col="movie",
        items_layout=TextLayout(names=("movie", "title", "genres"), prefix="items-"),
    )
    _check_ratings(events)
    by_id = items.set_index("item_id")
    # Latin-1 decoded, and a ":" inside a title does not split it
    assert by_id.loc["10", "title"] == "Amélie (2001)"
    assert by_id.loc["20", "title"] == "Star Wars: Episode IV (1977)"
    assert by_id.loc["20", "genres"] == "action|sci-fi" and by_id.loc["30", "genre"] == "drama"
    assert by_id.loc["30", "release_date"] == pd.Timestamp("1995-01-01", tz="UTC")
    text = str(summary)
    assert "ratings.dat: separator '::' (read off the file; --sep sets it)" in text
    assert "movies.dat: encoding latin-1 (the file is not UTF-8; --items-encoding sets it)" in text
    assert "ratings.dat: encoding" not in text  # ASCII is UTF-8


def test_the_million_song_datasets_sep_string_is_read_off_its_tracks_file(tmp_path):
    # unique_tracks.txt: four fields between "<SEP>", titles with commas and quotes of their own
    triplets = _dat(tmp_path / "train_triplets.txt", [("u1", "SOA", 3), ("u1", "SOB", 1), ("u2", "SOA", 7)], "\t")
    tracks = tmp_path / "unique_tracks.txt"
    tracks.write_text(
        "TRA<SEP>SOA<SEP>Jay-Z | Linkin Park<SEP>Numb, Encore\n"
        'TRB<SEP>SOB<SEP>David Bowie<SEP>"Heroes" (Single Version)\n'
        "TRC<SEP>SOA<SEP>Jay-Z | Linkin Park<SEP>Numb, Encore (Live)\n"
    )
    options = {"user_col": "user", "item_col": "song", "count_col": "plays", "time_col": None}
    events, items, summary = load_interactions(
        triplets,
        layout=TextLayout(names=("user", "song", "plays")),
        items=tracks,
        item_id_col="song_id",
        items_layout=TextLayout(names=("track_id", "song_id", "artist", "title"), prefix="items-"),
        **options,
    )
    by_id = items.set_index("item_id")
    assert by_id.loc["SOA", "title"] == "Numb, Encore" and by_id.loc["SOB", "title"] == '"Heroes" (Single Version)'
    assert by_id.loc["SOA", "artist"] == "Jay-Z | Linkin Park"  # a spaced pipe is in the name, no list of artists
    assert "unique_tracks.txt: separator '<SEP>' (read off the file; --items-sep sets it)" in str(summary)
    # told a width the file's separator does not give, the error names the option for another one
    with pytest.raises(ImportFormatError, match=r"has 1 field per line .*--items-sep names it"):
        load_interactions(
            triplets,
            layout=TextLayout(names=("user", "song", "plays")),
            items=tracks,
            item_id_col="song_id",
            items_layout=TextLayout(names=("track_id", "song_id", "artist", "title"), sep=";", prefix="items-"),
            **options,
        )


def test_tab_separated_data_and_pipe_separated_items_with_genre_flags_in_the_100k_shape(tmp_path):
    ratings = _dat(tmp_path / "u.data", RATINGS, "\t")
    flags = {10: (0, 1, 0), 20: (1, 0, 1), 30: (0, 0, 0)}
    items_file = _dat(
        tmp_path / "u.item",
        [(i, f"Café {i}, The (1995)", "01-Jan-1995", "", f"http://x/{i}", *flags[i]) for i in flags],
        "|",
        encoding="latin-1",
    )
    events, items, summary = load_interactions(
        ratings,
        user_col="u",
        item_col="i",
        time_col="t",
        time_unit="s",
        rating_col="r",
        layout=TextLayout(names=("u", "i", "r", "t")),
        items=items_file,
        item_id_col="id",
        # the trailing URL column and the flags are named; a column left unnamed is never a genre
        items_layout=TextLayout(names=("id", "title", "release_date", "video_release", "url", *GENRE_FLAGS)),
    )
    _check_ratings(events)
    by_id = items.set_index("item_id")
    assert by_id.loc["10", "genres"] == "comedy" and by_id.loc["20", "genres"] == "action|drama"
    assert by_id.loc["20", "genre"] == "action"
    assert by_id.loc["30", "genre"] == "unknown" and by_id.loc["30", "genres"] is None
    assert by_id.loc["10", "title"] == "Café 10, The (1995)"  # one comma per title: still split on "|"
    assert "u.data: separator tab" in str(summary) and "u.item: separator '|'" in str(summary)


def test_names_may_leave_trailing_columns_unnamed_but_not_name_more_than_there_are(tmp_path):
    ratings = _dat(tmp_path / "r.dat", [(*r, "extra") for r in RATINGS], "::")
    events, _, _ = load_interactions(
        ratings, user_col="u", item_col="i", time_col="t", time_unit="s", rating_col="r",
        layout=TextLayout(names=("u", "i", "r", "t")),
    )  # fmt: skip
    _check_ratings(events)
    with pytest.raises(ImportFormatError, match=r"--names gives 6 columns but .* r.dat has 5 fields per line"):
        load_interactions(ratings, layout=TextLayout(names=("u", "i", "r", "t", "x", "y")))


def test_a_headerless_file_without_names_says_to_name_its_columns(tmp_path):
    ratings = _dat(tmp_path / "ratings.dat", RATINGS, "::")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(ratings, user_col="userId", item_col="movieId", time_unit="s")
    message = str(caught.value)
    assert (
        "user column 'userId' not found in ratings.dat (--user-col names it); available columns: 1, 10, 5, 978300760"
        in message
    )
    assert "looks like data, not a header" in message and "4 columns in order with --names" in message
    assert "--names user_id,item_id,rating,timestamp" in message
    titles = tmp_path / "titles.csv"  # an items file's example keeps the id column's name given
    titles.write_text("101,Clip one\n102,Clip two\n")
    with pytest.raises(ImportFormatError, match="e.g. --items-names item,title\\)"):
        load_interactions(
            ratings,
            layout=TextLayout(names=("u", "i", "r", "t")),
            user_col="u",
            item_col="i",
            time_col="t",
            time_unit="s",
            items=titles,
            item_id_col="item",
        )
    # a real header that merely lacks the column gets no such hint
    header = _dat(tmp_path / "h.csv", [("userId", "movieId", "timestamp"), (1, 2, T0)], ",")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(header, time_unit="s")
    assert "looks like data" not in str(caught.value)


def test_explicit_separator_quoted_semicolons_and_an_undetectable_layout(tmp_path):
    # a quoted, semicolon-separated export with a header (the Book-Crossing shape)
    books = tmp_path / "BX-Book-Ratings.csv"
    books.write_text(
        '"User-ID";"ISBN";"Book-Rating";"When"\n"276725";"034545104X";"5";"2004-05-01"\n"276726";"0155061224";"2";"2004-05-02"\n'
    )
    events, _, summary = load_interactions(
        books, user_col="User-ID", item_col="ISBN", time_col="When", rating_col="Book-Rating"
    )
    assert events["item_id"].tolist() == ["034545104X", "0155061224"] and events["type"].tolist() == ["like", "skip"]
    assert "separator ';'" in str(summary)
    # told, not sniffed: "tab" names the tab, and nothing is reported as read off the file
    tabbed = _dat(tmp_path / "log.txt", [("user_id", "item_id", "timestamp"), ("a", "x", T0)], "\t")
    events, _, summary = load_interactions(tabbed, time_unit="s", layout=TextLayout.from_options("tab", None, None))
    assert events["user_id"].tolist() == ["a"] and summary.read_notes == []
    # lines that no separator splits evenly, in a file whose extension says nothing
    ragged = tmp_path / "log.data"
    ragged.write_text("a b c\nd,e\nf\n")
    with pytest.raises(ImportFormatError, match="cannot tell how the interactions file log.data is separated.*--sep"):
        load_interactions(ragged)


@pytest.mark.parametrize(
    "lines,expected",
    [
        (["userId,movieId,rating,timestamp", "1,2,4.0,978300760"], ","),
        (["1::Toy Story (1995)::Animation|Children's|Comedy", "2::Jumanji (1995)::Adventure"], "::"),
        (
            ["movieId,title,genres", '1,"American President, The (1995)",Comedy|Drama|Romance', "2,Heat (1995),Crime"],
            ",",
        ),
        (["196\t242\t3\t881250949", "186\t302\t3\t891717742"], "\t"),
        (["one column", "only"], None),
        # a space only when nothing else fits: here commas do, though every line holds one space
        (["1,2,2000-01-01 10:00:00", "3,4,2000-01-02 11:00:00"], ","),
        (["user_id item_id rating_value", "1 100 4", "22 7 5"], " "),
        # one malformed line in twenty does not hide the layout; a file without one does not get one
        ([f"{k}::{k + 1}::3::978300760" for k in range(19)] + ["5::6::3::978300760::x"], "::"),
        ([f"{k}::{k + 1}::3" for k in range(8)] + ["5::6", "7", "a::b::c::d"], None),
    ],
)
def test_sniffing_the_separator(lines, expected):
    assert sniff_separator(lines) == expected


def test_a_ctrl_a_separated_log_whose_text_holds_tabs_is_read_by_ctrl_a_not_its_extension(tmp_path):
    # the RecSys Challenge 2020's layout: tab-joined tokens in the first field, named .tsv
    rows = [
        "\t".join(str(101 + t) for t in range(2 + k % 5)) + f"\x01U{k % 4}\x01T{k % 7}\x01{T0 + k}" for k in range(40)
    ]
    log = tmp_path / "training.tsv"
    log.write_text("\n".join(rows) + "\n")
    kw = dict(user_col="user", item_col="tweet", time_col="ts", time_unit="s")
    events, _, summary = load_interactions(log, **kw, layout=TextLayout(names=("tokens", "user", "tweet", "ts")))
    assert sorted(events["item_id"].unique()) == [f"T{k}" for k in range(7)] and summary.malformed_lines == []
    assert "separator Ctrl-A ('\\x01')" in str(summary)
    # told, as a shell passes it: the escape is the character
    layout = TextLayout.from_options("\\x01", "tokens,user,tweet,ts", None)
    assert layout.sep == "\x01" and TextLayout.from_options("\\001", None, None).sep == "\x01"
    events, _, _ = load_interactions(log, **kw, layout=layout)
    assert len(events) == 40
    # any control character that splits every line alike is its separator, not the extension's tab
    other = tmp_path / "other.tsv"
    other.write_text("\n".join(r.replace("\x01", "\x02") for r in rows) + "\n")
    events, _, summary = load_interactions(other, **kw, layout=TextLayout(names=("tokens", "user", "tweet", "ts")))
    assert sorted(events["item_id"].unique()) == [f"T{k}" for k in range(7)] and "separator '\\x02'" in str(summary)


def test_layout_options_are_checked(tmp_path):
    assert TextLayout.from_options("\\t", "a, b", None) == TextLayout(sep="\t", names=("a", "b"))
    with pytest.raises(ImportFormatError, match="--items-names must be distinct"):
        TextLayout.from_options(None, "a,a", None, prefix="items-")
    parquet = tmp_path / "r.parquet"
    pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": ["2024-01-01"]}).to_parquet(parquet)
    with pytest.raises(ImportFormatError, match="--sep and --names are for delimited text, not .parquet files"):
        load_interactions(parquet, layout=TextLayout(sep=","))


def test_the_import_command_takes_the_layout_options(tmp_path, monkeypatch):
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    ratings = _dat(tmp_path / "ratings.dat", RATINGS, "::")
    movies = _dat(tmp_path / "movies.dat", [(10, "Amélie (2001)", "Comedy")], "::", encoding="latin-1")
    args = ["import", str(ratings), "--names", "u,i,r,t", "--user-col", "u", "--item-col", "i", "--time-col", "t"]
    args += ["--time-unit", "s", "--rating-col", "r", "--items", str(movies), "--items-names", "i,title,genres"]
    result = CliRunner().invoke(app, [*args, "--item-id-col", "i"])
    assert result.exit_code == 0, result.output
    assert "accepted into the event log" in result.output and "movies.dat: encoding latin-1" in result.output
    bad = CliRunner().invoke(app, ["import", str(ratings), "--encoding", "no-such-codec"])
    assert bad.exit_code == 2 and "'no-such-codec' is no text encoding" in bad.stderr and "Traceback" not in bad.output
    bad = CliRunner().invoke(app, [*args, "--item-id-col", "i", "--items-encoding", "latin-9000"])
    assert bad.exit_code == 2 and "--items-encoding 'latin-9000'" in bad.stderr


def test_each_file_takes_its_own_encoding(tmp_path, monkeypatch):
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    # UTF-16 is told, never guessed; the items file's Windows bytes would not read as UTF-16
    ratings = tmp_path / "ratings.csv"
    ratings.write_text(f"u,i,r,t\nu1,10,5,{T0}\nu2,10,3,{T0 + 1}\n", encoding="utf-16")
    movies = tmp_path / "movies.csv"
    movies.write_bytes("i,title\n10,\u201cCaf\u00e9\u201d\n".encode("cp1252"))
    args = ["import", str(ratings), "--user-col", "u", "--item-col", "i", "--time-col", "t", "--time-unit", "s"]
    args += ["--rating-col", "r", "--items", str(movies), "--item-id-col", "i", "--encoding", "utf-16"]
    one = CliRunner().invoke(app, args)
    assert one.exit_code == 2 and "Traceback" not in one.output  # the items file is no UTF-16
    assert "--items-encoding names the file's encoding (not utf-16)" in " ".join(one.stderr.split())
    result = CliRunner().invoke(app, [*args, "--items-encoding", "cp1252"])
    assert result.exit_code == 0, result.output
    titles = pd.read_parquet(tmp_path / "data" / "catalog" / "items.parquet").set_index("item_id")["title"]
    assert titles["10"] == "\u201cCaf\u00e9\u201d"


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_file_mixing_utf8_and_cp1252_lines_reads_each_line_right(tmp_path, suffix):
    import gzip

    from ingest.import_items import load_items

    # HetRec's bookmarks: UTF-8 titles, with some lines written by a Windows tool
    utf8 = ["Über Straße", "naïve café", "smörgåsbord", "Zürich"]
    windows = ["Café latin", "\u201cquoted\u201d"]
    body = b"id\ttitle\n" + b"".join(f"{k}\t{t}\n".encode() for k, t in enumerate(utf8))
    body += b"".join(f"{k + 10}\t{t}\n".encode("cp1252") for k, t in enumerate(windows))
    path = tmp_path / f"bookmarks.dat{suffix}"
    path.write_bytes(gzip.compress(body) if suffix else body)
    catalog, notes = load_items(path, "id", None)
    assert catalog["title"].tolist() == utf8 + windows
    assert "encoding UTF-8, and cp1252 for its 3 bytes that are no UTF-8" in " ".join(notes)
    # French titles in cp1252 whose capitals meet a no-break space or a curly quote: valid UTF-8 pairs
    # by accident ("É\xa0" reads as "ɠ"), still cp1252
    french = tmp_path / "french.dat"
    titles = ["CAFÉ\xa0! remix", "PERCHÔ\u201d", "ÉTÉ\xa0!", "DÉJÀ\xa0vu"]
    french.write_bytes(b"id\ttitle\n" + b"".join(f"{k}\t{t}\n".encode("cp1252") for k, t in enumerate(titles)))
    catalog, notes = load_items(french, "id", None)
    assert catalog["title"].tolist() == [t.strip() for t in titles] and "encoding cp1252" in " ".join(notes)
    # a file of cp1252 alone is still cp1252, and says so
    plain = tmp_path / "windows.dat"
    plain.write_bytes(b"id\ttitle\n" + "1\t\u201cCaf\u00e9\u201d\n".encode("cp1252"))
    catalog, notes = load_items(plain, "id", None)
    assert catalog["title"].tolist() == ["\u201cCaf\u00e9\u201d"] and "encoding cp1252" in " ".join(notes)


@pytest.mark.parametrize("suffix", [".gz", ".zip", ".bz2"])
def test_compressed_headerless_files_are_sniffed_inside(tmp_path, suffix):
    import bz2
    import gzip
    import zipfile

    text = "".join("::".join(map(str, r)) + "\n" for r in RATINGS).encode()
    path = tmp_path / f"ratings.dat{suffix}"
    if suffix == ".gz":
        path.write_bytes(gzip.compress(text))
    elif suffix == ".bz2":
        path.write_bytes(bz2.compress(text))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("ratings.dat", text)
    events, _, summary = load_interactions(
        path, user_col="u", item_col="i", time_col="t", time_unit="s", rating_col="r",
        layout=TextLayout(names=("u", "i", "r", "t")),
    )  # fmt: skip
    _check_ratings(events)
    assert "separator '::'" in str(summary)


def test_unsupported_compression_and_many_file_zips_are_clear_errors(tmp_path):
    import zipfile

    (tmp_path / "r.csv.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(ImportFormatError, match=r"zstd is not among the compressions an import reads"):
        load_interactions(tmp_path / "r.csv.zst")
    with zipfile.ZipFile(tmp_path / "ml.zip", "w") as z:
        z.writestr("ratings.csv", "user_id,item_id,timestamp\n")
        z.writestr("movies.csv", "item_id,title\n")
    with pytest.raises(ArchiveError, match="ml.zip holds 2 files; a zip is read when it holds one file"):
        load_interactions(tmp_path / "ml.zip")


@pytest.mark.parametrize("suffix", [".zip", ".xz"])
def test_compressed_json_lines_are_read_through_every_compression(tmp_path, suffix):
    # the scan for ids too long for a float reads the file's bytes: through a zip it asked a text
    # opener for bytes and failed with a traceback
    import json
    import lzma
    import zipfile

    text = "".join(
        json.dumps({"user_id": u, "item_id": i, "rating": r, "timestamp": t}) + "\n" for u, i, r, t in RATINGS
    ).encode()
    path = tmp_path / f"ratings.jsonl{suffix}"
    if suffix == ".xz":
        path.write_bytes(lzma.compress(text))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("ratings.jsonl", text)
    events, _, _ = load_interactions(path, time_unit="s", rating_col="rating")
    _check_ratings(events)


@pytest.mark.parametrize("sep", [",", "::"])  # pandas' C parser and its Python one
def test_malformed_lines_are_skipped_and_named_not_fatal_nor_silent(tmp_path, sep):
    later = [(4, 40, 3, T0 + 10 * 86_400 + k) for k in range(10)]  # enough lines for the sniffer to outvote one
    rows = [("user", "item", "stars", "time"), *RATINGS[:2], (9, 99, 4, T0, "stray"), *RATINGS[2:], *later]
    path = _dat(tmp_path / "r.txt", rows, sep)
    events, _, summary = load_interactions(
        path, user_col="user", item_col="item", time_col="time", time_unit="s", rating_col="stars"
    )
    assert len(events) == 14 and "9" not in set(events["user_id"])  # every well-formed row; not the stray one
    _check_ratings(events.head(4))
    assert summary.malformed_lines == [4]  # the file's own line number (the header is line 1)
    text = str(summary)
    assert "skipped 1 malformed line (not 4 fields): line 4" in text
    assert "not imported: 1 malformed line of r.txt" in text


def test_the_import_command_records_malformed_lines_in_lineage(tmp_path, monkeypatch):
    from ingest.__main__ import app
    from setlist.lineage import imports

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    rows = [("u", "i", "r", "t"), *RATINGS, *[(5, 50, 3, T0 + k, "x", "y") for k in range(12)]]
    path = _dat(tmp_path / "ratings.csv", rows, ",")
    args = ["import", str(path), "--user-col", "u", "--item-col", "i", "--time-col", "t", "--time-unit", "s"]
    result = CliRunner().invoke(app, [*args, "--rating-col", "r"])
    assert result.exit_code == 0, result.output
    assert "line 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, …" in result.output  # the first ten, then an ellipsis
    (record,) = imports(tmp_path / "data" / "lineage")
    assert record["malformed_lines"] == list(range(6, 18)) and record["rows"] == 4


def test_tab_separated_text_has_no_quoting_so_a_stray_quote_is_just_text(tmp_path):
    # a Last.fm-style listening log: an unbalanced quote opening a track name must not swallow lines
    rows = [(f"user_{k % 3}", f"2008-05-0{1 + k % 9}T10:00:00Z", f"t{k}", f"Song {k}") for k in range(12)]
    rows[2] = (*rows[2][:3], '"Weird Song')
    path = _dat(tmp_path / "listens.tsv", rows, "\t")
    layout = TextLayout(names=("user", "time", "track", "name"))
    events, _, summary = load_interactions(path, user_col="user", item_col="track", time_col="time", layout=layout)
    assert len(events) == 12 and summary.rows == 12
    assert not any("quoted fields" in n for n in summary.read_notes)


def test_a_tab_file_quoted_as_a_spreadsheet_exports_it_is_read_as_quoted(tmp_path):
    # a job board's jobs.tsv: descriptions in quotes hold line breaks, a tab and doubled quotes
    log = _dat(tmp_path / "apps.csv", [("user", "job", "t"), ("u1", "J1", T0), ("u2", "J2", T0 + 60)], ",")
    jobs = tmp_path / "jobs.tsv"
    jobs.write_text(
        "JobID\tTitle\tDescription\tCity\n"
        'J1\t"Manager, ""Key"" Accounts"\t"<p>Pay:\tgood</p>\n<ul>\n<li>a</li>\n</ul>"\tHouston\n'
        'J2\tJava Developer\t"<p>one</p>\n<p>two</p>"\tChicago\n'
        "J3\tNurse\tplain\tBoston\n"
    )
    events, items, summary = load_interactions(
        log, user_col="user", item_col="job", time_col="t", time_unit="s", items=jobs, item_id_col="JobID"
    )
    assert items is not None
    assert sorted(items["item_id"]) == ["J1", "J2", "J3"]
    assert dict(zip(items["item_id"], items["title"]))["J1"] == 'Manager, "Key" Accounts'
    assert any("read as quoted" in n for n in summary.read_notes)
    assert not any("fewer than its" in n or "different numbers of fields" in n for n in summary.read_notes)
    # one line per record, but CSV's doubled quotes: read as quoted too
    single = tmp_path / "single.tsv"
    single.write_text('JobID\tTitle\nJ1\t"Manager, ""Key"" Accounts"\nJ2\tNurse\n')
    _, items, _ = load_interactions(
        log, user_col="user", item_col="job", time_col="t", time_unit="s", items=single, item_id_col="JobID"
    )
    assert items is not None and sorted(items["title"]) == ['Manager, "Key" Accounts', "Nurse"]


def test_a_stray_quote_in_a_comma_file_is_reported_not_silently_folded(tmp_path):
    rows = [("user", "item", "time", "note")] + [(k, k, f"2008-05-0{1 + k % 9}", "ok") for k in range(10)]
    rows[3], rows[7] = (2, 2, "2008-05-03", '"oops'), (6, 6, "2008-05-07", 'oops"')  # opened, closed 4 lines on
    path = _dat(tmp_path / "r.csv", rows, ",")
    events, _, summary = load_interactions(path, user_col="user", item_col="item", time_col="time")
    assert len(events) < 10  # the parser did join lines: the quote opened a field that ran on
    (note,) = [n for n in summary.read_notes if "quoted fields" in n]
    assert f"({len(events)} rows from 11 lines, at most 4 line breaks in one cell)" in note
    assert "stray quote" in note and not note.split(": ", 1)[1].startswith("warning")
    # a quote that swallows the rest of a long file is warned of
    many = [("user", "item", "time", "note")] + [(k, k, "2008-05-01", "ok") for k in range(80)]
    many[5], many[70] = (4, 4, "2008-05-01", '"oops'), (69, 69, "2008-05-01", 'oops"')
    long = _dat(tmp_path / "long.csv", many, ",")
    _, _, said = load_interactions(long, user_col="user", item_col="item", time_col="time")
    assert any(n.startswith("long.csv: warning: 65 lines") and "stray quote" in n for n in said.read_notes), (
        said.read_notes
    )


@pytest.mark.parametrize("shape", ["lines", "array", "lines.gz"])
def test_json_files_hold_an_array_or_one_object_per_line(tmp_path, shape):
    import gzip
    import json

    records = [{"reviewerID": f"A{u}", "asin": f"B{i}", "overall": r, "unixReviewTime": t} for u, i, r, t in RATINGS]
    text = json.dumps(records) if shape == "array" else "\n".join(json.dumps(r) for r in records) + "\n"
    path = tmp_path / ("reviews.json.gz" if shape.endswith(".gz") else "reviews.json")
    path.write_bytes(gzip.compress(text.encode()) if shape.endswith(".gz") else text.encode())
    events, _, summary = load_interactions(
        path, user_col="reviewerID", item_col="asin", time_col="unixReviewTime", time_unit="s", rating_col="overall"
    )
    assert events["user_id"].tolist() == ["A1", "A1", "A2", "A3"] and events["item_id"].tolist()[0] == "B10"
    assert events["type"].tolist() == ["like", "play", "skip", "like"]
    assert any(("array" if shape == "array" else "per line") in n for n in summary.read_notes)


def test_a_json_file_that_is_neither_shape_is_a_clear_error(tmp_path):
    (tmp_path / "a.json").write_text('"just a string"')
    with pytest.raises(ImportFormatError, match="neither an array of JSON objects nor one object per line"):
        load_interactions(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{reviewerID: loose, neither JSON nor Python}\n")
    with pytest.raises(ImportFormatError, match="cannot read interactions file b.json as one JSON object per line"):
        load_interactions(tmp_path / "b.json")


def test_python_dict_lines_are_read_as_literals_and_a_bad_line_is_named(tmp_path):
    """Steam's review files (and older Amazon ones) hold one Python dict per line under .json."""
    lines = [
        repr({"username": f"player {u}", "product_id": f"{i}", "hours": 1.5, "date": d, "early_access": False})
        for u, i, _, d in [(1, 10, 5, "2014-01-02"), (1, 11, 3, "2014-01-03"), (2, 10, 1, "2014-02-01")]
    ]
    lines.insert(2, "{'username': 'cut off in the mid")
    lines.append("__import__('os').system('echo never run')")  # literals only: code is a bad line, not run
    (tmp_path / "steam_reviews.json").write_text("\n".join(lines) + "\n")
    events, _, summary = load_interactions(
        tmp_path / "steam_reviews.json", user_col="username", item_col="product_id", time_col="date"
    )
    assert events["item_id"].tolist() == ["10", "11", "10"]
    assert events["user_id"].nunique() == 2
    assert summary.malformed_lines == [3, 5]
    assert any("Python dict per line" in n for n in summary.read_notes)
    assert any("line 3, 5" in n for n in summary.read_notes)


def test_a_missing_time_column_names_the_columns_of_times_before_no_time(tmp_path):
    # Goodreads' reviews: times in date_added ("Tue Nov 17 11:37:35 -0800 2015"), a Year that is none,
    # and a read_at left empty; Yelp's tips: a date the import would otherwise drop with --no-time
    path = tmp_path / "reviews.csv"
    path.write_text(
        "user_id,book_id,Year,date_added,read_at,time_spent\n"
        'u1,b1,2015,"Tue Nov 17 11:37:35 -0800 2015",,12.5\n'
        'u2,b2,2016,"Wed Dec 02 01:00:00 -0800 2015",,3\n'
    )
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(path, item_col="book_id")
    message = str(caught.value)
    assert "'date_added' looks like times: --time-col date_added reads them" in message
    assert "'Year'" not in message.split("available columns")[1].split(";", 1)[1]
    events, _, summary = load_interactions(path, item_col="book_id", time_col="date_added")
    assert events["timestamp"].min() == pd.Timestamp("2015-11-17 19:37:35", tz="UTC")
    _, _, untimed = load_interactions(path, item_col="book_id", time_col=None)
    assert any("warning: --no-time leaves 'date_added' unread" in n for n in untimed.read_notes)
    plain = tmp_path / "plain.csv"  # no column of times: --no-time is the way
    plain.write_text("user_id,book_id,Year\nu1,b1,2015\n")
    with pytest.raises(ImportFormatError, match="a file without times imports with --no-time"):
        load_interactions(plain, item_col="book_id")
    _, _, said = load_interactions(plain, item_col="book_id", time_col=None)
    assert not any("--no-time leaves" in n for n in said.read_notes)


def test_column_names_that_say_times_are_told_by_their_words():
    from ingest.import_files import time_columns

    frame = pd.DataFrame({"createdAt": ["2020-01-01T10:00:00Z"], "runtime": ["2020-01-01 10:00"], "ts": ["1700000000"]})
    # a date alone after the columns that give a time of day
    assert time_columns(frame, unread=["Watched Date", "read_at", "format"]) == [
        "createdAt",
        "ts",
        "read_at",
        "Watched Date",
    ]


def test_a_file_without_times_is_stamped_in_each_users_file_order_ending_now(tmp_path, monkeypatch):
    from ingest.__main__ import app

    path = tmp_path / "BX-Book-Ratings.csv"
    path.write_text('"User-ID";"ISBN";"Book-Rating"\n"9";"B1";"8"\n"7";"B2";"2"\n"9";"B3";"5"\n')
    with pytest.raises(ImportFormatError, match="a file without times imports with --no-time"):
        load_interactions(path, user_col="User-ID", item_col="ISBN", rating_col="Book-Rating")
    now = pd.Timestamp("2026-06-01 12:00:00.700", tz="UTC")
    events, _, summary = load_interactions(
        path,
        user_col="User-ID",
        item_col="ISBN",
        rating_col="Book-Rating",
        time_col=None,
        now=now,
        keep_file_order=True,
    )
    # each user's file order kept, one session per visit, before the import, within the span a small
    # file is given (features are daily: a span within one day would leave training without them)
    from ingest.importer import UNTIMED_MIN_SPAN_DAYS

    ts = events.set_index("item_id")["timestamp"]
    assert ts["B1"] < ts["B3"] and (ts < now).all() and (ts > now - pd.Timedelta(days=UNTIMED_MIN_SPAN_DAYS)).all()
    assert ts.max() - ts.min() > pd.Timedelta(days=1)  # users spread over the span by their phase
    sessions = events.set_index("item_id")["session_id"]
    assert sessions["B1"] == sessions["B3"] != sessions["B2"]
    assert any("no time column: each user's rows stamped in their file order" in n for n in summary.read_notes)
    again, _, _ = load_interactions(
        path,
        user_col="User-ID",
        item_col="ISBN",
        rating_col="Book-Rating",
        time_col=None,
        now=now + pd.Timedelta(days=1),
    )
    assert again["event_id"].tolist() == events["event_id"].tolist()  # a re-import is caught as duplicates
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    args = ["import", str(path), "--user-col", "User-ID", "--item-col", "ISBN", "--no-time"]
    both = CliRunner().invoke(app, [*args, "--time-unit", "s"])
    assert both.exit_code == 2 and "--no-time and --time-unit contradict" in both.stderr
    timed = CliRunner().invoke(app, [*args[:-1], "--file-order"])
    assert timed.exit_code == 2 and "--file-order orders rows without times" in timed.stderr
    done = CliRunner().invoke(app, [*args, "--rating-col", "Book-Rating"])
    assert done.exit_code == 0, done.output
    assert "accepted into the event log" in done.output and "no time column" in done.output
    assert "imported before" not in done.output
    # the same file again, as it was: a re-run that changes nothing, and says so
    rerun = CliRunner().invoke(app, [*args, "--rating-col", "Book-Rating"])
    assert rerun.exit_code == 0, rerun.output
    assert "3 of these rows were imported before" in rerun.output and "SETLIST_DATA_DIR" in rerun.output
    # with another option (a note's advice followed): refused before anything is read or written
    log = sorted((tmp_path / "data" / "events").rglob("*.parquet"))
    redo = CliRunner().invoke(app, [*args, "--rating-col", "Book-Rating", "--unrated", "0"])
    assert redo.exit_code == 2, redo.output
    said = " ".join(redo.stderr.split())
    assert "BX-Book-Ratings.csv was imported before with other options (--unrated differs)" in said
    assert "nothing was imported" in said and "SETLIST_DATA_DIR" in said
    assert "accepted into the event log" not in redo.output
    assert sorted((tmp_path / "data" / "events").rglob("*.parquet")) == log
    from setlist.lineage import imports

    (first, rerun) = imports(tmp_path / "data" / "lineage")
    assert (
        first["options"]
        == rerun["options"]
        == {
            "no_time": "True",
            "rating_col": "Book-Rating",
            "user_col": "User-ID",
            "item_col": "ISBN",
        }
    )


def test_untimed_rows_interleave_users_so_any_window_holds_every_user(tmp_path):
    from ingest.importer import UNTIMED_VISIT_ROWS

    """A file sorted by user (as public sets are): stamped as it stands, the last tenth of the span
    would hold the last tenth of the users and nobody else."""
    users = [f"u{u:03d}" for u in range(200) for _ in range(20)]
    rows = "\n".join(f"{u},i{k % 97}" for k, u in enumerate(users))
    path = tmp_path / "sorted.csv"
    path.write_text("user_id,item_id\n" + rows + "\n")
    now = pd.Timestamp("2026-06-01", tz="UTC")
    events, _, _ = load_interactions(path, time_col=None, now=now, keep_file_order=True)
    late = events["timestamp"] >= events["timestamp"].quantile(0.9)
    last = events.loc[late, "user_id"].unique()
    # users from all over the file, each with rows before: not the file's last users, seen by nobody
    index = sorted(int(u[1:]) for u in last)
    assert len(last) >= 20 and index[0] < 20 and index[-1] >= 180
    assert set(last) <= set(events.loc[~late, "user_id"])
    first = events.sort_values("timestamp").groupby("user_id")["item_id"].apply(list)
    expected = pd.DataFrame({"u": users, "i": [f"i{k % 97}" for k in range(len(users))]}).groupby("u")["i"].apply(list)
    assert first.to_dict() == expected.to_dict()  # each user's rows in their file order
    assert (events["timestamp"] < now).all()
    # visits of a few rows, each its own session: a session is as long at the end of the span as anywhere
    per_session = events.groupby("session_id").size()
    assert per_session.max() == UNTIMED_VISIT_ROWS and events["session_id"].nunique() == 200 * 2


def test_untimed_rows_are_shuffled_per_user_unless_the_file_order_is_time(tmp_path):
    """A file sorted by item within each user: stamped in that order, every user's hold-out would be
    their highest item ids. By default each user's rows take a stable order of their own."""
    rows = "\n".join(f"u{u},i{k:03d}" for u in range(50) for k in range(40))
    path = tmp_path / "sorted_items.csv"
    path.write_text("user_id,item_id\n" + rows + "\n")
    now = pd.Timestamp("2026-06-01", tz="UTC")
    events, _, summary = load_interactions(path, time_col=None, now=now)
    last = events.sort_values("timestamp").groupby("user_id").tail(8)
    assert last["item_id"].str[1:].astype(int).mean() < 30  # not each user's 8 highest ids (mean 35.5)
    assert events.groupby("user_id").size().eq(40).all()
    assert any("stable shuffled order (--file-order keeps the file's)" in n for n in summary.read_notes)
    again, _, _ = load_interactions(path, time_col=None, now=now)
    pd.testing.assert_frame_equal(events, again)  # the same order, stamps and ids on every import
    kept, _, summary = load_interactions(path, time_col=None, now=now, keep_file_order=True)
    tail = kept.sort_values("timestamp").groupby("user_id").tail(8)
    assert tail["item_id"].str[1:].astype(int).min() == 32
    assert any("in their file order (--file-order)" in n for n in summary.read_notes)


def test_untimed_visits_are_shuffled_within_and_a_users_rows_of_one_item_spread_across_them(tmp_path):
    """Frappe's log: a user's rows sorted by item, one row per item and context. A visit in the
    file's order would list ascending ids, and an item's rows side by side would make one visit of
    them, so that no item returned in a later visit."""
    rows = "\n".join(f"u{u},i{k:03d},{c}" for u in range(20) for k in range(8) for c in range(5))
    path = tmp_path / "frappe.csv"
    path.write_text("user,item,context\n" + rows + "\n")
    events, _, _ = load_interactions(path, user_col="user", item_col="item", time_col=None)
    visits = events.sort_values("timestamp").groupby("session_id", sort=False)["item_id"].apply(list)
    assert sum(v == sorted(v) for v in visits) < len(visits) / 4  # each visit in an order of its own
    # an item's five rows fall in several of its user's visits, not in one
    spread = events.groupby(["user_id", "item_id"])["session_id"].nunique()
    assert spread.mean() > 2


def test_untimed_sessions_are_as_long_at_the_end_of_the_span_as_before_it(tmp_path):
    """The drift gate compares the newest tenth with the rest: with users of uneven row counts, the
    visits' lengths must not depend on where in the span they fall."""
    rng = np.random.default_rng(3)
    counts = rng.integers(11, 60, 600)
    rows = "\n".join(f"u{u},i{k}" for u, c in enumerate(counts) for k in range(c))
    path = tmp_path / "uneven.csv"
    path.write_text("user_id,item_id\n" + rows + "\n")
    events, _, _ = load_interactions(path, time_col=None, now=pd.Timestamp("2026-06-01", tz="UTC"))
    events["length"] = events.groupby("session_id")["event_id"].transform("size")
    late = events["timestamp"] >= events["timestamp"].quantile(0.9)
    end, rest = events.loc[late, "length"].mean(), events.loc[~late, "length"].mean()
    assert abs(end - rest) < 0.03 * rest, (end, rest)


def test_an_import_too_big_for_memory_is_refused_before_it_starts(tmp_path, monkeypatch):
    import setlist.memory as memory
    from ingest.__main__ import app
    from ingest.import_files import estimate_rows

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    rows = [("u", "i", "t")] + [(k % 50, k % 70, T0 + k) for k in range(3000)]
    path = _dat(tmp_path / "r.csv", rows, ",")
    assert abs(estimate_rows(path) - 3001) < 150  # from the size and the first lines
    assert estimate_rows(_dat(tmp_path / "e.csv", [], ",")) == 0
    monkeypatch.setattr(memory, "available_memory", lambda: 1_000_000)  # ~1 MB free: 3,001 rows need ~4 MB
    args = ["import", str(path), "--user-col", "u", "--item-col", "i", "--time-col", "t", "--time-unit", "s"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "holds about" in refused.stderr and "Import it in parts" in refused.stderr
    assert not (tmp_path / "data" / "events").exists()  # refused before anything was written
    done = CliRunner().invoke(app, [*args, "--no-memory-check"])
    assert done.exit_code == 0, done.output
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**30)
    assert CliRunner().invoke(app, args).exit_code == 0  # enough memory: on (its rows are duplicates now)


def test_rating_max_keeps_the_parts_of_a_log_on_one_scale(tmp_path):
    header = ("user", "item", "stars", "time")
    part = _dat(tmp_path / "part2.csv", [header, (5, 50, 4, T0), (5, 51, 2, T0 + 1), (6, 50, 7, T0 + 2)], ",")
    kw = {"user_col": "user", "item_col": "item", "time_col": "time", "time_unit": "s", "rating_col": "stars"}
    own, _, summary = load_interactions(part, **kw)
    assert own["type"].tolist() == ["play", "skip", "like"]  # 4/7 is a play on this part's own top, 7
    assert any("top rating 7 (the file's highest; --rating-max sets it)" in n for n in summary.read_notes)
    shared, _, summary = load_interactions(part, **kw, rating_max=5)
    assert shared["type"].tolist() == ["like", "skip", "like"] and shared["value"].tolist()[0] == pytest.approx(
        0.8
    )  # 4/5
    assert any("1 ratings above --rating-max 5 counted as the top rating" in n for n in summary.read_notes)
    with pytest.raises(ImportFormatError, match="--rating-max must be positive"):
        load_interactions(part, **kw, rating_max=0)


def test_items_on_lines_of_their_own_in_the_netflix_prize_layout(tmp_path):
    text = "1:\n1488844,3,2005-09-06,stray\n822109,5,2005-05-13\n2:\n1488844,4,2005-09-07\n30:\n7,1,2004-01-02\n"
    path = tmp_path / "combined_data_1.txt"
    path.write_text(text)
    with pytest.raises(ImportFormatError, match=r"Netflix Prize's layout\): name the columns of the rows with --names"):
        load_interactions(path, time_col="date", rating_col="rating")
    events, _, summary = load_interactions(
        path,
        time_col="date",
        rating_col="rating",
        layout=TextLayout.from_options(None, "user_id,rating,date", None),
    )
    got = set(zip(events["item_id"], events["user_id"], events["type"], strict=True))
    assert got == {("1", "822109", "like"), ("2", "1488844", "like"), ("30", "7", "skip")}
    assert summary.items == 3 and summary.malformed_lines == [2]  # the long row, named, not the header
    assert any("3 items read into column 'item_id'" in n for n in summary.read_notes)
    assert not any("quoted fields" in n for n in summary.read_notes)
    with pytest.raises(ImportFormatError, match="must not name another column 'item_id'"):
        load_interactions(path, layout=TextLayout.from_options(None, "item_id,rating,date", None))


@pytest.mark.parametrize("header", [True, False])
def test_a_long_first_row_is_read_past_not_turned_into_an_index_that_shifts_every_column(tmp_path, header):
    """pandas takes the extra leading fields of a long *first* row as the index, silently shifting
    every column of every row; a long later row it reads past."""
    rows = [(1, 10, 5, T0, "stray"), *RATINGS[1:]]
    path = _dat(tmp_path / "r.csv", ([("user", "item", "rating", "time")] if header else []) + rows, ",")
    layout = None if header else TextLayout.from_options(None, "user,item,rating,time", None)
    events, _, summary = load_interactions(
        path, user_col="user", item_col="item", time_col="time", time_unit="s", rating_col="rating", layout=layout
    )
    assert events["item_id"].tolist() == ["20", "10", "30"]
    assert events["type"].tolist() == ["play", "skip", "like"]
    assert summary.malformed_lines == [2 if header else 1]
    # two long rows first: once the first is read past, the second would be the first
    two = [(1, 10, 5, T0, "stray"), (2, 11, 4, T0 + 1, "stray"), *RATINGS[1:]]
    path = _dat(tmp_path / "r2.csv", ([("user", "item", "rating", "time")] if header else []) + two, ",")
    events, _, summary = load_interactions(
        path, user_col="user", item_col="item", time_col="time", time_unit="s", rating_col="rating", layout=layout
    )
    assert events["item_id"].tolist() == ["20", "10", "30"]
    assert summary.malformed_lines == ([2, 3] if header else [1, 2])
    options = dict(user_col="user", item_col="item", time_col="time", time_unit="s", rating_col="rating")
    stream = InteractionStream(path, ImportOptions(**options, layout=layout), 2)
    assert pd.concat(list(stream))["item_id"].tolist() == ["20", "10", "30"]
    assert stream.summary is not None and stream.summary.malformed_lines == summary.malformed_lines


def test_an_items_files_free_text_last_column_keeps_the_separator(tmp_path):
    ratings = _dat(tmp_path / "ratings.dat", RATINGS, "::")
    titles = tmp_path / "movie_titles.csv"  # Netflix's: unquoted titles holding commas, from the first line on
    others = "".join(f"{k},19{k},Film {k}\n" for k in range(40, 60))
    titles.write_text("10,2001,Heat, The\n20,NULL,Star Wars\n" + others + "30,1995,One, Two, Three\n")
    _, items, summary = load_interactions(
        ratings,
        user_col="user",
        item_col="movie",
        time_col="time",
        time_unit="s",
        layout=TextLayout.from_options(None, "user,movie,rating,time", None),
        items=titles,
        items_layout=TextLayout.from_options(None, "item_id,year,title", None, prefix="items-"),
    )
    row = items.set_index("item_id").loc[["10", "20", "30"]]
    assert row["title"].tolist() == ["Heat, The", "Star Wars", "One, Two, Three"]
    assert row["release_date"].isna().tolist() == [False, True, False]
    assert len(items) == 23
    assert any("2 lines with more fields than columns" in n for n in summary.read_notes)


def test_an_items_file_whose_last_column_is_a_flag_is_not_rejoined(tmp_path):
    ratings = _dat(tmp_path / "ratings.dat", RATINGS, "::")
    rows = [(10, "A", 1, 0), (20, "B", 0, 1), (30, "C|extra", 1, 1)] + [(k, f"F{k}", 0, 1) for k in range(40, 60)]
    flags = _dat(tmp_path / "u.item", rows, "|")
    _, items, summary = load_interactions(
        ratings,
        user_col="user",
        item_col="movie",
        time_col="time",
        time_unit="s",
        layout=TextLayout.from_options(None, "user,movie,rating,time", None),
        items=flags,
        items_layout=TextLayout.from_options(None, "item_id,title,Action,Comedy", None, prefix="items-"),
    )
    genres = items.set_index("item_id")["genre"].loc[["10", "20", "30"]]
    assert genres.tolist() == ["action", "comedy", "unknown"]  # 30's line read past: no metadata
    assert summary.malformed_lines == []  # the interactions file's; the items file's line is named in its note
    assert any("skipped 1 malformed line" in n and "line 3" in n for n in summary.read_notes)


@pytest.mark.parametrize("kind", ["lines", "python", "parquet"])
def test_only_the_named_columns_of_a_review_file_are_kept_and_a_missing_one_lists_them_all(tmp_path, monkeypatch, kind):
    """Review files carry text and nested objects the import never reads; they are dropped as the
    file is read (a chunk at a time for JSON lines), yet an error still lists every column."""
    import json

    import ingest.import_files as files

    monkeypatch.setattr(files, "JSON_CHUNK_ROWS", 3)  # several chunks, the last one short
    rows = [
        {
            "user": f"u{k % 4}",
            "item": f"i{k}",
            "stars": 1 + k % 5,
            "date": f"2015-01-{1 + k:02d}",
            "text": "long " * 50,
            "hours": {"Monday": "8-22"},
        }
        for k in range(10)
    ]
    if kind == "parquet":
        path = tmp_path / "reviews.parquet"
        pd.DataFrame(rows).drop(columns="hours").to_parquet(path)
    else:
        path = tmp_path / "reviews.json"
        path.write_text("\n".join((json.dumps(r) if kind == "lines" else repr(r)) for r in rows) + "\n")
    table = files.read_table(path, "interactions", keep={"user", "item", "stars", "date"})
    assert sorted(table.frame.columns) == ["date", "item", "stars", "user"]
    assert table.frame["item"].tolist() == [f"i{k}" for k in range(10)]
    assert "text" in table.dropped
    events, _, _ = load_interactions(path, user_col="user", item_col="item", time_col="date", rating_col="stars")
    assert len(events) == 10
    with pytest.raises(ImportFormatError, match=r"available columns: .*user.*text"):
        load_interactions(path, user_col="user", item_col="business", time_col="date")


def test_an_import_into_the_demos_synthetic_world_is_refused_unless_asked_for(tmp_path, monkeypatch):
    """The README starts with `make demo`; importing into its data directory would mix the user's log
    with synthetic listening, and the hold-out would be synthetic."""
    from ingest.__main__ import app
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--scale", "tiny"]).exit_code == 0
    src = _dat(tmp_path / "r.csv", [("user", "item", "rating", "time"), *RATINGS], ",")
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "time", "--time-unit", "s"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    assert "holds the synthetic events `make demo` generated" in refused.output
    assert "SETLIST_DATA_DIR" in refused.output and "--mix-with-generated" in refused.output
    from setlist.eventlog import EventLog

    before = len(EventLog(get_settings().events_dir).read(columns=["event_id"]))
    mixed = runner.invoke(app, [*args, "--mix-with-generated"])
    assert mixed.exit_code == 0, mixed.output
    assert len(EventLog(get_settings().events_dir).read(columns=["event_id"])) == before + len(RATINGS)
    get_settings.cache_clear()


def test_the_demo_does_not_run_on_imported_events(tmp_path, monkeypatch):
    """`make demo` after an import into the same directory: its later steps need the generated
    world, so it stops at the start with what to do, not with a traceback at step 6."""
    from ingest.__main__ import app
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    src = _dat(tmp_path / "r.csv", [("user", "item", "rating", "time"), *RATINGS], ",")
    runner = CliRunner()
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "time", "--time-unit", "s"]
    assert runner.invoke(app, args).exit_code == 0
    refused = runner.invoke(app, ["generate", "--scale", "tiny"])
    assert refused.exit_code == 2
    assert "imported, not generated" in refused.output and "SETLIST_DATA_DIR=var/demo make demo" in refused.output
    get_settings.cache_clear()  # a demo's own directory: a second run keeps its world, as before
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "demo"))
    assert runner.invoke(app, ["generate", "--scale", "tiny"]).exit_code == 0
    kept = runner.invoke(app, ["generate", "--scale", "tiny"])
    assert kept.exit_code == 0 and "keeping it" in kept.output
    get_settings.cache_clear()


def test_a_space_separated_log_is_read_and_a_one_column_read_says_which_option_to_give(tmp_path):
    # the Epinions-style "user item rating" lines, a header and no times
    log = _dat(tmp_path / "ratings_data.txt", [("user_id", "item_id", "rating_value"), (1, 10, 5), (2, 10, 1)], " ")
    events, _, summary = load_interactions(log, rating_col="rating_value", time_col=None)
    assert events["user_id"].tolist() == ["1", "2"] and events["type"].tolist() == ["like", "skip"]
    assert "separator space (read off the file" in str(summary)
    # told the wrong separator, the file reads as one column; the error names the option to change
    with pytest.raises(ImportFormatError, match=r"read as one column.*--sep space"):
        comma = TextLayout.from_options(",", None, None)
        load_interactions(log, rating_col="rating_value", time_col=None, layout=comma)
    assert TextLayout.from_options("space", None, None).sep == " "
    # a file of several columns, one of them asked for under a wrong name: no word about separators
    wide = tmp_path / "w.jsonl"
    wide.write_text('{"user_id": "1", "items": "10", "url": "x"}\n{"user_id": "2", "items": "10", "url": "y"}\n')
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(wide, item_col="item_id", time_col=None)
    assert "available columns: user_id, items, url" in str(caught.value) and "one column" not in str(caught.value)


def test_a_wide_headerless_matrix_is_said_to_look_like_one(tmp_path):
    # Jester: a count, then one column of ratings per joke, no user column
    rows = [[100, *np.round(np.random.default_rng(k).uniform(-10, 10, 30), 2)] for k in range(5)]
    matrix = _dat(tmp_path / "jester-data-1.csv", rows, ",")
    with pytest.raises(
        ImportFormatError, match=r"31 columns of numbers is most likely a matrix.*'A matrix of ratings'"
    ) as caught:
        load_interactions(matrix)
    assert "… and 19 more" in str(caught.value)  # a first line of data is not listed whole as column names
    assert "--names user_id,item_id" not in str(caught.value)  # no example that imports the matrix as a table


def test_files_that_are_no_rows_of_a_user_and_an_item_are_refused_with_what_to_do(tmp_path):
    counted = tmp_path / "users.dat"  # CiteULike: a count, then that many ids, one user per line
    counted.write_text("3 10 11 12\n1 7\n2 10 13\n4 1 2 3 4\n")
    with pytest.raises(ImportFormatError, match="a count and then that many ids.*awk"):
        load_interactions(counted, user_col="user", item_col="item", time_col=None)
    records = tmp_path / "foods.txt"  # SNAP: key: value lines, a blank line between records
    records.write_text(
        "".join(
            f"product/productId: P{k}\nreview/userId: U{k}\nreview/score: 5.0\nreview/time: {T0 + k}\n\n"
            for k in range(3)
        )
    )
    with pytest.raises(ImportFormatError, match="records written as 'key: value' lines"):
        load_interactions(records, user_col="review/userId", item_col="product/productId", time_col=None)
    # the same width on every line is a table, whatever its first number says
    table = tmp_path / "t.dat"
    table.write_text("2 10 11\n2 12 13\n2 14 15\n")
    events, _, _ = load_interactions(
        table,
        layout=TextLayout.from_options(None, "n,user,item", None),
        user_col="user",
        item_col="item",
        time_col=None,
    )
    assert len(events) == 3


def test_records_in_an_id_column_and_one_column_for_user_and_item_are_refused(tmp_path):
    """30Music's idomaar lines hold user and track in one JSON cell: each cell would be an id of its own."""
    line = '{"subjects":[{"type":"user","id":%d}],"objects":[{"type":"track","id":%d}]}'
    path = tmp_path / "events.idomaar"
    path.write_text("".join(f"event.play\t{k}\t{T0 + k}\t{{}}\t{line % (k % 3, k)}\n" for k in range(6)))
    layout = TextLayout.from_options("tab", "kind,event_id,ts,props,linked", None)
    with pytest.raises(ImportFormatError, match="both name 'linked'"):
        load_interactions(path, layout=layout, user_col="linked", item_col="linked", time_col="ts", time_unit="s")
    with pytest.raises(ImportFormatError, match="--item-col 'linked' holds records, not ids"):
        load_interactions(path, layout=layout, user_col="kind", item_col="linked", time_col="ts", time_unit="s")
    guids = tmp_path / "guids.csv"  # a braced GUID is an id, not a record
    guids.write_text(
        "user,item,t\n" + "".join(f"{{0F8FAD5B-D9CB-469F-A165-70867728950{k}}},i{k},{T0 + k}\n" for k in range(4))
    )
    events, _, _ = load_interactions(guids, user_col="user", item_col="item", time_col="t", time_unit="s")
    assert len(events) == 4
    stream = InteractionStream(path, ImportOptions(layout=layout, user_col="kind", item_col="linked", time_col="ts"), 2)
    with pytest.raises(ImportFormatError, match="holds records, not ids"):
        list(stream)


def test_a_header_that_repeats_the_names_given_is_read_as_the_header(tmp_path):
    """MicroLens' files told their names with --names although they have a header: the header is no row."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item,timestamp\n" + "".join(f"u{k % 3},i{k},{T0 + k}\n" for k in range(6)))
    titles = tmp_path / "titles.csv"
    titles.write_text("item,title\n" + "".join(f"i{k},Clip {k}\n" for k in range(6)))
    options = dict(user_col="user", item_col="item", time_col="timestamp", time_unit="s")
    events, items, summary = load_interactions(
        pairs,
        layout=TextLayout.from_options(None, "user,item,timestamp", None),
        items=titles,
        item_id_col="item",
        items_layout=TextLayout.from_options(None, "item,title", None),
        **options,
    )
    assert len(events) == 6 and summary.users == 3 and summary.items == 6
    assert items is not None and len(items) == 6 and "item" not in set(items["item_id"])
    assert summary.catalog_rows == 6
    assert any("its first line names the columns as --names does" in n for n in summary.read_notes)
    stream = InteractionStream(
        pairs, ImportOptions(layout=TextLayout.from_options(None, "user,item,timestamp", None), **options), 2
    )
    assert len(pd.concat(list(stream))) == 6


def test_a_user_headed_file_is_refused_with_the_line_that_turns_it_into_rows(tmp_path):
    path = tmp_path / "trainIdx1.txt"  # Yahoo! Music: "user|count", then that many rows
    path.write_text(
        "0|2\n507696\t90\t3607\t23:41:00\n30\t70\t3607\t23:41:00\n1|1\n7\t50\t3700\t10:00:00\n2|1\n5\t0\t1\t1:00:00\n"
    )
    with pytest.raises(ImportFormatError, match="names a user on a line of its own.*awk -F'\\|'"):
        load_interactions(path, user_col="user", item_col="item", time_col=None)
    heavy = tmp_path / "heavy.txt"  # a first user with more rows than the sample holds
    heavy.write_text("0|500\n" + "".join(f"{k}\t90\t3607\t23:41:00\n" for k in range(500)) + "1|1\n7\t50\t1\t1:00:00\n")
    with pytest.raises(ImportFormatError, match="names a user on a line of its own"):
        load_interactions(heavy, user_col="user", item_col="item", time_col=None)
    zeros = tmp_path / "zeros.txt"  # x|0 lines are rows of a table
    zeros.write_text("".join(f"u{k}|0\n" for k in range(30)))
    events, _, _ = load_interactions(
        zeros, layout=TextLayout.from_options("|", "user,item", None), user_col="user", item_col="item", time_col=None
    )
    assert len(events) == 30
    rows = tmp_path / "rows.tsv"  # a block count that does not match is no such file
    rows.write_text("0|5\n507696\t90\n30\t70\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(rows, user_col="user", item_col="item", time_col=None)
    assert "names a user" not in str(caught.value)


def test_every_row_longer_than_the_header_is_refused_not_shifted(tmp_path):
    path = tmp_path / "trail.csv"  # a separator ending every row but the header's
    path.write_text("user,item,rating\n" + "".join(f"{k},{10 + k},5,\n" for k in range(5)))
    with pytest.raises(ImportFormatError, match="more fields \\(up to 4\\) than its header names 3: if each row ends"):
        load_interactions(path, user_col="user", item_col="item", time_col=None, rating_col="rating")


def _aligned(path: Path, rows, fmt) -> Path:
    """Columns padded to a width, as MATLAB's ``save -ascii`` and Epinions' text files write them."""
    path.write_text("".join("".join(fmt(v) for v in r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "fmt", [lambda v: f"{v:>12}", lambda v: f"{float(v):16.7e}"], ids=["right-aligned", "exponent"]
)
def test_columns_aligned_by_runs_of_spaces_are_read_as_one_separator(tmp_path, fmt):
    log = _aligned(tmp_path / "rating_with_timestamp.txt", RATINGS, fmt)
    options = dict(
        layout=TextLayout.from_options(None, "user,item,rating,time", None),
        user_col="user",
        item_col="item",
        rating_col="rating",
        time_col="time",
        time_unit="s",
    )
    events, _, summary = load_interactions(log, **options)
    _check_ratings(events)  # ids of the exponent layout read as the whole numbers they are
    assert "separator whitespace (runs of spaces or tabs)" in str(summary)
    # told "space", whose every pad would be an empty field: read as runs all the same, and said
    told = dict(options, layout=TextLayout.from_options("space", "user,item,rating,time", None))
    events, _, summary = load_interactions(log, **told)
    _check_ratings(events)
    assert "padded with runs of spaces: read as --sep whitespace" in " ".join(str(summary).split())
    for spec in ("whitespace", r"\s+"):
        assert TextLayout.from_options(spec, None, None).sep == r"\s+"


def test_a_header_above_rows_of_another_width_is_skipped_beside_names(tmp_path):
    # JODIE's reddit.csv: four named columns, then 172 features its header names as one
    log = tmp_path / "reddit.csv"
    header = "user_id,item_id,timestamp,state_label,comma_separated_list_of_features\n"
    log.write_text(header + "".join(f"{u},{i},{t - T0}.0,0,0.1,0.2,0.3,0.4\n" for u, i, _, t in RATINGS))
    options = dict(user_col="user_id", item_col="item_id", time_col="timestamp", time_unit="s")
    for names in ("user_id,item_id,timestamp,state_label", "user,item,ts,label"):
        given = dict(zip(("user_id", "item_id", "timestamp"), names.split(","), strict=False))
        events, _, summary = load_interactions(
            log,
            layout=TextLayout.from_options(None, names, None),
            time_origin="2000-12-31",
            **{k: given.get(v, v) for k, v in options.items()},
        )
        assert events["user_id"].tolist() == ["1", "1", "2", "3"] and summary.users == 3
        assert events["timestamp"].notna().all()
        assert "its first line is a header ('user_id,item_id,timestamp,state_label')" in str(summary)


def test_an_untimed_import_into_a_log_that_holds_events_says_where_its_stamps_fall(tmp_path, monkeypatch):
    # Goodbooks' to_read.csv after its ratings: stamped ending now, it would be the whole hold-out
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    ratings = _dat(tmp_path / "ratings.csv", [("user_id", "book_id", "rating"), (1, 10, 5), (2, 20, 3)], ",")
    # a span of at least 30 days, ending at the import: it reaches back past the first import
    to_read = _dat(tmp_path / "to_read.csv", [("user_id", "book_id"), *((k % 50, 1000 + k) for k in range(600))], ",")
    base = ["import", "--item-col", "book_id", "--no-time"]
    first = CliRunner().invoke(app, [*base[:1], str(ratings), *base[1:], "--rating-col", "rating"])
    assert first.exit_code == 0, first.output
    assert "they are the newest events" not in first.output  # an empty log: nothing to come after
    second = CliRunner().invoke(app, [*base[:1], str(to_read), *base[1:]])
    assert second.exit_code == 0, second.output
    # both untimed: each ends at its own import, a moment apart, so they interleave rather than follow
    said = " ".join(second.output.split())
    assert "so the two interleave" in said and "they are the newest events" not in said
    # after a timed log, the untimed rows come after everything it holds
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "timed"))
    get_settings.cache_clear()
    timed = _dat(tmp_path / "timed.csv", [("user_id", "book_id", "timestamp"), (1, 10, T0), (2, 20, T0 + 60)], ",")
    assert CliRunner().invoke(app, ["import", str(timed), "--item-col", "book_id", "--time-unit", "s"]).exit_code == 0
    third = CliRunner().invoke(app, [*base[:1], str(to_read), *base[1:]])
    assert third.exit_code == 0, third.output
    assert "they are the newest events" in " ".join(third.output.split())


def test_a_header_beside_names_is_told_from_data_at_any_width_and_after_blank_lines(tmp_path):
    options = dict(user_col="user", item_col="item", rating_col="rating", time_col=None)
    layout = TextLayout.from_options(None, "user,item,rating", None)
    # a header shorter than the rows, after a blank line: skipped, not read as a row
    short = tmp_path / "short.csv"
    short.write_text("\nuser,item\nu1,i1,5\nu2,i2,3\nu3,i1,4\n")
    events, _, summary = load_interactions(short, layout=layout, **options)
    assert sorted(events["user_id"]) == ["u1", "u2", "u3"]
    assert any("its first line is a header ('user,item')" in n for n in summary.read_notes)
    # a first row with a missing value is data: nan is no word above a column of numbers
    data = tmp_path / "data.csv"
    data.write_text("u1,nan,5\nu2,i2,3\nu3,i1,4\n")
    events, _, summary = load_interactions(data, layout=layout, **options)
    assert len(events) == 3 and not any("header" in n for n in summary.read_notes)


STACK_POSTS = """<?xml version="1.0" encoding="utf-8"?>
<posts>
  <row Id="1" PostTypeId="1" CreationDate="2010-07-28T19:04:21.300" OwnerUserId="5" Title="How to &lt;b&gt;x&lt;/b&gt;?"
       Tags="&lt;python&gt;&lt;pandas&gt;" Body="&lt;p&gt;a body, with commas&lt;/p&gt;" />
  <row Id="2" PostTypeId="2" ParentId="1" CreationDate="2010-07-28T19:10:00.000" OwnerUserId="7" />
  <row Id="3" PostTypeId="2" ParentId="1" CreationDate="2010-07-28T19:12:00.000" Body="an anonymous answer" />
  <row Id="4" PostTypeId="1" CreationDate="2010-07-29T10:00:00.000" OwnerUserId="7" Title="Another"
       Tags="&lt;sql&gt;" />
  <row Id="5" PostTypeId="2" ParentId="4" CreationDate="2010-07-29T10:05:00.000" OwnerUserId="5" />
</posts>
"""


@pytest.mark.parametrize("name", ["Posts.xml", "Posts.xml.gz", "posts.txt"])
def test_an_xml_dump_of_records_imports_its_attributes_as_columns(tmp_path, name):
    import gzip

    from ingest.import_items import load_items

    path = tmp_path / name
    path.write_bytes(gzip.compress(STACK_POSTS.encode()) if name.endswith(".gz") else STACK_POSTS.encode())
    events, _, summary = load_interactions(
        path, user_col="OwnerUserId", item_col="ParentId", time_col="CreationDate", items=path, item_id_col="Id"
    )
    answered = events.dropna(subset=["user_id", "item_id"])
    assert sorted(zip(answered["user_id"], answered["item_id"])) == [("5", "4"), ("7", "1")]
    # the questions, without a ParentId, and the anonymous answer are kept for quarantine, counted
    assert summary.problems["empty item id"] == 2 and summary.problems["empty user id"] == 1
    assert "XML: one row per element under <posts> (<row> 5)" in " ".join(summary.read_notes)
    catalog, _ = load_items(path, "Id", None)
    questions = catalog.set_index("item_id")
    assert questions.loc["1", "title"] == "How to <b>x</b>?" and questions.loc["1", "genres"] == "python|pandas"


def test_xml_that_is_not_well_formed_or_too_big_is_refused_with_what_to_do(tmp_path):
    from ingest.import_files import TableStream, streams

    bad = tmp_path / "Votes.xml"
    bad.write_text('<votes><row Id="1" PostId="2"></votes>')
    with pytest.raises(ImportFormatError, match="Votes.xml is no well-formed XML"):
        load_interactions(bad, user_col="Id", item_col="PostId", time_col=None)
    good = tmp_path / "Posts.xml"
    good.write_text(STACK_POSTS)
    assert not streams(good)
    with pytest.raises(ImportFormatError, match="an XML file is read whole. Convert it to JSON lines or CSV"):
        list(TableStream(good, "interactions", None, None, 2))
    with pytest.raises(ImportFormatError, match="--sep and --names are for delimited text, not XML files"):
        load_interactions(good, layout=TextLayout(sep=","))
    # a CSV whose first cell looks like a tag is no XML
    tagged = tmp_path / "tags.csv"
    tagged.write_text(f"<python>,u1,i1,{T0}\n<sql>,u2,i2,{T0 + 1}\n")
    events, _, _ = load_interactions(
        tagged, layout=TextLayout(names=("tag", "user", "item", "t")), user_col="user", item_col="item",
        time_col="t", time_unit="s",
    )  # fmt: skip
    assert events["item_id"].tolist() == ["i1", "i2"]


@pytest.mark.parametrize("shape", ["lines", "array", "lines.gz"])
def test_json_ids_too_long_for_a_float_stay_distinct_beside_a_missing_one(tmp_path, shape):
    import gzip
    import json

    # Pinterest's 18-digit user ids: one null makes pandas' parser read the column as floats
    rows = [{"user_id": 795014932497373000 + k, "pins": [f"p{k % 5}"], "t": 1_600_000_000 + k} for k in range(40)]
    rows.append({"user_id": None, "pins": ["p1"], "t": 1_600_000_100})
    if shape == "array":
        path = tmp_path / "boards.json"
        path.write_text(json.dumps(rows))
    else:
        text = "".join(json.dumps(r) + "\n" for r in rows).encode()
        path = tmp_path / ("boards.jsonl.gz" if shape.endswith(".gz") else "boards.jsonl")
        path.write_bytes(gzip.compress(text) if shape.endswith(".gz") else text)
    events, _, summary = load_interactions(
        path, user_col="user_id", item_col="pins", item_lists=True, time_col="t", time_unit="s"
    )
    assert summary.users == 40 and str(795014932497373039) in set(events["user_id"])
    assert summary.problems["empty user id"] == 1


@pytest.mark.parametrize("shape", ["json", "csv"])
def test_an_items_id_column_of_lists_is_refused_naming_explode(tmp_path, shape):
    # MOOCCube's course.json: a course lists its videos; named as the item id, each list became one id
    import json

    log = _dat(tmp_path / "views.csv", [("user", "video", "t"), ("u1", "V_1", T0), ("u2", "V_2", T0 + 60)], ",")
    courses = [{"id": "C_1", "video_order": ["V_1", "V_2"]}, {"id": "C_2", "video_order": ["V_3", "V_4", "V_5"]}]
    if shape == "json":
        items = tmp_path / "course.json"
        items.write_text("".join(json.dumps(c) + "\n" for c in courses))
    else:
        items = tmp_path / "course.csv"  # the lists written out by pandas, quoted
        pd.DataFrame([{**c, "video_order": str(c["video_order"])} for c in courses]).to_csv(items, index=False)
    with pytest.raises(ImportFormatError, match=r"--item-id-col 'video_order' holds lists of ids .*DataFrame.explode"):
        load_interactions(
            log, user_col="user", item_col="video", time_col="t", time_unit="s", items=items, item_id_col="video_order"
        )


def test_a_headerless_file_whose_first_line_holds_times_and_uuids_is_said_to_have_no_header(tmp_path):
    # Last.fm 1K: user, ISO time, artist MBID, artist, track MBID, track; no header line
    line = "user_000001\t2009-05-04T23:08:57Z\tf1b1cf71-bd35-4e99-8624-24a6e15f133a\tDeep Dish\t\tFuck Me Im Famous"
    src = tmp_path / "userid-timestamp-artid-artname-traid-traname.tsv"
    src.write_text(line + "\n" + line.replace("000001", "000002") + "\n")
    with pytest.raises(ImportFormatError, match=r"first line looks like data, not a header.*--names"):
        load_interactions(src)


@pytest.mark.skipif(shutil.which("awk") is None, reason="the advice's command line needs awk")
@pytest.mark.parametrize(
    ("name", "lines", "said", "pairs"),
    [
        # CiteULike's users.dat: a count, then that many ids, a user per line numbered from 0
        ("users.dat", ["3 10 11 12", "1 7", "2 10 13", "4 1 2 3 4"], "is a count and then that many ids", 10),
        # LightGCN's train.txt: a user's id, then their items; the first ids all differ
        (
            "train.txt",
            ["0 5 6 7", "1 5", "2 8 9", "3 5 6 7 8 9", "4 6 9 10 11"],
            "is a user's id and then their items",
            15,
        ),
        # … where a user of no items has a line of their id alone
        (
            "train.txt",
            [f"{u} {' '.join(str(10 + (u * k) % 17) for k in range(1, 2 + u % 5))}" for u in range(30)] + ["30"],
            "is a user's id and then their items",
            sum(1 + u % 5 for u in range(30)),
        ),
        # kosarak.dat: a click stream per line and no user; items recur as first ids
        ("kosarak.dat", ["1 2 3", "1 6 7 8", "11 6", "1 3 2 6 7", "6"], "lists items and names no user", 15),
    ],
)
def test_lines_that_are_no_rows_are_refused_with_advice_that_imports_as_written(
    tmp_path, monkeypatch, name, lines, said, pairs
):
    from ingest.__main__ import app

    (tmp_path / name).write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(tmp_path / name, time_col=None)
    advice = " ".join(str(caught.value).split())
    assert said in advice
    awk = re.search(rf"e\.g\. (awk .*? {re.escape(name)} > rows\.csv)", advice).group(1)
    options = re.search(r"import those with (--.*?) \(README", advice).group(1)
    subprocess.run(awk, shell=True, cwd=tmp_path, check=True)  # noqa: S602 - the advice's own line
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["import", str(tmp_path / "rows.csv"), *shlex.split(options)])
    assert result.exit_code == 0, result.output
    assert f"accepted into the event log │     {pairs}" in result.output


def test_a_table_of_rows_of_one_width_is_no_list_of_ids(tmp_path):
    # SASRec's ml-1m.txt: a user and an item per line, in a space: a table, read as such
    path = tmp_path / "ml-1m.txt"
    path.write_text("".join(f"{u} {i}\n" for u in range(1, 6) for i in range(10, 16)))
    with pytest.raises(ImportFormatError, match="first line looks like data.*--names user_id,item_id"):
        load_interactions(path)


def test_records_split_by_line_breaks_in_an_unquoted_file_are_rejoined(tmp_path):
    # CareerBuilder's jobs.tsv: carriage returns inside descriptions, one straight after a tab (which
    # stopped pandas' C reader), a CRLF in a file of line feeds, and two CRs in a row (an empty line)
    rows = ["JobID\tTitle\tDescription\tState"]
    rows += [f"{k}\tTitle {k}\tPlain text\t{'CA' if k % 2 else 'NY'}" for k in range(20)]
    rows[3] = "2\tTitle 2\tFirst part.\r Second part\tTX"
    rows[6] = "5\tTitle 5\t\r Minimum 1 yr\tFL"
    rows[9] = "8\tTitle 8\tPara one\r\n<p>Equal Opportunity</p>\tGA"
    rows[12] = "11\tTitle 11\tA\r\rB\tOH"
    rows[15] = "14\tTitle 14 \r\r\t\r<p>x</p>\tWA"  # a piece that is the separating tab alone, between bare CRs
    jobs = tmp_path / "jobs.tsv"
    jobs.write_bytes(("\n".join(rows) + "\n").encode())
    log = tmp_path / "apps.csv"
    log.write_text("u,job\n" + "\n".join(f"u{k % 3},{k}" for k in range(20)) + "\n")
    _, frame, summary = load_interactions(
        log,
        user_col="u",
        item_col="job",
        time_col=None,
        items=jobs,
        item_id_col="JobID",
        item_columns={"genre": "State"},
    )
    assert frame is not None
    by_id = frame.set_index("item_id")
    assert len(frame) == 20 and set(by_id.index) == {str(k) for k in range(20)}  # no stray piece as an item
    assert by_id.loc["2", "genre"] == "tx" and by_id.loc["5", "genre"] == "fl" and by_id.loc["11", "genre"] == "oh"
    assert by_id.loc["8", "genre"] == "ga" and by_id.loc["8", "title"] == "Title 8"
    assert by_id.loc["14", "genre"] == "wa"
    said = " ".join(str(summary).split())
    assert "5 records split over several lines by a line break inside a field" in said
    assert "different numbers of fields" not in said  # every short line was explained


def test_a_short_line_is_said_and_rows_merely_lacking_trailing_fields_are_not_joined(tmp_path):
    # a log of line feeds whose rows 3 and 4 lack fields: no break inside a field joined them, so
    # they stay two rows, read with empty fields (the one without a time is quarantined as such)
    lines = ["user_id\titem_id\ttimestamp\tnote", "a\tx\t1700000000\tok", "a\ty\t1700000060", "b\tz"]
    lines += [f"c\ti{k}\t{1700000000 + k}\tok" for k in range(10)]
    src = tmp_path / "log.tsv"
    src.write_text("\n".join(lines) + "\n")
    events, _, summary = load_interactions(src, time_unit="s")
    said = " ".join(str(summary).split())
    assert "2 lines with fewer than its 4 fields (line 3, 4): the missing fields read as empty" in said
    assert "y" in set(events["item_id"])
    assert summary.problems["missing or unparseable timestamp"] == 1


def test_a_log_record_split_by_a_carriage_return_is_rejoined(tmp_path):
    lines = ["user_id\titem_id\tquery\ttimestamp"]
    lines += [f"u{k % 4}\ti{k}\tq{k}\t{1700000000 + 60 * k}" for k in range(12)]
    lines[5] = "u0\ti4\tred\rshoes\t1700000240"
    src = tmp_path / "log.tsv"
    src.write_bytes(("\n".join(lines) + "\n").encode())
    events, _, summary = load_interactions(src, time_unit="s")
    assert len(events) == 12 and "shoes" not in set(events["user_id"])
    assert "1 record split over several lines" in " ".join(str(summary).split())


def test_a_quoted_files_short_records_are_named_and_its_multiline_fields_are_not(tmp_path):
    # Pixel200K with a stray carriage return in one line; a review's quoted paragraphs are no short rows
    lines = ["item_id,user_id,timestamp,comment"]
    lines += [f"i{k % 9},u{k % 5},{1_650_000_000 + 60 * k},fine" for k in range(20)]
    lines[4] = 'i3,u3,1650000180,"two\nparagraphs"'
    lines[8] = "i7,u2,\r1650000420,cut"
    src = tmp_path / "Pixel200K.csv"
    src.write_bytes(("\n".join(lines) + "\n").encode())
    events, _, summary = load_interactions(src, time_unit="s")
    said = " ".join(str(summary).split())
    assert "2 lines with fewer than its 4 fields (line 10, 11): the missing fields read as empty" in said
    assert summary.problems["missing or unparseable timestamp"] == 2 and len(events) == 21


@pytest.mark.parametrize(
    ("encoding", "title", "read_as"),
    [
        ("gbk", "26-35岁 以下", "gb18030"),
        ("shift_jis", "東京の夜", "shift_jis"),
        ("euc-kr", "서울의 밤", "euc-kr"),
        # Taiwan's titles: some of Big5's second bytes are ASCII letters, and GB18030 would decode them too
        ("big5", "海角七號·賽德克巴萊 我們", "big5"),
        ("big5", "那些年，我們一起追的女孩", "big5"),
    ],
)
def test_a_chinese_japanese_or_korean_file_is_read_in_its_encoding(tmp_path, encoding, title, read_as):
    # JData's user file is GBK: read as Latin-1, every name turned to mojibake without a word
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n" + "\n".join(f"u{k % 7},i{k % 30}" for k in range(90)) + "\n")
    items = tmp_path / "items.csv"
    items.write_bytes(("item_id,title\n" + "".join(f"i{k},{title} {k}\n" for k in range(30))).encode(encoding))
    _, frame, summary = load_interactions(log, time_col=None, items=items)
    assert frame is not None
    assert frame.set_index("item_id").loc["i3", "title"] == f"{title} 3"
    assert f"encoding {read_as} (the file is not UTF-8, and its bytes read as Chinese" in " ".join(str(summary).split())


@pytest.mark.parametrize(
    ("titles", "encoding"),
    [
        (["Amélie {k} (2001)", "Größe Straße"], "latin-1"),
        (["Cité des enfants perdus, La {k}", "Léon", "Être et avoir"], "latin-1"),
        (["El laberinto del fauno {k}", "Año bisiesto", "¿Quién?"], "latin-1"),
        (["Smörgåsbord {k}", "Ånglok", "Øresund", "Ærø"], "latin-1"),
        (["L’été {k}", "“Heat” – director’s cut"], "cp1252"),
    ],
)
def test_a_european_file_is_not_taken_for_a_two_byte_encoding(tmp_path, titles, encoding):
    # Big5 pairs a high byte with an ASCII letter, as "ét" and "ör" are written in Latin-1
    rows = "".join(f"{k}::{titles[k % len(titles)].format(k=k)}::Comedy\n" for k in range(120))
    movies = tmp_path / "movies.dat"
    movies.write_bytes(rows.encode(encoding))
    table = read_table(movies, "items", TextLayout(sep="::", names=("movie_id", "title", "genres")))
    assert f"encoding {encoding}" in " ".join(table.notes)
    assert titles[0].format(k=0) in set(table.frame["title"])


def test_a_file_without_a_user_column_says_an_accounts_export_needs_one(tmp_path):
    # one Letterboxd account's ratings.csv: no column of users at all
    one = tmp_path / "ratings.csv"
    one.write_text("Date,Name,Year,Letterboxd URI,Rating\n2021-01-02,Heat,1995,https://boxd.it/a,4.5\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(one, item_col="Letterboxd URI", time_col="Date")
    message = " ".join(str(caught.value).split())
    assert "no column names a user: a file of one person's history" in message
    joined = tmp_path / "ratings_all.csv"  # accounts joined with a Username column: only the option is missing
    joined.write_text("Username,Date,Name,Letterboxd URI\nann,2021-01-02,Heat,https://boxd.it/a\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(joined, item_col="Letterboxd URI", time_col="Date")
    assert "available columns: Username" in str(caught.value) and "no column names a user" not in str(caught.value)


def test_a_missing_column_is_said_with_every_option_the_columns_suggest(tmp_path):
    # Goodbooks' ratings.csv took four runs, one missing option each
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user_id,book_id,rating\n1,258,5\n2,4081,4\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(ratings)
    message = " ".join(str(caught.value).split())
    assert (
        "its columns would import with --user-col user_id --item-col book_id --rating-col rating --no-time" in message
    )
    # Reddit's comments: the author is the user, created_utc the time; ratings_count is no rating
    comments = tmp_path / "RC.csv"
    comments.write_text("author,subreddit,created_utc,ratings_count\nann,AskReddit,1420070400,3\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(comments)
    message = " ".join(str(caught.value).split())
    assert "--user-col author --item-col subreddit --time-col created_utc" in message
    assert "--rating-col" not in message
    # Coveo's browsing log has sessions, no users: they are offered as the users
    browsing = tmp_path / "browsing_train.csv"
    browsing.write_text("session_id_hash,product_sku_hash,server_timestamp_epoch_ms\ns1,p1,1550885210881\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(browsing)
    assert "'session_id_hash' names sessions, visits or devices, which can stand for users" in " ".join(
        str(caught.value).split()
    )
    # Expedia's searches: the visitor's country and star history describe users, a competitor's rate is
    # no rating, the property's country no property; the search is the visit that stands for a user
    expedia = tmp_path / "train.csv"
    expedia.write_text(
        "srch_id,date_time,site_id,visitor_location_country_id,visitor_hist_starrating,prop_country_id,prop_id,"
        "comp1_rate,click_bool\n1,2013-04-04 08:32:15,12,187,NULL,219,893,0,1\n"
    )
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(expedia)
    message = " ".join(str(caught.value).split())
    assert "would import with --user-col srch_id --item-col prop_id --time-col date_time" in message
    # Criteo's attribution log: seconds from the period's start are still its time, not --no-time
    criteo = tmp_path / "criteo.tsv"
    criteo.write_text("timestamp\tuid\tcampaign\tconversion\tconversion_id\n0\t20073966\t22589171\t0\t-1\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(criteo)
    assert "would import with --user-col uid --item-col campaign --time-col timestamp" in str(caught.value)
    # Avazu: no user, but a device does
    avazu = tmp_path / "avazu.csv"
    avazu.write_text(
        "id,click,hour,site_id,app_id,device_id,device_ip\n1,0,14102100,1fbe01fe,ecad2386,a99f214a,ddd2926e\n"
    )
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(avazu)
    assert "'device_id' names sessions, visits or devices, which can stand for users" in " ".join(
        str(caught.value).split()
    )


def test_a_log_with_no_item_column_is_offered_the_columns_that_describe_its_items(tmp_path):
    # Taobao's behavior_log: a user's clicks by category and brand, no item id
    log = tmp_path / "behavior_log.csv"
    log.write_text(
        "user,time_stamp,btag,cate,brand\n"
        + "\n".join(f"{k % 7},{T0 + 60 * k},pv,{k % 5},{k % 11}" for k in range(40))
        + "\n"
    )
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(log, user_col="user")
    message = " ".join(str(caught.value).split())
    assert "no column names an item, but 'cate' and 'brand' describe items: --item-col cate,brand" in message
    # followed, each pair is an item
    events, _, summary = load_interactions(
        log, user_col="user", item_col="cate,brand", time_col="time_stamp", time_unit="s"
    )
    assert summary.items == len({(k % 5, k % 11) for k in range(40)}) and len(events) == 40
    # a column that names items is offered by the suggestion instead: no coarse items
    named = tmp_path / "views.csv"
    named.write_text("user,product,category,ts\nu1,p1,shoes,1493000000\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(named, user_col="user")
    assert "describe items" not in str(caught.value)


def test_a_user_id_that_is_only_a_stand_in_word_is_said_whoever_is_busier(tmp_path):
    # Reddit's [deleted]: 6% of the comments, though one real author wrote nearly as many
    rows = ["author,subreddit,created_utc"]
    rows += [f"[deleted],r{k % 9},{T0 + k}" for k in range(60)]
    rows += [f"heavy,r{k % 9},{T0 + 100 + k}" for k in range(50)]
    rows += [f"u{k % 40},r{k % 9},{T0 + 500 + k}" for k in range(900)]
    src = tmp_path / "RC.csv"
    src.write_text("\n".join(rows) + "\n")
    _, _, summary = load_interactions(
        src, user_col="author", item_col="subreddit", time_col="created_utc", time_unit="s"
    )
    said = " ".join(str(summary).split())
    assert "the busiest user id, on 5.9% of the rows (60), is a stand-in word" in said
    assert "[deleted]" not in said  # an id is never named in a note


def _refusal(path: Path, **options) -> str:
    """The error an import of ``path`` stops with, its lines joined."""
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(path, **options)
    return " ".join(str(caught.value).split())


def test_review_and_vote_layouts_are_offered_their_rating_and_their_items(tmp_path):
    # Amazon's 2014/2018 reviews: the stars are 'overall'
    reviews = tmp_path / "Kindle_Store_5.json"
    reviews.write_text(
        "\n".join(
            json.dumps(
                {
                    "overall": float(1 + k % 5),
                    "reviewerID": f"A{k % 4}",
                    "asin": f"B{k % 6}",
                    "reviewTime": "09 13, 2009",
                    "unixReviewTime": T0 + k,
                    "vote": "1,234",
                }
            )  # fmt: skip
            for k in range(30)
        )
        + "\n"
    )
    refused = _refusal(reviews)
    # its epoch numbers were not read (a JSON file is read for the columns named), yet their unit is said
    assert (
        "--user-col reviewerID --item-col asin --rating-col overall --time-col unixReviewTime --time-unit s" in refused
    )
    _, _, summary = load_interactions(reviews, user_col="reviewerID", item_col="asin", time_col="unixReviewTime",
                                      time_unit="s")  # fmt: skip
    assert "column 'overall' (" not in str(summary) and "'overall' not read" in " ".join(str(summary).split())
    # VNDB's votes: no header, the vote a whole number from 10 to 100
    votes = tmp_path / "votes"
    votes.write_text(
        "".join(f"{1 + k % 9} {100 + k % 13} {10 + (7 * k) % 91} 2020-01-{1 + k % 28:02d}\n" for k in range(40))
    )
    refused = _refusal(votes, layout=TextLayout(sep=" "))
    assert "--names user_id,item_id,rating,timestamp --rating-col rating" in refused
    # Sketchfab's likes: a model's short id is the item; with no item named at all, the rest is offered
    likes = tmp_path / "model_likes_anon.psv"
    likes.write_text("modelname|mid|uid\nLucy|5dcebcfa|7ac1b406\nSword|aa11bb22|7ac1b406\n")
    refused = _refusal(likes)
    assert "would import with --user-col uid --item-col mid --no-time" in refused
    anonymous = tmp_path / "likes.csv"
    anonymous.write_text("uid,thing,when\nu1,x,2020-01-01\n")
    refused = _refusal(anonymous)
    assert "--user-col uid --item-col COLUMN --time-col when (COLUMN: the one that names the items" in " ".join(
        refused.split()
    )


def test_the_types_said_are_those_of_the_rows_that_will_be_events(tmp_path):
    # VNDB's ulist: a vote date only where a vote was given; the unvoted rows go to quarantine
    rows = ["user,item,vote,vote_date"] + [
        f"u{k % 5},v{k % 7},{10 * (1 + k % 10) if k % 3 else ''},{f'2020-01-{1 + k % 28:02d}' if k % 3 else ''}"
        for k in range(60)
    ]
    src = tmp_path / "ulist.csv"
    src.write_text("\n".join(rows) + "\n")
    _, _, summary = load_interactions(src, user_col="user", item_col="item", time_col="vote_date", rating_col="vote")
    assert sum(summary.type_counts.values()) == 40 and summary.problems["missing or unparseable timestamp"] == 20


def test_an_import_that_kept_nothing_can_be_retried_with_its_fix_in_the_same_directory(tmp_path, monkeypatch):
    from ingest.__main__ import app

    # Sber MegaMarket's events: a type column of words the contract does not know, no map given
    frame = pd.DataFrame(
        {
            "user_id": [f"u{k % 6}" for k in range(40)],
            "item_id": [f"i{k % 9}" for k in range(40)],
            "event": ["view_product", "add_to_cart", "purchase", "remove_from_cart"] * 10,
            "timestamp": pd.date_range("2023-04-01", periods=40, freq="h"),
        }
    )
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    # unread, the column is said for a parquet file as for a CSV one
    _, _, summary = load_interactions(path)
    assert "column 'event' ('add_to_cart', 'purchase', 'remove_from_cart', 'view_product') not read" in " ".join(
        str(summary).split()
    )
    failed = CliRunner().invoke(app, ["import", str(path), "--type-col", "event"])
    assert failed.exit_code == 2 and "no row of events.parquet was accepted" in " ".join(failed.stderr.split())
    fixed = CliRunner().invoke(
        app,
        ["import", str(path), "--type-col", "event", "--type-map",
         "view_product=view,add_to_cart=add_to_playlist,purchase=like,remove_from_cart=not_interested"],
    )  # fmt: skip
    assert fixed.exit_code == 0, fixed.output
    assert "imported before with other options" not in fixed.output


def test_click_codes_written_as_floats_and_signed_outcomes_read_as_their_numbers(tmp_path):
    from ingest.import_values import parse_type_map

    # pandas writes a 0/1 column with gaps as 1.0 / 0.0 (Avito's IsClick after a join)
    src = tmp_path / "joined.tsv"
    src.write_text(
        "UserID\tAdID\tSearchDate\tIsClick\n"
        + "".join(
            f"u{k % 5}\ta{k % 7}\t2015-05-{1 + k % 9:02d} 10:00:{k:02d}.0\t{'1.0' if k % 4 == 0 else '0.0'}\n"
            for k in range(40)
        )  # fmt: skip
    )
    events, _, _ = load_interactions(src, user_col="UserID", item_col="AdID", time_col="SearchDate",
                                     type_col="IsClick", type_map=parse_type_map("1=play,0=impression"))  # fmt: skip
    assert events["type"].value_counts().to_dict() == {"impression": 30, "play": 10}
    # KDD Cup 2012's Tencent Weibo log: a headerless result of 1 or -1 is offered as the rating
    log = tmp_path / "rec_log_train.txt"
    log.write_text(
        "".join(f"{100 + k % 9}\t{2000 + k % 13}\t{1 if k % 5 == 0 else -1}\t{T0 + 60 * k}\n" for k in range(40))
    )
    refused = _refusal(log)
    assert "--names user_id,item_id,rating,timestamp --rating-col rating --time-unit s" in refused


def test_the_suggested_options_read_a_click_column_and_an_epoch_unit(tmp_path):
    # Yahoo!'s front page log, flattened: followed without the click, every article shown is a play
    src = tmp_path / "clicks.csv"
    src.write_text(
        "timestamp,article_id,click,user\n" + "".join(f"{T0 + k},{k % 5},{k % 2},u{k % 3}\n" for k in range(9))
    )
    refused = _refusal(src)
    assert (
        "would import with --user-col user --item-col article_id --time-col timestamp --time-unit s "
        "--type-col click --type-map 1=play,0=impression"
    ) in refused


def test_vowpal_wabbit_lines_are_named_as_such_not_as_a_matrix(tmp_path):
    # Yahoo!'s Front Page log: time, article shown, click, then namespaces of features; no user id
    lines = [
        f"{T0 + k} id-{550000 + k % 7} {k % 2} |user 1 "
        + ("2:0.186839 3:0.000038 6:0.809527 " if k % 2 else "50 17 ")  # R6A's feature:value pairs, R6B's ids
        + " ".join(f"|id-{550000 + j}" for j in range(k % 5 + 20))
        for k in range(30)
    ]
    src = tmp_path / "ydata-fp-td-clicks-v1_0.20090501"
    src.write_text("\n".join(lines) + "\n")
    for layout in (TextLayout(sep=" "), None):
        said = _refusal(src, layout=layout) if layout else _refusal(src)
        assert "in Vowpal Wabbit's format" in said and "matrix" not in said and "would import with" not in said


def test_counts_where_the_ids_would_be_are_not_named_user_and_item(tmp_path):
    # KDD Cup 2012 Track 2: Click, Impression (at least the clicks, up to hundreds), then ids, the user last
    rows = [
        f"{k % 3 if k % 4 == 0 else 0}\t{k % 3 + 1 + 37 * (k % 4)}\t{9_000_000_000 + k}\t{2000 + k % 17}\t{k % 5 + 1}"
        f"\t{700 + k % 40}"
        for k in range(60)
    ]
    src = tmp_path / "training.txt"
    src.write_text("\n".join(rows) + "\n")
    said = _refusal(src)
    assert "--names c1,c2,c3,c4,c5,c6, then --user-col and --item-col naming" in said and "user_id," not in said
    # a file sorted by user whose first user is 0 is still read as users and items
    sorted_rows = tmp_path / "sorted.txt"
    sorted_rows.write_text("".join(f"0\t{k % 9}\t{1 + k % 5}\n" for k in range(30)) + "1\t3\t4\n")
    refused = _refusal(sorted_rows)
    assert "--names user_id,item_id,rating" in refused


def test_rtb_logs_times_written_as_digits_and_their_user_agent(tmp_path):
    # iPinYou: a 17-digit yyyyMMddHHmmssSSS time, a UserAgent that is no user
    src = tmp_path / "imp.20130606.txt"
    src.write_text(
        "BidID\tTimestamp\tiPinYouID\tUserAgent\tCreativeID\n"
        + "".join(f"b{k}\t2013060600{k:02d}04{k:03d}\tu{k % 4}\tMozilla/5.0\tc{k % 3}\n" for k in range(20))
    )
    kw = dict(user_col="iPinYouID", item_col="CreativeID", time_col="Timestamp")
    for unit in (None, "us"):  # named as microseconds before, which quarantined every row
        said = _refusal(src, **kw, time_unit=unit)
        assert "read as a date and time to the millisecond (%Y%m%d%H%M%S%f" in said
        assert "--time-format %Y%m%d%H%M%S%f" in said
    events, _, _ = load_interactions(src, **kw, time_format="%Y%m%d%H%M%S%f")
    assert events["timestamp"].min() == pd.Timestamp("2013-06-06 00:00:04", tz="UTC")
    assert "--user-col UserAgent" not in _refusal(src)


def test_my_list_exports_say_their_score_and_status_and_placeholder_ids_are_said(tmp_path):
    # MyAnimeList's lists: my_score 0 is unscored, my_status codes (6: plan to watch)
    rows = ["username,anime_id,my_score,my_status,my_last_updated"] + [
        f"user{k % 7},{1 + k % 23},{k % 11},{(1, 2, 4, 6)[k % 4]},2017-06-{1 + k % 28:02d} 12:47:27" for k in range(80)
    ]
    src = tmp_path / "animelists_cleaned.csv"
    src.write_text("\n".join(rows) + "\n")
    _, _, summary = load_interactions(src, user_col="username", item_col="anime_id", time_col="my_last_updated")
    said = " ".join(str(summary).split())
    assert "column 'my_score' not read" in said and "column 'my_status' ('1', '2', '4', '6') not read" in said
    # Yahoo! R1's artists -99 ("Unknown") and -100 ("Not Applicable") are no artists
    r1 = tmp_path / "ratings.csv"
    r1.write_text(
        "user,artist,rating\n" + "".join(f"u{k % 9},{-99 if k % 10 == 0 else k % 31},50\n" for k in range(200))
    )
    _, _, summary = load_interactions(r1, user_col="user", item_col="artist", time_col=None, rating_col="rating")
    assert "item id '-99' holds 20 rows (10.0%): if it stands for 'no item'" in " ".join(str(summary).split())


def test_a_column_of_times_read_as_types_is_said_as_such_and_an_import_without_positives_warned(tmp_path, monkeypatch):
    from ingest.__main__ import app

    # ZhihuRec's read_time: 0 when the question was shown and not read, else the time it was read
    rows = [f"{k % 30},{k % 57},{T0 + 30 * k},{0 if k % 3 else T0 + 30 * k + 9}" for k in range(600)]
    src = tmp_path / "inter_impression.csv"
    src.write_text("\n".join(rows) + "\n")
    args = ["--names", "user_id,question_id,show_time,read_time", "--item-col", "question_id", "--time-col",
            "show_time", "--time-unit", "s", "--type-col", "read_time", "--type-map", "0=impression"]  # fmt: skip
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    done = CliRunner().invoke(app, ["import", str(src), *args])
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert "200 distinct numbers are no kinds of event: the column may hold times" in said
    assert "· and 101 more kinds" in said and "(the 200 names are in the quarantine, with their rows)" in said
    assert "warning: no row of inter_impression.csv is a play, a like or an add" in said


def test_a_top_rating_apart_from_the_scale_is_said_as_a_code(tmp_path):
    # Yahoo! R1: ratings 0-100, and 255 for "never play again"
    src = tmp_path / "ydata-ymusic-user-artist-ratings-v1_0.txt"
    src.write_text("".join(f"{k % 13}\t{k % 37}\t{255 if k % 25 == 0 else 10 * (k % 11)}\n" for k in range(500)))
    kw = dict(layout=TextLayout(names=("user", "artist", "rating")), user_col="user", item_col="artist",
              time_col=None, rating_col="rating")  # fmt: skip
    _, _, summary = load_interactions(src, **kw)
    said = " ".join(str(summary).split())
    assert "the top rating 255 in 'rating' (20 rows) stands apart from the rest (next highest 100)" in said
    assert "--rating-max 100 --unrated 255" in said
    events, _, summary = load_interactions(src, **kw, rating_max=100.0, unrated=255.0)
    assert "stands apart" not in str(summary) and (events["type"] == "like").sum() > 20


def test_a_file_the_user_told_how_to_split_or_with_words_is_no_list_of_ids(tmp_path):
    # a padded table of many widths, read with --sep whitespace as the user asked: not refused as id lists
    path = tmp_path / "padded.txt"
    lines = ["user item rating ts"] + [f"u{k} i{k}{' ' * (k % 5)} {1 + k % 5} {1_600_000_000 + k}" for k in range(30)]
    path.write_text("\n".join(lines) + "\n")
    events, _, _ = load_interactions(
        path, layout=TextLayout.from_options("whitespace", None, None), user_col="user", item_col="item", time_col=None
    )
    assert len(events) == 30
    # lines of words between spaces, of many lengths, are no numbered ids: not called a basket file
    words = tmp_path / "words.txt"
    words.write_text("\n".join("alpha beta gamma delta"[: 6 + 3 * k] for k in range(6)) + "\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(words)
    assert "lists items and names no user" not in str(caught.value)


def test_kkbox_columns_are_suggested_and_a_given_user_column_is_used_for_them(tmp_path):
    """KKBox's train.csv names its users ``msno`` and its outcome ``target``: the error offered no
    option at all (it took the file for one person's history), and with ``--user-col msno`` given the
    missing item column's error still offered nothing, though ``song_id`` names the items."""
    train = tmp_path / "train.csv"
    train.write_text(
        "msno,song_id,source_system_tab,target\n"
        + "\n".join(f"FGtllVqz18RPiwJj/edr2gV78zirAiY/9SmYvia{k % 3}kCg=,s{k}=,discover,{k % 2}" for k in range(6))
        + "\n"
    )
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(train)
    message = " ".join(str(caught.value).split())
    assert "would import with --user-col msno --item-col song_id --rating-col target --no-time" in message
    assert "one person's history" not in message
    renamed = tmp_path / "plays.csv"
    renamed.write_text("pid,song_id,target\n" + "\n".join(f"p{k % 3},s{k},{k % 2}" for k in range(6)) + "\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(renamed, user_col="pid")
    assert "would import with --user-col pid --item-col song_id" in " ".join(str(caught.value).split())


def test_a_second_file_without_positives_is_not_warned_of_when_the_log_holds_them(tmp_path, monkeypatch):
    from ingest.__main__ import app

    # Yambda's flat layout: its listens first, then its dislikes as a second import of the same users
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    listens, dislikes = tmp_path / "listens.csv", tmp_path / "dislikes.csv"
    listens.write_text("uid,item_id,timestamp\n" + "".join(f"{k % 30},{k % 57},{T0 + 30 * k}\n" for k in range(600)))
    dislikes.write_text("uid,item_id,timestamp\n" + "".join(f"{k % 30},{k % 41},{T0 + 31 * k}\n" for k in range(60)))
    common = ["--user-col", "uid", "--time-col", "timestamp", "--time-unit", "s"]
    first = CliRunner().invoke(app, ["import", str(dislikes), *common, "--type", "not_interested"])
    assert first.exit_code == 0, first.output
    assert "no row of dislikes.csv is a play, a like or an add" in " ".join(first.output.split())
    shutil.rmtree(tmp_path / "data")
    assert CliRunner().invoke(app, ["import", str(listens), *common]).exit_code == 0
    second = CliRunner().invoke(app, ["import", str(dislikes), *common, "--type", "not_interested"])
    assert second.exit_code == 0, second.output
    assert "no row of dislikes.csv is a play, a like or an add" not in " ".join(second.output.split())


def test_an_origin_that_places_the_log_past_today_is_warned_with_one_that_fits(tmp_path, monkeypatch):
    from ingest.__main__ import app

    # Yambda's seconds from the start of its log: an origin a month ago dates most of its 300 days ahead
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "multi_event.csv"
    src.write_text("uid,item_id,timestamp\n" + "".join(f"{k % 30},{k % 57},{k * 43_200}\n" for k in range(600)))
    origin = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=30)).strftime("%Y-%m-%d")
    args = ["--user-col", "uid", "--time-col", "timestamp", "--time-unit", "s", "--time-origin", origin]
    done = CliRunner().invoke(app, ["import", str(src), *args])
    said = " ".join(done.output.split())
    assert "future_timestamp" in said
    assert f"--time-origin {origin} dates" in said and "after now: an origin of" in said


@pytest.mark.parametrize(
    ("header", "cells", "offered"),
    [
        # a click log whose ads say whom they aim at: the clicks are the outcome, no rating
        ("user_id,ad_id,click,target_audience,ts", "{u},{i},{c},teen,{t}", "--type-col click"),
        ("user_id,post_id,target_type,ts", "{u},{i},question,{t}", "--time-col ts"),
        # a column named target of page names is where a visit went, no outcome
        ("visitor_id,page_id,target,ts", "{u},{i},p{c},{t}", "--time-col ts"),
    ],
)
def test_a_target_that_is_no_outcome_is_not_offered_as_the_rating(tmp_path, header, cells, offered):
    """Only a column named ``target`` of numbers (KKBox's 0/1) is offered as the rating: a longer name
    with the word, or a column of names, says what the row aims at, and read as a rating it is refused."""
    log = tmp_path / "log.csv"
    rows = [cells.format(u=k % 7, i=k % 11, c=k % 2, t=T0 + 60 * k) for k in range(40)]
    log.write_text(header + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(log)
    message = " ".join(str(caught.value).split())
    assert "would import with" in message and offered in message
    assert "--rating-col" not in message


def test_counters_no_origin_places_are_said_to_be_in_another_unit(tmp_path, monkeypatch):
    from ingest.__main__ import app

    # milliseconds read as seconds: 60 days span 160 years, and the latest origin for the newest rows
    # would date the first before 1970, which the contract refuses: no origin to offer
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "ms.csv"
    src.write_text("uid,item_id,timestamp\n" + "".join(f"{k % 30},{k % 57},{k * 8_640_000}\n" for k in range(600)))
    args = ["--user-col", "uid", "--time-col", "timestamp", "--time-unit", "s", "--time-origin", "2023-01-01"]
    done = CliRunner().invoke(app, ["import", str(src), *args])
    said = " ".join(done.output.split())
    assert "future_timestamp" in said
    assert "or earlier places the whole log" not in said
    assert "they count in another unit than --time-unit s" in said


def test_rows_in_time_order_across_users_are_stamped_in_the_files_order(tmp_path, monkeypatch):
    """KKBox's train.csv: no times, its rows in time order across members. Each row is stamped a step after
    the one before, so the file's last rows, whoever's, are the newest: the hold-out KKBox's own split keeps."""
    from ingest.__main__ import app

    rows = [f"m{k % 4},s{k % 9},{k % 2}" for k in range(40)]
    path = tmp_path / "train.csv"
    path.write_text("msno,song_id,target\n" + "\n".join(rows) + "\n")
    now = pd.Timestamp("2026-06-01 12:00", tz="UTC")
    kw = dict(user_col="msno", item_col="song_id", rating_col="target", time_col=None, now=now)
    events, _, summary = load_interactions(path, rows_in_time_order=True, **kw)
    # back in the file's order by time: the rows' own order, whoever's they are
    by_time = events.sort_values("timestamp", kind="stable")
    assert by_time["user_id"].tolist() == [r.split(",")[0] for r in rows]
    assert by_time["item_id"].tolist() == [r.split(",")[1] for r in rows]
    from ingest.importer import UNTIMED_MIN_SPAN_DAYS

    ts = by_time["timestamp"]
    assert (ts < now).all() and ts.is_unique and ts.max() - ts.min() > pd.Timedelta(days=UNTIMED_MIN_SPAN_DAYS - 1)
    said = " ".join(" ".join(summary.read_notes).split())
    assert "stamped in the file's order across users (--rows-in-time-order)" in said
    assert "user by user" not in said  # the members' rows interleave
    # the same file re-imported the other way is the same events (the ids hash no stamp)
    untimed, _, _ = load_interactions(path, **kw)
    assert sorted(untimed["event_id"]) == sorted(events["event_id"])
    # a file sorted by user is no time order: said
    grouped = tmp_path / "grouped.csv"
    grouped.write_text("msno,song_id,target\n" + "\n".join(sorted(rows)) + "\n")
    _, _, summary = load_interactions(grouped, rows_in_time_order=True, **kw)
    assert "the rows come user by user, each user's rows together (4 users)" in " ".join(summary.read_notes)
    # users of one row each, and a file where a user's rows come apart, say nothing of the kind
    for lines in (["m1,s1,1", "m2,s1,0", "m3,s2,1"], ["m1,s1,1", "m1,s2,1", "m2,s1,0", "m3,s2,1", "m1,s3,0"]):
        (tmp_path / "few.csv").write_text("msno,song_id,target\n" + "\n".join(lines) + "\n")
        _, _, summary = load_interactions(tmp_path / "few.csv", rows_in_time_order=True, **kw)
        assert "user by user" not in " ".join(summary.read_notes)
    with pytest.raises(ImportFormatError, match="rows_in_time_order stamps a file without times"):
        load_interactions(path, rows_in_time_order=True, keep_file_order=True, **kw)
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    args = ["import", str(path), "--user-col", "msno", "--item-col", "song_id", "--rows-in-time-order"]
    timed = CliRunner().invoke(app, args)
    assert timed.exit_code == 2 and "--rows-in-time-order stamps rows without times" in timed.stderr
    both = CliRunner().invoke(app, [*args, "--no-time", "--file-order"])
    assert both.exit_code == 2 and "leave out --file-order" in both.stderr
    done = CliRunner().invoke(app, [*args, "--no-time", "--rating-col", "target"])
    assert done.exit_code == 0, done.output
