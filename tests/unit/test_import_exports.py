"""Personal-data and media-server exports (Goodreads, Netflix, Plex's Tautulli, Untappd, Trakt,
Jellyfin) and a few public logs (This Is My Jam, Ta Feng): the options their columns suggest, their
spreadsheet-kept ids, their quoting, and what their items files are read as."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.__main__ import app
from ingest.import_files import ImportFormatError
from ingest.import_items import load_items
from ingest.importer import load_interactions


def _refusal(path: Path, **options) -> str:
    with pytest.raises(ImportFormatError) as caught:
        load_interactions(path, **options)
    return " ".join(str(caught.value).split())


def _goodreads(tmp_path: Path) -> Path:
    """Two readers' library exports joined, a ``user`` column added by the join (as the README's
    one-account recipe does): a shelf row per book, ISBNs kept as text by spreadsheet formulas, Date
    Read filled on the read shelf only, Read Count each reader's own."""
    head = "Book Id,Title,Author,ISBN13,My Rating,Date Read,Date Added,Exclusive Shelf,Read Count,Owned Copies,user\n"
    rows = [
        '1,Dune,Frank Herbert,="9780441013593",5,2019/05/03,2019/04/01,read,1,0,ann',
        '2,Emma,Jane Austen,="",0,,2020/01/02,to-read,0,0,ann',
        '1,Dune,Frank Herbert,="9780441013593",4,2021/02/03,2021/01/01,read,2,0,bob',
        '3,Ubik,Philip K. Dick,="9780547572291",0,,2022/03/04,to-read,0,0,bob',
        '2,Emma,Jane Austen,="",3,2018/07/07,2018/06/06,read,1,0,bob',
    ]
    path = tmp_path / "goodreads_joined.csv"
    path.write_text(head + "\n".join(rows) + "\n")
    return path


def test_goodreads_suggests_the_reader_and_the_date_every_row_has(tmp_path):
    said = _refusal(_goodreads(tmp_path), user_col="nobody")
    # Author came first and is no reader; Date Read is empty on every unread shelf
    assert "--user-col user " in said and "--user-col Author" not in said
    assert "--time-col 'Date Added'" in said


def test_spreadsheet_kept_ids_are_read_as_their_text_and_an_empty_one_is_missing(tmp_path):
    raw, _, summary = load_interactions(
        _goodreads(tmp_path), user_col="user", item_col="ISBN13", rating_col="My Rating", time_col="Date Added"
    )
    assert sorted(set(raw["item_id"].dropna())) == ["9780441013593", "9780547572291"]
    assert raw["item_id"].isna().sum() == 2  # ="" is no ISBN: quarantined as missing, not an item


def test_a_readers_own_0_1_column_is_no_genre_of_the_book(tmp_path):
    catalog, notes = load_items(_goodreads(tmp_path), "Book Id", None)
    assert not catalog["genre"].str.contains("read count").any()
    assert not any("0/1 genre columns" in n for n in notes)


def test_genre_flags_are_named_where_they_are_read(tmp_path):
    items = tmp_path / "u.item.csv"
    items.write_text("movie_id,title,Action,Comedy,Drama\n1,Heat,1,0,1\n2,Big,0,1,0\n")
    catalog, notes = load_items(items, "movie_id", None)
    assert "genres from its 0/1 genre columns ('Action', 'Comedy', 'Drama')" in notes
    assert catalog.set_index("item_id").loc["1", "genres"] == "action|drama"
    # columns of zeros alone (HetRec's critics' counts for films no critic rated) name no genre
    zeros = tmp_path / "movies.dat"
    zeros.write_text("id,title,rtTopCriticsNumFresh,rtTopCriticsNumRotten\n1,Heat,0,0\n2,Big,0,0\n")
    catalog, notes = load_items(zeros, "id", None)
    assert not any("0/1 genre columns" in n for n in notes) and set(catalog["genre"]) == {"unknown"}


#: (file name, its text, what the suggestion says): each a column the names once led wrong
SUGGESTED = [
    pytest.param(
        "Tautulli_history_export.csv",
        "date,friendly_name,user_id,title,full_title,media_type,rating_key,started,stopped,duration,percent_complete\n"
        "1685000000,Ann,11,Episode 1,Show - Episode 1,episode,1003,1685000000,1685002700,2700,100\n"
        "1685003000,Bob,12,Heat,Heat,movie,1366,1685003000,1685004000,1000,15\n",
        "--user-col user_id --item-col rating_key --time-col date",  # Plex's rating_key is the item, no rating
        id="plex-rating-key",
    ),
    pytest.param(
        "ViewingActivity.csv",
        "Profile Name,Start Time,Duration,Attributes,Title,Supplemental Video Type,Device Type,Country\n"
        "Kids,2023-04-01 21:13:05,00:42:10,,Show: Season 2: Pilot (Episode 1),,Chrome PC,US (United States)\n"
        "Mom,2023-04-02 20:00:00,00:00:30,,Film: Trailer,TRAILER,Chrome PC,US (United States)\n",
        "--user-col 'Profile Name' --item-col Title --time-col 'Start Time'",  # no trailer flag as the item
        id="netflix-title",
    ),
    pytest.param(
        "untappd.csv",
        "beer_name,brewery_name,beer_type,rating_score,created_at,checkin_id,bid,brewery_id,user\n"
        "Pliny,Russian River,IPA,4.5,2021-06-05 19:12:44,101,7,3,ann\n"
        "Pliny,Other Brewery,IPA,,2021-06-06 19:12:44,102,8,4,bob\n",
        "--user-col user --item-col bid --rating-col rating_score --time-col created_at",  # names collide
        id="untappd-bid",
    ),
    pytest.param(
        "ta_feng_all_months_merged.csv",
        "TRANSACTION_DT,CUSTOMER_ID,AGE_GROUP,PIN_CODE,PRODUCT_SUBCLASS,PRODUCT_ID,AMOUNT,ASSET,SALES_PRICE\n"
        "11/1/2000,1104905,45-49,115,110411,4710199010372,2,24,37\n",
        "--user-col CUSTOMER_ID --item-col PRODUCT_ID",  # of two columns named for products, the id
        id="ta-feng-product-id",
    ),
    pytest.param(
        "history.csv",
        "id,watched_at,action,type,movie.title,movie.year,movie.ids.trakt,movie.ids.slug,movie.ids.imdb,user\n"
        "9,2023-01-02T20:11:00.000Z,watch,movie,Heat,1995,1,heat-1995,tt0113277,ann\n"
        "8,2023-01-03T20:11:00.000Z,scrobble,movie,Big,1988,2,big-1988,tt0094737,bob\n",
        "--user-col user --item-col movie.ids.trakt --time-col watched_at",  # a flattened record's id, not its title
        id="trakt-flattened-ids",
    ),
    pytest.param(
        "mlhd.csv",
        "user,timestamp,artist_mbids,release_mbid,recording_mbid\n"
        'u1,1100000000,"a1b2,c3d4",r1,x1\nu2,1100000100,e5f6,r2,x2\nu2,1100000200,e5f6,r2,x3\n',
        "--item-col recording_mbid",  # the recording, not the list of its artists
        id="mlhd-recording",
    ),
    pytest.param(
        "transactions_train.csv",
        "t_dat,customer_id,article_id,price,sales_channel_id\n"
        "2018-09-20,000058a12d5b43e67d225668fa1f8d618c13dc232df0cad8ffe7ad4a1091e318,0663713001,0.050831,2\n"
        "2018-09-21,00007d2de826758b65a93dd24ce629ed66842531df6699338c5570910a014cc2,0541518023,0.030492,2\n",
        "--user-col customer_id --item-col article_id --time-col t_dat",  # H&M's dates, not --no-time
        id="hm-t-dat",
    ),
    pytest.param(
        "train-item-views.csv",
        "sessionId;userId;itemId;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n1;NA;31331;1031018;2016-05-09\n"
        "2;278;32118;243569;2016-05-10\n3;NA;9654;75848;2016-05-06\n",
        "--user-col sessionId --item-col itemId --time-col eventdate",  # Diginetica's userId is mostly NA
        id="diginetica-session-eventdate",
    ),
    pytest.param(
        "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n1433221332117,257597,view,355908,\n"
        "1433224214164,992329,view,248676,\n1433221955914,111016,transaction,297662,4000\n",
        "--user-col visitorid --item-col itemid --time-col timestamp --time-unit ms",  # RetailRocket's
        id="retailrocket-visitorid",
    ),
    pytest.param(
        "clicks_joined.csv",
        "display_id,ad_id,clicked,uuid,document_id,timestamp,platform,geo_location\n"
        "1,42337,0,cb8c55702adb93,379743,61,3,US>SC>519\n1,139684,1,cb8c55702adb93,379743,61,3,US>SC>519\n",
        "--user-col uuid --item-col ad_id --time-col timestamp --type-col clicked",  # Outbrain's, joined to events
        id="outbrain-uuid",
    ),
    pytest.param(
        "train.csv",
        "row_id,timestamp,user_id,content_id,content_type_id,task_container_id,user_answer,answered_correctly,"
        "prior_question_elapsed_time,prior_question_had_explanation\n0,0,115,5692,0,1,3,1,,\n"
        "1,56943,115,5716,0,2,2,1,37000.0,False\n",
        "--user-col user_id --item-col content_id --time-col timestamp",  # Riiid's: no elapsed time, no row id
        id="riiid-content-id",
    ),
    pytest.param(
        "big_matrix.csv",
        "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio\n"
        "0,3649,13838,10867,2020-07-05 05:27:48.378,20200705,1593898068.378,1.273\n"
        "0,9598,13665,10984,2020-07-05 05:28:00.057,20200705,1593898080.057,1.244\n",
        "--time-col timestamp --time-unit s",  # KuaiRec's epoch, not its Beijing wall-clock time
        id="kuairec-epoch-first",
    ),
]


@pytest.mark.parametrize("name,text,said", SUGGESTED)
def test_the_suggested_options_name_the_columns_that_hold_users_items_and_times(tmp_path, name, text, said):
    path = tmp_path / name
    path.write_text(text)
    refused = _refusal(path, user_col="nobody")
    assert said in refused and "--rating-col rating_key" not in refused


def test_dicts_written_by_to_csv_are_refused_as_records_not_imported_as_ids(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "id,watched_at,action,type,movie,user\n"
        "1,2023-01-02T20:11:00.000Z,watch,movie,\"{'title': 'Heat', 'year': 1995, 'ids': {'trakt': 1}}\",ann\n"
        "2,2023-01-03T20:11:00.000Z,scrobble,movie,\"{'title': 'Big', 'year': 1988, 'ids': {'trakt': 2}}\",bob\n"
    )
    said = _refusal(path, user_col="user", item_col="movie", time_col="watched_at")
    assert "--item-col 'movie' holds records, not ids" in said
    assert "json_normalize" in said and "to_csv" in said


def test_a_headerless_file_whose_first_column_is_its_time_is_named_so(tmp_path):
    # Jellyfin's playback backup: time, user, item, … with no header, seven-digit fractions of seconds
    path = tmp_path / "PlaybackReportingBackup.tsv"
    rows = [
        f"2022-06-0{d} 02:33:32.7252050\t{'a' * 31}{u}\t{'b' * 31}{d}\tAudio\tArtist - Album - Track\tDirectPlay\t"
        f"Jellyfin Web\tChrome\t{100 + d}"
        for d in range(1, 6)
        for u in range(3)
    ]
    path.write_text("\n".join(rows) + "\n")
    said = _refusal(path)
    assert "--names timestamp,user_id,item_id,c4," in said and "--no-time" not in said


def test_a_headerless_check_in_file_is_not_offered_a_latitude_for_its_items(tmp_path):
    # SNAP's Gowalla and Brightkite: user, time, latitude, longitude, place id; a venue's rows repeat
    path = tmp_path / "loc-gowalla_totalCheckins.txt"
    venues = [(30.2557309927, -97.7951395833, 22847), (30.2691029532, -97.7493953705, 420315)]
    rows = [
        f"{k % 5}\t2010-10-{1 + k % 28:02d}T20:50:27Z\t{lat}\t{lon}\t{place}"
        for k in range(40)
        for lat, lon, place in [venues[k % 2]]
    ]
    path.write_text("\n".join(rows) + "\n")
    said = _refusal(path)
    assert "--names user_id,timestamp,c3,c4,item_id" in said


def test_a_headerless_file_of_play_counts_is_offered_its_count_column(tmp_path):
    # Last.fm 360K: user sha1, artist mbid (sometimes empty), artist name, plays; no time
    path = tmp_path / "usersha1-artmbid-artname-plays.tsv"
    plays = [2000 // (k + 1) ** 2 + 1 for k in range(30)]  # a long tail: the favourite played most
    rows = [f"{'a' * 39}{k % 3}\t{k:08d}-0f14-eb19-76bf-92deb5275526\tartist {k}\t{n}" for k, n in enumerate(plays)]
    path.write_text("\n".join(rows) + "\n")
    said = _refusal(path)
    assert "--names user_id,item_id,c3,plays --count-col plays --no-time" in said
    # ids that spread evenly are no counts
    path.write_text("\n".join(f"u{k % 3}\ti{k}\tname {k}\t{1000 + 37 * k}" for k in range(20)) + "\n")
    assert "--count-col" not in _refusal(path)


def test_no_time_beside_a_column_of_dates_named_otherwise_is_warned_of(tmp_path):
    # H&M's t_dat and Diginetica's eventdate: names no time word splits out of, dates in every cell
    path = tmp_path / "transactions_train.csv"
    path.write_text(
        "t_dat,customer_id,article_id\n" + "".join(f"2018-09-{20 + k % 9},c{k % 4},a{k}\n" for k in range(30))
    )
    _, _, summary = load_interactions(path, user_col="customer_id", item_col="article_id", time_col=None)
    said = " ".join(str(summary).split())
    assert "warning: --no-time leaves 't_dat' unread, though it holds times" in said
    path.write_text("sessionId;itemId;eventdate\n" + "".join(f"{k % 4};i{k};2016-05-{10 + k % 9}\n" for k in range(30)))
    _, _, summary = load_interactions(path, user_col="sessionId", item_col="itemId", time_col=None)
    assert "--no-time leaves 'eventdate' unread" in " ".join(str(summary).split())
    # a length of time written together is none: a film's runtime in minutes beside no dates
    path.write_text("user,item,runtime\n" + "".join(f"u{k % 4},i{k},{90 + k}\n" for k in range(30)))
    _, _, summary = load_interactions(path, user_col="user", item_col="item", time_col=None)
    assert "--no-time leaves" not in str(summary)


def test_a_tab_separated_file_quoted_only_far_down_is_read_as_quoted(tmp_path):
    # pandas' to_csv(sep="\t") quotes the few names with a quote inside; here none in the first 200 lines
    rows = [f"u{k % 7}\tArtist {k % 40}\tSong {k % 50}\t2011-09-{1 + k % 28:02d}" for k in range(400)]
    rows += ['u1\t"""Weird Al"" Yankovic"\t"""Heroes"""\t2011-10-01', 'u2\tBowie\t"""Heroes"""\t2011-10-02']
    path = tmp_path / "jams.tsv"
    path.write_text("user_id\tartist\ttitle\tcreation_date\n" + "\n".join(rows) + "\n")
    raw, _, summary = load_interactions(path, item_col="title", time_col="creation_date")
    assert '"Heroes"' in set(raw["item_id"]) and '"""Heroes"""' not in set(raw["item_id"])
    assert any("read as quoted" in n for n in summary.read_notes)


def test_a_file_of_user_pairs_is_said_to_be_a_social_graph_not_offered_as_a_log(tmp_path):
    path = tmp_path / "followers.tsv"
    path.write_text("followed_user_id\tfollower_user_id\n" + "a1\tb2\n" * 3)
    said = _refusal(path)
    assert "a social or trust graph" in said and "--item-col follower_user_id" not in said


def test_a_headerless_files_one_letter_codes_are_no_user_or_item(tmp_path):
    # Ta Feng's original D11: time; customer; age group A-K; area A-H; subclass; product; amount; asset; price
    lines = [
        f"2000-11-{1 + k % 28:02d} 00:00:00;{k * 37 % 991:08d};{'ABCDEFGHIJK'[k % 11]};{'ABCDEFGH'[k % 8]};"
        f"{110000 + k % 90};{4710000000000 + k * 7919};{1 + k % 3};{10 + k % 80};{12 + k % 90}"
        for k in range(60)
    ]
    path = tmp_path / "D11"
    path.write_text("\n".join(lines) + "\n")
    said = _refusal(path)
    assert "--names timestamp,user_id,c3,c4,item_id," in said


def test_a_log_as_its_own_items_file_gives_no_length_from_each_sessions_time(tmp_path):
    # Tautulli's history: duration is the time each session watched, not the episode's length
    path = tmp_path / "Tautulli_history_export.csv"
    path.write_text(
        "user_id,title,full_title,rating_key,duration,percent_complete\n"
        "11,Episode 1,Show - Episode 1,1003,2700,100\n12,Episode 1,Show - Episode 1,1003,900,33\n"
        "11,Heat,Heat,1366,6000,91\n13,Heat,Heat,1366,6600,100\n"
    )
    catalog, notes = load_items(path, "rating_key", None)
    assert catalog["duration_s"].isna().all()
    assert set(catalog["title"]) == {"Show - Episode 1", "Heat"}  # the full title, where a bare one repeats
    assert any("'duration' not read as the items' length" in n and "'user_id'" in n for n in notes)
    # a catalogue's one row per item keeps its length
    items = tmp_path / "items.csv"
    items.write_text("rating_key,duration\n1003,2700\n1366,6600\n")
    catalog, _ = load_items(items, "rating_key", None)
    assert sorted(catalog["duration_s"].tolist()) == [2700.0, 6600.0]


def test_an_import_whose_times_all_lie_ahead_says_the_time_column_is_wrong(tmp_path, monkeypatch):
    # a 13-digit product id named as the time by a guess reads as milliseconds in the year 2119
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "D11.csv"
    path.write_text(
        "user_id,item_id,timestamp\n" + "".join(f"u{k % 3},i{k % 4},{4710105011011 + k}\n" for k in range(9))
    )
    result = CliRunner().invoke(app, ["import", str(path), "--time-unit", "ms"])
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.output
    assert "its times read from 2119-04-05 on, after today: the time is another column (--time-col)" in said


def test_a_headerless_file_named_like_an_id_opening_with_epoch_times(tmp_path):
    # MLHD: one listener's <uuid>.txt.gz, time first (epoch seconds, each row its own), no user column
    path = tmp_path / "0a1b2c3d-0000-4000-8000-000000000001.txt"
    mbid = "5d300cb9-0706-a045-defc-044a0932562"
    path.write_text("".join(f"{1200000000 + 977 * k}\tart{k % 3}\t{mbid}{k % 4}\t{mbid}{k % 9}\n" for k in range(30)))
    said = _refusal(path)
    assert "--names timestamp," in said and "--time-unit s" in said
    assert "may be one user's history with no user column" in said
    # a log whose first column repeats is a user's, however large its numbers
    users = tmp_path / "ratings.txt"
    users.write_text("".join(f"{1200000000 + k % 3}\t{k % 7}\t{1 + k % 5}\n" for k in range(30)))
    said = _refusal(users)
    assert "--names user_id,item_id,rating" in said and "one user's history" not in said


def test_a_country_written_with_its_name_gives_its_code_as_the_locale(tmp_path):
    path = tmp_path / "ViewingActivity.csv"
    path.write_text(
        "Profile Name,Start Time,Title,Country\n"
        "Kids,2023-04-01 21:13:05,Heat,US (United States)\nMom,2023-04-02 20:00:00,Big,DE (Germany)\n"
        "Dad,2023-04-03 20:00:00,Ran,Atlantis\n"
    )
    raw, _, _ = load_interactions(
        path, user_col="Profile Name", item_col="Title", time_col="Start Time", locale_col="Country"
    )
    assert sorted(raw["locale"]) == ["de", "other", "us"]


def test_a_tags_column_of_words_between_spaces_gives_each_tag(tmp_path):
    # a Flickr crawl's photos.tsv: tags joined by spaces, a few tags in many combinations
    tags = ["beach", "sunset", "nikon", "city", "night", "dog"]
    rows = [f"p{k}\towner{k % 5}\t{tags[k % 6]} {tags[(k + 1) % 6]} {tags[(k // 6 + 3) % 6]}" for k in range(40)]
    path = tmp_path / "photos.tsv"
    path.write_text("photo_id\towner\ttags\n" + "\n".join(rows) + "\n")
    catalog, notes = load_items(path, "photo_id", None)
    assert set(catalog["genre"]) <= set(tags)
    assert catalog.set_index("item_id").loc["p0", "genres"].split("|")[:2] == ["beach", "sunset"]
    assert any(n.startswith("tags read as words between spaces (6 tags in") for n in notes)
    # a genre column of names with spaces stays whole
    genres = tmp_path / "items.csv"
    genres.write_text("id,genre\n" + "".join(f"{k},{['hip hop', 'science fiction'][k % 2]}\n" for k in range(20)))
    catalog, _ = load_items(genres, "id", None)
    assert set(catalog["genre"]) == {"hip hop", "science fiction"}


def test_genre_lists_keep_a_slash_inside_a_genres_name(tmp_path):
    # Yahoo! Movies: pipe lists of genres, some named with a slash ("Science Fiction/Fantasy"), which
    # recur beside one another as a path's levels would
    names = ["Science Fiction/Fantasy", "Kids/Family", "Action/Adventure", "Musical/Performing Arts", "Thriller"]
    plain = ["Drama", "Comedy", "Horror", "Western", "Crime", "War", "Noir"]
    rows = [f"{k}\tMovie {k}\t{names[k % 2]}|{names[2 + k % 3]}|{plain[k % 7]}" for k in range(60)]
    path = tmp_path / "movies.txt"
    path.write_text("movie_id\ttitle\tgenres\n" + "\n".join(rows) + "\n")
    catalog, notes = load_items(path, "movie_id", None)
    assert not any("category paths" in n for n in notes)
    assert "science fiction/fantasy" in set(catalog["genre"])


def test_a_headerless_file_sorted_by_small_user_numbers_names_them_users(tmp_path):
    # KGRec-music's implicit_lf_dataset.csv: user 0, 1, … in order, a sound id, and 1
    path = tmp_path / "implicit_lf_dataset.csv"
    path.write_text("".join(f"{k // 25}\t{100000 + k * 37 % 9000}\t1\n" for k in range(300)))
    said = _refusal(path)
    assert "--names user_id,item_id," in said and "small counts, not ids" not in said


def test_a_time_played_left_unread_is_said(tmp_path):
    # Jellyfin's playback report: every row would import as a whole play, short ones too
    path = tmp_path / "PlaybackActivity.csv"
    path.write_text(
        "DateCreated,UserId,ItemId,ItemType,ItemName,PlaybackMethod,ClientName,DeviceName,PlayDuration\n"
        + "".join(
            f"2022-06-0{1 + k % 9} 02:33:32,u{k % 3},i{k % 5},Audio,A - B - C,DirectPlay,Web,Chrome,{k * 7}\n"
            for k in range(12)
        )
    )
    _, _, summary = load_interactions(path, user_col="UserId", item_col="ItemId", time_col="DateCreated")
    said = " ".join(" ".join(summary.read_notes).split())
    assert "column 'PlayDuration' not read: every row is imported as a whole play" in said
    assert "--played-col reads one" in said


def test_a_primary_category_is_the_items_genre(tmp_path):
    # Sephora's product_info.csv
    items = tmp_path / "product_info.csv"
    items.write_text("product_id,product_name,primary_category\nP1,Lip Oil,Makeup\nP2,Serum,Skincare\n")
    catalog, notes = load_items(items, "product_id", None)
    assert catalog.set_index("item_id")["genre"].to_dict() == {"P1": "makeup", "P2": "skincare"}
