"""serving.cache.RedisCache on a real Redis: versions and generations invalidate across replicas,
a corrupt entry is a miss, and a Redis that is down is a miss at once (no retry backoff)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.retry

from serving.cache import RedisCache
from tests.servers import RedisServer, db_url

TTL_S = 60.0
DB = 7  # a database of its own on the session's Redis: other tests' keys stay out of the way


def url(server: RedisServer) -> str:
    return db_url(server, DB)


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url(redis_server), socket_timeout=1.0)
    client.flushdb()
    yield client
    client.close()


def cache_on(server: RedisServer) -> RedisCache:
    return RedisCache(url(server), TTL_S, timeout_s=0.5)


def put(cache: RedisCache, user: str, key: str, value: object) -> None:
    cache.put(key, cache.lookup(user, key).stamp, value)


def test_a_bumped_user_misses_on_every_replica_and_others_still_hit(redis_server, redis_db) -> None:
    one, two = cache_on(redis_server), cache_on(redis_server)
    put(one, "u_1", "u_1|a", {"items": [1, 2]})
    put(one, "u_2", "u_2|a", {"items": [3]})
    assert two.lookup("u_1", "u_1|a").value == {"items": [1, 2]}  # shared by every replica
    one.bump_users({"u_1"})
    assert two.lookup("u_1", "u_1|a").value is None
    assert two.lookup("u_2", "u_2|a").value == {"items": [3]}
    put(two, "u_1", "u_1|a", {"items": [9]})  # the next Rank caches its answer under the same key
    assert one.lookup("u_1", "u_1|a").value == {"items": [9]}


def test_an_entry_put_by_a_rank_that_raced_a_track_is_never_served(redis_server, redis_db) -> None:
    cache = cache_on(redis_server)
    stamp = cache.lookup("u_1", "u_1|a").stamp
    cache.bump_users(["u_1"])
    cache.put("u_1|a", stamp, {"items": []})
    assert cache.lookup("u_1", "u_1|a").value is None


def test_a_new_generation_misses_for_every_user(redis_server, redis_db) -> None:
    one, two = cache_on(redis_server), cache_on(redis_server)
    put(one, "u_1", "u_1|a", 1)
    put(one, "u_2", "u_2|a", 2)
    two.bump_generation()  # another replica swapped its models
    assert one.lookup("u_1", "u_1|a").value is None and one.lookup("u_2", "u_2|a").value is None
    put(one, "u_1", "u_1|a", 3)
    assert two.lookup("u_1", "u_1|a").value == 3


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", b'{"stamp": ', b"[1, 2]", b"[" * 100_000, b'"text"'])
def test_a_corrupt_entry_is_a_miss(redis_server, redis_db, raw: bytes) -> None:
    cache = cache_on(redis_server)
    put(cache, "u_1", "u_1|a", {"items": []})
    (entry,) = redis_db.keys("*u_1|a")
    redis_db.set(entry, raw)
    assert cache.lookup("u_1", "u_1|a").value is None


def test_redis_down_is_a_miss_at_once_and_serving_resumes_after(redis_server, redis_db, monkeypatch) -> None:
    cache = cache_on(redis_server)
    put(cache, "u_1", "u_1|a", 1)
    waits: list[float] = []
    monkeypatch.setattr(redis.retry, "sleep", waits.append)  # redis-py's backoff between retries
    redis_server.stop()
    try:
        down = cache.lookup("u_1", "u_1|a")
        assert down.value is None
        cache.put("u_1|a", down.stamp, 2)  # none of these raises
        cache.bump_users({"u_1"})
        cache.bump_generation()
        assert waits == []  # no backoff: the default client would wait seconds before it gives up
    finally:
        redis_server.start()
    assert cache.lookup("u_1", "u_1|a").value == 1  # the entry survived; nothing was put while down


def test_two_deployments_on_one_redis_database_keep_their_entries_and_bumps_apart(redis_server, redis_db) -> None:
    """Each deployment's keys live under its Feast project's name: the same user and key are two entries,
    and one deployment's publish (a generation bump) leaves the other's cache alone."""
    staging = RedisCache(url(redis_server), TTL_S, timeout_s=0.5, namespace="staging")
    production = RedisCache(url(redis_server), TTL_S, timeout_s=0.5, namespace="production")
    put(staging, "u_1", "u_1|a", {"items": ["staging"]})
    assert production.lookup("u_1", "u_1|a").value is None
    put(production, "u_1", "u_1|a", {"items": ["production"]})
    staging.bump_generation()
    assert staging.lookup("u_1", "u_1|a").value is None
    assert production.lookup("u_1", "u_1|a").value == {"items": ["production"]}
    assert all(k.startswith((b"staging:rank:", b"production:rank:")) for k in redis_db.keys("*"))


def test_a_deployments_publish_and_erasure_reach_its_servers_cache_under_its_project(
    redis_server, redis_db, tmp_path
) -> None:
    """The writers outside the server (a feature publish's generation bump, an erasure's version bump) and
    the server's cache (serving.bootstrap.make_cache) agree on the namespace: the settings' Feast project."""
    from ingest.erasure import _cache
    from serving.bootstrap import make_cache
    from setlist.cachekeys import bump_shared_generation
    from setlist.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data",
        hmac_key="k",
        feast_project="staging",
        cache_backend="redis",
        redis_url=url(redis_server),
    )
    server = make_cache(settings)
    put(server, "u_1", "u_1|a", 1)
    put(server, "u_2", "u_2|a", 2)
    _cache(settings, "u_1")  # the erasure's bump: u_1's entry is stale, u_2's is not
    assert server.lookup("u_1", "u_1|a").value is None and server.lookup("u_2", "u_2|a").value == 2
    assert bump_shared_generation(settings)  # a publish: every entry is stale
    assert server.lookup("u_2", "u_2|a").value is None
    assert redis_db.keys("*") and all(k.startswith(b"staging:rank:") for k in redis_db.keys("*"))
