"""The consent rules fail closed: a user's latest explicit flag decides, an event without a flag
changes nothing, a user who never gave one gets the data's default, and a value that is neither a
yes nor a no is rejected rather than guessed at."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from feature_repo.build import build_consent
from setlist.consent import BadConsent, effective, opted_out_users, parse_flag, personalizable
from setlist.contract import reject_reason
from setlist.settings import Settings


def _events(rows: list[tuple[str, int, object]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [u for u, _, _ in rows],
            "timestamp": pd.to_datetime([t for _, t, _ in rows], unit="s", utc=True),
            "consent_personalization": pd.Series([c for _, _, c in rows], dtype="object"),
            "consent_analytics": pd.Series([None] * len(rows), dtype="object"),
        }
    )


EVENTS = _events(
    [
        ("opted_back_in", 1, False),
        ("opted_back_in", 3, True),
        ("opted_out", 2, True),
        ("opted_out", 1, True),
        ("opted_out", 5, False),  # out of order: time decides
        ("never_asked", 1, None),
        ("never_asked", 2, None),
        ("out_then_unset", 1, False),
        ("out_then_unset", 2, None),  # an event without a flag does not undo a choice
    ]
)


@pytest.mark.parametrize("default", [True, False])
def test_the_latest_explicit_flag_decides_and_the_default_covers_users_who_never_gave_one(default: bool) -> None:
    never = {"never_asked"} if not default else set()
    assert opted_out_users(EVENTS, default) == {"opted_out", "out_then_unset"} | never
    assert set(personalizable(EVENTS, default)["user_id"]) == {"opted_back_in"} | ({"never_asked"} - never)


def test_every_event_of_a_consenting_user_is_kept_and_the_two_agree() -> None:
    kept = personalizable(EVENTS, True)
    assert len(kept) == 4 and kept.index.tolist() == [0, 1, 5, 6]
    assert set(kept["user_id"]).isdisjoint(opted_out_users(EVENTS, True))


def test_no_events() -> None:
    empty = EVENTS.iloc[:0]
    assert personalizable(empty, True).empty and opted_out_users(empty, False) == set()


def test_the_consent_rows_follow_the_same_rule() -> None:
    rows = build_consent(EVENTS, default=False).set_index("user_id")["consent_personalization"].to_dict()
    assert rows == {"opted_back_in": True, "opted_out": False, "never_asked": False, "out_then_unset": False}


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        (True, True),
        (False, False),
        ("yes", True),
        (" No ", False),
        ("1", True),
        (0, False),
        ("granted", True),
        ("denied", False),
        (None, None),
        ("", None),
        (float("nan"), None),
    ],
)
def test_flags_are_read_in_every_usual_spelling(value: object, flag: bool | None) -> None:
    assert parse_flag(value) is flag


@pytest.mark.parametrize("value", ["n", "y", "maybe", "off", 2, "true-ish"])
def test_anything_else_is_not_guessed(value: object) -> None:
    with pytest.raises(BadConsent):
        parse_flag(value)
    row = {
        "event_id": "e",
        "user_id": "u",
        "item_id": "i",
        "schema_version": 1,
        "type": "play",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "consent_personalization": value,
    }
    reason = reject_reason(row, datetime(2026, 1, 2, tzinfo=UTC))
    assert reason is not None and reason.startswith("bad_consent: consent_personalization")


def test_a_new_flag_overrides_what_was_known_and_no_flag_keeps_it() -> None:
    assert effective([None, None], current=False, default=True) is False
    assert effective([None, True, None], current=False, default=False) is True
    assert effective([], current=None, default=False) is False


def test_production_denies_by_default_and_the_setting_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(profile="local").consent_granted_by_default
    assert not Settings(profile="production").consent_granted_by_default
    monkeypatch.setenv("SETLIST_CONSENT_DEFAULT", "grant")
    assert Settings(profile="production").consent_granted_by_default
    monkeypatch.setenv("SETLIST_CONSENT_DEFAULT", "maybe")
    with pytest.raises(ValueError):
        Settings()


def test_the_newest_usable_events_leave_out_users_without_each_consent() -> None:
    from setlist.consent import newest_usable

    rows = _events([("consenting", 10, True), ("withdrawn", 50, False), ("consenting", 20, None)])
    rows["type"] = ["play", "play", "search"]  # a search is no item event: item stats do not count it
    rows["consent_analytics"] = pd.Series([True, None, True], dtype="object")
    user, item = newest_usable(rows, default=False)
    assert user == pd.Timestamp(20, unit="s", tz="UTC")  # the withdrawn user's later event is not theirs to use
    assert item == pd.Timestamp(10, unit="s", tz="UTC")
    assert newest_usable(rows.iloc[[1]], default=False) == (None, None)
