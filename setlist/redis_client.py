"""The Redis clients of the shared stores (serving's prediction cache and Track dedupe, erasure's cache
bump; in the cluster profile, erasure's and the residue scan's view of the Redis Cluster online
store): short socket timeouts and no backoff between retries, so a dead Redis costs a request one
timeout, not the seconds redis-py's default retries would hold it, and the caller degrades instead."""

from __future__ import annotations

from typing import Any


def fail_fast_redis(url: str, timeout_s: float, retries: int) -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), retries)
    )


def cluster_seed(node: str) -> tuple[str, int]:
    """One ``host:port`` seed of SETLIST_REDIS_CLUSTER_NODES, or a ValueError naming it. IPv6 is
    refused: Feast's connection string splits each node on its colon."""
    host, _, port = node.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"SETLIST_REDIS_CLUSTER_NODES: {node!r} is not host:port")
    if ":" in host or "[" in host:
        raise ValueError(f"SETLIST_REDIS_CLUSTER_NODES: {node!r}: IPv6 addresses are not supported; use a host name")
    return host, int(port)


def fail_fast_redis_cluster(nodes: list[str], timeout_s: float, retries: int, password: str | None = None) -> Any:
    """A Redis Cluster client (the cluster profile's online store) with the same fail-fast settings:
    ``nodes`` are seed ``host:port`` strings; the slot map is read from the first that answers.
    redis-py's own default retries 3 times, each costing another socket timeout on a hung master."""
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    seeds = [ClusterNode(*cluster_seed(node)) for node in nodes]
    return RedisCluster(
        startup_nodes=seeds,
        password=password,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries),
    )
