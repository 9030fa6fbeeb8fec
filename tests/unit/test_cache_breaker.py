"""The shared prediction cache behind a breaker: a Redis that keeps failing is left alone for a
cool-down (lookups miss, puts and bumps are skipped) instead of costing every Rank and Track a timeout."""

from __future__ import annotations

from typing import Any

from serving.breaker import Breaker
from serving.cache import RedisCache
from tests.servers import free_port


class HungRedis:
    """Every command times out; each attempt is counted."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, *_args: Any, **_kwargs: Any) -> Any:
        self.calls += 1
        raise TimeoutError("no reply")

    mget = set = _fail


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_cache_is_left_alone_then_probed() -> None:
    clock = Clock()
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", 60, 0.05, Breaker(1.0, clock, 3))
    hung = HungRedis()
    cache.client, cache._bump = hung, hung._fail
    for n in range(5):
        assert cache.lookup(f"u{n}", f"k{n}").stamp is None  # a miss, never an error
        cache.bump_users({f"u{n}"})
        cache.put(f"k{n}", ["v", "g"], [1, 2])
    assert hung.calls == 3  # three failures opened it; the other twelve calls did not wait on Redis
    cache.bump_generation()  # a model swap is always tried
    assert hung.calls == 4
    clock.now = 1.5
    cache.lookup("u", "k")  # one probe after the cool-down
    cache.lookup("u", "k")
    assert hung.calls == 5


def test_without_a_breaker_every_call_tries_redis() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", 60, 0.05)
    hung = HungRedis()
    cache.client = hung
    for n in range(4):
        cache.lookup(f"u{n}", "k")
    assert hung.calls == 4
