"""The circuit breaker in serving.user_features, on an injected clock: closed → open after enough
consecutive failures (one by default) → half-open after the cool-down (one probe) → closed on
success, open again on failure."""

from __future__ import annotations

import threading
from datetime import UTC

from serving.breaker import Breaker
from serving.user_features import UserFeatureReader
from tests.fakes.dataplane import FakeClock, FakeOnlineFeatures

COOLDOWN = 2.0


def test_a_closed_breaker_lets_every_call_through() -> None:
    breaker = Breaker(COOLDOWN, FakeClock())
    assert all(breaker.allow() for _ in range(5))
    assert not breaker.open


def test_a_failure_opens_it_for_the_cool_down() -> None:
    clock = FakeClock()
    breaker = Breaker(COOLDOWN, clock)
    breaker.failure()
    assert breaker.open and not breaker.allow()
    clock.advance(COOLDOWN * 0.99)
    assert not breaker.allow()


def test_after_the_cool_down_exactly_one_probe_goes_through() -> None:
    clock = FakeClock()
    breaker = Breaker(COOLDOWN, clock)
    breaker.failure()
    clock.advance(COOLDOWN)
    assert breaker.allow()  # the probe
    assert not any(breaker.allow() for _ in range(5))  # the rest wait for its outcome


def test_a_successful_probe_closes_it() -> None:
    clock = FakeClock()
    breaker = Breaker(COOLDOWN, clock)
    breaker.failure()
    clock.advance(COOLDOWN)
    assert breaker.allow()
    breaker.success()
    assert not breaker.open and all(breaker.allow() for _ in range(5))


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    clock = FakeClock()
    breaker = Breaker(COOLDOWN, clock)
    breaker.failure()
    clock.advance(COOLDOWN)
    assert breaker.allow()
    breaker.failure()
    clock.advance(COOLDOWN * 0.99)
    assert not breaker.allow()
    clock.advance(COOLDOWN * 0.02)
    assert breaker.allow()


def test_only_one_of_many_concurrent_callers_probes() -> None:
    clock = FakeClock()
    breaker = Breaker(COOLDOWN, clock)
    breaker.failure()
    clock.advance(COOLDOWN)
    start = threading.Barrier(8)
    allowed: list[bool] = []

    def call() -> None:
        start.wait()
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(allowed) == [False] * 7 + [True]


def test_the_reader_spares_a_failing_store_and_serves_the_last_known_rows() -> None:
    clock, online = FakeClock(), FakeOnlineFeatures()
    online.write("user_profile", [("u", {"user_plays_7d": 3.0}, clock_time(clock))])
    reader = UserFeatureReader(online, cooldown_s=COOLDOWN, clock=clock)
    fresh = reader.read("u")
    assert not fresh.degraded and fresh.profile == {"user_plays_7d": 3.0}

    online.fail = TimeoutError("read timed out")
    first = reader.read("u")
    assert first.degraded and first.profile == fresh.profile  # last known rows, marked degraded
    calls = dict(online.reads)
    for _ in range(10):  # open: one timeout, not one per request
        assert reader.read("u").degraded
    assert online.reads == calls
    assert reader.read("never-seen").profile is None

    online.fail = None
    clock.advance(COOLDOWN)
    healed = reader.read("u")
    assert not healed.degraded and not reader.breaker.open


def test_with_a_threshold_only_consecutive_failures_open_it() -> None:
    clock = FakeClock()
    breaker = Breaker(COOLDOWN, clock, failures_to_open=3)
    breaker.failure()
    breaker.failure()
    assert not breaker.open and breaker.allow()  # two blips: still closed
    breaker.success()  # a success in between starts the count again
    breaker.failure()
    breaker.failure()
    assert not breaker.open
    breaker.failure()
    assert breaker.open and not breaker.allow()
    clock.advance(COOLDOWN)
    assert breaker.allow()  # the probe
    breaker.failure()  # a failed probe opens it again at once, whatever the threshold
    assert breaker.open
    clock.advance(COOLDOWN)
    assert breaker.allow()
    breaker.success()
    breaker.failure()
    assert not breaker.open  # closed again: the count starts over


def test_a_threshold_below_one_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="at least 1"):
        Breaker(COOLDOWN, FakeClock(), failures_to_open=0)


def test_the_reader_degrades_a_single_blip_alone_and_opens_on_a_run_of_failures() -> None:
    clock, online = FakeClock(), FakeOnlineFeatures()
    online.write("user_profile", [("u", {"user_plays_7d": 3.0}, clock_time(clock))])
    reader = UserFeatureReader(online, cooldown_s=COOLDOWN, clock=clock, failures_to_open=3)
    assert not reader.read("u").degraded

    online.fail = TimeoutError("read timed out")
    assert reader.read("u").degraded  # the blip's own request is degraded…
    online.fail = None
    assert not reader.read("u").degraded  # …and the next one reads the store again

    online.fail = TimeoutError("read timed out")
    before = dict(online.reads)
    assert all(reader.read("u").degraded for _ in range(3))  # three tries, three timeouts
    tried = {view: online.reads[view] - before.get(view, 0) for view in online.reads}
    assert max(tried.values()) == 3 and reader.breaker.open
    calls = dict(online.reads)
    assert all(reader.read("u").degraded for _ in range(10))
    assert online.reads == calls  # open: the store is left alone


def test_the_breaker_settings_are_checked() -> None:
    import pydantic
    import pytest

    from setlist.settings import Settings

    with pytest.raises(pydantic.ValidationError):
        Settings(online_breaker_failures=0)
    with pytest.raises(pydantic.ValidationError):
        Settings(online_breaker_cooldown_s=0)


def clock_time(clock: FakeClock):
    from datetime import datetime

    return datetime.fromtimestamp(clock(), tz=UTC)
