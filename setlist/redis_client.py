"""The Redis clients of the shared stores (serving's prediction cache and Track dedupe, erasure's cache
bump; in the cluster profile, erasure's and the residue scan's view of the Redis Cluster online
store): short socket timeouts and no backoff between retries, so a dead Redis costs a request one
timeout, not the seconds redis-py's default retries would hold it, and the caller degrades instead."""

from __future__ import annotations

from typing import Any

#: the shortest socket timeout of a client that does bulk or batch work on Redis (every item at start,
#: materialize's writes, a Track batch's dedupe claims), where a reply can take longer than one key's
BULK_TIMEOUT_FLOOR_MS = 200


def fail_fast_retry(retries: int, retry_timeouts: bool = True) -> Any:
    """redis-py's retry policy with no backoff. ``retry_timeouts=False``: the retries are for a dropped
    connection (Redis restarted) only; a hung Redis then costs one timeout, not one per attempt. (A
    Redis Cluster client retries timeouts whatever its policy says.)"""
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    return Retry(NoBackoff(), retries) if retry_timeouts else Retry(NoBackoff(), retries, (RedisConnectionError,))


def fail_fast_redis(url: str, timeout_s: float, retries: int, retry_timeouts: bool = True) -> Any:
    import redis

    retry = fail_fast_retry(retries, retry_timeouts)
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=retry)


def cluster_seed(node: str) -> tuple[str, int]:
    """One ``host:port`` seed of SETLIST_REDIS_CLUSTER_NODES, or a ValueError naming it. IPv6 is
    refused: Feast's connection string splits each node on its colon."""
    host, _, port = node.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"SETLIST_REDIS_CLUSTER_NODES: {node!r} is not host:port")
    if ":" in host or "[" in host:
        raise ValueError(f"SETLIST_REDIS_CLUSTER_NODES: {node!r}: IPv6 addresses are not supported; use a host name")
    return host, int(port)


def fail_fast_redis_cluster(
    nodes: list[str], timeout_s: float, retries: int, password: str | None = None, tls: bool = False
) -> Any:
    """A Redis Cluster client (the cluster profile's online store) with the same fail-fast settings:
    ``nodes`` are seed ``host:port`` strings; the slot map is read from the first that answers.
    redis-py's own default retries 3 times, each costing another socket timeout on a hung master.
    ``tls``: as Feast's cluster client is told by a ``rediss://`` SETLIST_REDIS_URL."""
    from redis.cluster import ClusterNode, RedisCluster

    seeds = [ClusterNode(*cluster_seed(node)) for node in nodes]
    return RedisCluster(
        startup_nodes=seeds,
        password=password,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=fail_fast_retry(retries),
        ssl=tls,
    )
