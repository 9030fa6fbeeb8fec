"""The Redis client of the shared stores (serving's prediction cache and Track dedupe, erasure's cache
bump): short socket
timeouts and no backoff between retries, so a dead Redis costs a request one timeout, not the
seconds redis-py's default retries would hold it, and the caller degrades instead."""

from __future__ import annotations

from typing import Any


def fail_fast_redis(url: str, timeout_s: float, retries: int) -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), retries)
    )
