"""The column-wise screen of ingestion's contract check gives exactly the row-wise reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ingest.intake import _normalize, _plainly_valid, _reasons

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
SKEW_S = 300.0
OLDEST = NOW - timedelta(days=400)

POOLS: dict[str, list[object]] = {
    "event_id": ["e1", "e2", "e3", " ", "", None, 7],
    "user_id": ["u1", "u2", "  ", None, 42],
    "item_id": ["i1", "i2", "", " ", None],
    "type": ["play", "skip", "like", "impression", "view", "search", "feature_use", "dance", None],
    "timestamp": [
        NOW - timedelta(hours=1),
        NOW - timedelta(days=30),
        NOW + timedelta(seconds=SKEW_S - 0.0005),  # within a millisecond of the future limit, each side
        NOW + timedelta(seconds=SKEW_S + 0.0005),
        NOW + timedelta(seconds=SKEW_S + 1),
        NOW + timedelta(days=4000),
        OLDEST,  # exactly at the retention floor, and just under it
        OLDEST - timedelta(microseconds=500),
        OLDEST - timedelta(seconds=1),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
        "not a time",
        None,
    ],
    "schema_version": [1, 2, 3],
    "consent_personalization": [True, False, "yes", "granted", "n", "maybe", None, 1, 0.0],
    "consent_analytics": [None, "no", "true", "1", "?"],
    "value": [0.5, 1.0, 0.0, 1.5, -0.1, np.nan, 5.0, np.inf, -np.inf],
    "weight": [np.nan, 1.0, 2.5, 0.5, np.inf],
    "query": [None, "", "jazz", "  ", np.nan],
}


def _frame(n: int, seed: int, **fixed: list[object]) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    pools = {**POOLS, **fixed}

    def draw(pool: list[object]) -> list[object]:
        # the first value half the time, so that many rows are valid and the screen has work to do
        picks = np.where(rng.random(n) < 0.5, 0, rng.integers(0, len(pool), n))
        return [pool[k] for k in picks]

    raw = pd.DataFrame({c: draw(pools[c]) for c in pools})
    unique = rng.random(n) < 0.9  # most ids unique, the rest from the pool: duplicates and bad ids
    raw.loc[unique, "event_id"] = [f"id{k}" for k in np.flatnonzero(unique)]
    raw_ts = raw["timestamp"].copy()
    return _normalize(raw), raw_ts


def _both(frame: pd.DataFrame, raw_ts: pd.Series, known: set[str]) -> tuple[list, list]:
    fast = _reasons(frame, known, NOW, SKEW_S, raw_ts, OLDEST)
    slow = _reasons(frame, known, NOW, SKEW_S, raw_ts, OLDEST, row_wise=True)
    return fast, slow


def test_the_screen_finds_exactly_the_row_wise_reasons_on_numeric_columns() -> None:
    frame, raw_ts = _frame(3000, seed=1)
    # many rows must be screened as plainly valid, or this compares the row-wise check with itself
    assert _plainly_valid(frame, NOW, SKEW_S, OLDEST).sum() > 100
    fast, slow = _both(frame, raw_ts, known={"e2", "id5", "id6", "id7"})
    assert fast == slow
    kinds = {r.split(":")[0] for r in slow if r}
    assert {"missing_id", "unknown_type", "bad_timestamp", "future_timestamp", "bad_consent", "retention"} <= kinds
    assert {"bad_value", "bad_weight", "duplicate_event_id", "unknown_schema_version", "missing_query"} <= kinds
    assert slow.count(None) > 0


def test_mixed_columns_go_row_wise_and_still_agree() -> None:
    mixed = {"value": [0.5, "0.7", None, 2], "schema_version": [1, 2, "2", 2.0, None]}
    frame, raw_ts = _frame(800, seed=2, **mixed)
    assert not _plainly_valid(frame, NOW, SKEW_S, OLDEST).any()
    fast, slow = _both(frame, raw_ts, known=set())
    assert fast == slow


def test_a_duplicate_is_the_later_of_two_passing_rows_and_any_row_already_logged() -> None:
    base = {"user_id": ["u1"], "item_id": ["i1"], "type": ["play"], "timestamp": [NOW - timedelta(hours=2)]}
    rows = {**{c: [POOLS[c][0]] for c in POOLS}, **base, "value": [0.5], "weight": [np.nan]}
    raw = pd.DataFrame({c: v * 4 for c, v in rows.items()})
    raw["event_id"] = ["a", "b", "a", "c"]
    raw.loc[0, "type"] = "dance"  # the first "a" fails the contract, so the second is the first to pass
    frame = _normalize(raw)
    got = _reasons(frame, {"c"}, NOW, SKEW_S, raw["timestamp"], OLDEST)
    assert got[0] is not None and got[0].startswith("unknown_type")
    assert got[1:] == [None, None, "duplicate_event_id: c"]


@pytest.mark.parametrize("blank", [np.nan, pd.NA, None, "  "])
def test_a_search_whose_text_cell_is_empty_in_any_form_is_quarantined(blank: object) -> None:
    """A file's empty cell arrives as NaN or NA, not None: it is no search text either."""
    rows = {**{c: [POOLS[c][0]] for c in POOLS}, "type": ["search"], "item_id": [""], "timestamp": [NOW]}
    rows["query"] = [blank]
    raw = pd.DataFrame(rows)
    got = _reasons(_normalize(raw), set(), NOW, SKEW_S, raw["timestamp"], OLDEST)
    assert got[0] is not None and got[0].startswith("missing_query")
    raw["query"] = ["jazz"]
    assert _reasons(_normalize(raw), set(), NOW, SKEW_S, raw["timestamp"], OLDEST) == [None]


def test_cells_pandas_cannot_hash_leave_every_row_to_the_row_wise_check() -> None:
    frame, raw_ts = _frame(200, seed=3, consent_analytics=[None, ["a", "list"], "yes"])
    fast, slow = _both(frame, raw_ts, known=set())
    assert fast == slow
    assert any(r and r.startswith("bad_consent") for r in slow)


def test_a_missing_time_parsed_to_nat_is_a_bad_timestamp_not_a_crash() -> None:
    """An importer hands ingestion its parsed times: an empty time cell arrives as NaT, which is a
    ``datetime`` to Python but has no time to compare."""
    rows = {**{c: [POOLS[c][0]] * 3 for c in POOLS}, "value": [0.5] * 3, "weight": [np.nan] * 3}
    raw = pd.DataFrame(rows)
    raw["event_id"] = ["a", "b", "c"]
    raw["timestamp"] = pd.Series([pd.Timestamp(NOW - timedelta(hours=1)), pd.NaT, pd.NaT], dtype="datetime64[ns, UTC]")
    frame = _normalize(raw)
    for row_wise in (False, True):
        got = _reasons(frame, set(), NOW, SKEW_S, raw["timestamp"], OLDEST, row_wise=row_wise)
        assert got[0] is None
        assert got[1] is not None and got[1].startswith("bad_timestamp")
        assert got[2] == got[1]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("high", "bad_value: 'high' is not a number"),
        ([1, 2], "bad_value: '[1, 2]' is not a number"),
        (float("inf"), "bad_value: inf is not a finite number"),
        ("0.5", None),  # a number written as text is a number
    ],
)
def test_a_value_that_is_not_a_finite_number_is_a_reason_of_its_own_for_any_type(value: object, reason: object) -> None:
    from setlist.contract import reject_reason

    row = {
        "event_id": "e",
        "user_id": "u",
        "item_id": "i",
        "schema_version": 1,
        "type": "like",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "value": value,
    }
    assert reject_reason(row, datetime(2026, 1, 2, tzinfo=UTC)) == reason
