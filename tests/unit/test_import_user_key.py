"""A user named by several columns together (``--user-col account,'Profile Name'``): an account's
export holds one profile per person, and two accounts' "Kids" are two people, so neither column
alone is the user."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.__main__ import app
from ingest.erasure import erase
from ingest.importer import ImportFormatError, ImportOptions, InteractionStream, load_interactions, rows_per_line
from ingest.intake import READ_NOTE
from ingest.item_key import KEY_JOIN
from setlist.eventlog import EventLog
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
USER = "account,Profile Name"


def _viewing(path: Path) -> Path:
    """Viewing activity of two accounts joined into one file (the README's join of per-account
    folders): both have a "Kids" profile; one row has no profile name, one no account."""
    rows = [
        ("acct-a", "Ana", "Dark: Season 1", "2024-01-02 16:00:00"),
        ("acct-a", "Kids", "Bluey: Season 2", "2024-01-02 17:00:00"),
        ("acct-a", "Kids", "Bluey: Season 3", "2024-01-03 17:00:00"),
        ("acct-b", "Kids", "Dark: Season 1", "2024-01-04 17:00:00"),
        ("acct-b", "Bo", "Bluey: Season 2", "2024-01-04 21:00:00"),
        ("acct-b", "", "Dark: Season 2", "2024-01-05 21:00:00"),
        ("", "Kids", "Bluey: Season 2", "2024-01-06 17:00:00"),
    ]
    pd.DataFrame(rows, columns=["account", "Profile Name", "Title", "Start Time"]).to_csv(path, index=False)
    return path


def _options(**extra) -> dict:
    return dict(user_col=USER, item_col="Title", time_col="Start Time", now=NOW, **extra)


def test_two_accounts_profiles_of_one_name_are_two_users(tmp_path):
    events, _, summary = load_interactions(_viewing(tmp_path / "viewing.csv"), **_options())
    users = events["user_id"].tolist()
    assert users[:5] == [
        f"acct-a{KEY_JOIN}Ana",
        f"acct-a{KEY_JOIN}Kids",
        f"acct-a{KEY_JOIN}Kids",
        f"acct-b{KEY_JOIN}Kids",
        f"acct-b{KEY_JOIN}Bo",
    ]
    # a row missing either part has no user: quarantined for it, the empty part named
    assert events["user_id"].iloc[5:].isna().all()
    assert events[READ_NOTE].iloc[5:].tolist() == [
        "'Profile Name' empty (a part of the user's key)",
        "'account' empty (a part of the user's key)",
    ]
    said = " ".join(str(summary).split())
    assert "users named by 'account' and 'Profile Name' together, as 'account – Profile Name'" in said
    assert "will be quarantined: 2 rows with empty 'account' or 'Profile Name' (a part of the user's key)" in said


def test_an_import_in_chunks_keys_users_and_items_as_an_import_at_once(tmp_path):
    rng = np.random.default_rng(7)
    n = 900
    frame = pd.DataFrame(
        {
            "account": rng.choice(["a1", "a2", "a3", ""], n, p=[0.4, 0.3, 0.28, 0.02]),
            "profile": rng.choice(["Kids", "Ana", "Bo"], n),
            "artist": rng.choice(["Air", "Low", "Can"], n),
            "track": rng.choice(["One", "Two", "Three"], n),
            "ts": 1_700_000_000 + np.sort(rng.integers(0, 86_400 * 20, n)),
        }
    )
    src = tmp_path / "plays.csv"
    frame.to_csv(src, index=False)
    options = dict(user_col="account,profile", item_col="artist,track", time_col="ts", time_unit="s", now=NOW)
    events, _, summary = load_interactions(src, **options)
    stream = InteractionStream(src, ImportOptions(**options), 200)
    streamed = pd.concat(list(stream), ignore_index=True)
    key = ["event_id", "user_id", "item_id", "timestamp"]
    pd.testing.assert_frame_equal(
        events[key].sort_values("event_id", ignore_index=True),
        streamed[key].sort_values("event_id", ignore_index=True),
        check_dtype=False,
    )
    assert str(summary) == str(stream.summary)
    assert events["user_id"].nunique() == 9 and events["user_id"].isna().sum() == (frame["account"] == "").sum()


def test_a_listed_row_repeats_its_users_key_on_every_item(tmp_path):
    src = tmp_path / "baskets.csv"
    pd.DataFrame(
        {"shop": ["s1", "s2"], "customer": ["c1", "c1"], "items": ["i1 i2", "i3"], "ts": [1_700_000_000, 1_700_000_100]}
    ).to_csv(src, index=False)
    options = dict(user_col="shop,customer", item_col="items", time_col="ts", time_unit="s", item_lists=True)
    events, _, _ = load_interactions(src, now=NOW, **options)
    pairs = sorted(zip(events["user_id"], events["item_id"], strict=True))
    assert pairs == [(f"s1{KEY_JOIN}c1", "i1"), (f"s1{KEY_JOIN}c1", "i2"), (f"s2{KEY_JOIN}c1", "i3")]
    # the memory estimate counts the rows the lists become
    assert rows_per_line(src, ImportOptions(**options)) == 1.5


def test_a_missing_user_named_by_its_key_is_blanked(tmp_path):
    events, _, summary = load_interactions(
        _viewing(tmp_path / "viewing.csv"), **_options(missing_users=(f"acct-a{KEY_JOIN}Kids",))
    )
    assert events["user_id"].isna().sum() == 4
    said = " ".join(str(summary).split())
    assert "(a part of the user's key), or one --missing-user names" in said


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (dict(user_col="account,,Profile Name"), "--user-col 'account,,Profile Name' names an empty column"),
        (dict(user_col="account,account"), "--user-col 'account,account' names a column twice"),
        (dict(user_col="account,Title"), "--item-col 'Title' is also a part of --user-col"),
        (dict(item_col="Title,account"), "--user-col and --item-col both name 'account'"),
        (dict(user_col="account,profile"), "user (2 of 2) column 'profile' not found"),
    ],
)
def test_a_user_key_that_cannot_be_read_is_refused_with_its_reason(tmp_path, extra, message):
    src = _viewing(tmp_path / "viewing.csv")
    with pytest.raises(ImportFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_interactions(src, **{**_options(), **extra})


def test_the_command_line_keys_users_by_two_columns_and_erasure_names_the_key(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("SETLIST_DATA_DIR", str(data))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    src = _viewing(tmp_path / "viewing.csv")
    args = ["import", str(src), "--user-col", USER, "--item-col", "Title", "--time-col", "Start Time"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "missing_id │ 2" in " ".join(result.output.split())
    settings = Settings(data_dir=data, hmac_key="k")
    kids = pseudonymize(f"acct-a{KEY_JOIN}Kids", settings.secret_hmac_key())
    log = EventLog(settings.events_dir)
    stored = log.read()["user_id"]
    # four users' rows, pseudonymized from their keys; no raw part of a key is stored
    assert stored.nunique() == 4 and (stored == kids).sum() == 2
    assert not stored.str.contains("acct|Kids").any()
    erase(f"acct-a{KEY_JOIN}Kids", settings)
    left = EventLog(settings.events_dir).read()["user_id"]
    assert kids not in set(left) and len(left) == 3
