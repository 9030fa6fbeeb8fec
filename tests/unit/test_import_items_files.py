"""Several items files (``--items a --items b``) join into one catalogue on the item id: HetRec's titles
beside its long-format genres, Music4All-Onion's three files keyed by ``id``. Each item takes each field
from the first file that knows it; what the files say is said per file, and where they disagree, counted."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.import_items import parse_item_columns
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions
from setlist.lineage import imports

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def _log(tmp_path, items=("1", "2", "3", "4")):
    path = tmp_path / "user_ratedmovies.dat"
    rows = [(f"u{n % 3}", item, 1_200_000_000 + 3600 * n) for n, item in enumerate(items * 3)]
    pd.DataFrame(rows, columns=["userID", "movieID", "timestamp"]).to_csv(path, sep="\t", index=False)
    return path


def _hetrec(tmp_path):
    """movies.dat keyed by ``id`` with titles and years; movie_genres.dat keyed by ``movieID``, a row
    per genre; the genres file knows a film the titles file lacks (4) and lacks one it has (3)."""
    movies = tmp_path / "movies.dat"
    movies.write_text("id\ttitle\tyear\n1\tToy Story\t1995\n2\tJumanji\t1995\n3\tHeat\t1995\n")
    genres = tmp_path / "movie_genres.dat"
    genres.write_text("movieID\tgenre\n1\tAnimation\n1\tComedy\n2\tAdventure\n4\tDrama\n")
    return movies, genres


def _load(tmp_path, files, **kw):
    options = {"user_col": "userID", "item_col": "movieID", "time_unit": "s", "items": files, **kw}
    return load_interactions(_log(tmp_path), now=NOW, **options)


def test_titles_and_long_format_genres_join_on_the_item_id(tmp_path):
    movies, genres = _hetrec(tmp_path)
    _, items, summary = _load(tmp_path, [movies, genres], item_id_col="id")
    by = items.set_index("item_id")
    assert by.loc["1", "title"] == "Toy Story" and by.loc["1", "genres"] == "animation|comedy"
    assert by.loc["1", "genre"] == "animation" and by.loc["1", "release_date"].year == 1995
    assert by.loc["3", "title"] == "Heat" and by.loc["3", "genre"] == "unknown"  # in the titles file alone
    assert by.loc["4", "genre"] == "drama" and pd.isna(by.loc["4", "title"])  # in the genres file alone
    text = str(summary)
    # each file keyed its own way, said per file; the join said once
    assert "movie_genres.dat: items keyed by 'movieID', named as the log's" in text
    assert (
        "movies.dat + movie_genres.dat: joined on the item id: 4 items in all (movies.dat 3, movie_genres.dat 3)"
        in (text)
    )
    assert "items files: 4 items described; every interacted item is in them" in text
    # a field one file lacks and another gives is not reported missing
    assert "no genre column recognized" not in text and "no title column recognized" not in text


def test_a_field_no_file_gives_is_still_said(tmp_path):
    movies, _ = _hetrec(tmp_path)
    years = tmp_path / "years.csv"
    years.write_text("movieID,year\n1,1995\n2,1995\n")
    _, items, summary = _load(tmp_path, [movies, years], item_id_col="id")
    assert (items["genre"] == "unknown").all()
    assert "movies.dat: no genre column recognized" in str(summary)


def test_the_earlier_file_wins_where_files_disagree_and_the_disagreement_is_counted(tmp_path):
    first = tmp_path / "first.csv"
    first.write_text("movieID,title,genre\n1,Toy Story,animation\n2,Jumanji,\n")
    second = tmp_path / "second.csv"
    second.write_text("movieID,title,genre\n1,Toy Story (1995),comedy\n2,Jumanji,adventure\n")
    _, items, summary = _load(tmp_path, [first, second])
    by = items.set_index("item_id")
    assert by.loc["1", "title"] == "Toy Story" and by.loc["1", "genre"] == "animation"
    assert by.loc["2", "genre"] == "adventure"  # the first file's empty genre is filled from the second
    text = str(summary)
    assert "the title of 1 item differs in second.csv from an earlier file's: the earlier file's kept" in text
    assert "the genre of 1 item differs in second.csv" in text
    # the other order keeps the other file's
    _, swapped, _ = _load(tmp_path, [second, first])
    assert swapped.set_index("item_id").loc["1", "title"] == "Toy Story (1995)"


def test_items_cols_reads_each_role_in_the_file_that_has_its_column(tmp_path):
    info = tmp_path / "id_information.csv"
    info.write_text("id\tsong\tartist\n1\tOne\tA\n2\tTwo\tB\n3\tThree\tC\n4\tFour\tD\n")
    tags = tmp_path / "id_tags.csv"
    tags.write_text("id\ttags\n1\trock,pop\n2\tjazz\n")
    columns = parse_item_columns("title=song,genre=tags")
    _, items, _ = _load(tmp_path, [info, tags], item_id_col="id", item_columns=columns)
    by = items.set_index("item_id")
    assert by.loc["1", "title"] == "One" and by.loc["1", "artist"] == "A" and by.loc["1", "genre"] == "rock"
    with pytest.raises(ImportFormatError, match=r"no items file has such a column \(id_information.csv: id, song"):
        _load(tmp_path, [info, tags], item_id_col="id", item_columns=parse_item_columns("genre=style"))


def test_files_that_cannot_be_joined_are_refused_in_words(tmp_path):
    from ingest.import_files import TextLayout

    movies, genres = _hetrec(tmp_path)
    with pytest.raises(ImportFormatError, match="--items names movies.dat twice"):
        _load(tmp_path, [movies, genres, movies], item_id_col="id")
    headerless = TextLayout.from_options(None, "id,title,year", None, prefix="items-")
    with pytest.raises(ImportFormatError, match="--items-names describes one headerless items file"):
        _load(tmp_path, [movies, genres], item_id_col="id", items_layout=headerless)
    stray = tmp_path / "stray.csv"
    stray.write_text("code,genre\nx,drama\n")
    with pytest.raises(ImportFormatError, match="stray.csv"):  # no key column: the file is named
        _load(tmp_path, [movies, stray], item_id_col="id")


def test_several_items_files_read_the_same_in_chunks(tmp_path):
    movies, genres = _hetrec(tmp_path)
    options = {"user_col": "userID", "item_col": "movieID", "time_unit": "s", "items": (movies, genres)}
    source = _log(tmp_path)
    _, whole, summary = load_interactions(source, now=NOW, item_id_col="id", **options)
    stream = InteractionStream(source, ImportOptions(now=NOW, item_id_col="id", **options), chunk_rows=4)
    list(stream)
    pd.testing.assert_frame_equal(stream.item_frame.reset_index(drop=True), whole.reset_index(drop=True))
    assert stream.summary is not None and stream.summary.read_notes == summary.read_notes


def test_the_command_takes_several_items_files_and_records_them(tmp_path, monkeypatch):
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    movies, genres = _hetrec(tmp_path)
    args = ["import", str(_log(tmp_path)), "--user-col", "userID", "--item-col", "movieID", "--time-unit", "s"]
    result = CliRunner().invoke(app, [*args, "--items", str(movies), "--items", str(genres), "--item-id-col", "id"])
    assert result.exit_code == 0, result.output
    catalogue = pd.read_parquet(tmp_path / "data" / "catalog" / "items.parquet").set_index("item_id")
    assert catalogue.loc["1", "title"] == "Toy Story" and catalogue.loc["1", "genre"] == "animation"
    assert [r["items_file"] for r in imports(tmp_path / "data" / "lineage")] == ["movies.dat + movie_genres.dat"]
