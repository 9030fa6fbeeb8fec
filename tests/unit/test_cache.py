"""serving.cache: what a key is made of, TTL expiry on an injected clock, the LRU bound."""

from __future__ import annotations

import itertools

import pytest

from serving.cache import MemoryCache, NoCache, cache_key
from tests.fakes.dataplane import FakeClock

BASE = dict(
    user="u_1",
    bucket="mobile|de-DE|12|1",
    k=10,
    exclude=("item-1", "item-2"),
    model_version="champion:model:candidates:1+ranker:1@3",
    feature_version="100/200/-|0",
)
# one other value per input: each must change the key on its own
OTHER = dict(
    user="u_2",
    bucket="desktop|de-DE|12|1",
    k=11,
    exclude=("item-1",),
    model_version="champion:model:candidates:1+ranker:2@3",
    feature_version="100/201/-|0",
)


def key(**over: object) -> str:
    return cache_key(**{**BASE, **over})


def test_the_same_inputs_give_the_same_key() -> None:
    assert key() == key()
    assert key(exclude=("item-2", "item-1")) == key()  # exclusions are a set: their order does not matter


@pytest.mark.parametrize("field", list(OTHER))
def test_each_input_changes_the_key(field: str) -> None:
    assert key(**{field: OTHER[field]}) != key()


def test_every_combination_of_inputs_has_its_own_key() -> None:
    pairs = ([BASE[f], OTHER[f]] for f in BASE)
    combos = [dict(zip(BASE, values, strict=True)) for values in itertools.product(*pairs)]
    keys = {cache_key(**c) for c in combos}
    assert len(keys) == len(combos) == 2 ** len(BASE)


def test_no_exclusions_differ_from_any_exclusion() -> None:
    assert key(exclude=()) != key(exclude=("",)) != key()


def test_an_entry_lives_for_its_ttl_by_the_injected_clock() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=10, ttl_s=30, clock=clock)
    cache.put("a", 1)
    clock.advance(30)
    assert cache.get("a") == 1  # expires after, not at, its TTL
    clock.advance(0.001)
    assert cache.get("a") is None
    assert len(cache) == 0  # an expired entry is dropped, not kept around


def test_a_put_renews_the_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=10, ttl_s=30, clock=clock)
    cache.put("a", 1)
    clock.advance(20)
    cache.put("a", 2)
    clock.advance(20)
    assert cache.get("a") == 2


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = MemoryCache(max_entries=3, ttl_s=60, clock=FakeClock())
    for k in "abc":
        cache.put(k, k)
    assert cache.get("a") == "a"  # a is now the most recently used
    cache.put("d", "d")
    assert len(cache) == 3
    assert cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == ["a", "c", "d"]


def test_invalidate_user_drops_only_that_users_keys() -> None:
    cache = MemoryCache(max_entries=10, ttl_s=60, clock=FakeClock())
    mine, longer, other = key(user="u_1"), key(user="u_10"), key(user="u_2")
    for k in (mine, key(user="u_1", k=3), longer, other):
        cache.put(k, k)
    cache.invalidate_user("u_1")
    assert cache.get(mine) is None and cache.get(key(user="u_1", k=3)) is None
    assert cache.get(longer) == longer and cache.get(other) == other  # u_10 starts with u_1, but is not u_1


def test_clear_empties_the_cache_and_no_cache_keeps_nothing() -> None:
    cache = MemoryCache(max_entries=10, ttl_s=60, clock=FakeClock())
    cache.put("a", 1)
    cache.clear()
    assert cache.get("a") is None
    off = NoCache()
    off.put("a", 1)
    assert off.get("a") is None
