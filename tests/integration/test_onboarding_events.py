"""The onboarding and light event types through every gate: the contract (ingestion and Track
share it), the raw-events suite, ingestion's storage rules (search text, sampling weights), and
the feature build, which must not count them as item interactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import yaml

from feature_repo.build import build
from ingest.intake import ingest
from setlist.catalog import load_items
from setlist.contract import SCHEMA_VERSION, reject_reason
from setlist.eventlog import EventLog, Quarantine
from tests.world import tiny_settings
from validation.api import validate_events
from validation.gx import Workspace
from validation.testing import clean_events

NOW = datetime.now(UTC)


def _row(i: int, **over: object) -> dict:
    row = {
        "event_id": f"ev{i}",
        "schema_version": SCHEMA_VERSION,
        "user_id": f"app-user-{i % 4}",
        "item_id": f"t{i % 5}",
        "type": "play",
        "timestamp": NOW - timedelta(minutes=i),
        "value": 0.5,
    }
    row.update(over)
    return row


@pytest.mark.parametrize(
    "over, reason",
    [
        ({"type": "search", "item_id": "", "query": "jazz"}, None),
        ({"type": "feature_use", "item_id": None, "query": "create_playlist"}, None),
        ({"type": "search", "item_id": "", "query": "  "}, "missing_query"),
        ({"type": "feature_use", "item_id": ""}, "missing_query"),
        ({"type": "view", "item_id": ""}, "missing_id"),
        ({"type": "heartbeat", "weight": 20.0}, None),
        ({"type": "view", "weight": 0.5}, "bad_weight"),
        ({"type": "view", "weight": "x"}, "bad_weight"),
        ({"schema_version": 1}, None),  # version 1 events still read and import
    ],
)
def test_the_contract_knows_the_new_types(over, reason):
    got = reject_reason(_row(0, **over), NOW)
    assert (got or "").split(":")[0] == (reason or ""), got


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("data") / "validation")


def _with_onboarding(events: pd.DataFrame) -> pd.DataFrame:
    out = events.copy()
    out["query"] = pd.Series(None, index=out.index, dtype=object)
    out["weight"] = pd.Series(float("nan"), index=out.index, dtype="float32")
    out.loc[0:9, "type"] = "search"
    out.loc[0:9, "item_id"] = ""
    out.loc[0:9, "query"] = "rock classics"
    out.loc[10:14, ["type", "item_id", "query"]] = ["feature_use", "", "create_playlist"]
    out.loc[15:40, "type"] = "view"
    out.loc[15:40, "weight"] = 5.0
    out["schema_version"] = SCHEMA_VERSION
    return out


def test_the_raw_events_gate_passes_the_new_types(ws):
    result = validate_events(_with_onboarding(clean_events()), workspace=ws, docs=False)
    assert result.passed, result.summary()


def _no_query(f: pd.DataFrame) -> None:
    f.loc[[2, 3], "query"] = None


def _light_weight(f: pd.DataFrame) -> None:
    f.loc[16, "weight"] = 0.5


def _play_without_item(f: pd.DataFrame) -> None:
    f.loc[50, "item_id"] = ""


@pytest.mark.parametrize(
    "spoil, expectation",
    [
        (_no_query, "expect_column_values_to_not_be_null(query)"),
        (_light_weight, "expect_column_values_to_be_between(weight)"),
        (_play_without_item, "expect_column_value_lengths_to_be_between(item_id)"),
    ],
)
def test_the_raw_events_gate_fails_broken_onboarding_rows(ws, spoil, expectation):
    frame = _with_onboarding(clean_events())
    spoil(frame)
    result = validate_events(frame, workspace=ws, docs=False)
    assert not result.passed and expectation in result.failures, result.failures


@pytest.fixture
def settings(tmp_path):
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(
        yaml.safe_dump(
            {
                "realtime": ["play", "skip", "like", "add_to_playlist", "not_interested", "search", "feature_use"],
                "batch": {"impression": {"sample": 1.0}, "view": {"sample": 0.25}, "heartbeat": {"sample": 1.0}},
            }
        )
    )
    return tiny_settings(tmp_path / "data").model_copy(update={"tiers_file": tiers})


def test_ingestion_stores_search_text_as_consent_allows_and_samples_light_events(settings):
    rows = [_row(i) for i in range(20)]
    rows += [
        _row(100, type="search", item_id="", query="Jazz by Jane Doe", consent_analytics=True),
        _row(101, type="search", item_id="", query="Jazz by Jane Doe", consent_analytics=False),
        _row(102, type="search", item_id="", query="Jazz by Jane Doe"),
        _row(103, type="search", item_id="", query="Jane Doe's secret", consent_analytics="maybe"),
        _row(104, type="feature_use", item_id="", query="Create Playlist"),
    ]
    rows += [_row(200 + i, type="view") for i in range(400)]
    report = ingest(pd.DataFrame(rows), settings, source="test")
    assert report.quarantined == 1  # the bad consent value
    assert report.accepted + report.sampled_out + report.quarantined == report.received
    log = EventLog(settings.events_dir).read()
    searches = log[log["type"] == "search"].set_index("event_id")["query"]
    assert searches["ev100"] == "jazz by jane doe"
    assert "jane" not in searches["ev101"] and "jane" not in searches["ev102"]
    assert log.loc[log["type"] == "feature_use", "query"].tolist() == ["create playlist"]
    quarantined = Quarantine(settings.quarantine_dir).read()
    assert "secret" not in " ".join(quarantined["query"].astype(str))  # not even the quarantine
    views = log[log["type"] == "view"]
    assert 60 <= len(views) <= 140 and report.sampled_out == 400 - len(views)
    assert (views["weight"] == 4.0).all()
    assert log.loc[log["type"] == "play", "weight"].isna().all()


def test_the_feature_build_does_not_count_onboarding_events_as_item_interactions(tiny_world):
    s = tiny_world.settings
    events = EventLog(s.events_dir).read()
    items = load_items(s.catalog_path)
    plain = build(events, items, consent_default=s.consent_granted_by_default)
    sample = events.sample(60, random_state=3)
    onboarding = sample.assign(
        event_id=[f"ob{i}" for i in range(len(sample))],
        type=["search", "feature_use", "view"] * 20,
        item_id=["", "", str(items["item_id"].iloc[0])] * 20,
        query=["rock", "radio", None] * 20,
        weight=[None, None, 5.0] * 20,
        timestamp=sample["timestamp"] + pd.Timedelta(seconds=1),
    )
    mixed = pd.concat([events, onboarding]).sort_values("timestamp", kind="mergesort").reset_index(drop=True)
    with_onboarding = build(mixed, items, consent_default=s.consent_granted_by_default)
    # item statistics count what users did to items: searches, feature uses and views change nothing
    pd.testing.assert_frame_equal(plain.item_stats, with_onboarding.item_stats)
    assert set(with_onboarding.session["user_id"]) == set(plain.session["user_id"])


def test_a_stored_search_steers_the_offline_session_through_the_real_build(tiny_copy):
    """The full build reads the search text from the log (``BUILD_COLUMNS``) and the key from the
    settings: a search stored as keyed hashes (no analytics consent) turns the session to the genre
    its terms point at, as Track's live push does."""
    from feature_repo.publish_full import build_from_log
    from setlist.querytext import stored

    s = tiny_copy.settings
    log = EventLog(s.events_dir)
    events = log.read()
    before, _ = build_from_log(s)
    last = events[events["consent_personalization"].fillna(False).astype(bool)].sort_values("timestamp").iloc[-1]
    current = before.session[before.session["user_id"] == last["user_id"]]["session_genre"].iloc[-1]
    genre = next(g for g in sorted(before.genres) if g not in (current, "unknown"))
    search = last.to_dict() | {
        "event_id": "offline-search-1",
        "type": "search",
        "item_id": "",
        "query": stored(genre, False, s.secret_hmac_key()),
        "consent_analytics": False,
        "timestamp": last["timestamp"] + pd.Timedelta(seconds=1),
    }
    assert str(search["query"]).startswith("#")  # stored as keyed hashes, unreadable
    log.append(pd.DataFrame([search]), tag="search")
    after, _ = build_from_log(s)
    mine = after.session[after.session["user_id"] == last["user_id"]]
    assert mine["session_genre"].iloc[-1] == genre
