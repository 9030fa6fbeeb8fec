"""The feature publish log reads back the instant it recorded, whatever the machine's time zone: SQLite
keeps no zone, and a naive time read in the local zone moved every age and lag by the UTC offset."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from setlist.publish import PublishLog


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Pacific/Chatham")  # +12:45 or +13:45: no offset hides behind a round hour
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_publish_reads_back_as_the_instant_it_was_recorded(tmp_path: Path, far_from_utc: None) -> None:
    log = PublishLog(f"sqlite:///{tmp_path / 'metadata.db'}")
    try:
        recorded = log.record("snap", 10)
        for read in (log.latest(), log.get(recorded.version)):
            assert read is not None and read.published_at.tzinfo is not None
            assert read.published_at.timestamp() == pytest.approx(recorded.published_at.timestamp(), abs=1e-3)
    finally:
        log.dispose()
