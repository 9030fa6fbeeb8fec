"""A file too big to hold whole is imported in chunks (``InteractionStream``): the events, the summary
and the catalogue must be exactly what an import at once gives, whatever the chunk size and the
file's layout, since a user cannot tell (and must not need to know) which way their file went."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingest.import_files import ImportFormatError, TableStream, TextLayout
from ingest.importer import ImportOptions, InteractionStream, load_interactions
from ingest.intake import READ_NOTE
from ingest.sparse import write_fixture
from setlist.lineage import imports

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def _both(source: Path, chunk_rows: int, **options):
    """(events, items, summary) at once and in chunks of ``chunk_rows``, with the chunks counted."""
    whole = load_interactions(source, now=NOW, **options)
    stream = InteractionStream(source, ImportOptions(now=NOW, **options), chunk_rows)
    parts = list(stream)
    assert stream.summary is not None
    # each chunk is a stretch of time, in time order, and the chunks follow one another
    times = [p["timestamp"].dropna() for p in parts]
    assert all(t.is_monotonic_increasing for t in times)
    spans = [(t.iloc[0], t.iloc[-1]) for t in times if len(t)]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    return whole, (pd.concat(parts, ignore_index=True), stream.item_frame, stream.summary), len(parts)


def _same_events(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b)
    a = a.sort_values("event_id", kind="stable").reset_index(drop=True)
    b = b.sort_values("event_id", kind="stable").reset_index(drop=True)
    for frame in (a, b):  # chunks without an unread cell have no such column: NaN where they were joined
        if READ_NOTE in frame:
            frame[READ_NOTE] = frame[READ_NOTE].astype(object).where(frame[READ_NOTE].notna(), None)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def _same(whole, streamed) -> None:
    events, items, summary = whole
    s_events, s_items, s_summary = streamed
    _same_events(events, s_events)
    if items is None:
        assert s_items is None
    else:
        pd.testing.assert_frame_equal(items.reset_index(drop=True), s_items.reset_index(drop=True))
    assert str(summary) == str(s_summary)
    assert summary.malformed_lines == s_summary.malformed_lines
    assert summary.described_items == s_summary.described_items


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fx")
    write_fixture(out, users=60, items=300, ratings=3_000, seed=3)
    return out


MOVIELENS = dict(user_col="userId", item_col="movieId", time_col="timestamp", time_unit="s", rating_col="rating")


@pytest.mark.parametrize("chunk_rows", [290, 1_000, 10_000])
def test_the_real_shaped_fixture_gives_the_same_events_in_any_chunks(fixture_dir, chunk_rows):
    whole, streamed, chunks = _both(
        fixture_dir / "ratings.csv", chunk_rows, items=fixture_dir / "movies.csv", item_id_col="movieId", **MOVIELENS
    )
    assert chunks == -(-len(whole[0]) // chunk_rows)
    _same(whole, streamed)
    # sessions cross chunk boundaries: a user's session keeps one id however the file was cut
    assert streamed[0]["session_id"].nunique() == whole[0]["session_id"].nunique() < len(whole[0])


def test_the_rating_scale_is_the_whole_files_not_each_chunks(tmp_path):
    # the top rating (10) is in the last chunk only: scaled per chunk, the first chunk's 5s would be likes
    rows = [(1, k, 5, 1_600_000_000 + k) for k in range(6)] + [(2, 9, 10, 1_600_000_100)]
    path = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(path, index=False)
    whole, streamed, chunks = _both(path, 1, **MOVIELENS)
    assert chunks == 7
    _same(whole, streamed)
    assert (streamed[0]["type"] == "like").sum() == 1


def test_one_type_for_every_row_and_a_log_of_searches_read_the_same_in_chunks(tmp_path):
    stars = tmp_path / "stars.csv"
    pd.DataFrame(
        {"user": [f"u{k % 7}" for k in range(60)], "repo": [f"r{k % 11}" for k in range(60)],
         "ts": [1_600_000_000 + 60 * k for k in range(60)]}
    ).to_csv(stars, index=False)  # fmt: skip
    whole, streamed, _ = _both(
        stars, 7, user_col="user", item_col="repo", time_col="ts", time_unit="s", event_type="like"
    )
    _same(whole, streamed)
    assert set(streamed[0]["type"]) == {"like"}
    searches = tmp_path / "searches.csv"
    pd.DataFrame(
        {"user": [f"u{k % 5}" for k in range(40)], "q": [f"song {k}" if k % 9 else "" for k in range(40)],
         "ts": [1_600_000_000 + 60 * k for k in range(40)]}
    ).to_csv(searches, index=False)  # fmt: skip
    whole, streamed, _ = _both(
        searches, 6, user_col="user", item_col="item", time_col="ts", time_unit="s", event_type="search", query_col="q"
    )
    _same(whole, streamed)
    assert set(streamed[0]["type"]) == {"search"} and set(streamed[0]["item_id"]) == {""}


def test_untimed_counted_plays_and_malformed_lines_in_chunks(tmp_path):
    rng = np.random.default_rng(0)
    lines = [f"u{rng.integers(20)}\ts{rng.integers(50)}\t{rng.integers(1, 30)}" for _ in range(400)]
    lines[5] = "u1\ts2\t3\textra"  # read past and named, by its line number in the file
    lines[250] = "u3\ts4\t5\t6\t7"
    path = tmp_path / "triplets.txt"
    path.write_text("\n".join(lines) + "\n")
    options = dict(
        user_col="user",
        item_col="song",
        time_col=None,
        count_col="plays",
        layout=TextLayout(names=("user", "song", "plays")),
    )
    whole, streamed, chunks = _both(path, 64, **options)
    assert chunks > 3
    _same(whole, streamed)
    assert streamed[2].malformed_lines == [6, 251]


def test_typed_rows_searches_consent_and_bad_rows_in_chunks(tmp_path):
    n = 300
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "user": [f"u{k % 17}" if k % 41 else "" for k in range(n)],
            "item": [f"i{rng.integers(40)}" if k % 9 else "" for k in range(n)],
            "type": rng.choice(["play", "skip", "search", "like", "bogus"], n),
            "ts": [f"2023-05-0{1 + k % 9}T10:{k % 60:02d}:00Z" if k % 53 else "soon" for k in range(n)],
            "q": ["rock" if k % 2 else "" for k in range(n)],
            "ok": rng.choice(["yes", "no", "maybe", ""], n),
        }
    )
    path = tmp_path / "log.csv.gz"
    with gzip.open(path, "wt") as f:
        frame.to_csv(f, index=False)
    options = dict(
        user_col="user",
        item_col="item",
        time_col="ts",
        type_col="type",
        query_col="q",
        consent_col="ok",
    )
    whole, streamed, _ = _both(path, 50, **options)
    _same(whole, streamed)
    problems = streamed[2].problems
    assert problems["empty user id"] > 0 and problems["missing or unparseable timestamp"] > 0
    assert problems["empty or unknown type"] > 0 and problems["bad consent value"] > 0


def test_an_item_headed_file_carries_its_item_across_chunks(tmp_path):
    lines = []
    for item in (1, 2, 3):
        lines.append(f"{item}:")
        lines.extend(f"{100 + k},{1 + (k + item) % 5},2005-09-{1 + k:02d}" for k in range(11))
    path = tmp_path / "combined_data_1.txt"
    path.write_text("\n".join(lines) + "\n")
    options = dict(
        user_col="user",
        item_col="item_id",
        time_col="date",
        rating_col="rating",
        layout=TextLayout(names=("user", "rating", "date")),
    )
    whole, streamed, _ = _both(path, 5, **options)  # 5 rows never align with the 12-line items
    _same(whole, streamed)
    assert streamed[0].groupby("item_id").size().to_dict() == {"1": 11, "2": 11, "3": 11}


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_json_lines_and_parquet_stream_with_only_the_columns_read(tmp_path, suffix):
    frame = pd.DataFrame(
        {
            "reviewer": [f"r{k % 13}" for k in range(120)],
            "asin": [f"B{k % 29:04d}" for k in range(120)],
            "overall": [1 + k % 5 for k in range(120)],
            "unixReviewTime": [1_400_000_000 + 3_600 * k for k in range(120)],
            "text": ["long review text " * 20] * 120,
        }
    )
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    options = dict(user_col="reviewer", item_col="asin", time_col="unixReviewTime", time_unit="s", rating_col="overall")
    whole, streamed, chunks = _both(path, 25, **options)
    assert chunks == 5
    _same(whole, streamed)


def test_a_json_array_does_not_stream_and_says_what_to_do(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"u": "1", "i": "2", "t": 1400000000}]')
    with pytest.raises(ImportFormatError, match="JSON lines"):
        list(TableStream(path, "interactions", None, None, 10))


def test_a_missing_column_is_named_on_the_first_chunk(fixture_dir):
    stream = InteractionStream(
        fixture_dir / "ratings.csv", ImportOptions(user_col="user", item_col="movieId", time_col=None), 100
    )
    with pytest.raises(ImportFormatError, match="user column 'user' not found.*userId"):
        next(iter(stream))


def _cli_import(data: Path, source: Path, monkeypatch, **env: str):
    from typer.testing import CliRunner

    from ingest.__main__ import app
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(data))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()  # each import reads its own environment
    args = ["import", str(source), "--user-col", "userId", "--item-col", "movieId", "--time-col", "timestamp"]
    result = CliRunner().invoke(app, [*args, "--time-unit", "s", "--rating-col", "rating"])
    for name in env:
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    return result


def test_the_command_imports_in_chunks_what_it_imports_at_once(fixture_dir, tmp_path, monkeypatch):
    from setlist.eventlog import EventLog

    source = fixture_dir / "ratings.csv"
    at_once = _cli_import(tmp_path / "a", source, monkeypatch)
    chunked = _cli_import(tmp_path / "b", source, monkeypatch, SETLIST_IMPORT_CHUNK_ROWS="700")
    assert at_once.exit_code == 0, at_once.output
    assert chunked.exit_code == 0, chunked.output
    assert "in chunks of about 700 rows (SETLIST_IMPORT_CHUNK_ROWS)" in chunked.output
    assert "chunk 5 of 5:" in chunked.output and "3,000 accepted so far" in chunked.output
    a = EventLog(tmp_path / "a" / "events")
    b = EventLog(tmp_path / "b" / "events")
    # chunks are stretches of time: each day is written once, a day a chunk ends in twice
    assert len(a.files()) <= len(b.files()) <= len(a.files()) + 4
    ea, eb = a.read(), b.read()
    assert sorted(ea["event_id"]) == sorted(eb["event_id"])
    assert ea.set_index("event_id")["session_id"].equals(eb.set_index("event_id")["session_id"].loc[ea["event_id"]])
    # importing it again, in chunks: every row is a duplicate, across chunks and of the earlier import
    again = _cli_import(tmp_path / "b", source, monkeypatch, SETLIST_IMPORT_CHUNK_ROWS="700")
    assert again.exit_code == 0 and "were imported before" in again.output
    assert len(EventLog(tmp_path / "b" / "events").read()) == len(eb)
    # counted as in the log already, not quarantined: the second record adds up as the first
    first, second = imports(tmp_path / "b" / "lineage")
    assert (second["accepted"], second["quarantined"], second["already_logged"]) == (0, 0, first["accepted"])
    assert "in the event log already" in again.output


def test_a_file_too_big_to_import_at_once_goes_in_chunks_by_itself(fixture_dir, tmp_path, monkeypatch):
    import ingest.__main__ as cli
    import setlist.memory as memory
    from ingest.import_files import estimate_rows

    source = fixture_dir / "ratings.csv"
    rows = estimate_rows(source)
    # room for the chunked import's state and a chunk of 500 rows, not for the whole file at once
    monkeypatch.setattr(cli, "MIN_CHUNK_ROWS", 500)
    monkeypatch.setattr(memory, "available_memory", lambda: int(rows * 1_000 / 0.9))
    result = _cli_import(tmp_path / "d", source, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "more than the memory available holds at once" in result.output
    assert "accepted into the event log" in result.output
    # 1,000 B a row of room, 400 held per row: chunks of 600 / 1,400 of the rows
    assert f"in chunks of about {int(rows * 600 / 1_400):,} rows" in result.output


def test_rows_of_one_instant_share_a_chunk_and_an_empty_file_is_named(tmp_path):
    # 40 of 41 rows at one instant cannot be cut in time: the stretch that holds them holds the last
    # row too, and the four stretches before it are left empty (and yield nothing)
    rows = [(k % 7, k, 1 + k % 5, 1_500_000_000) for k in range(40)] + [(1, 99, 3, 1_600_000_000)]
    path = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(path, index=False)
    whole, streamed, chunks = _both(path, 10, **MOVIELENS)
    _same(whole, streamed)
    assert chunks == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("userId,movieId,rating,timestamp\n")
    for read in (
        lambda: load_interactions(empty, **MOVIELENS),
        lambda: list(InteractionStream(empty, ImportOptions(**MOVIELENS), 10)),
    ):
        with pytest.raises(ImportFormatError, match="holds no rows to import"):
            read()


def test_files_that_cannot_stream_import_at_once_or_are_refused_with_what_to_do(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import setlist.memory as memory
    from ingest.__main__ import app
    from ingest.import_files import streams

    rows = [{"u": f"u{k % 5}", "i": f"i{k}", "t": 1_400_000_000 + k} for k in range(30)]
    lines, array, dicts = tmp_path / "l.json", tmp_path / "a.json", tmp_path / "d.json"
    lines.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    array.write_text(json.dumps(rows))
    dicts.write_text("\n".join(repr(r) for r in rows) + "\n")  # Python dicts, as Steam's files are
    assert streams(lines) and not streams(array) and not streams(dicts)
    assert streams(tmp_path / "r.csv")  # text streams, whatever it holds

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_IMPORT_CHUNK_ROWS", "7")
    args = ["--user-col", "u", "--item-col", "i", "--time-col", "t", "--time-unit", "s"]
    forced = CliRunner().invoke(app, ["import", str(dicts), *args])
    assert forced.exit_code == 0, forced.output  # in chunks where it can be, at once where not
    assert "in chunks" not in forced.output and "accepted into the event log" in forced.output
    monkeypatch.delenv("SETLIST_IMPORT_CHUNK_ROWS")
    monkeypatch.setattr(memory, "available_memory", lambda: 1_000)
    refused = CliRunner().invoke(app, ["import", str(dicts), *args])
    assert refused.exit_code == 2 and "Convert it to JSON lines" in refused.stderr


def test_new_time_and_context_options_read_the_same_in_chunks(tmp_path):
    # zone, device and locale read, a session column named, and an unread country column said: alike both ways
    rows = [
        (f"u{k % 3}", f"i{k % 5}", f"2021-03-{1 + k % 27:02d} {k % 24:02d}:30:00", ["Mobile", "tv", "fridge"][k % 3],
         ["DE", "en_US", "xx-yy-zz"][k % 3], f"o{k // 4}", "NL")
        for k in range(40)
    ]  # fmt: skip
    path = tmp_path / "log.csv"
    columns = ["user", "item", "when", "device", "locale", "order", "country"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    options = dict(
        user_col="user", item_col="item", time_col="when", time_zone="Europe/Paris", device_col="device",
        locale_col="locale", session_col="order",
    )  # fmt: skip
    whole, streamed, chunks = _both(path, 7, **options)
    assert chunks > 1
    _same(whole, streamed)
    said = " ".join(str(streamed[2]).split())
    assert "without a zone read in Europe/Paris" in said and "'fridge'" in said
    # the locale column is read, the country column is not: said once, the same way in chunks
    unread, streamed_unread, _ = _both(path, 7, user_col="user", item_col="item", time_col="when")
    _same(unread, streamed_unread)
    assert "column 'locale' is not read" in " ".join(str(streamed_unread[2]).split())


def test_repeated_headers_and_unread_cells_read_the_same_in_chunks(tmp_path):
    # files joined with their headers, some times and ratings unreadable: skipped and quoted alike both ways
    lines = ["user,item,rating,when"]
    for k in range(60):
        if k % 20 == 19:
            lines.append("user,item,rating,when")
        when = "later" if k % 13 == 5 else f"2022-02-{1 + k % 20:02d} 10:{k:02d}"
        rating = "n.r." if k % 11 == 3 else str(1 + k % 5)
        lines.append(f"u{k % 4},i{k % 9},{rating},{when}")
    path = tmp_path / "joined.csv"
    path.write_text("\n".join(lines) + "\n")
    options = dict(user_col="user", item_col="item", rating_col="rating", time_col="when")
    whole, streamed, chunks = _both(path, 9, **options)
    assert chunks > 1
    _same(whole, streamed)
    assert streamed[2].rows == 60 and "skipped 3 repeated header lines" in " ".join(str(streamed[2]).split())
    notes = sorted(streamed[0][READ_NOTE].dropna())
    assert notes and all("'later' in column 'when'" in n or "'n.r.' in column 'rating'" in n for n in notes)


def test_json_lines_say_their_unread_type_column_at_once_and_in_chunks(tmp_path):
    # REES46 as JSON lines: the import reads only the columns it was told of, and said nothing of event_type
    src = tmp_path / "oct.jsonl"
    kinds = ("view", "cart", "purchase", "remove_from_cart")
    src.write_text(
        "".join(
            json.dumps(
                {"event_time": 1570000000 + k, "event_type": kinds[k % 4], "product_id": k % 17, "user_id": k % 9}
            )
            + "\n"
            for k in range(60)
        )
    )
    options = dict(item_col="product_id", time_col="event_time", time_unit="s")
    _, _, summary = load_interactions(src, **options)
    stream = InteractionStream(src, ImportOptions(**options), chunk_rows=20, per_line=1.0)
    for _ in stream:
        pass
    for said in (str(summary), str(stream.summary)):
        assert "column 'event_type' ('cart', 'purchase', 'remove_from_cart', 'view') not read" in " ".join(said.split())


def test_rows_in_time_order_across_users_read_the_same_in_chunks(tmp_path):
    train = tmp_path / "train.csv"
    pd.DataFrame(
        {"msno": [f"m{k % 13}" for k in range(300)], "song_id": [f"s{k % 17}" for k in range(300)],
         "target": [k % 2 for k in range(300)]}
    ).to_csv(train, index=False)  # fmt: skip
    whole, streamed, chunks = _both(
        train, 40, user_col="msno", item_col="song_id", rating_col="target", time_col=None, rows_in_time_order=True
    )
    _same(whole, streamed)
    assert chunks > 1
