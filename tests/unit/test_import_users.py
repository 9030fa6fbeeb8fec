"""A users file (``--users``): a profile per user whose country or device each of the user's events
takes where the log gives none, so that a public log whose rows carry no context (Last.fm's
listening history beside ``userid-profile.tsv``) still trains cohorts by country."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.__main__ import app
from ingest.countries import country_code
from ingest.import_files import TextLayout
from ingest.import_users import UsersFile
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions
from setlist.eventlog import EventLog
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
COUNTRIES = ["United Kingdom", "Russia", "", "Japan", "Atlantis"]


def _listening(tmp_path: Path, users: int = 12, per_user: int = 6) -> Path:
    """Last.fm 1K's layout: headerless tab-separated plays, ids such as ``user_000003``."""
    lines = []
    for u in range(users):
        for k in range(per_user):
            lines.append(f"user_{u:06d}\t2009-05-{1 + k:02d}T1{u % 10}:00:00Z\tt{(u * 7 + k) % 15}\tTrack")
    path = tmp_path / "plays.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _profile(tmp_path: Path, users: int = 12, described: int = 10) -> Path:
    """Last.fm 1K's ``userid-profile.tsv``: a ``#id`` column and countries by name; the last two users
    have no row, one country is empty and one names no country."""
    rows = [
        (f"user_{u:06d}", "m", 30, COUNTRIES[u % len(COUNTRIES)], "Aug 13, 2006") for u in range(described)
    ]  # fmt: skip
    path = tmp_path / "profile.tsv"
    pd.DataFrame(rows, columns=["#id", "gender", "age", "country", "registered"]).to_csv(path, sep="\t", index=False)
    return path


def _options(tmp_path: Path, **users: object) -> dict:
    layout = TextLayout(names=("user", "when", "track", "title"))
    spec = UsersFile(_profile(tmp_path), **users)  # type: ignore[arg-type]
    return dict(user_col="user", item_col="track", time_col="when", layout=layout, users=spec, now=NOW)


def test_each_event_takes_its_users_country_by_code_from_the_profile(tmp_path):
    _listening(tmp_path)
    events, _, summary = load_interactions(tmp_path / "plays.tsv", **_options(tmp_path))
    locale = events.groupby("user_id")["locale"].agg(set)
    # by the log's user ids, found through the '#id' column that holds them
    assert locale["user_000000"] == {"gb"} and locale["user_000001"] == {"ru"}
    assert locale["user_000003"] == {"jp"} and locale["user_000004"] == {"other"}
    # an empty country and a user the file does not describe: unknown, as a log without context
    assert locale["user_000002"] == {"unknown"} and locale["user_000011"] == {"unknown"}
    assert (events["device"] == "unknown").all()
    said = " ".join(str(summary).split())
    assert (
        "profile.tsv: locale from 'country' for 8 of the log's 12 users (2 of them read as 'other'; 4 have none there"
        in said
    )
    assert "'Atlantis'" in said and "'United Kingdom' is 'gb'" in said
    assert (
        "'Atlantis' (--locale-map NAME=LOCALE,… names them as a request would, or SETLIST_CONTEXT_LOCALE_PATTERN "
        "widens what it may name" in said
    )
    assert "every user's locale reads as 'other'" not in said


def test_a_column_of_codes_that_reads_as_other_for_every_user_is_said_so(tmp_path):
    # KKBox's members.csv numbers its cities: no code is a locale, so every user would share one cohort
    _listening(tmp_path)
    users = tmp_path / "members.csv"
    pd.DataFrame({"msno": [f"user_{u:06d}" for u in range(12)], "city": [1, 13, 5, 22] * 3}).to_csv(users, index=False)
    layout = TextLayout(names=("user", "when", "track", "title"))
    options = dict(user_col="user", item_col="track", time_col="when", layout=layout, now=NOW)
    events, _, summary = load_interactions(
        tmp_path / "plays.tsv", **options, users=UsersFile(users, id_col="msno", locale_col="city")
    )
    assert (events["locale"] == "other").all()
    said = " ".join(str(summary).split())
    assert "every user's locale reads as 'other', so the cohorts tell no one apart" in said
    assert "--locale-map NAME=LOCALE" in said and "SETLIST_CONTEXT_LOCALE_PATTERN" in said


def test_the_logs_own_context_wins_and_the_profile_fills_the_rest(tmp_path):
    rows = [("a", "i1", "2024-01-01 10:00", "DE"), ("a", "i2", "2024-01-01 11:00", ""), ("b", "i1", "2024-01-02", "")]
    log = tmp_path / "log.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "locale"]).to_csv(log, index=False)
    users = tmp_path / "users.csv"
    pd.DataFrame({"user_id": ["a", "b"], "market": ["FR", "ES"], "platform": ["1", "2"]}).to_csv(users, index=False)
    spec = UsersFile(users, locale_col="market", device_col="platform")
    events, _, _ = load_interactions(
        log, locale_col="locale", users=spec, device_map={"1": "mobile", "2": "desktop"}, now=NOW
    )
    got = events.sort_values("timestamp")[["user_id", "locale", "device"]].values.tolist()
    assert got == [["a", "de", "mobile"], ["a", "fr", "mobile"], ["b", "es", "desktop"]]


def test_a_profile_joins_the_same_way_in_chunks(tmp_path):
    _listening(tmp_path, users=30, per_user=8)
    options = _options(tmp_path)
    whole, _, summary = load_interactions(tmp_path / "plays.tsv", **options)
    stream = InteractionStream(tmp_path / "plays.tsv", ImportOptions(**options), 25)
    streamed = pd.concat(list(stream), ignore_index=True)
    key = ["event_id"]
    pd.testing.assert_frame_equal(
        whole.sort_values(key).reset_index(drop=True), streamed.sort_values(key).reset_index(drop=True)
    )
    assert str(summary) == str(stream.summary)


@pytest.mark.parametrize(
    ("users", "message"),
    [
        (dict(id_col="gender"), "none of its ids in 'gender'"),
        (dict(locale_col="nation"), "locale column 'nation' not found"),
        (dict(locale_col=None, id_col="#id", device_col="devices"), "device column 'devices' not found"),
    ],
)
def test_a_profile_that_cannot_be_joined_is_refused_with_its_reason(tmp_path, users, message):
    _listening(tmp_path)
    with pytest.raises(ImportFormatError, match=message):
        load_interactions(tmp_path / "plays.tsv", **_options(tmp_path, **users))


def test_a_profile_without_context_or_ids_of_the_log_says_which_option_names_them(tmp_path):
    _listening(tmp_path)
    bare = tmp_path / "bare.csv"
    pd.DataFrame({"user": [f"user_{u:06d}" for u in range(5)], "age": [20] * 5}).to_csv(bare, index=False)
    layout = TextLayout(names=("user", "when", "track", "title"))
    base = dict(user_col="user", item_col="track", time_col="when", layout=layout, now=NOW)
    with pytest.raises(ImportFormatError, match="no column named for a country, locale or device.*--users-locale-col"):
        load_interactions(tmp_path / "plays.tsv", **base, users=UsersFile(bare))
    strangers = tmp_path / "strangers.csv"
    pd.DataFrame({"member": ["x1", "x2"], "country": ["Spain", "Chile"]}).to_csv(strangers, index=False)
    with pytest.raises(ImportFormatError, match="none holds the log's user ids.*--users-id-col"):
        load_interactions(tmp_path / "plays.tsv", **base, users=UsersFile(strangers))
    with pytest.raises(ImportFormatError, match="--users joins its file on one user id"):
        ImportOptions(user_col="user,track", item_col="title", users=UsersFile(bare)).check()


def test_differing_rows_of_one_user_keep_the_first_that_names_one(tmp_path):
    rows = [("a", "i1", "2024-01-01"), ("b", "i2", "2024-01-02")]
    log = tmp_path / "log.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(log, index=False)
    users = tmp_path / "users.csv"
    cells = {"user_id": ["a", "a", "b", "b", None], "country": ["", "Chile", "Peru", "Spain", "Italy"]}
    pd.DataFrame(cells).to_csv(users, index=False)
    events, _, summary = load_interactions(log, users=UsersFile(users), now=NOW)
    assert dict(zip(events["user_id"], events["locale"], strict=True)) == {"a": "cl", "b": "pe"}
    said = " ".join(str(summary).split())
    # the values are named, never the user
    assert "1 user with different locales on several rows of 'country' (e.g. 'pe' and 'es'): the first row's" in said
    assert "'b'" not in said
    assert "1 row without an id in 'user_id' left out" in said


def test_a_logs_country_column_reads_names_and_places_as_codes(tmp_path):
    cells = ["Spain", "USA", "nyc, new york, usa", "US (United States)", "pt-BR", "n/a, n/a, n/a", "Catalonia"]
    rows = [(f"u{k}", "i1", f"2024-01-0{k + 1}", c) for k, c in enumerate(cells)]
    log = tmp_path / "log.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "location"]).to_csv(log, index=False)
    events, _, summary = load_interactions(log, locale_col="location", now=NOW)
    # a place none of whose parts is known is no place: unknown, not other
    assert events.sort_values("timestamp")["locale"].tolist() == ["es", "us", "us", "us", "pt-BR", "unknown", "other"]
    said = " ".join(str(summary).split())
    assert "4 values naming a country (or a place in it, city first) read as the country's two-letter code" in said
    assert "('Spain' is 'es')" in said and "'Catalonia'" in said
    # a language column keeps a three-letter code as a language (Filipino), not a country
    lang = tmp_path / "lang.csv"
    pd.DataFrame({"user_id": ["a"], "item_id": ["i"], "timestamp": ["2024-01-01"], "lang": ["fil"]}).to_csv(lang)
    assert load_interactions(lang, locale_col="lang", now=NOW)[0]["locale"].tolist() == ["fil"]


@pytest.mark.parametrize(
    ("text", "code"),
    [("United Kingdom", "GB"), ("russia", "RU"), ("GBR", "GB"), ("de", "DE"), ("Korea, Republic of", "KR"),
     (" U.S.A. ", "US"), ("Atlantis", None), ("", None), ("1234", None)],
)  # fmt: skip
def test_country_names_and_codes_read_as_iso_codes(text, code):
    assert country_code(text) == code


def test_the_command_line_imports_a_profile_and_stores_no_raw_id(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("SETLIST_DATA_DIR", str(data))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    src, profile = _listening(tmp_path), _profile(tmp_path)
    args = ["import", str(src), "--names", "user,when,track,title", "--user-col", "user", "--item-col", "track"]
    args += ["--time-col", "when", "--users", str(profile)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "locale from 'country' for 8 of the log's 12 users" in " ".join(result.output.split())
    settings = Settings(data_dir=data, hmac_key="k")
    stored = EventLog(settings.events_dir).read()
    first = pseudonymize("user_000000", settings.secret_hmac_key())
    assert set(stored.loc[stored["user_id"] == first, "locale"]) == {"gb"}
    assert not stored["user_id"].str.contains("user_0").any()
    # the same log again without its profile would read its rows another way: refused, naming the flag
    again = CliRunner().invoke(app, args[: args.index("--users")])
    assert again.exit_code != 0 and "(--users differs)" in " ".join(again.output.split())
    # the profile's options need the profile
    alone = CliRunner().invoke(app, ["import", str(src), "--users-locale-col", "country"])
    assert alone.exit_code != 0 and "--users-locale-col describes the users file: it needs --users FILE" in " ".join(
        alone.output.split()
    )


def test_a_profile_of_many_more_users_than_a_log_sample_is_joined(tmp_path):
    # the head of Last.fm 1K's log beside its whole profile: most of the file's ids are no user of the sample
    _listening(tmp_path, users=3)
    rows = [(f"user_{u:06d}", "Japan") for u in range(40)]
    pd.DataFrame(rows, columns=["#id", "country"]).to_csv(tmp_path / "profile.tsv", sep="\t", index=False)
    layout = TextLayout(names=("user", "when", "track", "title"))
    events, _, _ = load_interactions(
        tmp_path / "plays.tsv", user_col="user", item_col="track", time_col="when", layout=layout,
        users=UsersFile(tmp_path / "profile.tsv"), now=NOW,
    )  # fmt: skip
    assert set(events["locale"]) == {"jp"}


def test_a_column_named_for_items_is_never_the_profiles_id(tmp_path):
    # MovieLens numbers users and films alike from 1: a file of films' countries is no profile
    log = tmp_path / "ratings.csv"
    pd.DataFrame({"userId": [1, 2, 3], "movieId": [10, 20, 30], "timestamp": [1e9, 1e9 + 1, 1e9 + 2]}).to_csv(
        log, index=False
    )
    films = tmp_path / "movie_countries.csv"
    pd.DataFrame({"movieID": [1, 2, 3, 4], "country": ["USA", "France", "Japan", "Spain"]}).to_csv(films, index=False)
    with pytest.raises(ImportFormatError, match="none holds the log's user ids.*--users-id-col"):
        load_interactions(log, user_col="userId", item_col="movieId", time_unit="s", users=UsersFile(films), now=NOW)


def test_a_profiles_country_is_read_before_its_region(tmp_path):
    # XING's users.csv: region is a German state, country the country
    rows = [("a", "i1", "2024-01-01"), ("b", "i2", "2024-01-02")]
    log = tmp_path / "log.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(log, index=False)
    users = tmp_path / "users.csv"
    pd.DataFrame({"user_id": ["a", "b"], "region": ["7", "3"], "country": ["de", "non_dach"]}).to_csv(
        users, index=False
    )
    events, _, summary = load_interactions(log, users=UsersFile(users), now=NOW)
    assert dict(zip(events["user_id"], events["locale"], strict=True)) == {"a": "de", "b": "other"}
    assert "locale from 'country' for 2 of the log's 2 users (1 of them read as 'other')" in " ".join(
        str(summary).split()
    )


def test_a_headerless_profile_is_refused_before_its_first_user_is_lost(tmp_path):
    _listening(tmp_path)
    rows = [f"user_{u:06d}\tf\t\tMoldova\tNov 8, 2007" for u in range(12)]
    (tmp_path / "usersha1-profile.tsv").write_text("\n".join(rows) + "\n")
    base = _options(tmp_path)
    spec = UsersFile(tmp_path / "usersha1-profile.tsv", locale_col="Moldova")
    with pytest.raises(ImportFormatError, match="no header line: its first line holds 'user_000000', a value"):
        load_interactions(tmp_path / "plays.tsv", **{**base, "users": spec})
    # beside a sample of the log, whose users the first line may not hold: its hash and country still tell
    sample = tmp_path / "sample.tsv"
    sample.write_text(
        "".join(f"{'ab' * 20}\tf\t\tMoldova\tNov 8, 2007\n" for _ in range(1))
        + (tmp_path / "usersha1-profile.tsv").read_text()
    )
    with pytest.raises(ImportFormatError, match="its first line holds 'abab"):
        load_interactions(tmp_path / "plays.tsv", **{**base, "users": UsersFile(sample)})
    named = UsersFile(tmp_path / "usersha1-profile.tsv", layout=TextLayout(names=("user", "g", "age", "country", "s")))
    events, _, _ = load_interactions(tmp_path / "plays.tsv", **{**base, "users": named})
    assert set(events["locale"]) == {"md"}


@pytest.mark.parametrize(
    ("cell", "locale"),
    [("köln, nordrhein-westfalen, deutschland", "de"), ("toronto, ontario, ", "unknown"), ("-unknown-", "unknown")],
)
def test_places_in_their_own_language_and_odd_blanks_read_as_meant(tmp_path, cell, locale):
    log = tmp_path / "log.csv"
    pd.DataFrame({"user_id": ["a"], "item_id": ["i"], "timestamp": ["2024-01-01"], "country": [cell]}).to_csv(log)
    assert load_interactions(log, locale_col="country", now=NOW)[0]["locale"].tolist() == [locale]
