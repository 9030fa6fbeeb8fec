"""Ingestion: contract checks, quarantine with reasons, pseudonymization, consent and replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from feature_repo.build import build
from ingest.intake import ingest
from setlist.catalog import load_items
from setlist.consent import opted_out_users
from setlist.eventlog import EventLog, Quarantine
from setlist.pseudonym import IdentityMap, pseudonymize
from tests.world import tiny_settings

NOW = datetime.now(UTC)


def _event(i: int, **over: object) -> dict:
    row = {
        "event_id": f"e{i}",
        "user_id": f"app-user-{i % 3}",
        "item_id": f"t{i % 5}",
        "type": "play",
        "timestamp": NOW - timedelta(hours=i),
        "session_id": "s",
        "value": 0.5,
        "schema_version": 1,
    }
    row.update(over)
    return row


@pytest.fixture
def settings(tmp_path):
    return tiny_settings(tmp_path / "data")


def test_bad_events_are_quarantined_with_reasons(settings):
    rows = [_event(i) for i in range(10)]
    rows += [
        _event(10, user_id=None),
        _event(11, type="dance"),
        _event(12, timestamp=NOW + timedelta(days=2)),
        _event(13, schema_version=9),
        _event(14, value=1.7),
        _event(15, timestamp=datetime(1970, 1, 1, tzinfo=UTC)),
        _event(3),
    ]  # duplicate id of an accepted event
    report = ingest(pd.DataFrame(rows), settings, source="test")
    assert report.received == 17 and report.accepted == 10 and report.quarantined == 7
    assert report.reasons == {
        "missing_id": 1,
        "unknown_type": 1,
        "future_timestamp": 1,
        "unknown_schema_version": 1,
        "bad_value": 1,
        "bad_timestamp": 1,
        "duplicate_event_id": 1,
    }
    q = Quarantine(settings.quarantine_dir).read()
    assert len(q) == 7 and q["reason"].str.len().gt(0).all()
    # nothing dropped: every received event is either in the log or in the quarantine
    assert EventLog(settings.events_dir).count() + len(q) == report.received


def test_duplicates_against_the_log_are_caught_on_a_second_ingest(settings):
    ingest(pd.DataFrame([_event(i) for i in range(5)]), settings, source="a")
    # e4 read again as it was (a re-run); e2's id now on an event of another kind, e3's with another value
    rows = [_event(2, type="like"), _event(3, value=0.9), *(_event(i) for i in range(4, 8))]
    again = ingest(pd.DataFrame(rows), settings, source="b")
    assert again.accepted == 3 and again.already_logged == 1 and again.reasons == {"duplicate_event_id": 2}
    # the event read again is neither stored twice nor quarantined; the clashes are, with their reason
    q = Quarantine(settings.quarantine_dir).read().sort_values("event_id")
    assert q["event_id"].tolist() == ["e2", "e3"] and q["type"].tolist() == ["like", "play"]
    assert q["reason"].str.startswith("duplicate_event_id").all()
    log = EventLog(settings.events_dir).read()
    assert sorted(log["event_id"]) == [f"e{i}" for i in range(8)] and (log["type"] == "play").all()
    assert again.received == again.accepted + again.already_logged + again.quarantined


def test_a_rerun_does_not_quarantine_the_same_row_for_the_same_reason_twice(settings):
    rows = [_event(0), _event(1, type="dance"), _event(2, timestamp=NOW + timedelta(days=2))]
    first = ingest(pd.DataFrame(rows), settings, source="a")
    assert (first.accepted, first.quarantined, first.quarantined_before) == (1, 2, 0)
    # read again (a killed import's re-run): e1 as it was; e2 now bad for another reason
    rows[2] = _event(2, value=1.7)
    again = ingest(pd.DataFrame(rows), settings, source="a")
    assert (again.already_logged, again.quarantined, again.quarantined_before) == (1, 2, 1)
    assert again.reasons == {"unknown_type": 1, "bad_value": 1}
    q = Quarantine(settings.quarantine_dir).read()
    assert sorted(q["reason"].str.partition(":")[0]) == ["bad_value", "future_timestamp", "unknown_type"]


def test_raw_ids_never_reach_storage(settings):
    ingest(pd.DataFrame([_event(i) for i in range(6)]), settings, source="t")
    stored = EventLog(settings.events_dir).read()
    assert not stored["user_id"].str.startswith("app-user").any()
    key = settings.secret_hmac_key()
    assert set(stored["user_id"]) == {pseudonymize(f"app-user-{i}", key) for i in range(3)}
    ids = IdentityMap(settings.metadata_url)
    assert ids.resolve(pseudonymize("app-user-1", key)) == "app-user-1"
    ids.dispose()
    for f in settings.events_dir.rglob("*.parquet"):
        assert b"app-user" not in f.read_bytes()


def test_opted_out_users_never_reach_personal_features(tiny_world):
    s = tiny_world.settings
    events = EventLog(s.events_dir).read()
    out = opted_out_users(events, s.consent_granted_by_default)
    assert out, "the generator opts some users out"
    batches = build(events, load_items(s.catalog_path), consent_default=s.consent_granted_by_default)
    assert not set(batches.user_profile["user_id"]) & out
    assert not set(batches.session["user_id"]) & out
    assert set(batches.consent.loc[~batches.consent["consent_personalization"], "user_id"]) == out
    training_set = pd.read_parquet(s.data_dir / "training" / "training_set.parquet")
    assert not set(training_set["user_id"]) & out


def test_replay_gives_identical_feature_tables(tiny_world):
    s = tiny_world.settings
    items = load_items(s.catalog_path)
    first = build(EventLog(s.events_dir).read(), items, consent_default=True)
    second = build(EventLog(s.events_dir).read(), items, consent_default=True)
    for name in ("user_profile", "item_stats", "session", "consent"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    published = pd.read_parquet(s.features_dir / "item_stats.parquet")
    pd.testing.assert_frame_equal(published, first.item_stats, check_dtype=False)


def test_only_impossible_timestamps_are_quarantined_each_with_its_reason(settings):
    """No calendar floor: a 1996 rating is fine; before 1970 or far in the future is not."""
    rows = [
        _event(0, timestamp=datetime(1996, 4, 1, 12, tzinfo=UTC)),
        _event(1, timestamp=datetime(1970, 1, 2, tzinfo=UTC)),
        _event(2, timestamp=datetime(1969, 7, 20, 20, 17, tzinfo=UTC)),
        _event(3, timestamp=NOW + timedelta(seconds=settings.max_future_skew_s + 3600)),
        _event(4, timestamp=datetime(2999, 1, 1, tzinfo=UTC)),  # beyond what pandas can hold
        _event(5, timestamp="1500-01-01T00:00:00"),
        _event(6, timestamp="not a time"),
    ]
    report = ingest(pd.DataFrame(rows), settings, source="test")
    assert report.accepted == 2 and report.reasons == {"bad_timestamp": 3, "future_timestamp": 2}
    q = Quarantine(settings.quarantine_dir).read().set_index("event_id")["reason"]
    assert q["e2"].startswith("bad_timestamp") and q["e5"].startswith("bad_timestamp: 1500-01-01")
    assert q["e3"].startswith("future_timestamp") and q["e4"].startswith("future_timestamp: 2999-01-01")
    assert "'not a time'" in q["e6"]
    kept = EventLog(settings.events_dir).read()
    assert set(kept["event_id"]) == {"e0", "e1"} and kept["timestamp"].min().year == 1970


def test_a_rerun_finds_a_row_of_a_type_that_is_no_text_in_the_quarantine(settings):
    """A JSON log's type may be a number: the quarantine holds it as text, and a re-run compares it so."""
    rows = [_event(0), _event(1, type=7), _event(2, type=None)]
    first = ingest(pd.DataFrame(rows), settings, source="a")
    assert (first.accepted, first.quarantined) == (1, 2)
    again = ingest(pd.DataFrame(rows), settings, source="a")
    assert (again.quarantined, again.quarantined_before) == (2, 2)
    assert len(Quarantine(settings.quarantine_dir).read()) == 2
