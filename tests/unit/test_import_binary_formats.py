"""Files that are no delimited text (a database, a data frame's binary format, an archive under a
text file's name), wide Unicode text, and text that is no table of rows: each read as what it is, or
refused with what it is and a way to import it that works when followed."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from ingest.import_files import TextLayout, read_table
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
OPTIONS = dict(user_col="userId", item_col="movieId", time_col="timestamp", time_unit="s", rating_col="rating", now=NOW)


def _ratings(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {"userId": rng.integers(1, 9, n), "movieId": rng.integers(1, 30, n), "rating": rng.integers(1, 6, n) * 1.0,
         "timestamp": 1_700_000_000 + np.arange(n) * 3_600}
    )  # fmt: skip


def _run_advice(advice: str, cwd) -> None:
    """Runs the one-line conversion an error gave, with this interpreter in place of the project's."""
    line = advice.split(".venv/bin/python -c ", 1)[1].split(", and import that", 1)[0]
    subprocess.run([sys.executable, "-c", line.strip('"')], cwd=cwd, check=True)


def test_a_sqlite_database_is_named_with_its_tables_and_the_line_that_exports_one(tmp_path):
    path = tmp_path / "ratings.db"
    with sqlite3.connect(path) as db:
        _ratings().to_sql("ratings", db, index=False)
    with pytest.raises(ImportFormatError, match=r"SQLite database \(its tables: ratings\)") as refused:
        load_interactions(path, **OPTIONS)
    _run_advice(str(refused.value), tmp_path)  # the advice, followed, gives a file the import reads
    events, _, _ = load_interactions(tmp_path / "ratings.parquet", **OPTIONS)
    assert len(events) == 60


@pytest.mark.parametrize(
    ("name", "write", "said"),
    [
        ("ratings.feather", lambda f, p: f.to_feather(p), "Arrow IPC"),
        ("ratings.orc", lambda f, p: f.to_orc(p), "ORC file"),
    ],
)
def test_arrow_and_orc_files_are_refused_with_a_conversion_that_works(tmp_path, name, write, said):
    path = tmp_path / name
    write(_ratings(), path)
    with pytest.raises(ImportFormatError, match=said) as refused:
        read_table(path, "interactions")
    _run_advice(str(refused.value), tmp_path)
    assert len(read_table(tmp_path / "ratings.parquet", "interactions").frame) == 60


def test_a_pickle_is_never_unpickled(tmp_path):
    path = tmp_path / "ratings.pkl"
    _ratings().to_pickle(path)
    with pytest.raises(ImportFormatError, match="Python pickle.*runs code the file carries"):
        read_table(path, "interactions")


def test_numpy_arrays_and_archives_under_a_text_name_are_said(tmp_path):
    np.savez(tmp_path / "ratings.npz", interactions=_ratings().to_numpy())
    with pytest.raises(ImportFormatError, match=r"NumPy arrays \(arrays interactions\)"):
        read_table(tmp_path / "ratings.npz", "interactions")
    text = _ratings().to_csv(index=False).encode()
    (tmp_path / "gz.csv").write_bytes(gzip.compress(text))
    with pytest.raises(ImportFormatError, match=r"compressed \(gz\) .* name it gz.csv.gz"):
        read_table(tmp_path / "gz.csv", "interactions")
    with zipfile.ZipFile(tmp_path / "two.csv", "w") as archive:
        archive.writestr("a.csv", text)
        archive.writestr("b.csv", text)
    with pytest.raises(ImportFormatError, match="zip archive of 2 files .* unzip it"):
        read_table(tmp_path / "two.csv", "interactions")
    with sqlite3.connect(tmp_path / "r.db") as db:
        _ratings().to_sql("ratings", db, index=False)
    (tmp_path / "r.db.gz").write_bytes(gzip.compress((tmp_path / "r.db").read_bytes()))
    with pytest.raises(
        ImportFormatError, match=r"gz-compressed: unpack it first \(gunzip -k r.db.gz\); r.db is a SQLite"
    ):
        read_table(tmp_path / "r.db.gz", "interactions")


def test_parquet_under_a_text_name_is_read_as_parquet_whole_and_in_chunks(tmp_path):
    path = tmp_path / "ratings.csv"
    _ratings().to_parquet(path)
    table = read_table(path, "interactions")
    assert len(table.frame) == 60 and any("read as parquet" in note for note in table.notes)
    events, _, _ = load_interactions(path, **OPTIONS)
    streamed = pd.concat(list(InteractionStream(path, ImportOptions(**OPTIONS), 25)), ignore_index=True)
    assert sorted(streamed["event_id"]) == sorted(events["event_id"]) and len(events) == 60


@pytest.mark.parametrize(
    ("encoding", "sep", "said"),
    [
        ("utf-16", "\t", "UTF-16"),
        ("utf-32", ",", "UTF-32"),
        ("utf-16-le", ",", "UTF-16-LE"),
        ("utf-16-be", ";", "UTF-16-BE"),
    ],
)
def test_wide_unicode_text_is_read_by_its_byte_order_mark_or_its_nul_bytes(tmp_path, encoding, sep, said):
    # Excel's "Unicode Text" is UTF-16 with a mark and tabs; PowerShell's redirections write it too
    frame = _ratings().assign(title=["Amélie"] * 60)
    path = tmp_path / "ratings.txt"
    path.write_bytes(frame.to_csv(index=False, sep=sep).encode(encoding))
    table = read_table(path, "interactions")
    assert list(table.frame.columns) == list(frame.columns) and (table.frame["title"] == "Amélie").all()
    assert any(f"encoding {said}" in note for note in table.notes)
    events, _, _ = load_interactions(path, **OPTIONS)
    streamed = pd.concat(list(InteractionStream(path, ImportOptions(**OPTIONS), 25)), ignore_index=True)
    assert sorted(streamed["event_id"]) == sorted(events["event_id"]) and len(events) == 60


def test_a_matrix_market_file_is_refused_with_a_recipe_that_imports_its_entries(tmp_path):
    frame = _ratings()
    lines = ["%%MatrixMarket matrix coordinate real general", "% written by a research script", "9 30 60"]
    lines += [f"{r.userId} {r.movieId} {r.rating}" for r in frame.itertuples()]
    path = tmp_path / "ratings.mtx"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFormatError, match="Matrix Market coordinate file") as refused:
        load_interactions(path, user_col="user", item_col="item", time_col=None, now=NOW)
    message = str(refused.value)
    assert "grep -v '^%' ratings.mtx | tail -n +2 > entries.txt" in message
    assert "--sep whitespace --names user,item,rating" in message
    entries = tmp_path / "entries.txt"
    entries.write_text("\n".join(lines[3:]) + "\n")  # what the grep and tail write
    events, _, _ = load_interactions(
        entries, layout=TextLayout.from_options("whitespace", "user,item,rating", None), user_col="user",
        item_col="item", rating_col="rating", time_col=None, now=NOW,
    )  # fmt: skip
    assert len(events) == 60
    pattern = tmp_path / "pattern.mtx"
    pattern.write_text("%%MatrixMarket matrix coordinate pattern general\n3 3 3\n1 1\n2 2\n3 3\n")
    with pytest.raises(ImportFormatError, match="--names user,item --user-col user --item-col item --no-time"):
        read_table(pattern, "interactions")


def test_libsvm_lines_are_features_not_users_and_items(tmp_path):
    path = tmp_path / "train.libsvm"
    path.write_text("".join(f"{k % 2} 1:{k} 7:0.5 19:1\n" for k in range(20)))
    with pytest.raises(ImportFormatError, match="LIBSVM's format"):
        read_table(path, "interactions")
    told = tmp_path / "ffm.txt"  # LIBFFM's field:feature:value, even when told how to split it
    told.write_text("".join(f"1 0:{k}:1 1:{k + 40}:1\n" for k in range(20)))
    with pytest.raises(ImportFormatError, match="LIBSVM's format"):
        layout = TextLayout.from_options("space", "label,user,item", None)
        load_interactions(told, layout=layout, user_col="user", item_col="item", time_col=None, now=NOW)


def _follow(advice: str, cwd) -> None:
    """Runs the shell line an error gave (``… > file``)."""
    line = advice.split("e.g. ", 1)[1].split(", and import that", 1)[0]
    subprocess.run(["bash", "-c", line], cwd=cwd, check=True)


def test_comment_lines_above_the_rows_are_refused_with_the_line_that_takes_them_off(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("# ratings export\n\n# generated 2024-01-01\n" + _ratings().to_csv(index=False))
    with pytest.raises(ImportFormatError, match="opens with 2 comment lines") as refused:
        load_interactions(path, **OPTIONS)
    assert "tail -n +4 ratings.csv > ratings-rows.csv" in str(refused.value)  # the blank line taken off too
    _follow(str(refused.value), tmp_path)
    assert len(load_interactions(tmp_path / "ratings-rows.csv", **OPTIONS)[0]) == 60
    # SNAP's graphs: the last comment line names the columns, offered as --names; gzipped, read through gzip
    snap = tmp_path / "soc-Epinions1.txt.gz"
    edges = "".join(f"{k % 7}\t{k % 11}\n" for k in range(40))
    snap.write_bytes(
        gzip.compress(f"# Directed graph: soc-Epinions1.txt\n# Nodes: 7\n# FromNodeId\tToNodeId\n{edges}".encode())
    )
    with pytest.raises(ImportFormatError, match="--names FromNodeId,ToNodeId") as refused:
        read_table(snap, "interactions")
    assert "gzip -dc soc-Epinions1.txt.gz | tail -n +4 > soc-Epinions1-rows.txt" in str(refused.value)
    # a header that opens with '#' is a header, read as one
    hashed = tmp_path / "hashed.csv"
    hashed.write_text("#user,item\n" + "".join(f"u{k % 3},i{k}\n" for k in range(10)))
    assert list(read_table(hashed, "interactions").frame.columns) == ["#user", "item"]


def test_excels_separator_line_is_refused_with_the_line_that_takes_it_off(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("sep=;\n" + _ratings().to_csv(index=False, sep=";"))
    with pytest.raises(ImportFormatError, match="Excel's note of its separator") as refused:
        load_interactions(path, **OPTIONS)
    _follow(str(refused.value), tmp_path)
    assert len(load_interactions(tmp_path / "ratings-rows.csv", **OPTIONS)[0]) == 60


@pytest.mark.parametrize(
    ("data", "shape", "options"),
    [
        ({f"u{k}": [f"i{k % 5}", f"i{k % 7}"] for k in range(12)}, "a list of ids per key", {}),
        ({f"u{k}": {f"i{k % 5}": 4, f"i{k % 7}": 2} for k in range(12)}, "an object of values per key",
         {"rating_col": "rating"}),
        ({f"u{k}": [{"song": f"s{k % 5}", "at": 1_700_000_000 + k}] for k in range(12)}, "a list of records per key",
         {"item_col": "song", "time_col": "at", "time_unit": "s"}),
    ],
)  # fmt: skip
def test_a_json_object_keyed_by_users_is_refused_with_a_line_that_writes_its_rows(tmp_path, data, shape, options):
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data, indent=2))  # pretty-printed or not, it is one object
    with pytest.raises(
        ImportFormatError, match=f"one JSON object keyed by ids \\(12 keys such as 'u0', {shape}\\)"
    ) as refused:
        load_interactions(path, now=NOW)
    _run_advice(str(refused.value), tmp_path)
    options = {"user_col": "user", "item_col": "item", "time_col": None, **options}
    events, _, _ = load_interactions(tmp_path / "train-rows.csv", now=NOW, **options)
    assert len(events) == sum(len(v) for v in data.values())
    with pytest.raises(ImportFormatError, match="one JSON object keyed by ids"):  # in chunks alike
        next(iter(InteractionStream(path, ImportOptions(now=NOW), 5)))
    catalogue = tmp_path / "items.json"  # an items file keyed by its ids: a row per key
    catalogue.write_text(json.dumps({f"i{k}": {"title": f"T{k}"} for k in range(12)}))
    with pytest.raises(ImportFormatError, match="rename_axis\\('item_id'\\)"):
        read_table(catalogue, "items")
    wrapper = tmp_path / "wrapped.json"  # an API's wrapper has a few keys: said apart
    wrapper.write_text(json.dumps({"meta": {"n": 2}, "data": [{"u": 1, "i": 2}, {"u": 2, "i": 3}]}))
    assert len(read_table(wrapper, "interactions").frame) == 1


def _printed(frame: pd.DataFrame, kind: str) -> str:
    cells = frame.astype(str)
    widths = [max(len(c), cells[c].str.len().max()) for c in cells]
    if kind == "psql":
        head = " " + " | ".join(c.center(w) for c, w in zip(cells, widths, strict=True))
        rows = [" " + " | ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells.to_numpy()]
        return "\n".join([head, "-+-".join("-" * w for w in widths), *rows, f"({len(rows)} rows)", ""]) + "\n"
    if kind == "mysql":
        border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        head = "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"
        rows = ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells.to_numpy()]
        return "\n".join([border, head, border, *rows, border, f"{len(rows)} rows in set (0.01 sec)"]) + "\n"
    rows = ["| " + " | ".join(r) + " |" for r in cells.to_numpy()]
    return "\n".join(["| " + " | ".join(cells) + " |", "|" + "|".join("---" for _ in widths) + "|", *rows]) + "\n"


@pytest.mark.parametrize("kind", ["psql", "mysql", "markdown"])
def test_a_printed_table_is_refused_with_the_line_that_takes_its_rules_off(tmp_path, kind):
    path = tmp_path / "result.txt"
    path.write_text(_printed(_ratings(), kind))
    with pytest.raises(ImportFormatError, match="is a printed table") as refused:
        load_interactions(path, **OPTIONS)
    _follow(str(refused.value), tmp_path)
    events, _, summary = load_interactions(
        tmp_path / "rows.psv", layout=TextLayout.from_options("|", None, None), **OPTIONS
    )
    assert len(events) == 60 and not any(summary.problems.values())  # no rule or footer read as a row


def test_a_headers_padded_names_are_read_without_their_spaces(tmp_path):
    path = tmp_path / "ratings.csv"
    frame = _ratings()
    path.write_text(
        " , ".join(frame.columns) + "\n" + "".join(" , ".join(map(str, r)) + "\n" for r in frame.to_numpy())
    )
    table = read_table(path, "interactions")
    assert list(table.frame.columns) == list(frame.columns) and any("spaces around them" in n for n in table.notes)
    events, _, _ = load_interactions(path, **OPTIONS)
    streamed = pd.concat(list(InteractionStream(path, ImportOptions(**OPTIONS), 25)), ignore_index=True)
    assert len(events) == 60 and sorted(streamed["event_id"]) == sorted(events["event_id"])


def test_the_reviews_edge_cases_each_read_or_refused_as_what_they_are(tmp_path):
    text = _ratings().to_csv(index=False)
    # a byte-order mark before Excel's sep= line or a comment line hides neither
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfsep=,\n" + text.encode())
    with pytest.raises(ImportFormatError, match="Excel's note of its separator"):
        read_table(tmp_path / "bom.csv", "interactions")
    # KONECT's "% 6 3 4" counts, it names no columns
    (tmp_path / "out.konect").write_text(
        "% bip weighted\n% 6 3 4\n" + "".join(f"{k % 3} {k % 4} 5\n" for k in range(9))
    )
    with pytest.raises(ImportFormatError, match="tail -n \\+3 out.konect") as refused:
        read_table(tmp_path / "out.konect", "interactions")
    assert "--names" not in str(refused.value)
    # a gzipped Matrix Market file: the advice decompresses first, and works
    entries = "".join(f"{r.userId} {r.movieId} {r.rating}\n" for r in _ratings().itertuples())
    (tmp_path / "m.mtx.gz").write_bytes(
        gzip.compress(f"%%MatrixMarket matrix coordinate real general\n9 30 60\n{entries}".encode())
    )
    with pytest.raises(ImportFormatError) as refused:
        read_table(tmp_path / "m.mtx.gz", "interactions")
    line = str(refused.value).split("e.g. ", 1)[1].split(", and import that", 1)[0]
    assert line.startswith("gzip -dc m.mtx.gz | grep -v '^%' | tail -n +2")
    subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True)
    assert (tmp_path / "entries.txt").read_text() == entries
    # text whose first field happens to open with a signature is text
    for lead in ("BZh", "PAR1"):
        (tmp_path / "lead.csv").write_text(f"{lead}user,item\n" + "".join(f"u{k},i{k}\n" for k in range(9)))
        assert list(read_table(tmp_path / "lead.csv", "interactions").frame.columns) == [f"{lead}user", "item"]
    # a pandas to_json() table is said as one written column by column, not keyed by users
    pd.DataFrame(np.arange(40).reshape(4, 10), columns=[f"c{k}" for k in range(10)]).to_json(tmp_path / "cols.json")
    with pytest.raises(ImportFormatError, match="a table written column by column"):
        read_table(tmp_path / "cols.json", "interactions")
    # a SQLite database names the table that holds interactions, quoted, never SQLite's own
    with sqlite3.connect(tmp_path / "app.db") as db:
        db.execute("CREATE TABLE aaa_meta (k TEXT)")
        _ratings().to_sql("order", db, index=False)
    with pytest.raises(ImportFormatError, match=r"its tables: aaa_meta, order\)") as refused:
        read_table(tmp_path / "app.db", "interactions")
    _run_advice(str(refused.value), tmp_path)
    assert len(read_table(tmp_path / "app.parquet", "interactions").frame) == 60
    # a NumPy array named as CSV: the advice writes beside it, never over it
    with open(tmp_path / "n.csv", "wb") as f:
        np.save(f, _ratings().to_numpy())
    with pytest.raises(ImportFormatError, match="to_csv\\('n-table.csv'"):
        read_table(tmp_path / "n.csv", "interactions")


def test_lines_quoted_whole_are_refused_with_the_line_that_unquotes_them(tmp_path):
    frame = _ratings()
    path = tmp_path / "ratings.csv"
    path.write_text(
        f'"{",".join(frame.columns)}"\r\n' + "".join(f'"{",".join(map(str, r))}"\r\n' for r in frame.to_numpy())
    )
    with pytest.raises(ImportFormatError, match="is quoted whole") as refused:
        load_interactions(path, **OPTIONS)
    _follow(str(refused.value), tmp_path)
    assert len(load_interactions(tmp_path / "ratings-rows.csv", **OPTIONS)[0]) == 60


def test_lines_of_json_arrays_are_named_by_position(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps([f"u{k % 4}", f"i{k % 9}", 1_700_000_000 + k]) + "\n" for k in range(30)))
    options = dict(user_col="0", item_col="1", time_col="2", time_unit="s", now=NOW)
    events, _, _ = load_interactions(path, **options)
    streamed = pd.concat(list(InteractionStream(path, ImportOptions(**options), 7)), ignore_index=True)
    assert len(events) == 30 and sorted(streamed["event_id"]) == sorted(events["event_id"])


def test_comment_lines_of_a_utf16_file_are_taken_off_through_iconv(tmp_path):
    path = tmp_path / "export.txt"
    path.write_bytes(("# an export\n# of ratings\n" + _ratings().to_csv(index=False)).encode("utf-16"))
    with pytest.raises(ImportFormatError, match="iconv -f UTF-16 -t UTF-8 export.txt \\| tail -n \\+3") as refused:
        read_table(path, "interactions")
    _follow(str(refused.value), tmp_path)  # a tail of the UTF-16 bytes would cut a character in two
    assert len(load_interactions(tmp_path / "export-rows.txt", **OPTIONS)[0]) == 60
