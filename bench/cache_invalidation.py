"""What a Track's cache invalidation costs with a full cache (a benchmark, not a test).

    .venv/bin/python -m bench.cache_invalidation                       # 100k entries, a Track of 1,000 users
    SETLIST_REDIS_URL=redis://HOST:PORT/DB .venv/bin/python -m bench.cache_invalidation   # RedisCache too

Target: bumping the versions of 1,000 users (one Track batch) adds under 5 ms, however many entries
are cached. Measured for the MemoryCache, and for the RedisCache when SETLIST_REDIS_URL answers (its
keys under a bench prefix of their own, deleted afterwards). For comparison, the scan that
invalidation used before versions (walk every entry for the user's prefix; SCAN the keyspace on
Redis) is timed for a few users; and a Rank's lookup (one MGET of entry, user version, generation)
against a plain GET of one key, the round trip Rank paid before. Numbers go to the console and
``bench/results/cache_invalidation.json``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from bench.machine import git_revision, machine_info
from serving.cache import Cache, MemoryCache, RedisCache, cache_key
from setlist.cachekeys import rank_prefix

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cache_invalidation.json"
TARGET_MS = 5.0
PER_USER = 5  # cached rankings per user (k, exclusions, context buckets differ)
VALUE = {"items": [[f"item-{i}", 1.0 / (i + 1), []] for i in range(10)], "model_version": "c:1+r:1", "arm": "a"}

app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0])


#: never the serving keys of whatever Redis this points at
BENCH_NAMESPACE = "setlist:bench"


def users_and_keys(entries: int) -> list[tuple[str, str]]:
    users = [f"u{n:07d}" for n in range(entries // PER_USER)]
    model = "champion:model:c:1+r:1@3"
    return [(u, cache_key(u, f"mobile|en_US|{h}|0", 10, (), model, "v")) for u in users for h in range(PER_USER)]


def fill(cache: Cache, pairs: list[tuple[str, str]]) -> None:
    for user, key in pairs:
        cache.put(key, cache.lookup(user, key).stamp, VALUE)


def timed_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "min_ms": round(ordered[0], 4),  # what the work costs when nothing else competes for the cores
        "median_ms": round(statistics.median(ordered), 4),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
        "max_ms": round(ordered[-1], 4),
        "runs": len(ordered),
    }


def bump_runs(cache: Cache, users: list[str], batch: int, repeat: int) -> list[float]:
    rng = random.Random(7)
    batches = [rng.sample(users, batch) for _ in range(repeat)]
    return [timed_ms(lambda b=b: cache.bump_users(b), 1)[0] for b in batches]


def lookup_us(cache: Cache, pairs: list[tuple[str, str]], n: int) -> float:
    sample = random.Random(11).sample(pairs, n)
    started = time.perf_counter()
    for user, key in sample:
        cache.lookup(user, key)
    return round((time.perf_counter() - started) / n * 1e6, 2)


def memory(entries: int, batch: int, repeat: int) -> dict[str, Any]:
    cache = MemoryCache(max_entries=entries, ttl_s=3600)
    pairs = users_and_keys(entries)
    fill(cache, pairs)
    filled = len(cache)
    users = sorted({u for u, _ in pairs})
    lookup = lookup_us(cache, pairs, 10_000)  # before any bump: every lookup is a hit
    bumps = bump_runs(cache, users, batch, repeat)
    scan = timed_ms(lambda: old_memory_scan(cache, random.choice(users)), 5)
    return {
        "entries": filled,
        "bump_users": summary(bumps),
        "lookup_hit_us": lookup,
        "before_scan_per_user_ms": summary(scan),
        "before_scan_batch_ms_estimate": round(statistics.median(scan) * batch, 1),
    }


def old_memory_scan(cache: MemoryCache, user: str) -> None:
    """What ``invalidate_user`` did before versions: walk every key for the user's prefix."""
    prefix = user + "|"
    with cache._lock:
        for key in [k for k in cache._data if k.startswith(prefix)]:
            del cache._data[key]


def redis_reachable(url: str) -> str | None:
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
            client.ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__} at SETLIST_REDIS_URL"


def redis_bench(url: str, entries: int, batch: int, repeat: int) -> dict[str, Any]:
    cache = RedisCache(url, ttl_s=600, timeout_s=2.0, namespace=BENCH_NAMESPACE)
    pairs = users_and_keys(entries)
    try:
        fill(cache, pairs)
        users = sorted({u for u, _ in pairs})
        lookup, get_us = round_trips(cache, pairs, 2_000)
        bumps = bump_runs(cache, users, batch, repeat)
        scan = timed_ms(lambda: old_redis_scan(cache, random.choice(users)), 3)
        return {
            "entries": entries,
            "bump_users": summary(bumps),
            "lookup_mget_median_us": lookup,
            "before_get_median_us": get_us,
            "before_scan_per_user_ms": summary(scan),
            "before_scan_batch_ms_estimate": round(statistics.median(scan) * batch, 1),
        }
    finally:
        for key in cache.client.scan_iter(match=f"{rank_prefix(BENCH_NAMESPACE)}*", count=5000):
            cache.client.unlink(key)


def round_trips(cache: RedisCache, pairs: list[tuple[str, str]], n: int) -> tuple[float, float]:
    """Median µs of a Rank's lookup (MGET of three keys) and of one GET of the entry (before
    versions), interleaved call by call so that both see the same load on the machine."""
    mget, get = [], []
    for user, key in random.Random(11).sample(pairs, n):
        started = time.perf_counter()
        cache.lookup(user, key)
        middle = time.perf_counter()
        cache.client.get(cache._entry(key))
        mget.append(middle - started)
        get.append(time.perf_counter() - middle)
    return round(statistics.median(mget) * 1e6, 1), round(statistics.median(get) * 1e6, 1)


def old_redis_scan(cache: RedisCache, user: str) -> None:
    """What ``invalidate_user`` did before versions: SCAN the whole keyspace for the user's prefix."""
    for key in cache.client.scan_iter(match=f"{rank_prefix(BENCH_NAMESPACE)}e:{user}|*", count=500):
        cache.client.delete(key)


@app.command()
def main(
    entries: int = typer.Option(100_000, help="cached rankings"),
    batch: int = typer.Option(1_000, help="distinct users in one Track"),
    repeat: int = typer.Option(30, help="Track batches timed"),
) -> None:
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": git_revision(),
        "entries": entries,
        "track_users": batch,
        "target_ms": TARGET_MS,
        "memory": memory(entries, batch, repeat),
    }
    url = os.environ.get("SETLIST_REDIS_URL")
    reason = "SETLIST_REDIS_URL is not set" if not url else redis_reachable(url)
    result["redis"] = {"skipped": reason} if reason or not url else redis_bench(url, entries, batch, repeat)
    report(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


def report(result: dict[str, Any]) -> None:
    batch = result["track_users"]
    for name in ("memory", "redis"):
        r = result[name]
        if "skipped" in r:
            print(f"{name}: skipped ({r['skipped']})")
            continue
        bump = r["bump_users"]
        verdict = "meets" if bump["median_ms"] < result["target_ms"] else "MISSES"
        print(
            f"{name}: {r['entries']:,} entries; bump {batch:,} users: min {bump['min_ms']:.2f} ms, "
            f"median {bump['median_ms']:.2f} ms, "
            f"p90 {bump['p90_ms']:.2f} ms, max {bump['max_ms']:.2f} ms "
            f"({verdict} the {result['target_ms']:g} ms target); "
            f"before, a scan: {r['before_scan_per_user_ms']['median_ms']:.2f} ms per user "
            f"(~{r['before_scan_batch_ms_estimate']:,.0f} ms for the batch)"
        )
    m = result["memory"]
    print(f"memory lookup (hit): {m['lookup_hit_us']} µs")
    if "skipped" not in result["redis"]:
        r = result["redis"]
        mget, get = r["lookup_mget_median_us"], r["before_get_median_us"]
        print(f"redis lookup (one MGET): {mget} µs; one GET as before: {get} µs")


if __name__ == "__main__":
    app()
