"""Files whose shape says less than their name (a parquet index, a directory of parts, JSON named as
text) and counters that pass for epoch times: read as what they are, or refused with what to do."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ingest.import_files import read_table
from ingest.import_values import parse_origin
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def test_a_parquet_index_is_read_as_the_column_it_was(tmp_path):
    # ContentWise's parts, written by dask, keep their times as the index
    frame = pd.DataFrame(
        {"utc_ts_milliseconds": 1_546_300_800_000 + np.arange(40) * 60_000, "user_id": np.arange(40) % 4,
         "item_id": np.arange(40) % 7}
    ).set_index("utc_ts_milliseconds")  # fmt: skip
    path = tmp_path / "part.0.parquet"
    frame.to_parquet(path)
    assert "utc_ts_milliseconds" in read_table(path, "interactions").frame.columns
    options = dict(time_col="utc_ts_milliseconds", time_unit="ms", now=NOW)
    events, _, _ = load_interactions(path, **options)
    assert events["timestamp"].min() == pd.Timestamp("2019-01-01", tz="UTC") and len(events) == 40
    streamed = pd.concat(list(InteractionStream(path, ImportOptions(**options), 10)), ignore_index=True)
    assert sorted(streamed["event_id"]) == sorted(events["event_id"])


def test_a_directory_of_parts_is_named_with_how_to_join_them(tmp_path):
    parts = tmp_path / "interactions"
    parts.mkdir()
    for k in range(2):
        pd.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [1_700_000_000]}).to_parquet(
            parts / f"part.{k}.parquet"
        )
    (parts / "_SUCCESS").write_text("")
    with pytest.raises(ImportFormatError, match="a directory of 2 parquet parts .* read_parquet\\('interactions'\\)"):
        read_table(parts, "interactions")


def test_a_counter_from_near_zero_is_no_epoch_time_in_any_unit(tmp_path):
    # Outbrain's page views: milliseconds since 1465876799998, over 15 days
    rng = np.random.default_rng(0)
    path = tmp_path / "page_views.csv"
    pd.DataFrame(
        {"uuid": [f"u{k % 30}" for k in range(500)], "document_id": rng.integers(0, 90, 500),
         "timestamp": np.sort(rng.integers(0, 1_300_000_000, 500))}
    ).to_csv(path, index=False)  # fmt: skip
    options = dict(user_col="uuid", item_col="document_id", now=NOW)
    for unit in ("ms", "s"):  # read as ms they look like seconds; read as seconds they would span 1970 … 2011
        with pytest.raises(ImportFormatError, match="counts from near zero .* --time-origin DATE places it"):
            load_interactions(path, time_unit=unit, **options)
    events, _, _ = load_interactions(path, time_unit="ms", time_origin="1465876799998", **options)
    assert events["timestamp"].min() >= pd.Timestamp("2016-06-14 03:59:59.998", tz="UTC")
    assert events["timestamp"].max() < pd.Timestamp("2016-06-30", tz="UTC")
    # a real epoch log with a few stray zeros is still an epoch log
    real = tmp_path / "real.csv"
    pd.DataFrame(
        {"uuid": ["a"] * 50, "document_id": range(50), "timestamp": [0, 0] + [1_600_000_000 + k for k in range(48)]}
    ).to_csv(real, index=False)
    events, _, _ = load_interactions(real, time_unit="s", **options)
    assert (events["timestamp"].dropna() >= pd.Timestamp("2020-09-13", tz="UTC")).sum() == 48


def test_an_origin_written_as_an_epoch_number_is_read_in_the_unit():
    assert parse_origin("1465876799998", None, "ms") == pd.Timestamp("2016-06-14 03:59:59.998", tz="UTC")
    assert parse_origin("1465876799.5", None, "s") == pd.Timestamp("2016-06-14 03:59:59.5", tz="UTC")
    with pytest.raises(ImportFormatError, match="not a date"):
        parse_origin("1465876799998", None, "10min")  # a multiple is no epoch unit


def test_json_records_named_as_text_are_read_as_json(tmp_path):
    # LibraryThing's reviews.txt: one Python dict per line; and JSON lines saved as .txt
    dicts = tmp_path / "reviews.txt"
    dicts.write_text(
        "".join(
            repr(
                {
                    "work": str(100 + k % 9),
                    "unixtime": 1_194_393_600 + 3600 * k,
                    "stars": 1.0 + k % 5,
                    "user": f"u{k % 4}",
                }
            )
            + "\n"
            for k in range(30)
        )
    )
    events, _, summary = load_interactions(
        dicts, user_col="user", item_col="work", time_col="unixtime", time_unit="s", rating_col="stars", now=NOW
    )
    assert len(events) == 30 and "read as JSON records, as its content is (its name says .txt)" in str(summary)
    lines = tmp_path / "lines.txt"
    lines.write_text(
        "".join(json.dumps({"u": f"a{k % 3}", "i": f"x{k}", "t": 1_700_000_000 + k}) + "\n" for k in range(40))
    )
    options = dict(user_col="u", item_col="i", time_col="t", time_unit="s", now=NOW)
    events, _, _ = load_interactions(lines, **options)
    stream = InteractionStream(lines, ImportOptions(**options), 10)
    streamed = pd.concat(list(stream), ignore_index=True)
    assert len(events) == 40 and sorted(streamed["event_id"]) == sorted(events["event_id"]) and stream.chunks == 4
    # delimited text is still delimited text
    plain = tmp_path / "plain.txt"
    plain.write_text("u,i,t\na,x,1700000000\n")
    assert list(read_table(plain, "interactions").frame.columns) == ["u", "i", "t"]


def test_device_codes_map_onto_devices_and_a_geo_path_gives_its_country(tmp_path):
    # Outbrain's page views: platform 1 desktop, 2 mobile, 3 tablet; geo_location country>state>DMA; \N for none
    path = tmp_path / "page_views.csv"
    path.write_text(
        "uuid,document_id,timestamp,platform,geo_location\n"
        "a,1,1700000000,1,US>CA>807\n"
        "a,2,1700000060,2,GB>H9\n"
        "b,3,1700000120,3,\\N\n"
        "b,4,1700000180,\\N,DE\n"
        "c,5,1700000240,9,XX>YY\n"
    )
    options = dict(user_col="uuid", item_col="document_id", time_unit="s", now=NOW, device_col="platform")
    events, _, summary = load_interactions(
        path, locale_col="geo_location", device_map={"1": "desktop", "2": "mobile", "3": "tablet"}, **options
    )
    by = events.set_index("item_id")
    assert by["device"].to_dict() == {"1": "desktop", "2": "mobile", "3": "tablet", "4": "unknown", "5": "other"}
    assert by.loc["1", "locale"] == "us" and by.loc["2", "locale"] == "gb" and by.loc["3", "locale"] == "unknown"
    assert "device values outside what a request may name read as 'other': '9'" in str(summary)
    events, _, _ = load_interactions(path, **options)  # unmapped, codes are no devices
    assert set(events["device"]) == {"other", "unknown"}


def test_a_device_map_needs_its_column_and_pairs(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "v.csv"
    path.write_text("user_id,item_id,timestamp,platform\na,1,1700000000,1\n")
    base = ["import", str(path), "--time-unit", "s"]
    result = CliRunner().invoke(app, [*base, "--device-map", "1=desktop"])
    assert result.exit_code == 2 and "it needs --device-col" in result.output
    result = CliRunner().invoke(app, [*base, "--device-col", "platform", "--device-map", "1:desktop"])
    assert result.exit_code == 2 and "--device-map takes CODE=DEVICE pairs" in result.output


def test_copies_in_a_file_without_times_are_counted_alike_at_once_and_in_chunks(tmp_path):
    # Ciao's rating.txt: some lines written twice, and no times
    path = tmp_path / "rating.txt"
    lines = [f"{k % 7},{k % 11},{1 + k % 5}" for k in range(60)] + ["3,4,2"] * 3 + ["5,6,1"]
    path.write_text("\n".join(lines) + "\n")
    from ingest.importer import TextLayout

    options = dict(
        user_col="u", item_col="i", rating_col="r", time_col=None, now=NOW, layout=TextLayout(names=("u", "i", "r"))
    )
    _, _, summary = load_interactions(path, **options)
    expected = pd.read_csv(path, names=["u", "i", "r"]).duplicated().sum()
    assert expected >= 2 and f"{expected:,} rows repeat an earlier row's user, item and value exactly" in str(summary)
    stream = InteractionStream(path, ImportOptions(**options), 16)
    list(stream)
    assert str(stream.summary) == str(summary)


def test_release_dates_as_epoch_numbers_and_locale_codes(tmp_path):
    from ingest.import_items import load_items, parse_item_columns

    # Globo's articles_metadata: created_at_ts in epoch milliseconds; Steam's games: date_release
    articles = tmp_path / "articles_metadata.csv"
    articles.write_text("article_id,category_id,created_at_ts\n1,7,1507020092898\n2,8,1507020000000\n")
    catalog, notes = load_items(
        articles, "article_id", None, parse_item_columns("genre=category_id,release=created_at_ts")
    )
    assert catalog["release_date"].dt.year.tolist() == [2017, 2017]
    assert "release dates in 'created_at_ts' read as epoch milliseconds" in notes
    games = tmp_path / "games.csv"
    games.write_text("app_id,title,date_release\n10,Counter-Strike,2000-11-01\n")
    catalog, notes = load_items(games, "app_id", None)
    assert catalog["release_date"].iloc[0] == pd.Timestamp("2000-11-01", tz="UTC")
    # Globo's clicks: countries numbered 1 … 11
    clicks = tmp_path / "clicks.csv"
    clicks.write_text(
        "user_id,click_article_id,click_timestamp,click_country\na,1,1507020092898,1\na,2,1507020192898,2\n"
    )
    events, _, _ = load_interactions(
        clicks, item_col="click_article_id", time_col="click_timestamp", time_unit="ms", now=NOW,
        locale_col="click_country", locale_map={"1": "br", "2": "pt"},
    )  # fmt: skip
    assert events["locale"].tolist() == ["br", "pt"]


def test_a_directory_of_text_parts_says_how_to_join_them(tmp_path):
    parts = tmp_path / "clicks"
    parts.mkdir()
    for k in range(3):
        (parts / f"clicks_hour_{k:03d}.csv").write_text("user_id,click_article_id\n1,2\n")
    with pytest.raises(ImportFormatError, match="a directory of 3 files: import them one by one .*`cat clicks/\\*"):
        read_table(parts, "interactions")


def test_a_partitioned_table_in_folders_is_named_with_its_parts_at_any_depth(tmp_path):
    # Spark's, Hive's and pandas' partition_cols layout: dt=…/part.parquet, the column in the folders' names
    frame = pd.DataFrame(
        {"user_id": [1, 2, 3, 4], "item_id": [5, 6, 7, 8], "dt": ["2024-01", "2024-01", "2024-02", "2024-03"]}
    )
    frame.to_parquet(tmp_path / "log", partition_cols=["dt"])
    (tmp_path / "log" / "_SUCCESS").write_text("")
    said = "a directory of 3 parquet parts .* in folders by dt, read as column"
    with pytest.raises(ImportFormatError, match=said):
        read_table(tmp_path / "log", "interactions")
    with pytest.raises(ImportFormatError, match=said):  # in chunks alike
        next(iter(InteractionStream(tmp_path / "log", ImportOptions(now=NOW), 2)))
    joined = pd.read_parquet(tmp_path / "log").reset_index()  # the advice, as written
    assert sorted(joined["dt"].astype(str)) == sorted(frame["dt"])
    text = tmp_path / "csvs"  # text parts in folders: joined through find
    for k in range(2):
        (text / f"day={k}").mkdir(parents=True)
        (text / f"day={k}" / "part-0.csv").write_text("user_id,item_id\n1,2\n")
    with pytest.raises(ImportFormatError, match="a directory of 2 files in folders: .*`find csvs -type f"):
        read_table(text, "interactions")


def test_cells_are_no_markup_and_a_mostly_quarantined_import_warns(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "views.csv"
    rows = ["user_id,item_id,timestamp,kind,device"] + [
        f"u{k % 5},i{k},{1_700_000_000 + k},{'' if k % 4 else 'PLAY'},OS X 10.15.7 [x86 8]" for k in range(40)
    ]
    path.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(
        app, ["import", str(path), "--time-unit", "s", "--type-col", "kind", "--device-col", "device"]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "'OS X 10.15.7 [x86 8]'" in out  # the cell as written, not read as markup
    assert "warning: most rows were quarantined (30 of 40)" in out


def test_a_headerless_file_gets_a_names_example_that_imports_its_ratings_when_followed(tmp_path, monkeypatch):
    """Yahoo! R3's user, song and rating without a header or times: the example the error gives names
    the rating and reads it, so following it literally keeps a 1-star rating from becoming a play."""
    import re

    from typer.testing import CliRunner

    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    path = tmp_path / "ydata-ymusic-train.txt"
    path.write_text("".join(f"{1 + k % 9}\t{100 + k % 13}\t{1 + k % 5}\n" for k in range(90)))
    result = CliRunner().invoke(app, ["import", str(path)])
    assert result.exit_code == 2
    example = re.search(r"\(e\.g\. (--names [^)]*)\)", " ".join(result.output.split()))
    assert example is not None, result.output
    assert example.group(1) == "--names user_id,item_id,rating --rating-col rating --no-time"
    result = CliRunner().invoke(app, ["import", str(path), *example.group(1).split()])
    assert result.exit_code == 0, result.output
    types = re.search(r"types: (.*)", result.output)
    assert types is not None and "skip" in types.group(1) and "like" in types.group(1)


def test_a_names_example_names_epoch_numbers_and_dates_as_the_time(tmp_path):
    from ingest.import_files import _names_example

    epochs = pd.DataFrame({"7": ["8", "9"], "12": ["13", "14"], "4.5": ["3", "5"], "978300760": ["978300761", "9e8"]})
    assert (
        _names_example(epochs, "--names")
        == "--names user_id,item_id,rating,timestamp --rating-col rating --time-unit s"
    )
    dated = pd.DataFrame({"a": ["b"], "x": ["y"], "2020-01-01 10:00": ["2020-01-02 11:00"], "412": ["17"]})
    assert _names_example(dated, "--names") == "--names user_id,item_id,timestamp,c4"
    # an items file's columns are not guessed by position (EachMovie's second is a URL); its id keeps the name given
    assert _names_example(dated, "--items-names", "question_id") == (
        "--items-names question_id,c2,c3,c4, then --items-cols title=cN,genre=cN,… naming which holds what"
    )


def test_a_spreadsheet_is_refused_with_how_to_export_it_whatever_its_name(tmp_path):
    import zipfile

    from ingest.importer import ImportFormatError, load_interactions

    # an .xlsx is a zip of the workbook's XML parts
    book = tmp_path / "ratings.xlsx"
    with zipfile.ZipFile(book, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    with pytest.raises(ImportFormatError, match=r"ratings.xlsx is a spreadsheet.*to_csv\('ratings.csv'"):
        load_interactions(book)
    # saved under a text file's name, pandas stopped at "Buffer overflow caught"; the advice never overwrites it
    renamed = tmp_path / "ratings.csv"
    renamed.write_bytes(book.read_bytes())
    with pytest.raises(ImportFormatError, match=r"ratings.csv is a spreadsheet.*to_csv\('ratings-sheet.csv'"):
        load_interactions(renamed)
    # read in chunks, the file goes the same way
    from ingest.importer import ImportOptions, InteractionStream

    with pytest.raises(ImportFormatError, match="ratings.xlsx is a spreadsheet"):
        list(InteractionStream(book, ImportOptions(), chunk_rows=10))
    # a zip holding a CSV is read as ever
    packed = tmp_path / "log.csv.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("log.csv", "user_id,item_id,timestamp\nu1,a,2020-01-01\nu2,b,2020-01-02\n")
    events, _, _ = load_interactions(packed)
    assert len(events) == 2
