"""Track waits for durability no longer than the caller's deadline: the journal append gets what is
left of the call, and its own configured bound outside a call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from serving.deadline import call_deadline
from serving.tracking import Tracker, TrackPolicy
from serving.types import TrackEvent
from setlist.eventlog import Quarantine
from setlist.settings import Settings


class RecordingJournal:
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def append(self, rows: list[dict[str, Any]], timeout: float | None = None, on_late: Any = None) -> None:
        self.timeouts.append(timeout)

    def close(self) -> None:
        return None


def _tracker(tmp_path: Path, journal: RecordingJournal) -> Tracker:
    settings = Settings(data_dir=tmp_path / "data", hmac_key="k")
    return Tracker(journal, None, Quarantine(settings.quarantine_dir), None, TrackPolicy.from_settings(settings))


def _event(n: int) -> TrackEvent:
    return TrackEvent(f"e{n}", "u1", "item-1", "play", int(time.time() * 1000), "s1")


def test_the_append_gets_what_is_left_of_the_call(tmp_path: Path) -> None:
    journal = RecordingJournal()
    tracker = _tracker(tmp_path, journal)
    token = call_deadline.set(time.monotonic() + 0.75)
    try:
        tracker.track([_event(1)], None, lambda u: f"p-{u}")
    finally:
        call_deadline.reset(token)
    tracker.track([_event(2)], None, lambda u: f"p-{u}")  # outside a call
    first, second = journal.timeouts
    assert first is not None and 0 < first <= 0.75
    assert second is None
