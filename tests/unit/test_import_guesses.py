"""What the import offers for a file it was not told how to read, on layouts whose guesses were
wrong and exited 0 when followed: Amazon 2018's item-first ratings, Jester 2's double tabs and
signed ratings, DMSC's crawl date and stars, Steam's recommendations, and a users file given as
the log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingest.import_files import TextLayout
from ingest.importer import ImportFormatError, load_interactions

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def _refusal(path: Path, **options: object) -> str:
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(path, now=NOW, **options)
    return " ".join(str(refused.value).split())


def _amazon(tmp_path: Path, item_first: bool, marked: bool = True) -> Path:
    rng = np.random.default_rng(3)
    lines = []
    for k in range(200):
        asin = f"B00{rng.integers(10**6, 10**7)}" if marked and k % 3 == 0 else f"0{rng.integers(10**8, 10**9)}"
        user = "A" + "".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"), 13))
        pair = (asin, user) if item_first else (user, asin)
        lines.append(f"{pair[0]},{pair[1]},{rng.integers(1, 6)}.0,{1_300_000_000 + 86_400 * k}")
    path = tmp_path / "Video_Games.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("marked", [True, False])
def test_amazons_item_first_ratings_are_offered_as_item_then_user(tmp_path, marked):
    # 2018's ratings-only files put the product first, 2014's the reviewer; their shapes tell which is which
    said = _refusal(_amazon(tmp_path, item_first=True, marked=marked))
    assert "--names item_id,user_id,rating,timestamp --rating-col rating --time-unit s" in said
    said = _refusal(_amazon(tmp_path, item_first=False, marked=marked))
    assert "--names user_id,item_id,rating,timestamp --rating-col rating --time-unit s" in said


def test_padded_numbers_are_no_product_ids(tmp_path):
    lines = [f"{k % 40:010d},{k % 70:010d},{1 + k % 5}" for k in range(200)]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    assert "--names user_id,item_id,rating --rating-col rating --no-time" in _refusal(tmp_path / "r.csv")


def test_jesters_double_tabs_and_signed_ratings_are_named(tmp_path):
    rows = [(1 + k % 30, 5 + k % 17, round(-9.9 + (k * 7.31) % 19.8, 3)) for k in range(300)]
    (tmp_path / "jester_ratings.dat").write_text("".join(f"{u}\t\t{i}\t\t{r}\n" for u, i, r in rows))
    said = _refusal(tmp_path / "jester_ratings.dat")
    assert "--names user_id,c2,item_id,c4,rating --rating-col rating --no-time" in said
    # followed, every rating is read on its -10 … 10 scale: nothing left unread, nothing quarantined
    names = ("user_id", "c2", "item_id", "c4", "rating")
    events, _, summary = load_interactions(
        tmp_path / "jester_ratings.dat", layout=TextLayout(names=names), rating_col="rating", time_col=None, now=NOW
    )
    assert len(events) == 300 and {"skip", "like"} <= set(events["type"])
    assert "ratings run below zero: scaled from the lowest" in " ".join(str(summary).split())


def _dmsc(tmp_path: Path) -> Path:
    rows = [
        (k, f"Film {k % 9}", "2017-01-22", f"用户{k % 25}", f"2015-{1 + k % 12:02d}-{1 + k % 28:02d}", 1 + k % 5, k * 3)
        for k in range(120)
    ]
    path = tmp_path / "DMSC.csv"
    columns = ["ID", "Movie_Name_EN", "Crawl_Date", "Username", "Date", "Star", "Like"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def test_a_date_the_same_on_every_row_is_no_events_time_and_stars_are_ratings(tmp_path):
    src = _dmsc(tmp_path)
    assert "--user-col Username --item-col Movie_Name_EN --rating-col Star --time-col Date" in _refusal(src)
    # followed the other way, every event at one instant is warned of
    _, _, summary = load_interactions(
        src, user_col="Username", item_col="Movie_Name_EN", time_col="Crawl_Date", now=NOW
    )
    said = " ".join(str(summary).split())
    assert "warning: every row's time in 'Crawl_Date' is 2017-01-22T00:00:00+00:00: that dates the file" in said
    assert "columns 'Star', 'Like' not read" in said


def test_a_yes_no_verdict_is_offered_as_likes_and_skips(tmp_path):
    rows = [(f"7656119{k % 30:010d}", 100 + k % 13, 1_500_000_000 + k, ["True", "False"][k % 4 == 0], k % 3)
            for k in range(100)]  # fmt: skip
    src = tmp_path / "steam_reviews.csv"
    columns = ["author.steamid", "app_id", "timestamp_created", "recommended", "comment_count"]
    pd.DataFrame(rows, columns=columns).to_csv(src, index=False)
    _, _, summary = load_interactions(
        src, user_col="author.steamid", item_col="app_id", time_col="timestamp_created", time_unit="s", now=NOW
    )
    said = " ".join(str(summary).split())
    assert "columns 'recommended', 'comment_count' not read" in said
    assert "--type-col recommended --type-map true=like,false=skip reads each verdict" in said


def test_a_users_file_given_as_the_log_is_told_to_go_beside_it(tmp_path):
    profile = tmp_path / "student_metadata.csv"
    pd.DataFrame(
        {"UserId": range(1000, 1040), "Gender": [k % 3 for k in range(40)], "DateOfBirth": ["2006-07-01"] * 40}
    ).to_csv(profile, index=False)
    said = _refusal(profile)
    assert "its rows are one per user ('UserId' differs on every row) and no column names an item" in said
    assert "with --users" in said and "--item-col COLUMN" not in said
    # a log of one row per user that names its items is a log all the same
    log = tmp_path / "log.csv"
    pd.DataFrame({"UserId": range(40), "ItemId": [k % 7 for k in range(40)]}).to_csv(log, index=False)
    assert "--user-col UserId --item-col ItemId" in _refusal(log)


def test_a_device_class_column_is_named_as_a_device(tmp_path):
    # Booking.com's trips: device_class is the device each booking was made on
    rows = [
        (f"u{k % 9}", f"c{k % 13}", f"2016-0{1 + k % 9}-1{k % 10}", ["desktop", "mobile"][k % 2]) for k in range(60)
    ]
    src = tmp_path / "train_set.csv"
    pd.DataFrame(rows, columns=["user_id", "city_id", "checkin", "device_class"]).to_csv(src, index=False)
    _, _, summary = load_interactions(src, item_col="city_id", time_col="checkin", now=NOW)
    assert "column 'device_class' is not read: every event's device is unknown" in " ".join(str(summary).split())
    events, _, _ = load_interactions(src, item_col="city_id", time_col="checkin", device_col="device_class", now=NOW)
    assert set(events["device"]) == {"desktop", "mobile"}


def test_wechats_view_times_and_favourites_are_named_as_unread_outcomes(tmp_path):
    rows = [(f"u{k % 12}", f"f{k % 30}", 1 + k % 14, k * 37 % 9000, k * 53 % 20000, k % 7 == 0) for k in range(120)]
    src = tmp_path / "user_action.csv"
    pd.DataFrame(rows, columns=["userid", "feedid", "date_", "play", "stay", "favorite"]).to_csv(src, index=False)
    _, _, summary = load_interactions(src, user_col="userid", item_col="feedid", time_col=None, now=NOW)
    assert "columns 'play', 'stay', 'favorite' not read" in " ".join(str(summary).split())


def test_a_purchase_flg_is_named_as_an_unread_outcome(tmp_path):
    # Ponpare's coupon visits: PURCHASE_FLG 1 on the visits that bought
    rows = [
        (f"u{k % 10}", f"c{k % 17}", f"2011-07-{1 + k % 28:02d} 10:{k % 60:02d}:00", int(k % 9 == 0)) for k in range(90)
    ]
    src = tmp_path / "coupon_visit_train.csv"
    pd.DataFrame(rows, columns=["USER_ID_hash", "VIEW_COUPON_ID_hash", "I_DATE", "PURCHASE_FLG"]).to_csv(
        src, index=False
    )
    _, _, summary = load_interactions(src, user_col="USER_ID_hash", item_col="VIEW_COUPON_ID_hash", time_col="I_DATE")
    assert "column 'PURCHASE_FLG' not read" in " ".join(str(summary).split())


def test_a_row_per_user_listing_their_items_is_no_users_file(tmp_path):
    # Tradesy: each user's bought, wanted and sold items in one record per user
    src = tmp_path / "tradesy.json"
    src.write_text(
        "".join(f'{{"uid": "{u}", "lists": {{"bought": ["{u + 1}", "{u + 2}"], "sold": []}}}}\n' for u in range(30))
    )
    said = _refusal(src, user_col="uid", item_col="lists")
    assert "a users file" not in said and "item column 'lists' not found" in said


def test_an_items_file_keyed_as_the_log_needs_no_item_id_col(tmp_path):
    # MovieLens' ratings.csv and movies.csv both name the film movieId
    ratings = tmp_path / "ratings.csv"
    pd.DataFrame({"userId": [1, 1, 2], "movieId": [10, 20, 10], "timestamp": [1e9, 1e9 + 9, 1e9 + 5]}).to_csv(
        ratings, index=False
    )
    movies = tmp_path / "movies.csv"
    pd.DataFrame({"movieId": [10, 20, 30], "title": ["Heat (1995)", "Big (1988)", "Up (2009)"]}).to_csv(movies)
    _, catalogue, summary = load_interactions(
        ratings, user_col="userId", item_col="movieId", time_unit="s", items=movies, now=NOW
    )
    assert catalogue is not None
    assert set(catalogue.set_index("item_id").loc[["10", "20"], "title"]) == {"Heat (1995)", "Big (1988)"}
    said = " ".join(str(summary).split())
    assert "movies.csv: items keyed by 'movieId', named as the log's" in said
    # a file with neither column is refused, naming the option
    other = tmp_path / "other.csv"
    pd.DataFrame({"film": [10], "title": ["Heat"]}).to_csv(other, index=False)
    with pytest.raises(ImportFormatError, match="item id column 'item_id' not found.*--item-id-col"):
        load_interactions(ratings, user_col="userId", item_col="movieId", time_unit="s", items=other, now=NOW)


def test_a_log_of_one_row_per_user_with_an_unnamed_item_is_no_profile(tmp_path):
    log = tmp_path / "visits.csv"
    pd.DataFrame(
        {"user_id": range(40), "url": [f"/p/{k % 9}" for k in range(40)], "ts": [1e9 + k for k in range(40)]}
    ).to_csv(log, index=False)
    said = _refusal(log, item_col="item")
    assert "a users file" not in said


def test_a_0_1_like_column_is_no_verdict(tmp_path):
    # WeChat's like: 1 on the few liked views, 0 on the rest, which are no dislikes
    rows = [(f"u{k % 12}", f"f{k % 30}", 1_600_000_000 + k, int(k % 30 == 0)) for k in range(120)]
    src = tmp_path / "user_action.csv"
    pd.DataFrame(rows, columns=["userid", "feedid", "ts", "like"]).to_csv(src, index=False)
    _, _, summary = load_interactions(src, user_col="userid", item_col="feedid", time_col="ts", time_unit="s", now=NOW)
    said = " ".join(str(summary).split())
    assert "column 'like' not read" in said and "1=like,0=skip" not in said


def test_a_column_of_trips_or_orders_is_offered_as_the_sessions(tmp_path):
    """Booking.com's utrip_id: a trip of days, which 30-minute gaps would cut into one session a day."""
    path = tmp_path / "booking_train_set.csv"
    rows = [(u, f"2016-0{1 + k % 2}-1{k}", 100 + k, f"{u}_{k // 3}") for u in range(4) for k in range(6)]
    pd.DataFrame(rows, columns=["user_id", "checkin", "city_id", "utrip_id"]).to_csv(path, index=False)
    options = {"item_col": "city_id", "time_col": "checkin"}
    _, _, summary = load_interactions(path, now=NOW, **options)
    assert "column 'utrip_id' is not read: sessions are cut at 30-minute gaps" in str(summary)
    assert "--session-col utrip_id makes each value one session" in str(summary)
    _, _, told = load_interactions(path, now=NOW, session_col="utrip_id", **options)
    assert "is not read: sessions" not in str(told) and "sessions from 'utrip_id'" in str(told)
    # a column read as the user is no session left unread (YOOCHOOSE's sessions as users)
    _, _, stand_in = load_interactions(path, now=NOW, **{**options, "user_col": "utrip_id"})
    assert "is not read: sessions" not in str(stand_in)


def _user_behavior(tmp_path: Path, stray: bool = True) -> Path:
    """Taobao's UserBehavior.csv: headerless user, item, category, behaviour (pv, cart, fav, buy), epoch
    seconds, nine days of 2017, with a few stamps of 1970 and 2008 as the real file has."""
    rng = np.random.default_rng(5)
    actions = rng.choice(["pv", "cart", "fav", "buy"], 1_000, p=[0.85, 0.06, 0.04, 0.05])
    times = 1_511_500_000 + rng.integers(0, 9 * 86_400, 1_000)
    if stray:  # not on the first line, which would then read as a header
        times[10:13], times[20:22] = [3, 3, 7], [1_210_000_000, 1_210_000_500]
    lines = [f"{1000 + k % 40},{rng.integers(10**6, 5 * 10**6)},{rng.integers(1000, 9999)},{a},{t}" for k, (a, t) in
             enumerate(zip(actions, times, strict=True))]  # fmt: skip
    path = tmp_path / "UserBehavior.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_headerless_column_of_shop_actions_is_offered_as_the_type(tmp_path):
    path = _user_behavior(tmp_path)
    refused = _refusal(path)
    example = "--names user_id,item_id,c3,behavior,timestamp --type-col behavior --type-map "
    assert example + "buy=like,cart=add_to_playlist,fav=like,pv=play --time-unit s" in refused
    names = "user_id,item_id,c3,behavior,timestamp"
    options = {"type_col": "behavior", "time_unit": "s"}
    _, _, summary = load_interactions(
        path,
        now=NOW,
        layout=TextLayout.from_options(None, names, None),
        type_map={"buy": "like", "cart": "add_to_playlist", "fav": "like", "pv": "play"},
        **options,
    )
    assert set(summary.type_counts) == {"play", "add_to_playlist", "like"}  # every row typed, none quarantined


def test_rows_dated_years_away_from_the_rest_are_said(tmp_path):
    names = TextLayout.from_options(None, "user_id,item_id,c3,c4,timestamp", None)
    _, _, summary = load_interactions(_user_behavior(tmp_path), now=NOW, layout=names, time_unit="s")
    assert "5 rows are dated years away from the rest (1970 3, 2008 2; 99% of the rows fall in 2017)" in str(summary)
    _, _, clean = load_interactions(_user_behavior(tmp_path, stray=False), now=NOW, layout=names, time_unit="s")
    assert "dated years away" not in str(clean)


def test_a_wide_headerless_file_leaves_the_user_and_item_to_its_documentation(tmp_path):
    """ICME 2019's short-video log: twelve columns of codes. By position the example took the user's city
    for the item and the channel (0-4) for a rating, and imported them with exit 0."""
    rng = np.random.default_rng(9)
    rows = [
        [rng.integers(0, 500), rng.integers(0, 100), rng.integers(0, 5000), rng.integers(0, 900), rng.integers(0, 100),
         rng.integers(0, 5), rng.integers(0, 2), rng.integers(0, 2), rng.integers(0, 400), rng.integers(0, 600),
         1_547_700_000 + rng.integers(0, 900_000), rng.integers(5, 60)]
        for _ in range(300)
    ]  # fmt: skip
    path = tmp_path / "final_track2_train.txt"
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    refused = _refusal(path)
    assert (
        "--names c1,c2,c3,c4,c5,c6,c7,c8,c9,c10,timestamp,c12 --time-unit s, then --user-col and --item-col" in refused
    )
    assert "not guessed by position" in refused and "--rating-col" not in refused


def test_file_order_over_rows_sorted_by_item_id_is_warned_of(tmp_path):
    """FIMI's baskets list their items by number: kept in file order, each user's highest ids are the
    hold-out. SASRec's ml-1m.txt lists them as they happened: no warning."""
    rng = np.random.default_rng(4)
    by_id = [(u, i) for u in range(20) for i in sorted(rng.choice(300, 6, replace=False))]
    as_played = [(u, i) for u in range(20) for i in rng.choice(300, 6, replace=False)]
    said = {}
    for name, rows in (("retail", by_id), ("ml-1m", as_played)):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame(rows, columns=["user", "item"]).to_csv(path, index=False)
        options = {"user_col": "user", "item_col": "item", "time_col": None}
        _, _, summary = load_interactions(path, now=NOW, keep_file_order=True, **options)
        _, _, shuffled = load_interactions(path, now=NOW, **options)
        said[name] = str(summary)
        assert "rising order" not in str(shuffled)  # the stable shuffle needs no warning
    assert "100% of the users with 3 rows or more list their items in rising order of 'item'" in said["retail"]
    assert "rising order" not in said["ml-1m"]


def test_the_session_note_names_only_a_visits_own_id_and_says_how_untimed_rows_are_cut(tmp_path):
    path = tmp_path / "log.csv"
    rows = [(u, 100 + k, f"2016-01-{10 + k}", 7, 3, f"o{u}{k // 3}") for u in range(4) for k in range(6)]
    columns = ["user_id", "item_id", "date", "srch_destination_id", "order_status_id", "order_id"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    _, _, timed = load_interactions(path, now=NOW, time_col="date")
    notes = [n for n in timed.read_notes if "is not read: sessions" in n]
    assert len(notes) == 1 and "column 'order_id' is not read: sessions are cut at 30-minute gaps" in notes[0]
    _, _, untimed = load_interactions(path, now=NOW, time_col=None)
    assert "column 'order_id' is not read: sessions are cut into visits of up to 10 rows" in str(untimed)


def test_a_log_growing_from_a_thin_start_has_no_stray_years(tmp_path):
    """Amazon's reviews: a few in 1999, more each year; one stamp of 1985 among them is stray."""
    years = [y for y in range(1999, 2015) for _ in range(int(8 * 1.55 ** (y - 1999)))]
    rows = [(f"u{k % 50}", f"i{k % 70}", f"{y}-0{1 + k % 9}-1{k % 10}") for k, y in enumerate(years)]
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)
    _, _, grown = load_interactions(path, now=NOW)
    assert "dated years away" not in str(grown)
    rows.append(("u1", "i1", "1985-05-01"))
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).sample(frac=1, random_state=1).to_csv(
        path, index=False
    )
    _, _, stray = load_interactions(path, now=NOW)
    assert "1 row is dated years away from the rest (1985 1;" in str(stray)


def test_movielens_tags_are_named_as_unread_unless_their_meaning_is_told(tmp_path):
    tags = ["funny", "boring", "will ferrell", "Highly quotable", "atmospheric"]
    rows = [(1 + k % 9, 100 + k % 23, tags[k % 5], 1_445_714_994 + k * 60) for k in range(80)]
    src = tmp_path / "tags.csv"
    pd.DataFrame(rows, columns=["userId", "movieId", "tag", "timestamp"]).to_csv(src, index=False)
    options = dict(user_col="userId", item_col="movieId", time_col="timestamp", time_unit="s", now=NOW)
    _, _, summary = load_interactions(src, **options)
    said = " ".join(str(summary).split())
    assert "column 'tag' ('funny', 'boring', 'will ferrell', …) not read" in said and "leave the tags out" in said
    events, _, told = load_interactions(src, event_type="add_to_playlist", **options)
    assert "column 'tag'" not in str(told) and set(events["type"]) == {"add_to_playlist"}
    numbered = tmp_path / "numbered.csv"  # a tag column of ids is no free text
    pd.DataFrame(rows, columns=["userId", "movieId", "tag", "timestamp"]).assign(tag=7).to_csv(numbered, index=False)
    assert "column 'tag'" not in str(load_interactions(numbered, **options)[2])


def _yambda_like(tmp_path):
    # Yambda's multi_event layout: a listen's share played in percent, empty on the other kinds
    rows = []
    for k in range(120):
        kind = "like" if k % 10 == 0 else "listen"
        rows.append((k % 12, k * 60, k % 30, kind, None if kind == "like" else [12, 100, 97][k % 3]))
    src = tmp_path / "multi_event.csv"
    pd.DataFrame(rows, columns=["uid", "timestamp", "item_id", "event_type", "played_ratio_pct"]).to_csv(
        src, index=False
    )
    return src


def test_yambdas_played_ratio_pct_left_unread_is_said(tmp_path):
    src = _yambda_like(tmp_path)
    _, _, summary = load_interactions(
        src, user_col="uid", time_col="timestamp", time_unit="s", time_origin="2023-01-01", now=NOW
    )
    said = " ".join(" ".join(summary.read_notes).split())
    assert "'played_ratio_pct'" in said and "not read" in said and "--played-col" in said


def test_a_played_share_left_unread_beside_a_type_column_is_said(tmp_path):
    src = _yambda_like(tmp_path)
    _, _, summary = load_interactions(
        src,
        user_col="uid",
        time_col="timestamp",
        time_unit="s",
        time_origin="2023-01-01",
        type_col="event_type",
        now=NOW,
    )
    said = " ".join(" ".join(summary.read_notes).split())
    assert "column 'played_ratio_pct' not read" in said and "--played-col played_ratio_pct" in said
