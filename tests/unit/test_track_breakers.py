"""Track behind breakers: a dedupe store or online store that keeps failing is left alone for a
cool-down (every event still journaled and acknowledged, the skipped check or push counted), then
one call probes it again."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from serving.bootstrap import _track_breakers
from serving.breaker import Breaker
from serving.dedupe import Claim, MemoryDedupe
from serving.tracking import Tracker
from serving.types import TrackEvent
from setlist.eventlog import Quarantine
from setlist.settings import Settings
from tests.fakes.dataplane import START, FakeJournal

NOW_MS = int(START * 1000)


def events(prefix: str, n: int = 2) -> list[TrackEvent]:
    return [
        TrackEvent(f"{prefix}{i}", f"user-{i}", "item-3", "play", NOW_MS - 1000 + i, "s1", {}, 0.9) for i in range(n)
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FlakyDedupe(MemoryDedupe):
    """Claims fail while ``down``; every attempt is counted."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: START)
        self.down, self.attempts = True, 0

    def claim(self, ids: Sequence[str]) -> Claim:
        self.attempts += 1
        if self.down:
            raise TimeoutError("no reply")
        return super().claim(ids)


class FlakyOnline:
    """An online store whose reads fail while ``down``; written sessions are kept."""

    def __init__(self) -> None:
        self.down, self.attempts = True, 0
        self.written: list[str] = []

    def read_views_many(self, views: Sequence[str], users: Sequence[str]) -> list[list[tuple[Any, Any]]]:
        self.attempts += 1
        if self.down:
            raise TimeoutError("no reply")
        return [[(None, None) for _ in views] for _ in users]

    def write(self, view: str, rows: Sequence[tuple[str, dict[str, Any], Any]], stored: Any = None) -> None:
        self.written += [f"{view}:{user}" for user, _, _ in rows]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def tracker(tmp_path: Path, clock: Clock, **parts: Any) -> tuple[Tracker, FakeJournal, list[str]]:
    journal, degraded = FakeJournal(), []
    made = Tracker(
        journal, parts.pop("online", None), Quarantine(tmp_path / "q"), None, clock=lambda: START,
        on_degraded=degraded.append, **parts,
    )  # fmt: skip
    return made, journal, degraded


def test_a_failing_dedupe_store_is_left_alone_after_three_failures_then_probed(tmp_path: Path, clock: Clock) -> None:
    dedupe = FlakyDedupe()
    track, journal, degraded = tracker(tmp_path, clock, dedupe=dedupe, dedupe_breaker=Breaker(1.0, clock, 3))
    try:
        for n in range(5):
            assert track.track(events(f"a{n}-"), None, str).accepted == 2
        assert dedupe.attempts == 3  # the last two calls did not wait on it
        assert len(journal.rows) == 10 and degraded == ["dedupe_unavailable"] * 5  # stored, and counted
        clock.now = 1.5
        dedupe.down = False
        assert track.track(events("b"), None, str).accepted == 2  # the probe, which succeeds
        assert track.track(events("b"), None, str).duplicates == {"b0", "b1"}  # checked again
        assert dedupe.attempts == 5 and len(journal.rows) == 12 and len(degraded) == 5
    finally:
        track.close()


def test_a_failing_session_push_is_left_alone_then_probed(tmp_path: Path, clock: Clock) -> None:
    online = FlakyOnline()
    track, journal, degraded = tracker(tmp_path, clock, online=online, push_breaker=Breaker(1.0, clock, 2))
    try:
        for n in range(4):
            assert track.track(events(f"a{n}-", 1), None, str).accepted == 1
        assert online.attempts == 2 and track.push_failures == 4
        assert degraded == ["session_push_failed"] * 4 and len(journal.rows) == 4
        clock.now = 1.5
        online.down = False
        track.track(events("b", 1), None, str)
        assert online.attempts == 3 and online.written[0] == "session:user-0"
        assert track.push_failures == 4
    finally:
        track.close()


def test_without_breakers_every_call_tries_the_store(tmp_path: Path, clock: Clock) -> None:
    dedupe = FlakyDedupe()
    track, _, degraded = tracker(tmp_path, clock, dedupe=dedupe)
    try:
        for n in range(5):
            track.track(events(f"a{n}-"), None, str)
        assert dedupe.attempts == 5 and len(degraded) == 5
    finally:
        track.close()


@pytest.mark.parametrize(
    ("profile", "breakers"),
    [("local", set()), ("production", {"dedupe_breaker", "push_breaker"}), ("cluster", {"dedupe_breaker"})],
)
def test_the_servers_profiles_get_breakers_and_a_cluster_push_none(
    tmp_path: Path, profile: str, breakers: set[str]
) -> None:
    settings = Settings(profile=profile, data_dir=tmp_path, online_breaker_failures=4, online_breaker_cooldown_s=2.5)
    made = _track_breakers(settings, None)
    assert set(made) == breakers
    assert all(b.failures_to_open == 4 and b.cooldown_s == 2.5 for b in made.values())


def test_a_consent_withdrawal_is_pushed_whatever_the_breaker_says(tmp_path: Path, clock: Clock) -> None:
    online = FlakyOnline()
    track, _, _ = tracker(tmp_path, clock, online=online, push_breaker=Breaker(1.0, clock, 1))
    try:
        track.track(events("a", 1), None, str)  # fails: the breaker opens
        online.down = False
        track.track(events("b", 1), None, str)  # held back
        assert online.attempts == 1
        (withdrawal,) = events("c", 1)
        withdrawal = dataclasses.replace(withdrawal, context={"consent_personalization": "false"})
        track.track([withdrawal], None, str)
        assert online.attempts == 2 and "user_consent:user-0" in online.written
    finally:
        track.close()
