"""Items files whose columns are named their own way (H&M's articles, KuaiRec's categories, Yelp's
businesses): ``--items-cols`` names them, and list cells of every common kind give their genres."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.import_items import parse_item_columns
from ingest.importer import ImportFormatError, load_interactions

T0 = 1_600_000_000
RATINGS = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": ["a", "b", "c"], "time": [1, 2, 3]})


def _ratings(tmp_path) -> object:
    path = tmp_path / "ratings.csv"
    RATINGS.assign(time=pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(RATINGS["time"], unit="h")).to_csv(
        path, index=False
    )
    return path


def _load(tmp_path, items_path, **kw):
    return load_interactions(
        _ratings(tmp_path), user_col="user", item_col="item", time_col="time", items=items_path, **kw
    )


def test_items_cols_names_roles_the_recognized_names_miss(tmp_path):
    articles = tmp_path / "articles.csv"
    pd.DataFrame(
        {
            "article_id": ["a", "b", "c"],
            "prod_name": ["Strap top", "Denim", "Sock 3p"],
            "product_group_name": ["Garment Upper body", "Garment Lower body", "Socks & Tights"],
            "name": ["ignored", "ignored", "ignored"],  # recognized as a title, but the user named another
        }
    ).to_csv(articles, index=False)
    _, items, summary = _load(
        tmp_path,
        articles,
        item_id_col="article_id",
        item_columns=parse_item_columns("genre=product_group_name, title=prod_name"),
    )
    row = items.set_index("item_id")
    assert row["genre"].tolist() == ["garment upper body", "garment lower body", "socks & tights"]
    assert row["title"].tolist() == ["Strap top", "Denim", "Sock 3p"]
    assert any("genre from 'product_group_name'" in n and "title from 'prod_name'" in n for n in summary.read_notes)


def test_without_a_genre_column_the_import_says_how_to_name_one(tmp_path):
    articles = tmp_path / "articles.csv"
    pd.DataFrame({"article_id": ["a", "b", "c"], "product_group_name": ["x", "y", "z"]}).to_csv(articles, index=False)
    _, items, summary = _load(tmp_path, articles, item_id_col="article_id")
    assert (items["genre"] == "unknown").all()
    assert any("no genre column recognized" in n and "--items-cols genre=COLUMN" in n for n in summary.read_notes)


@pytest.mark.parametrize(
    ("cells", "first", "every"),
    [
        (["[8]", "[27, 9]", "[]"], ["8", "27", "unknown"], ["8", "27|9", None]),  # KuaiRec's feat
        (
            ["Restaurants, Pizza", "Doctors", None],  # Yelp's categories
            ["restaurants", "doctors", "unknown"],
            ["restaurants|pizza", "doctors", None],
        ),
        (
            ["Comedy|Romance", "(no genres listed)", "Drama"],
            ["comedy", "unknown", "drama"],
            ["comedy|romance", None, "drama"],
        ),
        (
            ["<python><pandas>", "<c++>", "|sql|joins|"],  # Stack Exchange's tags, old dumps and new
            ["python", "c++", "sql"],
            ["python|pandas", "c++", "sql|joins"],
        ),
    ],
)
def test_genre_lists_of_every_common_kind(tmp_path, cells, first, every):
    path = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["a", "b", "c"], "feat": cells}).to_csv(path, index=False)
    _, items, _ = _load(tmp_path, path, item_columns={"genre": "feat"})
    row = items.set_index("item_id")
    assert row["genre"].tolist() == first
    assert [v if isinstance(v, str) else None for v in row["genres"]] == every


def test_json_list_cells_and_yelp_categories_in_a_json_items_file(tmp_path):
    path = tmp_path / "business.json"
    rows = [
        {"business_id": "a", "name": "Pie Place", "categories": "Restaurants, Pizza", "hours": {"Monday": "8-22"}},
        {"business_id": "b", "name": "Dr. Who", "categories": ["Doctors", "Health"], "hours": None},
        {"business_id": "c", "name": "Shop", "categories": None, "attributes": {"WiFi": "free"}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _, items, _ = _load(tmp_path, path, item_id_col="business_id")
    row = items.set_index("item_id")
    assert row["genre"].tolist() == ["restaurants", "doctors", "unknown"]
    assert row.loc["a", "title"] == "Pie Place"


def test_missing_cells_of_every_kind_are_no_genre():
    from ingest.import_items import _all_of_list, _first_of_list

    cells = pd.Series(["Rock", None, float("nan"), pd.NA, ""], dtype=object)
    assert _first_of_list(cells, commas=True).tolist() == ["Rock", "unknown", "unknown", "unknown", "unknown"]
    assert _all_of_list(cells).tolist() == ["rock", None, None, None, None]


def test_artists_with_commas_stay_whole(tmp_path):
    path = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["a", "b", "c"], "artist": ["Crosby, Stills & Nash", "A|B", "C"]}).to_csv(
        path, index=False
    )
    _, items, _ = _load(tmp_path, path)
    assert items.set_index("item_id")["artist"].tolist() == ["Crosby, Stills & Nash", "A", "C"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("genre", "ROLE=COLUMN pairs"),
        ("colour=colour_group_name", "not an item role"),
        ("genre=a,genre=b", "twice"),
        ("genre=", "ROLE=COLUMN pairs"),
    ],
)
def test_bad_items_cols_are_clear_errors(spec, message):
    with pytest.raises(ImportFormatError, match=message):
        parse_item_columns(spec)


def test_a_named_column_the_file_lacks_is_a_clear_error(tmp_path):
    path = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["a"], "kind": ["x"]}).to_csv(path, index=False)
    with pytest.raises(ImportFormatError, match=r"no such column \(columns: item_id, kind\)"):
        _load(tmp_path, path, item_columns={"genre": "knd"})


def test_the_import_command_takes_items_cols_and_needs_items(tmp_path, monkeypatch):
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    src = _ratings(tmp_path)
    args = ["import", str(src), "--user-col", "user", "--item-col", "item", "--time-col", "time"]
    result = CliRunner().invoke(app, [*args, "--items-cols", "genre=kind"])
    assert result.exit_code == 2 and "needs --items" in result.output
    items = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["a", "b", "c"], "kind": ["Rock", "Jazz", "Rock"]}).to_csv(items, index=False)
    result = CliRunner().invoke(app, [*args, "--items", str(items), "--items-cols", "genre=kind"])
    assert result.exit_code == 0, result.output
    from setlist.catalog import load_items
    from setlist.settings import Settings

    catalog = load_items(Settings().catalog_path)
    assert sorted(catalog["genre"]) == ["jazz", "rock", "rock"]


def test_book_and_anime_catalogues_authors_publication_years_and_html_escapes(tmp_path):
    # Goodbooks' books.csv names its artist "authors" and its release "original_publication_year";
    # the anime list's names keep the web page's escapes
    books = tmp_path / "books.csv"
    pd.DataFrame(
        {
            "book_id": ["a", "b", "c"],
            "authors": ["Suzanne Collins", "J.K. Rowling, Mary GrandPré", "Harper Lee"],
            "original_publication_year": ["2008.0", "1997.0", ""],
            "title": ["The Hunger Games", "Gintama&#039;", "&quot;Bungaku Shoujo&quot; Movie"],
            "genre": ["ya", "Sci-Fi &amp; Fantasy", "Slice of Life|Drama &#038; Romance"],
        }
    ).to_csv(books, index=False)
    _, items, summary = _load(tmp_path, books, item_id_col="book_id")
    row = items.set_index("item_id")
    assert row["artist"].tolist() == ["Suzanne Collins", "J.K. Rowling, Mary GrandPré", "Harper Lee"]  # commas kept
    assert row["release_date"].dt.year.tolist()[:2] == [2008, 1997] and pd.isna(row["release_date"].iloc[2])
    assert row["title"].tolist() == ["The Hunger Games", "Gintama'", '"Bungaku Shoujo" Movie']
    assert row["genres"].tolist() == ["ya", "sci-fi & fantasy", "slice of life|drama & romance"]


def test_one_genre_holding_most_of_the_catalogue_is_said(tmp_path):
    # Yoochoose's clicks carry a category per row: 0 for "none", S for a special offer, 1 … 12
    path = tmp_path / "items.csv"
    genres = ["0"] * 7 + ["1", "2", "S"]
    pd.DataFrame({"item_id": list("abcdefghij"), "category": genres}).to_csv(path, index=False)
    _, _, summary = _load(tmp_path, path)
    assert any("genre '0' holds 7 of the 10 items" in n and "--items-cols genre=" in n for n in summary.read_notes)
    pd.DataFrame(
        {"item_id": list("abcdefghij"), "category": ["0", "0", "0", "0", "1", "1", "2", "2", "S", "S"]}
    ).to_csv(path, index=False)
    _, _, summary = _load(tmp_path, path)
    assert not any(" holds " in n for n in summary.read_notes)


def test_a_track_column_is_the_title_and_a_catalogue_without_one_says_so(tmp_path):
    # Last.fm 1K's own file as its items file: user,timestamp,artid,artist,traid,track
    path = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["a", "b", "c"], "artist": ["X", "Y", "Z"], "track": ["One", "Two", "Three"]}).to_csv(
        path, index=False
    )
    _, items, summary = _load(tmp_path, path)
    assert items.set_index("item_id")["title"].tolist() == ["One", "Two", "Three"]
    assert not any("no title column" in n for n in summary.read_notes)
    pd.DataFrame({"item_id": ["a", "b", "c"], "artist": ["X", "Y", "Z"]}).to_csv(path, index=False)
    _, _, summary = _load(tmp_path, path)
    assert any("no title column recognized" in n and "--items-cols title=" in n for n in summary.read_notes)


def test_a_category_path_gives_the_genre_below_the_root_every_item_shares(tmp_path):
    # Amazon's metadata: category paths from the store's root down
    meta = tmp_path / "meta_Books.json"
    rows = [
        {"asin": "a", "title": "A", "category": ["Books", "Literature & Fiction", "Mystery"]},
        {"asin": "b", "title": "B", "category": ["Books", "Children's Books"]},
        {"asin": "c", "title": "C", "category": ["Books"]},
        {"asin": "x", "title": "X", "category": []},
    ]
    meta.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _, items, summary = _load(tmp_path, meta, item_id_col="asin")
    genre = items.set_index("item_id")["genre"]
    assert genre.loc[["a", "b", "c", "x"]].tolist() == ["literature & fiction", "children's books", "books", "unknown"]
    assert any("below the category root 'Books'" in n for n in summary.read_notes)
    # most items without categories at all (Amazon 2023): the root is still most of those that have them
    sparse = tmp_path / "meta_Beauty.jsonl"
    # (one of them an item of the log: a file that describes none of its items adds none to the catalogue)
    rows = [{"parent_asin": f"p{k}" if k else "a", "categories": []} for k in range(5)] + [
        {"parent_asin": "q1", "categories": ["Beauty", "Hair Care"]},
        {"parent_asin": "q2", "categories": ["Beauty", "Skin Care"]},
    ]
    sparse.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _, items, _ = _load(tmp_path, sparse, item_id_col="parent_asin")
    assert items.set_index("item_id")["genre"].loc[["q1", "q2", "a"]].tolist() == ["hair care", "skin care", "unknown"]
    # genre lists without a shared root keep their first entry
    plain = tmp_path / "movies.csv"
    pd.DataFrame({"item_id": ["a", "b", "c"], "genres": ["Comedy|Romance", "Drama", "Action|Comedy"]}).to_csv(
        plain, index=False
    )
    _, items, summary = _load(tmp_path, plain)
    assert items["genre"].tolist() == ["comedy", "drama", "action"]
    assert not any("category root" in n for n in summary.read_notes)


def test_the_id_column_is_no_title_and_unknown_markers_are_no_metadata(tmp_path):
    """30Music's tracks file keeps its ids in ``track`` and its lengths' unknown as -1; Yahoo's writes
    ``None`` for an unknown artist."""
    tracks = tmp_path / "tracks.csv"
    pd.DataFrame(
        {
            "track": ["a", "b", "c"],
            "duration": [250, -1, 0],
            "name": ["Day Rain", "Night", "Noon"],
            "artist": ["12", "None", "NULL"],
        }
    ).to_csv(tracks, index=False)
    _, items, summary = _load(tmp_path, tracks, item_id_col="track")
    row = items.set_index("item_id")
    assert row["title"].tolist() == ["Day Rain", "Night", "Noon"]  # not the ids
    assert row["artist"].tolist() == ["12", "unknown", "unknown"]
    assert row["duration_s"].iloc[0] == 250 and row["duration_s"].iloc[1:].isna().all()
    said = " ".join(str(summary).split())
    assert "title from 'name'" in said and "2 items' durations of 0 or less in 'duration' read as unknown" in said
    _, named, _ = _load(tmp_path, tracks, item_id_col="track", item_columns={"title": "track"})
    assert named.set_index("item_id")["title"].tolist() == ["a", "b", "c"]  # told, it is a title


def test_release_dates_with_unknown_month_or_day_keep_their_year_and_the_rest_are_counted(tmp_path):
    """Melon's issue_date: 20050000 is a year without month and day, 00000000 no date at all."""
    songs = tmp_path / "songs.csv"
    pd.DataFrame(
        {"id": ["a", "b", "c"], "song_name": ["x", "y", "z"], "issue_date": ["20140512", "20050000", "00000000"]}
    ).to_csv(songs, index=False)
    _, items, summary = _load(tmp_path, songs, item_id_col="id", item_columns={"release_date": "issue_date"})
    release = items.set_index("item_id")["release_date"]
    assert release["a"] == pd.Timestamp("2014-05-12", tz="UTC") and release["b"] == pd.Timestamp("2005-01-01", tz="UTC")
    assert pd.isna(release["c"])
    assert any("1 item's release dates in 'issue_date' give no date (e.g. '00000000')" in n for n in summary.read_notes)
    from ingest.import_items import _release

    notes: list[str] = []
    floats = _release(
        pd.Series([20140512.0, 20050000.0, None]), "issue_date", notes, pd.Series(["a", "b", "c"])
    )  # JSON numbers with nulls
    assert floats.tolist()[:2] == [pd.Timestamp("2014-05-12", tz="UTC"), pd.Timestamp("2005-01-01", tz="UTC")]
    assert notes == []


def test_publication_years_written_as_floats_are_years_and_ancient_ones_unknown(tmp_path):
    """Goodbooks' original_publication_year: 1997.0, and -1750.0 for an ancient text."""
    from ingest.import_items import _release

    notes: list[str] = []
    years = _release(pd.Series(["1997.0", "2008.0", "-1750.0", None]), "year", notes, pd.Series(list("abcd")))
    assert years.tolist()[:2] == [pd.Timestamp("1997-01-01", tz="UTC"), pd.Timestamp("2008-01-01", tz="UTC")]
    assert years.iloc[2:].isna().all()
    assert notes == ["1 item's release years in 'year' outside 1000…3000 (e.g. -1750): unknown"]
    # numbers past a year's size are no years: YYYYMMDD stays a date
    assert _release(pd.Series([20140512.0, 1999.0]), "d", [], pd.Series(list("ab")))[0] == pd.Timestamp(
        "2014-05-12", tz="UTC"
    )


def test_genres_past_the_names_given_are_more_genres(tmp_path):
    """Yahoo! Music's trackData1.txt: track|album|artist|genre_1|…|genre_k, None for an unknown."""
    tracks = tmp_path / "trackData1.txt"
    tracks.write_text("a|10|None|7|8|9\nb|None|5|4\nc|11|6|8|None\n")
    from ingest.importer import TextLayout

    _, items, summary = _load(
        tmp_path,
        tracks,
        item_id_col="track",
        items_layout=TextLayout.from_options("|", "track,album,artist,genre", None),
    )
    row = items.set_index("item_id")
    assert row["genres"].tolist() == ["7|8|9", "4", "8"] and row["genre"].tolist() == ["7", "4", "8"]
    assert row["artist"].tolist() == ["unknown", "5", "6"]
    assert any("genres from 'genre' and the 2 unnamed fields after it" in n for n in summary.read_notes)
    # most tracks with one genre: the longer lines are rejoined, not read past as malformed
    mostly = tmp_path / "trackData2.txt"
    mostly.write_text("b|None|5|4\nc|11|6|8\nd|12|6|3\na|10|None|7|8|9\n")
    _, items, summary = _load(
        tmp_path,
        mostly,
        item_id_col="track",
        items_layout=TextLayout.from_options("|", "track,album,artist,genre", None),
    )
    assert items.set_index("item_id").loc["a", "genres"] == "7|8|9" and summary.items_without_metadata == 0
    assert any("extra fields kept in the last column 'genre', more genres" in n for n in summary.read_notes)


def test_numbered_genre_columns_are_one_list_and_an_items_year_its_release(tmp_path):
    """LDOS-CoMoDa: genre1..genre3 (codes, -1 where a film has fewer) and movieYear beside the rating."""
    films = tmp_path / "comoda.csv"
    films.write_text("itemID,movieYear,genre1,genre2,genre3,age\na,1995,3,6,8,30\nb,1976,5,-1,-1,41\nc,2001,2,,-1,22\n")
    _, items, summary = _load(tmp_path, films, item_id_col="itemID")
    row = items.set_index("item_id")
    assert row["genres"].tolist() == ["3|6|8", "5", "2"] and row["genre"].tolist() == ["3", "5", "2"]
    assert row["release_date"].dt.year.tolist() == [1995, 1976, 2001]
    assert any("genres from 'genre1', 'genre2', 'genre3' (one genre in each)" in n for n in summary.read_notes)
    # a genre column of its own wins over the numbered ones, which are then not read
    films.write_text("itemID,genre,genre_1,genre_2\na,drama,3,6\nb,comedy,5,1\nc,drama,2,4\n")
    _, items, _ = _load(tmp_path, films, item_id_col="itemID")
    assert items.set_index("item_id")["genres"].tolist() == ["drama", "comedy", "drama"]


def test_numbered_columns_of_zeros_and_ones_are_genre_flags(tmp_path):
    flags = tmp_path / "flags.csv"
    flags.write_text("item,genre_1,genre_2,genre_3\na,1,0,1\nb,0,1,0\nc,0,0,1\n")
    _, items, summary = _load(tmp_path, flags, item_id_col="item")
    assert items.set_index("item_id")["genres"].tolist() == ["genre_1|genre_3", "genre_2", "genre_3"]
    assert any("0/1 genre columns" in n for n in summary.read_notes)


def test_a_mostly_empty_genre_column_gives_way_to_a_filled_one(tmp_path):
    import json

    from ingest.import_items import load_items

    # Amazon Reviews 2023: `categories` is an empty list for most items of some stores
    meta = tmp_path / "meta_All_Beauty.jsonl"
    rows = [
        {"parent_asin": f"B0{k:03d}", "title": f"T{k}", "main_category": ["All Beauty", "Premium Beauty"][k % 2],
         "categories": ["Beauty", "Skin Care"] if k % 5 == 0 else []}
        for k in range(20)
    ]  # fmt: skip
    meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    catalog, notes = load_items(meta, "parent_asin", None)
    assert set(catalog["genre"]) == {"all beauty", "premium beauty"}
    assert "genres from 'main_category' rather than 'categories', which only 20% of the items fill" in " ".join(notes)
    # told, it is read all the same; filled, the first recognized name stays the one
    catalog, _ = load_items(meta, "parent_asin", None, {"genre": "categories"})
    assert (catalog["genre"] == "skin care").sum() == 4  # below the root every listed item shares
    for r in rows:
        r["categories"] = ["Beauty"]
    meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    catalog, notes = load_items(meta, "parent_asin", None)
    assert set(catalog["genre"]) == {"beauty"} and "rather than" not in " ".join(notes)


def test_items_the_chosen_genre_column_leaves_empty_take_another_recognized_ones(tmp_path):
    import json

    from ingest.import_items import load_items

    # Amazon Reviews 2023, a store that fills `categories` for most items but not all: the rest take
    # `main_category`, and the listed ones keep their reading below the root they share
    meta = tmp_path / "meta_Books.jsonl"
    rows = [
        {"parent_asin": f"B0{k:03d}", "title": f"T{k}", "main_category": "Books",
         "categories": ["Books", ["Mystery", "Romance"][k % 2]] if k % 5 else []}
        for k in range(20)
    ]  # fmt: skip
    meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    catalog, notes = load_items(meta, "parent_asin", None)
    genre = catalog.set_index("item_id")["genre"]
    assert set(genre[[f"B0{k:03d}" for k in range(20) if k % 5]]) == {"mystery", "romance"}
    assert set(genre[[f"B0{k:03d}" for k in range(0, 20, 5)]]) == {"books"}
    said = " ".join(notes)
    assert "4 items with no genre in 'categories': their genre from 'main_category'" in said
    # REES46: a dotted category_code, empty for some products, beside the numeric category_id; brands
    events = tmp_path / "2019-Oct.csv"
    codes = ["electronics.smartphone", None, "appliances.kitchen"] * 4
    frame = pd.DataFrame(
        {"product_id": range(12), "category_id": [2053013555631882655 + k % 3 for k in range(12)],
         "category_code": codes, "brand": [f"brand{k}" for k in range(11)] + [None]}
    )  # fmt: skip
    pd.concat([frame, frame.head(1)]).to_csv(events, index=False)  # an item's second row: one item still
    catalog, notes = load_items(events, "product_id", None)
    row = catalog.set_index("item_id")
    assert row["genre"].tolist()[:3] == ["electronics.smartphone", "2053013555631882656", "appliances.kitchen"]
    assert row["artist"].tolist() == [f"brand{k}" for k in range(11)] + ["unknown"]
    assert "4 items with no genre in 'category_code': their genre from 'category_id'" in " ".join(notes)
    # named, the column is read alone
    catalog, notes = load_items(events, "product_id", None, {"genre": "category_code"})
    assert catalog.set_index("item_id")["genre"].tolist()[:3] == [
        "electronics.smartphone",
        "unknown",
        "appliances.kitchen",
    ]
    # Dunnhumby's BRAND says only "National" or "Private", and JData's brand is a number code: no makers
    for brands, why in (["National", "Private"], "only 2 values ('National', 'Private')"), ([381, 97], "number codes"):
        cells = [brands[k % 2] for k in range(11)] + ["NULL"]  # Taobao's ad_feature writes a missing brand so
        frame.assign(brand=cells).to_csv(events, index=False)
        catalog, notes = load_items(events, "product_id", None)
        assert set(catalog["artist"]) == {"unknown"}
        assert any("'brand' not read as the artist" in n and why in n for n in notes), notes
        catalog, _ = load_items(events, "product_id", None, {"artist": "brand"})
        assert set(catalog["artist"]) == {str(b) for b in brands} | {"unknown"}


def test_a_genre_column_of_number_codes_gives_way_to_one_of_names(tmp_path):
    from ingest.import_items import load_items

    # EB-NeRD's articles.parquet: `category` is a number code, `category_str` its name
    articles = tmp_path / "articles.parquet"
    pd.DataFrame(
        {"article_id": [1, 2, 3], "title": ["A", "B", "C"], "category": [142, 414, 142],
         "category_str": ["krimi", "sport", "krimi"],
         "published_time": pd.to_datetime(["2023-05-01 10:00", "2023-05-02 11:00", "2023-05-03 12:00"])}
    ).to_parquet(articles)  # fmt: skip
    catalog, notes = load_items(articles, "article_id", None)
    assert catalog["genre"].tolist() == ["krimi", "sport", "krimi"]
    said = " ".join(notes)
    assert "genres from 'category_str' rather than 'category', whose cells are number codes" in said
    assert catalog["release_date"].notna().all() and "release from 'published_time'" in said
    # told, the codes are read all the same; alone, a column of codes is the genre
    catalog, _ = load_items(articles, "article_id", None, {"genre": "category"})
    assert catalog["genre"].tolist() == ["142", "414", "142"]
    pd.read_parquet(articles).drop(columns=["category_str"]).to_parquet(articles)
    catalog, notes = load_items(articles, "article_id", None)
    assert catalog["genre"].tolist() == ["142", "414", "142"] and "rather than" not in " ".join(notes)


def test_an_items_file_whose_lines_have_several_widths_is_warned_of(tmp_path):
    from ingest.import_files import TextLayout
    from ingest.import_items import load_items

    # Zhihu's question_info.csv: an unquoted list of topics in a middle column
    path = tmp_path / "question_info.csv"
    path.write_text(
        "1,10,Title one\n2,10,20,Title two\n3,10,20,30,Title three\n4,11,Title four\n5,12,21,Title five\n"
        "6,12,21,Title six\n"
    )
    _, notes = load_items(path, "item", TextLayout.from_options(",", "item,topics,title", None, prefix="items-"))
    said = " ".join(notes)
    assert "its lines have different numbers of fields (3 (33%), 4 (50%), 5 (17%) of the first 6)" in said
    even = tmp_path / "even.csv"
    even.write_text("1,10,Title one\n2,10,Title two\n")
    _, notes = load_items(even, "item", TextLayout.from_options(",", "item,topics,title", None, prefix="items-"))
    assert "different numbers of fields" not in " ".join(notes)
    # a genre list last, of one to four genres: longer lines only, rejoined into the last column, no warning
    genres = tmp_path / "tracks.csv"
    genres.write_text(
        "track_id,title,genres\n"
        + "".join(f"{k},T{k},{','.join(['rock', 'pop', 'jazz', 'folk'][: 1 + k % 4])}\n" for k in range(20))
    )
    catalog, notes = load_items(genres, "track_id", None)
    assert "different numbers of fields" not in " ".join(notes)
    assert catalog.set_index("item_id").loc["3", "genres"] == "rock|pop|jazz|folk"


def _listens(path, n: int = 60):
    """ListenBrainz's listens: each record's track in a nested object, its length deeper still."""
    with open(path, "w") as f:
        for k in range(n):
            info = {"duration_ms": 200_000 + k % 6 * 1_000} if k % 3 else ({"duration": 150} if k % 2 else {})
            track = {"track_name": f"Song {k % 6}", "artist_name": f"Artist {k % 2}", "additional_info": info}
            f.write(
                json.dumps(
                    {"listened_at": 1_700_000_000 + 60 * k, "recording_msid": f"m{k % 6}", "user_name": f"u{k % 4}",
                     "track_metadata": track}
                )
                + "\n"
            )  # fmt: skip
    return path


def test_nested_json_objects_are_read_as_columns_named_with_dots(tmp_path):
    from ingest.import_files import read_table

    src = _listens(tmp_path / "listens.jsonl")
    options = dict(user_col="user_name", item_col="recording_msid", time_col="listened_at", time_unit="s")
    events, items, summary = load_interactions(src, items=src, item_id_col="recording_msid", **options)
    said = str(summary)
    assert "nested objects in 'track_metadata' read as columns named with dots" in said
    # recognized by their own names, the first row of each item kept
    assert "title from 'track_metadata.track_name', artist from 'track_metadata.artist_name'" in said
    by = items.set_index("item_id")
    assert by.loc["m1", "title"] == "Song 1" and by.loc["m1", "artist"] == "Artist 1"
    assert by.loc["m1", "duration_s"] == pytest.approx(201.0)
    assert "every interacted item is in it" in said
    # a field names a column of its own: the user may be a nested field too, at once or in chunks
    whole = read_table(src, "interactions", keep={"track_metadata.artist_name", "listened_at"}).frame
    assert list(whole.columns) == ["listened_at", "track_metadata.artist_name"]
    events, _, _ = load_interactions(src, **{**options, "user_col": "track_metadata.artist_name"})
    assert sorted(events["user_id"].unique()) == ["Artist 0", "Artist 1"]
    from ingest.importer import ImportOptions, InteractionStream

    stream = InteractionStream(src, ImportOptions(**{**options, "user_col": "track_metadata.artist_name"}), 16)
    streamed = pd.concat(list(stream), ignore_index=True)
    assert sorted(streamed["event_id"]) == sorted(events["event_id"]) and stream.chunks > 2
    array = tmp_path / "listens.json"
    array.write_text(json.dumps([json.loads(line) for line in src.read_text().splitlines()]))
    events, _, summary = load_interactions(array, **{**options, "user_col": "track_metadata.artist_name"})
    assert len(events) == 60 and "nested objects in 'track_metadata'" in str(summary)


def test_two_duration_columns_fill_each_other(tmp_path):
    src = _listens(tmp_path / "listens.jsonl")
    _, items, summary = load_interactions(
        src,
        user_col="user_name",
        item_col="recording_msid",
        time_col="listened_at",
        time_unit="s",
        items=src,
        item_id_col="recording_msid",
        item_columns=parse_item_columns(
            "duration=track_metadata.additional_info.duration,duration_ms=track_metadata.additional_info.duration_ms"
        ),
    )
    by = items.set_index("item_id")["duration_s"]
    assert by["m3"] == 150.0 and by["m1"] == pytest.approx(201.0)  # m3's first row has seconds only
    assert "more from 'track_metadata.additional_info.duration_ms'" in str(summary)


def test_an_items_rows_genres_are_gathered(tmp_path):
    from ingest.import_items import load_items

    # Outbrain's documents_categories: one row per category of a document
    path = tmp_path / "documents_categories.csv"
    path.write_text(
        "document_id,category_id,confidence_level\n1,1403,0.92\n1,1600,0.07\n2,2000,0.9\n3,1403,0.5\n3,1403,0.3\n"
    )
    catalog, notes = load_items(path, "document_id", None, {"genre": "category_id"})
    by = catalog.set_index("item_id")
    assert by.loc["1", "genres"] == "1403|1600" and by.loc["1", "genre"] == "1403"
    assert by.loc["3", "genres"] == "1403" and len(catalog) == 3
    said = " ".join(notes)
    assert "1 item has different genres on their rows (e.g. '1': '1403|1600')" in said
    assert "rows that differ" not in said  # the genres are gathered, not dropped


def test_a_logs_own_tags_are_no_genres_of_its_items(tmp_path):
    # Letterboxd's diaries joined, given as their own items file: Tags are what each user wrote
    from ingest.import_items import load_items

    path = tmp_path / "diary_all.csv"
    path.write_text(
        "Username,Name,Year,Rating,Tags\n"
        "ann,Heat,1995,4,netflix\nbob,Heat,1995,5,rewatch\ncid,Heat,1995,3,\n"
        "ann,Alien,1979,5,2022\nbob,Alien,1979,4,cinema\nann,Up,2009,4,\n"
    )
    catalog, notes = load_items(path, "Name", None)
    assert set(catalog["genre"]) == {"unknown"} and catalog["genres"].isna().all()
    said = " ".join(notes)
    assert "'Tags' not read as genres" in said and "('Username')" in said
    assert "no genre column recognized" not in said
    told, _ = load_items(path, "Name", None, {"genre": "Tags"})  # named: read, and gathered, as asked
    assert told.set_index("item_id").loc["Heat", "genres"] == "netflix|rewatch"
    # a catalogue whose rows agree on an item's tags, beside a user column, keeps them
    agreed = tmp_path / "agreed.csv"
    agreed.write_text("user_id,item,tags\nann,Heat,crime\nbob,Heat,crime\nann,Up,animation\n")
    catalog, _ = load_items(agreed, "item", None)
    assert catalog.set_index("item_id")["genre"].to_dict() == {"Heat": "crime", "Up": "animation"}


def test_records_written_out_in_a_csv_cell_give_their_names(tmp_path):
    # YouTube's watch history through pandas' to_csv: subtitles as the repr of a list of records
    items = tmp_path / "videos.csv"
    pd.DataFrame(
        {
            "titleUrl": ["https://y/1", "https://y/2"],
            "title": ["Watched A", "Watched B"],
            "subtitles": [[{"name": "Chan A", "url": "https://y/c?a=1,2"}], [{"name": "Chan B", "url": "u"}]],
        }
    ).to_csv(items, index=False)
    from ingest.import_items import load_items

    catalog, _ = load_items(items, "titleUrl", None, parse_item_columns("artist=subtitles"))
    assert catalog["artist"].tolist() == ["Chan A", "Chan B"]


def test_items_rows_without_an_id_are_left_out_and_said(tmp_path):
    # Steam's games file: some lines describe a game without its 'id'
    from ingest.import_items import load_items

    path = tmp_path / "steam_games.json"
    rows = [{"id": "10", "app_name": "Counter-Strike"}, {"app_name": "No Id"}, {"id": "20", "app_name": "TF"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    catalog, notes = load_items(path, "id", None, {"title": "app_name"})
    assert catalog["item_id"].tolist() == ["10", "20"]
    assert "1 row of 3 without an id in 'id' left out" in " ".join(notes)


def test_a_column_named_tag_gives_the_genres(tmp_path):
    # KuaiRand's video_features_basic: tag is a quoted list of tag ids
    from ingest.import_items import load_items

    path = tmp_path / "video_features_basic_1k.csv"
    path.write_text('video_id,author_id,video_type,tag\n1,7,NORMAL,"28,11"\n2,8,AD,"5"\n3,7,NORMAL,\n')
    catalog, notes = load_items(path, "video_id", None)
    by = catalog.set_index("item_id")
    assert by.loc["1", "genres"] == "28|11" and by.loc["2", "genre"] == "5"
    assert "no genre column recognized" not in " ".join(notes)


def test_a_nested_records_name_answers_to_the_records_own_role(tmp_path):
    # Amazon Reviews 2023's meta files: the author is a record, {"name": …, "avatar": …}
    from ingest.import_items import load_items

    path = tmp_path / "meta_Books.jsonl"
    rows = [
        {"parent_asin": "B1", "title": "Storm", "author": {"avatar": "a.jpg", "name": "John O'Hara"}},
        {"parent_asin": "B2", "title": "Week", "author": {"avatar": "b.jpg", "name": "Jane Doe"}},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    catalog, notes = load_items(path, "parent_asin", None)
    assert catalog.set_index("item_id")["artist"].to_dict() == {"B1": "John O'Hara", "B2": "Jane Doe"}
    assert catalog["title"].tolist() == ["Storm", "Week"]
    assert "artist from 'author.name'" in " ".join(notes)


def test_a_catalogue_of_one_row_per_genre_beside_an_author_gathers_its_genres(tmp_path):
    # an author is the same on every row of a book: the file is no log of users' rows
    from ingest.import_items import load_items

    path = tmp_path / "book_genres.csv"
    path.write_text(
        "book_id,author,genre\nb1,Ann Lee,fantasy\nb1,Ann Lee,young-adult\nb2,Bo Yu,history\nb2,Bo Yu,war\n"
    )
    catalog, notes = load_items(path, "book_id", None)
    assert catalog.set_index("item_id")["genres"].to_dict() == {"b1": "fantasy|young-adult", "b2": "history|war"}
    assert "not read as genres" not in " ".join(notes)


def test_an_ad_catalogues_category_and_a_repositorys_topics_are_genres(tmp_path):
    from ingest.import_items import load_items

    ads = tmp_path / "ad_feature.csv"
    ads.write_text(
        "adgroup_id,cate_id,campaign_id,customer,brand,price\n63133,6406,83237,1,95471,170.0\n1,4520,2,3,NULL,9\n"
    )
    catalog, notes = load_items(ads, "adgroup_id", None)
    assert catalog.set_index("item_id")["genre"].to_dict() == {"63133": "6406", "1": "4520"}
    repos = tmp_path / "repos.csv"
    repos.write_text('repo_full_name,topics\na/b,"[""machine-learning"", ""python""]"\nc/d,[]\n')
    catalog, _ = load_items(repos, "repo_full_name", None)
    assert catalog.set_index("item_id")["genres"].to_dict() == {"a/b": "machine-learning|python", "c/d": None}


def test_an_items_file_whose_ids_carry_a_prefix_is_said_and_adds_no_items_no_one_met(tmp_path):
    # VNDB's titles are keyed v17 where the votes say 17
    log = tmp_path / "votes.csv"
    log.write_text("user,vn,time\n" + "".join(f"u{k % 4},{1 + k % 9},{T0 + k}\n" for k in range(30)))
    titles = tmp_path / "vn_titles.csv"
    titles.write_text("id,title\n" + "".join(f"v{k},Title {k}\n" for k in range(1, 21)))
    kw = dict(user_col="user", item_col="vn", time_col="time", time_unit="s", items=titles, item_id_col="id")
    _, items, summary = load_interactions(log, **kw)
    said = " ".join(str(summary).split())
    assert "none of the log's 9 items are in the items file's 'id'" in said
    assert "the file's ids are the log's with 'v' before them, so its rows were not added to the catalogue" in said
    assert sorted(items["item_id"]) == sorted(str(k) for k in range(1, 10))  # no 'v…' item
    # the log's ids prefixed instead, a few described: said the other way round, the file's rows kept
    prefixed = tmp_path / "prefixed.csv"
    prefixed.write_text("user,vn,time\n" + "".join(f"u{k % 4},v{1 + k % 20},{T0 + k}\n" for k in range(40)))
    plain = tmp_path / "plain.csv"
    plain.write_text("id,title\nv1,One\n" + "".join(f"{k},Title {k}\n" for k in range(2, 31)))
    _, items, summary = load_interactions(prefixed, **{**kw, "items": plain})
    said = " ".join(str(summary).split())
    assert "only 1 of the log's 20 items" in said and "the log's ids are the file's with 'v' before them" in said
    assert "import both into a new data directory" in said
    assert len(items) == 30 + 19
    # ids that share no prefix rule: the column is asked about, as before
    other = tmp_path / "other.csv"
    other.write_text("id,title\n" + "".join(f"x{k}y,T\n" for k in range(20)))
    _, _, summary = load_interactions(log, **{**kw, "items": other})
    assert "is --item-id-col the column the log's ids are in?" in " ".join(str(summary).split())


def test_an_items_file_whose_ids_are_padded_with_zeros_is_said(tmp_path):
    # Ta Feng's two versions: 2635 in one, 00002635 in the other
    log = tmp_path / "sales.csv"
    log.write_text("user,product,time\n" + "".join(f"u{k % 4},{2630 + k % 9},{T0 + k}\n" for k in range(30)))
    padded = tmp_path / "products.csv"
    padded.write_text("id,title\n" + "".join(f"{2630 + k:08d},Title {k}\n" for k in range(20)))
    kw = dict(user_col="user", item_col="product", time_col="time", time_unit="s", items=padded, item_id_col="id")
    _, items, summary = load_interactions(log, **kw)
    said = " ".join(str(summary).split())
    assert "none of the log's 9 items are in the items file's 'id'" in said
    assert "the ids differ by their leading zeros only" in said and ".str.zfill(n)" in said
    assert not items["item_id"].str.startswith("0").any()  # the padded rows added no item
    # ids of other widths that match no better unpadded are asked about, as before
    other = tmp_path / "other.csv"
    other.write_text("id,title\n" + "".join(f"{k:08d},T\n" for k in range(20)))
    _, _, summary = load_interactions(log, **{**kw, "items": other})
    said = " ".join(str(summary).split())
    assert "is --item-id-col the column the log's ids are in?" in said and "leading zeros" not in said


def test_amazon_2018_metadata_takes_its_main_cat_where_the_categories_are_empty(tmp_path):
    meta = tmp_path / "meta_All_Beauty.json"
    rows = [{"asin": i, "title": i.upper(), "category": [], "main_cat": "All Beauty" if i != "c" else "Luxury Beauty"}
            for i in ("a", "b", "c")]  # fmt: skip
    meta.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _, items, summary = _load(tmp_path, meta, item_id_col="asin")
    assert items.set_index("item_id")["genre"].loc[["a", "b", "c"]].tolist() == [
        "all beauty",
        "all beauty",
        "luxury beauty",
    ]
    assert any("genre from 'main_cat'" in n for n in summary.read_notes)


def test_camel_case_item_columns_are_recognized_by_their_words(tmp_path):
    # Avito's AdsInfo.tsv names its category CategoryID; Sketchfab's models a publishedAt
    ads = tmp_path / "AdsInfo.csv"
    pd.DataFrame(
        {"AdID": ["a", "b", "c"], "Title": ["Sofa", "Bike", "Lamp"], "CategoryID": [5, 7, 5],
         "publishedAt": ["2015-04-01T10:00:00Z", "2015-04-02T10:00:00Z", "2015-04-03T10:00:00Z"]}
    ).to_csv(ads, index=False)  # fmt: skip
    _, items, summary = _load(tmp_path, ads, item_id_col="AdID")
    described = items.set_index("item_id").loc[["a", "b", "c"]]
    assert described["genre"].tolist() == ["5", "7", "5"] and described["release_date"].notna().all()
    assert any("genre from 'CategoryID'" in n for n in summary.read_notes)


def test_book_crossings_author_and_year_of_publication_are_read(tmp_path):
    books = tmp_path / "BX-Books.csv"
    books.write_text(
        '"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher"\n'
        '"a";"Classical Mythology";"Mark P. O. Morford";"2002";"Oxford University Press"\n'
        '"b";"Clara Callan";"Richard Bruce Wright";"2001";"HarperFlamingo Canada"\n'
        '"c";"Decision in Normandy";"Carlo D\'Este";"1991";"HarperPerennial"\n',
        encoding="latin-1",
    )
    _, items, summary = _load(tmp_path, books, item_id_col="ISBN")
    described = items.set_index("item_id").loc[["a", "b", "c"]]
    assert described["artist"].tolist() == ["Mark P. O. Morford", "Richard Bruce Wright", "Carlo D'Este"]
    assert described["release_date"].dt.year.tolist() == [2002, 2001, 1991]
    assert any("artist from 'Book-Author'" in n for n in summary.read_notes)


def test_a_column_named_a_tag_list_is_split_at_its_semicolons(tmp_path):
    # WeChat Channels' feed_info.csv: manual_tag_list "200;6", most feeds' tags their own combination
    feeds = tmp_path / "feed_info.csv"
    feeds.write_text("feedid,manual_tag_list\na,200;6\nb,11;47\nc,89\n")
    _, items, summary = _load(tmp_path, feeds, item_id_col="feedid")
    described = items.set_index("item_id").loc[["a", "b", "c"]]
    assert described["genres"].tolist() == ["200|6", "11|47", "89"] and described["genre"].tolist() == [
        "200",
        "11",
        "89",
    ]
    # a name that says no list keeps a semicolon whose parts do not recur
    feeds.write_text("feedid,category\na,200;6\nb,11;47\nc,89\n")
    _, items, _ = _load(tmp_path, feeds, item_id_col="feedid")
    assert items.set_index("item_id").loc["a", "genre"] == "200;6"


def test_category_paths_joined_by_slashes_are_read_as_paths_and_keep_their_commas(tmp_path):
    # Sber MegaMarket's catalogue: one path per item, a comma inside one level's name
    paths = [
        "Электроника/Смартфоны и гаджеты/Смартфоны",
        "Электроника/Ноутбуки",
        "Одежда, обувь и аксессуары/Женская одежда/Платья",
        "Дом и сад/Мебель",
        "Электроника/ТВ",
    ]
    items = tmp_path / "items.csv"
    pd.DataFrame({"item": ["a", "b", "c", "d", "e"], "category": paths}).to_csv(items, index=False)
    _, catalog, summary = _load(tmp_path, items, item_id_col="item")
    genre = catalog.set_index("item_id")["genre"]
    assert genre.loc[["a", "b", "c", "d"]].tolist() == [
        "смартфоны и гаджеты",
        "ноутбуки",
        "одежда, обувь и аксессуары",
        "дом и сад",
    ]
    assert any("category paths split at '/' (3 first levels over 5 paths)" in n for n in summary.read_notes)
    # a few names with a slash in a list of plain genres are names, not paths
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"item": list("abcde"), "genre": ["Hip-Hop/Rap", "Pop", "Rock", "R&B/Soul", "Jazz"]}).to_csv(
        plain, index=False
    )
    _, catalog, _ = _load(tmp_path, plain, item_id_col="item")
    assert catalog.set_index("item_id")["genre"].loc[["a", "d"]].tolist() == ["hip-hop/rap", "r&b/soul"]


def test_quotes_escaped_with_a_backslash_are_read_as_quotes(tmp_path):
    # Sketchfab's likes, written with pandas' escapechar: a model's name holds quotes and commas
    likes = tmp_path / "model_likes_anon.psv"
    likes.write_text('modelname|mid|uid\nThe \\"Iron\\" Giant|a|u1\nSword of \\"Truth\\", remake|b|u1\nPlain|c|u2\n')
    kw = dict(user_col="uid", item_col="mid", time_col=None, items=likes, item_id_col="mid")
    events, catalog, summary = load_interactions(likes, **kw)
    assert len(events) == 3
    assert set(catalog["title"]) == {'The "Iron" Giant', 'Sword of "Truth", remake', "Plain"}
    assert any("escaped with a backslash" in n for n in summary.read_notes)


def test_a_backslash_escaped_quote_that_ends_its_field_is_no_doubled_quote(tmp_path):
    # Book-Crossing's BX-Books.csv: every field quoted, a title ending in an escaped quote, empty fields
    books = tmp_path / "BX-Books.csv"
    books.write_text(
        '"ISBN";"Book-Title";"Book-Author";"Publisher"\n'
        '"a";"A Second Chopped Onion: \\"Soup for the Soul\\"";"Jack Canfield";""\n'
        '"b";"The \\"Secret\\" Garden";"Frances Hodgson Burnett";"Dell"\n'
        '"c";"Plain";"";"Dell"\n',
        encoding="latin-1",
    )
    _, items, summary = _load(tmp_path, books, item_id_col="ISBN")
    titles = items.set_index("item_id")["title"]
    assert titles.loc[["a", "b", "c"]].tolist() == [
        'A Second Chopped Onion: "Soup for the Soul"',
        'The "Secret" Garden',
        "Plain",
    ]
    assert any("escaped with a backslash" in n for n in summary.read_notes)
    # a CSV that doubles its quotes is read its own way, a backslash left as it is
    doubled = tmp_path / "doubled.csv"
    doubled.write_text('item,title\na,"He said ""hi"""\nb,"C:\\\\path\\"\n')
    _, items, summary = _load(tmp_path, doubled, item_id_col="item")
    assert items.set_index("item_id").loc["a", "title"] == 'He said "hi"'
    assert not any("escaped with a backslash" in n for n in summary.read_notes)


def test_recbole_typed_names_and_token_seq_genres(tmp_path):
    """RecBole's atomic files name each field with its type; a token_seq of genres lists them between spaces."""
    log = tmp_path / "ml-100k.inter"
    log.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t4\t887943318\n1\t20\t3\t887943400\n2\t10\t5\t887943500\n"
    )
    items = tmp_path / "ml-100k.item"
    items.write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Children's Comedy\n20\tGoldenEye\t1995\tAction\n"
    )
    _, catalogue, summary = load_interactions(
        log, user_col="user_id:token", item_col="item_id:token", time_col="timestamp:float", time_unit="s", items=items
    )
    row = catalogue.set_index("item_id")
    assert row.loc["10", "title"] == "Toy Story" and row.loc["10", "genres"] == "animation|children's|comedy"
    assert row.loc["20", "genre"] == "action" and row.loc["10", "release_date"].year == 1995
    assert "genres in 'class:token_seq' read as a list between spaces" in str(summary)


def test_lines_without_their_separator_in_a_numbered_file_name_no_item(tmp_path):
    """Audioscrobbler's artist_data.txt: a few lines lack the tab, and the whole line became an id."""
    from ingest.import_items import load_items
    from ingest.importer import TextLayout

    artists = tmp_path / "artist_data.txt"
    lines = [f"{1000 + k}\tArtist {k}" for k in range(40)] + ["Band with no id 134", "1040\tLast Artist"]
    artists.write_text("\n".join(lines) + "\n")
    layout = TextLayout.from_options(None, "item,name", None, prefix="items-")
    items, notes = load_items(artists, "item", layout)
    assert "Band with no id 134" not in set(items["item_id"]) and "1040" in set(items["item_id"])
    assert any("1 row whose id is words ('Band with no id 134')" in n for n in notes)
    # ids that are words throughout are ids (titles as keys): kept
    named = tmp_path / "named.txt"
    named.write_text("\n".join(f"Band number {k}\tGenre {k % 3}" for k in range(40)) + "\n")
    items, _ = load_items(named, "item", layout)
    assert "Band number 7" in set(items["item_id"])


def test_an_items_own_year_gives_way_to_a_publication_date(tmp_path):
    books = tmp_path / "books.csv"
    books.write_text("item,product_year,publication_date\na,1990,2001-05-04\nb,1991,2002-06-07\nc,1992,\n")
    _, items, summary = _load(tmp_path, books, item_id_col="item")
    assert items.set_index("item_id").loc["a", "release_date"].year == 2001
    assert any("release from 'publication_date'" in n for n in summary.read_notes)


def test_kkbox_genre_ids_are_the_genres(tmp_path):
    """KKBox's songs.csv keeps its genres as pipe-separated codes in ``genre_ids``: without a word they
    were no genre column, and every song's genre was unknown."""
    songs = tmp_path / "songs.csv"
    pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "genre_ids": ["465", "958|465", "1609|444", None],
            "artist_name": list("wxyz"),
        }
    ).to_csv(songs, index=False)
    _, items, summary = _load(tmp_path, songs)
    row = items.set_index("item_id")
    assert row["genre"].tolist()[:3] == ["465", "958", "1609"]
    assert "no genre column recognized" not in " ".join(summary.read_notes)


@pytest.mark.parametrize(
    "lengths,first",
    [
        ([247640, 197328, 231781], "duration_ms=song_length reads it as milliseconds"),  # KKBox's songs.csv
        ([247, 197, 231], "duration=song_length reads it as seconds"),
    ],
)
def test_a_length_column_in_no_named_unit_is_not_read_and_both_readings_are_said(tmp_path, lengths, first):
    songs = tmp_path / "songs.csv"
    pd.DataFrame({"song_id": ["a", "b", "c"], "song_length": lengths, "genre_ids": ["465", "958|2022", "465"]}).to_csv(
        songs, index=False
    )
    _, items, summary = _load(tmp_path, songs, item_id_col="song_id")
    said = " ".join(str(summary).split())
    assert items["duration_s"].isna().all()  # a unit guessed wrong would scale every play's share
    assert "'song_length' looks like the items' length, but its name says no unit" in said and first in said
    # named, it is read: the note's advice works as said
    _, items, summary = _load(
        tmp_path, songs, item_id_col="song_id", item_columns=parse_item_columns("duration_ms=song_length")
    )
    assert items.set_index("item_id")["duration_s"].to_dict()["a"] == pytest.approx(lengths[0] / 1000)
    assert "looks like the items' length" not in " ".join(str(summary).split())
    # a count of characters is no length of the item: not offered
    titled = tmp_path / "titled.csv"
    pd.DataFrame({"song_id": ["a", "b", "c"], "title_length": [12, 30, 8]}).to_csv(titled, index=False)
    _, _, summary = _load(tmp_path, titled, item_id_col="song_id")
    assert "looks like the items' length" not in " ".join(str(summary).split())
