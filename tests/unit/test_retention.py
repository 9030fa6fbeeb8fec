"""Retention: each dataset kept for its own period, applied atomically and idempotently, with a dry
run that changes nothing; ingestion and Track refuse events older than the events retention."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ingest.intake import ingest
from serving.journal import Journal
from serving.tracking import Tracker, TrackPolicy
from serving.types import TrackEvent
from setlist.contract import SCHEMA_VERSION
from setlist.eventlog import EventLog, Quarantine
from setlist.impressions import IMPRESSION_SCHEMA
from setlist.retention import apply
from setlist.settings import Settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        hmac_key="k",
        retention_events_days=30,
        retention_impressions_days=10,
        retention_quarantine_days=5,
        retention_reports_days=60,
        retention_journal_hours=1,
    )


def events(*days_ago: float) -> pd.DataFrame:
    ts = [NOW - timedelta(days=d) for d in days_ago]
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(ts))],
            "schema_version": SCHEMA_VERSION,
            "user_id": "u_x",
            "session_id": "s",
            "item_id": "i",
            "type": "play",
            "timestamp": pd.to_datetime(ts, utc=True),
            "value": 0.5,
            "device": "web",
            "locale": "en",
            "consent_personalization": True,
            "consent_analytics": True,
            "arm": None,
        }
    )


def test_old_events_go_by_partition_and_the_boundary_day_is_rewritten(settings: Settings) -> None:
    log = EventLog(settings.events_dir)
    # 40 and 35 days ago: gone; 30 days and 1 hour ago: the boundary day, rewritten; 30 days less an hour: kept
    log.append(events(40, 35, 30 + 1 / 24, 30 - 1 / 24, 1))
    before = set(log.read()["event_id"])
    planned = {r.dataset: r for r in apply(settings, now=NOW, dry_run=True)}
    assert planned["events"].rows_removed == 3 and set(log.read()["event_id"]) == before  # a dry run changes nothing
    done = {r.dataset: r for r in apply(settings, now=NOW)}
    assert done["events"].rows_removed == 3 and set(log.read()["event_id"]) == {"e3", "e4"}
    # the plan's "after" leaves out the files that go whole (the rewritten day counts as kept)
    assert planned["events"].files_after == done["events"].files_after == 2
    assert planned["events"].bytes_after < planned["events"].bytes_before
    again = {r.dataset: r for r in apply(settings, now=NOW)}
    assert again["events"].rows_removed == 0 and again["events"].files_removed == 0  # idempotent


def test_without_an_events_retention_history_is_kept(settings: Settings) -> None:
    s = settings.model_copy(update={"retention_events_days": None})
    log = EventLog(s.events_dir)
    log.append(events(9000, 1))
    result = {r.dataset: r for r in apply(s, now=NOW)}
    assert result["events"].cutoff is None and len(log.read()) == 2


def test_impressions_quarantine_and_reports_each_keep_their_own_period(settings: Settings) -> None:
    import pyarrow as pa

    from setlist.eventlog import write_atomic

    for days in (20, 2):
        day = (NOW - timedelta(days=days)).date().isoformat()
        rows = {f.name: [None] for f in IMPRESSION_SCHEMA}
        rows.update(
            request_id=["r"], timestamp=[NOW - timedelta(days=days)], user_id=["u_x"], item_id=["i"], position=[1]
        )
        table = pa.Table.from_pydict(rows, schema=IMPRESSION_SCHEMA)
        write_atomic(table, settings.impressions_dir / f"date={day}" / "a.parquet")
    q = Quarantine(settings.quarantine_dir)
    q.put(pd.DataFrame({"event_id": ["x"], "user_id": ["u"], "timestamp": [NOW]}), ["bad"], "import")
    old = next(settings.quarantine_dir.glob("*.parquet"))
    old.rename(old.with_name("20261101T000000000000-import-old.parquet"))  # named when it was written
    q.put(pd.DataFrame({"event_id": ["y"], "user_id": ["u"], "timestamp": [NOW]}), ["bad"], "import")
    report = settings.reports_dir / "experiments" / "old.md"
    report.parent.mkdir(parents=True)
    report.write_text("x")
    stale = (NOW - timedelta(days=90)).timestamp()
    os.utime(report, (stale, stale))
    (settings.reports_dir / "experiments" / "new.md").write_text("y")
    done = {r.dataset: r for r in apply(settings, now=NOW)}
    assert done["impressions"].files_removed == 1
    assert [p.parent.name for p in settings.impressions_dir.rglob("*.parquet")] == [
        f"date={(NOW - timedelta(days=2)).date()}"
    ]
    assert done["quarantine"].rows_removed == 1 and set(Quarantine(settings.quarantine_dir).read()["event_id"]) == {"y"}
    assert done["reports"].files_removed == 1 and not report.exists()


def test_an_orphaned_journal_is_moved_into_the_log_never_deleted(settings: Settings) -> None:
    log = EventLog(settings.events_dir)
    dead = Journal(settings.wal_dir / "worker-3", log, max_age_s=3600)
    recent = events(0.5).assign(timestamp=lambda f: f["timestamp"].astype("int64") // 1_000_000)
    dead.append(recent.to_dict("records"))
    dead.abandon()
    segment = next(settings.wal_dir.rglob("*.jsonl"))
    stale = (NOW - timedelta(hours=2)).timestamp()
    os.utime(segment, (stale, stale))
    result = {r.dataset: r for r in apply(settings, now=NOW)}
    assert result["journal"].moved == 1 and list(log.read()["event_id"]) == ["e0"]


def test_ingestion_and_track_refuse_events_older_than_the_retention(settings: Settings) -> None:
    report = ingest(events(45, 2), settings, source="import", identities=_Ids())
    assert report.accepted == 1 and set(report.reasons) == {"retention"}
    now = time.time()
    tracker = Tracker(
        _Journal(),
        None,
        Quarantine(settings.quarantine_dir),
        None,
        TrackPolicy.from_settings(settings.model_copy(update={"retention_events_days": 3, "track_max_age_days": 7})),
        clock=lambda: now,
    )
    try:
        old = TrackEvent("t1", "u", "i", "play", int((now - 5 * 86_400) * 1000), "s")
        result = tracker.track([old], None, str)
        assert [r.reason.split(":")[0] for r in result.rejected] == ["retention"]
    finally:
        tracker.close()


class _Ids:
    def remember(self, pairs) -> None:
        list(pairs)


class _Journal:
    def append(self, rows, timeout=None, on_late=None) -> None:
        return None

    def close(self) -> None:
        return None
