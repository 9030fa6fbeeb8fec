"""Training–serving parity: the pure report and the gate over hand-made online/offline frames."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from validation.api import check_parity
from validation.gx import Workspace
from validation.skew import ParityInput, parity_report, values_match

AS_OF = datetime(2024, 5, 1, tzinfo=UTC)
FEATURES = ["user_plays_7d", "user_skip_rate_30d", "user_genre_affinity", "user_top_genre"]


def _offline(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n)],
            "user_plays_7d": rng.integers(0, 50, n),
            "user_skip_rate_30d": rng.random(n),
            "user_genre_affinity": list(rng.dirichlet(np.ones(4), n).astype(np.float32)),
            "user_top_genre": rng.choice(["rock", "pop"], n),
        }
    )


def _online(offline: pd.DataFrame) -> pd.DataFrame:
    # what an online store hands back: float32 storage, lists, a write timestamp
    online = offline.copy()
    online["user_skip_rate_30d"] = online["user_skip_rate_30d"].astype(np.float32)
    online["user_genre_affinity"] = [list(map(float, v)) for v in online["user_genre_affinity"]]
    online["event_timestamp"] = pd.Timestamp(AS_OF) - pd.Timedelta(hours=2)
    return online


def _input(online, offline, view="user_profile"):
    return ParityInput(view, online, offline, "user_id", FEATURES, ttl=timedelta(days=2), as_of=AS_OF)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("data") / "validation")


def test_values_match_tolerance_lists_and_missing():
    got = values_match(
        pd.Series([1.0, 1.00001, [0.1, 0.2], [0.1], None, "a", 2.0]),
        pd.Series([1.0, 1.0, np.array([0.1, 0.2]), [0.1, 0.2], np.nan, "a", None]),
        1e-4,
    )
    assert got.tolist() == [True, True, True, False, True, True, False]


def test_identical_values_match_despite_float32_and_list_types():
    off = _offline()
    report = parity_report(_online(off), off, "user_id", FEATURES, ttl=timedelta(days=2), as_of=AS_OF)
    assert all(f.match_rate == 1.0 for f in report.features)
    assert report.stale_online == 0 and report.failing() == []


def test_missing_rows_and_staleness_are_counted():
    off = _offline()
    on = _online(off).iloc[5:].copy()  # 5 entities never reached the online store
    on.loc[on.index[:3], "event_timestamp"] = pd.Timestamp(AS_OF) - pd.Timedelta(days=3)
    on = pd.concat([on, on.iloc[[-1]].assign(user_id="ghost")])  # one only online
    report = parity_report(on, off, "user_id", FEATURES, ttl=timedelta(days=2), as_of=AS_OF)
    f = report.by_feature()["user_plays_7d"]
    assert (f.compared, f.missing_online, f.missing_offline) == (201, 5, 1)
    assert f.match_rate == pytest.approx(195 / 201)
    assert report.stale_online == 3


def test_clean_parity_passes_the_gate(ws):
    off = _offline()
    result = check_parity([_input(_online(off), off)], workspace=ws)
    assert result.passed, result.summary()
    assert ws.docs_index.exists()


def test_corrupted_online_values_fail_the_gate(ws):
    off = _offline()
    on = _online(off)
    on.loc[on.index[:10], "user_skip_rate_30d"] += 0.05  # 5% of entities off by more than tolerance
    on.at[on.index[0], "user_genre_affinity"] = [0.0, 0.0, 0.0, 1.0]
    on.at[on.index[1], "user_genre_affinity"] = [0.0, 0.0, 0.0, 1.0]
    on.at[on.index[2], "user_genre_affinity"] = [0.0, 0.0, 0.0, 1.0]
    result = check_parity(lambda: [_input(on, off)], workspace=ws, docs=False)
    assert sorted(result.failures) == [
        "expect_column_mean_to_be_between(match__user_genre_affinity)",
        "expect_column_mean_to_be_between(match__user_skip_rate_30d)",
    ]
    row = next(r for r in result.rows if "skip_rate" in r.expectation)
    assert row.observed == "0.95"


def test_stale_online_values_warn_only(ws):
    off = _offline()
    on = _online(off)
    on.loc[on.index[:20], "event_timestamp"] = pd.Timestamp(AS_OF) - pd.Timedelta(days=5)
    result = check_parity([_input(on, off)], workspace=ws, docs=False)
    assert result.passed and result.warnings == ["expect_column_mean_to_be_between(online_fresh)[user_profile]"]
    assert any("older than the TTL" in n for n in result.notes)


def test_no_inputs_is_a_skip(ws):
    assert check_parity([], workspace=ws).skipped


def test_an_online_side_without_rows_or_columns_is_all_missing_not_an_error():
    # what a publish killed before its first online write leaves: no rows, not even the entity column
    offline = pd.DataFrame({"item_id": ["a", "b"], "plays": [1.0, 2.0]})
    report = parity_report(
        pd.DataFrame(), offline, "item_id", ["plays"], ttl=timedelta(days=1), as_of=datetime.now(UTC)
    )
    (feature,) = report.features
    assert (feature.compared, feature.matched, feature.missing_online) == (2, 0, 2)
