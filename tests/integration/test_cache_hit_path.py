"""The cheap cache-hit path: with the shared (Redis) cache a Rank looks its entry up before reading
the user's feature rows, so a hit costs one round trip; everything that changes a user's answer still
makes the next Rank on every worker a miss: a Track, a consent withdrawal, a feature publish, a model
swap. Real Redis; the rest of the data plane is the honest fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from serving.bootstrap import Server
from serving.cache import RedisCache
from serving.types import RankQuery, TrackEvent
from setlist.cachekeys import bump_shared_generation
from setlist.settings import Settings
from tests.fakes.dataplane import Dataplane
from tests.servers import RedisServer, db_url

USER = "user-0"
DB = 8  # a database of its own on the session's Redis


def url(server: RedisServer) -> str:
    return db_url(server, DB)


@pytest.fixture
def plane(tmp_path: Path, redis_server: RedisServer) -> Iterator[Dataplane]:
    from feature_repo.declarations import load

    client = redis.Redis.from_url(url(redis_server))
    client.flushdb()
    client.close()
    settings = Settings(
        data_dir=tmp_path / "data",
        hmac_key="test-hmac-key",
        reload_interval_s=3600,
        cache_ttl_s=300,
        cache_backend="redis",
        redis_url=url(redis_server),
    )
    yield Dataplane(settings, load(settings))


@pytest.fixture
def reads(plane: Dataplane, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every user-row read the servers make, by pseudonym."""
    seen: list[str] = []
    real = plane.online.read_views

    def counted(views, entity):
        seen.append(entity)
        return real(views, entity)

    monkeypatch.setattr(plane.online, "read_views", counted)
    return seen


@pytest.fixture
def workers(plane: Dataplane) -> Iterator[tuple[Server, Server]]:
    """Two workers (or replicas) on one online store and one shared Redis cache."""
    s = plane.settings
    a = plane.build(cache=RedisCache(s.redis_url, s.cache_ttl_s, timeout_s=0.5))
    b = plane.build(cache=RedisCache(s.redis_url, s.cache_ttl_s, timeout_s=0.5))
    yield a, b
    a.close()
    b.close()


def event(plane: Dataplane, event_id: str, **context: str) -> TrackEvent:
    return TrackEvent(event_id, USER, "item-3", "play", int(plane.clock() * 1000), "s1", dict(context), 0.9)


def test_a_hit_reads_no_feature_rows_and_a_miss_reads_them_once(workers, reads: list[str]) -> None:
    a, b = workers
    first = a.rank(RankQuery(USER, 5))
    assert not first.cache_hit and len(reads) == 1
    again = b.rank(RankQuery(USER, 5))  # the other worker finds what the first put
    assert again.cache_hit and len(reads) == 1
    assert [i.item_id for i in again.items] == [i.item_id for i in first.items]


def test_a_track_or_a_withdrawal_on_one_worker_makes_the_next_rank_on_the_other_a_miss(
    plane: Dataplane, workers
) -> None:
    a, b = workers
    b.rank(RankQuery(USER, 5))
    assert b.rank(RankQuery(USER, 5)).cache_hit
    a.track([event(plane, "e1")])
    assert not b.rank(RankQuery(USER, 5)).cache_hit
    assert b.rank(RankQuery(USER, 5)).arm != "popularity"
    plane.clock.advance(1)
    a.track([event(plane, "e2", consent_personalization="false")])
    after = b.rank(RankQuery(USER, 5))
    assert not after.cache_hit and after.arm == "popularity"  # never the personalized entry


def test_a_feature_publish_makes_every_cached_ranking_stale(plane: Dataplane, workers, reads: list[str]) -> None:
    a, _ = workers
    a.rank(RankQuery(USER, 5))
    assert a.rank(RankQuery(USER, 5)).cache_hit
    assert bump_shared_generation(plane.settings)  # what a publish does once its rows are written
    n = len(reads)
    assert not a.rank(RankQuery(USER, 5)).cache_hit and len(reads) == n + 1


def test_a_hit_keeps_no_impression_for_a_user_without_analytics_consent(plane: Dataplane, workers) -> None:
    a, b = workers
    a.track([event(plane, "e1", consent_analytics="false")])
    a.rank(RankQuery(USER, 5, request_id="r1"))
    assert b.rank(RankQuery(USER, 5, request_id="r2")).cache_hit
    plane.clock.advance(1)
    a.track([event(plane, "e2", consent_analytics="true")])
    a.rank(RankQuery(USER, 5, request_id="r3"))
    assert b.rank(RankQuery(USER, 5, request_id="r4")).cache_hit
    kept = {i.request_id for i in plane.impressions.records}
    assert {"r1", "r2"}.isdisjoint(kept) and {"r3", "r4"} <= kept
