"""Quotas shared through Redis (``SETLIST_QUOTA_BACKEND=redis``) on a real Redis and an injected clock:
the bucket keeps the in-process bucket's contract, every process (worker, replica) draws on the same
bucket, a replica whose clock lags cannot refill it twice, and a Redis that is down lets calls through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from prometheus_client import REGISTRY

from serving.errors import QuotaExceeded
from serving.grpc.auth import TokenAuth, fingerprint
from serving.grpc.quotas import Quota, RedisTokenBucket, quota_key_prefix, quotas_from_settings
from tests.fakes.dataplane import FakeClock
from tests.fakes.transport import make_settings
from tests.servers import RedisServer, db_url, free_port

DB = 9  # a database of its own on the session's Redis


def url(server: RedisServer) -> str:
    return db_url(server, DB)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(url(redis_server), socket_timeout=1.0)
    c.flushdb()
    yield c
    c.close()


def bucket(client: redis.Redis, clock: FakeClock, per_s: float = 2.0, burst: float = 5) -> RedisTokenBucket:
    return RedisTokenBucket(client, f"{quota_key_prefix()}:Rank", per_s, burst, clock)


def test_a_shared_bucket_allows_its_burst_then_refuses_and_refills_at_its_rate(client):
    clock = FakeClock()
    b = bucket(client, clock)
    assert [b.take("a") for _ in range(5)] == [0.0] * 5
    assert b.take("a") == pytest.approx(0.5)  # one unit at 2 per s
    assert b.take("a", cost=3) == pytest.approx(1.5)
    assert b.available("a") == pytest.approx(0.0)  # the refusals took nothing
    clock.advance(0.5)
    assert b.take("a") == 0.0 and b.take("a") > 0
    clock.advance(3600)  # an idle hour refills to the burst, not beyond
    assert b.available("a") == pytest.approx(5)
    assert b.take("a", cost=6) == float("inf")  # more than the burst can never be paid


def test_every_process_draws_on_the_same_bucket_per_token(client):
    clock = FakeClock()
    worker_1, worker_2 = bucket(client, clock), bucket(client, clock)
    assert [worker_1.take(0) for _ in range(3)] == [0.0] * 3
    assert [worker_2.take(0) for _ in range(2)] == [0.0] * 2
    assert worker_1.take(0) > 0 and worker_2.take(0) > 0  # the one burst of token 0 is spent
    assert worker_2.take(1) == 0.0 and worker_1.take(None) == 0.0  # other tokens, and no-auth, are apart
    ttl = client.pttl(f"{quota_key_prefix()}:Rank:0")
    assert 0 < ttl <= 5 / 2 * 1000 + 1000  # gone once it would have refilled: a missing key is a full bucket


def test_a_replica_whose_clock_lags_cannot_refill_the_bucket_twice(client):
    ahead, behind = FakeClock(), FakeClock()
    ahead.advance(10.0)
    fast, slow = bucket(client, ahead), bucket(client, behind)
    assert [fast.take("a") for _ in range(5)] == [0.0] * 5
    assert slow.take("a") > 0  # its earlier time counts as the bucket's: no refill from the past
    behind.advance(10.5)  # now half a second past the bucket's last touch: one unit refilled
    assert slow.take("a") == 0.0 and fast.take("a") > 0


def test_quotas_from_settings_share_the_buckets_across_workers(redis_server, client):
    settings = make_settings(quota_backend="redis", redis_url=url(redis_server), quota_rank_per_s=1, quota_rank_burst=2)
    clock, auth = FakeClock(), TokenAuth("alice:read")
    worker_1 = quotas_from_settings(settings, auth, clock=clock)["Rank"]
    worker_2 = quotas_from_settings(settings, auth, clock=clock)["Rank"]
    alice = fingerprint("alice")
    worker_1.charge(alice)
    worker_2.charge(alice)
    with pytest.raises(QuotaExceeded) as refused:
        worker_1.charge(alice)
    assert refused.value.retry_after_ms == 1000 and "for this token: 1 per s, burst 2" in str(refused.value)
    assert client.exists(f"{quota_key_prefix()}:Rank:{alice}")  # keyed by the fingerprint, never the secret


def test_a_tokens_own_limit_is_shared_across_workers_too(redis_server, client, tmp_path):
    quota_file = tmp_path / "quotas.yaml"
    quota_file.write_text(f"tokens:\n  importer:\n    fingerprint: {fingerprint('bob')}\n    rank_burst: 3\n")
    settings = make_settings(
        quota_backend="redis",
        redis_url=url(redis_server),
        quota_rank_per_s=1,
        quota_rank_burst=1,
        quota_file=quota_file,
    )
    clock, auth = FakeClock(), TokenAuth("alice:read,bob:read")
    workers = [quotas_from_settings(settings, auth, clock=clock)["Rank"] for _ in range(2)]
    bob = fingerprint("bob")
    for n in range(3):
        workers[n % 2].charge(bob)  # one burst of 3 across both
    for worker in workers:
        with pytest.raises(QuotaExceeded, match="for token 'importer': 1 per s, burst 3"):
            worker.charge(bob)
    workers[1].charge(fingerprint("alice"))  # the default's bucket, apart


def test_a_reloaded_quota_file_keeps_the_shared_buckets_and_their_client(redis_server, client, tmp_path):
    from serving.grpc.interceptors import Guard
    from serving.grpc.quota_reload import QuotaReloader, stamp

    quota_file = tmp_path / "quotas.yaml"
    quota_file.write_text(f"tokens:\n  importer:\n    fingerprint: {fingerprint('bob')}\n    rank_burst: 3\n")
    settings = make_settings(
        quota_backend="redis", redis_url=url(redis_server), quota_rank_per_s=0.001, quota_file=quota_file
    )
    clock, auth, bob = FakeClock(), TokenAuth("alice:read,bob:read"), fingerprint("bob")
    seen = stamp(quota_file)
    guard = Guard(4, auth, quotas=quotas_from_settings(settings, auth, clock=clock))
    reloader = QuotaReloader(settings, auth, guard, seen, clock=clock)
    before = guard.quotas["Rank"]
    before.charge(bob)  # two of three left, in Redis

    replacement = tmp_path / "quotas.yaml.new"
    replacement.write_text(f"tokens:\n  importer:\n    fingerprint: {bob}\n    rank_burst: 1\n")
    replacement.replace(quota_file)
    assert reloader.check() == "settling" and reloader.check() == "applied"
    after = guard.quotas["Rank"]
    assert after is not before and after.shared is before.shared  # one connection pool per server
    assert after.breaker is not None and after.breaker is before.breaker  # and one view of its health
    after.charge(bob)  # the two left, capped at the new burst of 1
    with pytest.raises(QuotaExceeded, match="for token 'importer': 0.001 per s, burst 1"):
        after.charge(bob)


def _backend_errors() -> float:
    return REGISTRY.get_sample_value("setlist_quota_backend_errors_total", {"rpc": "Rank"}) or 0.0


def test_a_redis_that_is_down_lets_calls_through_and_counts_them():
    down = redis.Redis(host="127.0.0.1", port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    quota = Quota("Rank", per_s=1, burst=1, shared=down, clock=FakeClock())
    before = _backend_errors()
    for _ in range(3):
        quota.charge("a")  # over the burst, but nothing can be counted: through
    assert _backend_errors() == before + 3


def test_two_replicas_share_a_tokens_quota_over_grpc(serve_fake, redis_server, client):
    # two real servers on one Redis: the burst spent on one is spent on the other, and the other
    # token's bucket is untouched (one unit per 1000 s: nothing refills while the test runs)
    from serving.client import QuotaExceededError, SetlistClient

    shared = {
        "auth_tokens": "alice-secret:read+write,bob-secret:read+write",
        "quota_backend": "redis",
        "redis_url": url(redis_server),
        "quota_rank_per_s": 0.001,
        "quota_rank_burst": 2,
    }
    one, _, _ = serve_fake(**shared)
    two, _, _ = serve_fake(**shared)
    with (
        SetlistClient(f"127.0.0.1:{one.port}", token="alice-secret", timeout=5.0) as alice_1,
        SetlistClient(f"127.0.0.1:{two.port}", token="alice-secret", timeout=5.0) as alice_2,
        SetlistClient(f"127.0.0.1:{two.port}", token="bob-secret", timeout=5.0) as bob_2,
    ):
        assert len(alice_1.rank("user-1", k=2).items) == 2
        assert len(alice_2.rank("user-1", k=2).items) == 2
        for alice in (alice_1, alice_2):
            with pytest.raises(QuotaExceededError) as refused:
                alice.rank("user-1", k=2)
            assert "exceeded for this token" in refused.value.message
        assert len(bob_2.rank("user-1", k=2).items) == 2


def test_two_deployments_on_one_redis_database_have_buckets_of_their_own(redis_server, client):
    """The buckets live under each deployment's Feast project: staging's callers do not spend production's."""
    shared = {"quota_backend": "redis", "redis_url": url(redis_server), "quota_rank_per_s": 1, "quota_rank_burst": 1}
    clock = FakeClock()
    staging = quotas_from_settings(make_settings(feast_project="staging", **shared), clock=clock)["Rank"]
    production = quotas_from_settings(make_settings(feast_project="production", **shared), clock=clock)["Rank"]
    staging.charge(None)
    with pytest.raises(QuotaExceeded):
        staging.charge(None)
    production.charge(None)  # a bucket of its own, still full
    assert client.exists(f"{quota_key_prefix('staging')}:Rank:all", f"{quota_key_prefix('production')}:Rank:all") == 2
