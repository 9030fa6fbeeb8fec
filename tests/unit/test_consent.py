"""The consent rule: a user's latest personalization flag decides; never set counts as consent."""

from __future__ import annotations

import pandas as pd

from setlist.consent import opted_out_users, personalizable


def _events(rows: list[tuple[str, int, object]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [u for u, _, _ in rows],
            "timestamp": pd.to_datetime([t for _, t, _ in rows], unit="s", utc=True),
            "consent_personalization": pd.Series([c for _, _, c in rows], dtype="object"),
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
        ("out_then_unset", 2, None),  # an unset flag does not undo a choice
    ]
)


def test_the_latest_flag_decides_and_unset_means_consent():
    assert opted_out_users(EVENTS) == {"opted_out", "out_then_unset"}
    assert set(personalizable(EVENTS)["user_id"]) == {"opted_back_in", "never_asked"}


def test_every_event_of_a_consenting_user_is_kept_and_the_two_agree():
    kept = personalizable(EVENTS)
    assert len(kept) == 4 and kept.index.tolist() == [0, 1, 5, 6]
    assert set(kept["user_id"]).isdisjoint(opted_out_users(EVENTS))


def test_no_events():
    empty = EVENTS.iloc[:0]
    assert personalizable(empty).empty and opted_out_users(empty) == set()
