"""serving.cache: what a key is made of, TTL expiry on an injected clock, the LRU bound, and
invalidation by version: a bumped user or generation makes earlier entries misses, without a scan."""

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


def put(cache: MemoryCache, key: str, value: object, user: str = "u_1") -> None:
    """What Rank does on a miss: look up, then put with the stamp the lookup returned."""
    cache.put(key, cache.lookup(user, key).stamp, value)


def get(cache: MemoryCache, key: str, user: str = "u_1") -> object:
    return cache.lookup(user, key).value


def test_an_entry_lives_for_its_ttl_by_the_injected_clock() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=10, ttl_s=30, clock=clock)
    put(cache, "a", 1)
    clock.advance(30)
    assert get(cache, "a") == 1  # expires after, not at, its TTL
    clock.advance(0.001)
    assert get(cache, "a") is None
    assert len(cache) == 0  # an expired entry is dropped, not kept around


def test_entries_never_looked_up_again_go_once_expired_not_when_the_bound_is_reached() -> None:
    """Most keys are never asked for again (a Track or the next hour changes them): a put frees the
    expired ones at the least recently used end, so memory follows the traffic of one TTL."""
    clock = FakeClock()
    cache = MemoryCache(max_entries=100_000, ttl_s=30, clock=clock)
    for n in range(50):
        put(cache, f"old-{n}", n)
    clock.advance(10)
    put(cache, "younger", 0)
    clock.advance(25)  # the 50 are expired, "younger" is not
    put(cache, "new", 1)
    assert len(cache) == 2 and get(cache, "younger") == 0 and get(cache, "new") == 1


def test_a_put_renews_the_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=10, ttl_s=30, clock=clock)
    put(cache, "a", 1)
    clock.advance(20)
    put(cache, "a", 2)
    clock.advance(20)
    assert get(cache, "a") == 2


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = MemoryCache(max_entries=3, ttl_s=60, clock=FakeClock())
    for k in "abc":
        put(cache, k, k)
    assert get(cache, "a") == "a"  # a is now the most recently used
    put(cache, "d", "d")
    assert len(cache) == 3
    assert get(cache, "b") is None
    assert [get(cache, k) for k in "acd"] == ["a", "c", "d"]


def test_bumping_a_user_makes_only_that_users_entries_misses() -> None:
    cache = MemoryCache(max_entries=10, ttl_s=60, clock=FakeClock())
    mine, longer, other = key(user="u_1"), key(user="u_10"), key(user="u_2")
    for user, k in (("u_1", mine), ("u_1", key(user="u_1", k=3)), ("u_10", longer), ("u_2", other)):
        put(cache, k, k, user)
    cache.bump_users({"u_1"})
    assert get(cache, mine) is None and get(cache, key(user="u_1", k=3)) is None
    assert get(cache, longer, "u_10") == longer and get(cache, other, "u_2") == other
    assert len(cache) == 2  # a stale entry is freed when it is looked up
    put(cache, mine, "fresh")  # ... and the next Rank caches its new answer under the same key
    assert get(cache, mine) == "fresh"


def test_an_entry_put_by_a_rank_that_raced_a_track_is_never_served() -> None:
    cache = MemoryCache(max_entries=10, ttl_s=60, clock=FakeClock())
    stamp = cache.lookup("u_1", "a").stamp  # Rank looks up and misses ...
    cache.bump_users({"u_1"})  # ... a Track lands while it ranks on the old session ...
    cache.put("a", stamp, "ranked before the track")  # ... and it puts its answer
    assert get(cache, "a") is None


def test_a_new_generation_makes_every_entry_a_miss() -> None:
    cache = MemoryCache(max_entries=10, ttl_s=60, clock=FakeClock())
    put(cache, "a", 1, "u_1")
    put(cache, "b", 2, "u_2")
    cache.bump_generation()
    assert get(cache, "a", "u_1") is None and get(cache, "b", "u_2") is None
    put(cache, "a", 3, "u_1")
    assert get(cache, "a", "u_1") == 3


def test_versions_are_bounded_and_one_let_go_never_revives_an_old_entry() -> None:
    cache = MemoryCache(max_entries=10, ttl_s=60, clock=FakeClock(), max_users=2)
    put(cache, "u1-before", "stale", "u_1")  # stamped with u_1's version before any Track
    cache.bump_users(["u_1"])
    put(cache, "u1-after", "fresh", "u_1")
    cache.bump_users(["u_2", "u_3"])  # u_1's own version is let go: at most two users keep one
    assert get(cache, "u1-before", "u_1") is None
    assert get(cache, "u1-after", "u_1") == "fresh"  # still newer than every Track of u_1
    put(cache, "u4", "x", "u_4")
    cache.bump_users(["u_5", "u_6"])
    assert get(cache, "u4", "u_4") is None  # an extra miss for a user never tracked: safe, not stale


def test_no_cache_keeps_nothing() -> None:
    off = NoCache()
    off.put("a", off.lookup("u_1", "a").stamp, 1)
    off.bump_users({"u_1"})
    off.bump_generation()
    assert off.lookup("u_1", "a").value is None
