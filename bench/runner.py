"""One benchmark run: prepare data, profile the stages, run every scenario against real servers.

Servers run one at a time, so the 2 cores are shared by exactly one server and the load generator.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from bench import scenarios as sc
from bench.machine import cpu_reference_ms, machine_info
from bench.plan import Plan
from bench.prepare import ROOT, SCALES, Prepared, prepare
from bench.servers import Running, server
from bench.users import NewUsers, load_new_users, load_users


@dataclass(frozen=True)
class _Bench:
    """What every server phase of a run works with."""

    console: Console
    plan: Plan
    env: dict[str, str]
    logs: Path
    seed: int
    requests: list[Any]
    track_users: list[Any]
    fresh_users: list[Any]
    items: list[str]
    new_users: NewUsers


def run(scale_name: str, seed: int, plan: Plan, fresh: bool, console: Console) -> dict[str, Any]:
    started = time.monotonic()
    machine_start = machine_info() | {"cpu_reference_ms": cpu_reference_ms()}
    scale = SCALES[scale_name]
    console.rule(f"bench {scale_name}: data ({scale.generator} generator, {scale.profile} profile)")
    prepared = prepare(scale, seed, console, fresh=fresh)
    prepared_s = time.monotonic() - started
    logs = prepared.data_dir / "logs"

    console.rule("in-process stage profile (serving.bootstrap.build, no gRPC)")
    env = {**prepared.env, **dict(plan.server_env), **traffic_env(prepared.data_dir)}
    stages = profile_stages(prepared, env, plan.profile_users, console)

    users = load_users(prepared.data_dir, plan.rank_users + plan.freshness_trials + 500, seed=seed)
    # new users (< 10 events): ids the event log never saw, and users with a few events in it
    new_users = load_new_users(prepared.data_dir, env, plan.new_users, seed)
    # three disjoint groups, so Track's session writes never change what the Rank runs measure; Track
    # and freshness leave the few-event users alone, so they stay few-event users for the next run
    n_rank = max(min(plan.rank_users, len(users) - plan.freshness_trials - 100), 1)
    rank_users = users[:n_rank]
    few = {u.user_id for u in new_users.few_events}
    others = [u for u in users[n_rank:] if u.user_id not in few]
    fresh_users = others[: plan.freshness_trials]
    track_users = others[plan.freshness_trials :] or rank_users
    b = _Bench(
        console,
        plan,
        env,
        logs,
        seed,
        sc.rank_requests(rank_users),
        track_users,
        fresh_users,
        pd.read_parquet(prepared.data_dir / "catalog" / "items.parquet", columns=["item_id"])["item_id"].tolist(),
        new_users,
    )
    out: dict[str, Any] = {"prepared": prepared, "stages": stages, "plan": plan}
    out["rank_new_users_selection"] = new_users.selection()
    out |= _cache_miss(b)
    out |= _tracing(b)
    out |= _cache_on(b)
    out |= _baseline(b)
    out["duration_s"] = {"total": round(time.monotonic() - started, 1), "prepare": round(prepared_s, 1)}
    out["machine"] = {**machine_start, "loadavg_end": machine_info()["loadavg_start"]}
    return out


def traffic_env(data_dir: Path) -> dict[str, str]:
    """Where the bench's servers keep what its traffic writes: the Track journal, the event log it
    rolls into and the impressions, emptied at each run. Kept out of the prepared data dir's own log,
    since a later `make train` there would otherwise learn from the load generator's synthetic plays."""
    root = data_dir / "bench-traffic"
    if root.exists():
        shutil.rmtree(root)
    return {
        "SETLIST_EVENTS_DIR_OVERRIDE": str(root / "events"),
        "SETLIST_WAL_DIR": str(root / "wal"),
        "SETLIST_IMPRESSIONS_DIR_OVERRIDE": str(root / "impressions"),
    }


def _cache_miss(b: _Bench) -> dict[str, Any]:
    """The fast engine, cache off: Rank cache misses unloaded, in an open loop (impression logging
    off, then on) and in closed loops."""
    console, plan, env, logs, requests, seed = b.console, b.plan, b.env, b.logs, b.requests, b.seed
    out: dict[str, Any] = {}
    # Impression logging is measured on and off: the cache-miss runs keep it off, one run turns it on.
    miss_env = {**env, "SETLIST_CACHE_ENABLED": "false", "SETLIST_IMPRESSIONS_ENABLED": "false"}
    console.rule("fast engine, cache off: Rank cache-miss")
    with server("fast-miss", miss_env, logs, workers=plan.workers, metrics=True) as s:
        out["startup_fast_s"] = round(s.startup_s, 1)
        out["sequential"] = _run(
            console,
            "unloaded, one at a time",
            sc.rank_sequential(s.target, requests, plan.sequential, plan.rank_timeout_s),
        )
        cpu0, handler0, t0 = s.cpu_by_process_s(), s.handler_cpu(), time.monotonic()
        out["rank_open"] = _run(
            console,
            f"open loop {plan.rps:g} req/s, {plan.open_s:g}s",
            sc.rank_open(s.target, requests, plan.rps, plan.open_s, plan.warmup_s, plan.rank_timeout_s, seed),
        )
        out["server_cpu"] = _cpu_window(s, plan, cpu0, t0, handler0)
        out["rank_new_users"] = _new_users(b, s.target)
        out["saturation"] = {
            c: _run(
                console,
                f"closed loop, {c} workers, {plan.closed_s:g}s",
                sc.rank_closed(s.target, requests, c, plan.closed_s, plan.warmup_s, plan.rank_timeout_s),
            )
            for c in plan.concurrency
        }
    with server(
        "fast-miss-impressions", {**miss_env, "SETLIST_IMPRESSIONS_ENABLED": "true"}, logs, workers=plan.workers
    ) as s:
        out["rank_open_impressions"] = _run(
            console,
            "open loop with impression logging on",
            sc.rank_open(s.target, requests, plan.rps, plan.open_s, plan.warmup_s, plan.rank_timeout_s, seed),
        )
    return out


def _new_users(b: _Bench, target: str) -> sc.Measured:
    """Rank for new users (fewer than 10 events) on the cache-miss server, at the main open loop's rate."""
    plan = b.plan
    users, groups = b.new_users.interleaved()
    if not users:
        raise RuntimeError("the new-user scenario found no users: the bench's users file is empty")
    nu = b.new_users
    result: sc.Measured = _run(
        b.console,
        f"new users (< {nu.below} events: {len(nu.brand_new)} brand-new, {len(nu.few_events)} with 1-"
        f"{nu.below - 1}), open loop {plan.rps:g} req/s, {plan.new_s:g}s",
        sc.rank_open_groups(
            target, sc.rank_requests(users), groups, plan.rps, plan.new_s, plan.warmup_s, plan.rank_timeout_s, b.seed
        ),
    )
    for name, m in result.groups.items():
        b.console.print(f"    {name}: {_brief(m.summary)}, from popularity {m.summary.get('popularity_fraction')}")
    return result


def _tracing(b: _Bench) -> dict[str, Any]:
    """The cache-miss runs again with tracing on: every trace sampled, spans exported through the
    BatchSpanProcessor by the console exporter (to the server's log file, where its stderr goes)."""
    console, plan, requests, seed = b.console, b.plan, b.requests, b.seed
    env = {**b.env, "SETLIST_CACHE_ENABLED": "false", "SETLIST_IMPRESSIONS_ENABLED": "false"}
    env |= {"SETLIST_TRACING": "console", "SETLIST_TRACE_SAMPLE_RATIO": "1.0"}
    out: dict[str, Any] = {}
    console.rule("fast engine, cache off, tracing on (console exporter to the server log)")
    with server("fast-miss-tracing", env, b.logs, workers=plan.workers, metrics=True) as s:
        out["sequential_tracing"] = _run(
            console,
            "unloaded, one at a time, tracing on",
            sc.rank_sequential(s.target, requests, plan.sequential, plan.rank_timeout_s),
        )
        cpu0, handler0, t0 = s.cpu_by_process_s(), s.handler_cpu(), time.monotonic()
        out["rank_open_tracing"] = _run(
            console,
            f"open loop {plan.rps:g} req/s, {plan.open_s:g}s, tracing on",
            sc.rank_open(s.target, requests, plan.rps, plan.open_s, plan.warmup_s, plan.rank_timeout_s, seed),
        )
        # as rank.server_cpu is measured with tracing off (the export thread's CPU included)
        out["server_cpu_tracing"] = _cpu_window(s, plan, cpu0, t0, handler0)
    # the server flushed its spans on SIGTERM: count them, so the report shows they were exported
    out["tracing_spans_exported"] = _count_spans(s.log)
    return out


def _cpu_window(
    s: Running,
    plan: Plan,
    before: dict[int, float],
    started: float,
    handler_before: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The servers' CPU over an open loop that began at ``started`` with ``before`` (by process): per
    request sent (the warm-up is inside the window too, sent at the same rate), and each process's
    share, busiest first. The kernel places connections, not calls, on workers: a share far from
    1/workers means one worker queued while another idled, which shows in p99 and saturation.

    With the servers' metrics (``handler_before``: their Rank handler's CPU seconds and calls at the
    start), also the part of it spent inside the Rank handler, per request sent and per call it
    answered: the rest of the servers' CPU is gRPC, the guard and the process's other threads."""
    after, elapsed = s.cpu_by_process_s(), time.monotonic() - started
    by_process = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    used, sent = sum(by_process.values()), plan.rps * (plan.warmup_s + plan.open_s)
    window: dict[str, Any] = {
        "cores_busy": round(used / elapsed, 3),
        "cpu_ms_per_request": round(1000 * used / sent, 3) if sent else None,
        "process_shares": sorted((round(v / used, 3) for v in by_process.values()), reverse=True) if used > 0 else [],
    }
    handler_after = s.handler_cpu() if handler_before is not None else None
    if handler_before is not None and handler_after is not None and sent:
        seconds, calls = (a - b for a, b in zip(handler_after, handler_before, strict=True))
        window["handler_cpu_ms_per_request"] = round(1000 * seconds / sent, 3)
        window["handler_cpu_ms_per_call"] = round(1000 * seconds / calls, 3) if calls else None
    return window


def _count_spans(log: Path) -> int:
    """Spans the console exporter wrote (one JSON object per line, starting with its name)."""
    with open(log, "rb") as f:
        return sum(1 for line in f if line.startswith(b'{"name": '))


def _cache_on(b: _Bench) -> dict[str, Any]:
    """The fast engine, cache on: cache hits, Track throughput and freshness."""
    console, plan, env, logs, requests, seed = b.console, b.plan, b.env, b.logs, b.requests, b.seed
    out: dict[str, Any] = {}
    console.rule("fast engine, cache on: cache hits, Track, freshness")
    with server("fast-cache", {**env, "SETLIST_CACHE_ENABLED": "true"}, logs, workers=plan.workers) as s:
        hot = requests[: plan.hot_users]
        _run(console, "prime every worker's cache", sc.rank_prime(s.target, hot, plan.rank_timeout_s))
        out["cache_hit_unloaded"] = _run(
            console,
            "cache hits, unloaded (one at a time)",
            sc.rank_sequential(s.target, hot, plan.sequential, plan.rank_timeout_s),
        )
        out["grpc_floor"] = _run(
            console,
            "health checks, unloaded (one at a time): the gRPC round trip alone",
            sc.health_sequential(s.target, plan.sequential, plan.rank_timeout_s),
        )
        out["cache_hit"] = _run(
            console,
            f"open loop {plan.rps:g} req/s on {len(hot)} repeated requests",
            sc.rank_open(s.target, hot, plan.rps, plan.hit_s, plan.warmup_s, plan.rank_timeout_s, seed),
        )
        out["track"] = _run(
            console,
            f"Track, {plan.track_streams} streams × {plan.track_batch} events",
            sc.track_throughput(
                s.target,
                b.track_users,
                b.items,
                plan.track_streams,
                plan.track_batch,
                plan.track_s,
                plan.warmup_s,
                10.0,
            ),
        )
        out["track_sampling"] = _run(
            console,
            f"Track, a player's mix of {plan.mix_events:,} events (what the tiers' sampling saves)",
            sc.track_client_mix(s.target, b.track_users, b.items, plan.mix_events, plan.track_batch, 10.0),
        )
        out["freshness"] = _run(
            console,
            f"freshness, {plan.freshness_trials} trials",
            sc.freshness(s.target, b.fresh_users, plan.freshness_trials, plan.rank_timeout_s),
        )
    return out


def _baseline(b: _Bench) -> dict[str, Any]:
    """The baseline engine: Feast get_online_features and an MLflow pyfunc predict."""
    console, plan, env, logs, requests, seed = b.console, b.plan, b.env, b.logs, b.requests, b.seed
    out: dict[str, Any] = {}
    console.rule("baseline engine: Feast get_online_features + MLflow pyfunc predict")
    with server("baseline", env, logs, engine="baseline", workers=plan.workers) as s:
        out["startup_baseline_s"] = round(s.startup_s, 1)
        out["baseline_sequential"] = _run(
            console,
            "unloaded, one at a time",
            sc.rank_sequential(s.target, requests, plan.baseline_sequential, plan.baseline_timeout_s),
        )
        out["baseline_open"] = _run(
            console,
            f"open loop {plan.rps:g} req/s, {plan.baseline_s:g}s (bounded)",
            sc.rank_open(
                s.target, requests, plan.rps, plan.baseline_s, min(plan.warmup_s, 1.0), plan.baseline_timeout_s, seed
            ),
        )
    return out


def _run(console: Console, title: str, coro: Any) -> Any:
    t0 = time.monotonic()
    with console.status(f"{title}…"):
        result = asyncio.run(coro)
    summary = getattr(result, "summary", result)
    console.print(f"  {title}: {_brief(summary)} [dim]({time.monotonic() - t0:.0f}s)[/]")
    return result


def _brief(s: dict[str, Any]) -> str:
    if "p99_ms" in s:
        return (
            f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, {s['rps']} req/s ok, {s['errors']} errors "
            f"{s.get('errors_by_code') or ''}"
        )
    return ", ".join(f"{k} {v}" for k, v in s.items() if not isinstance(v, dict))


def profile_stages(prepared: Prepared, env: dict[str, str], users: int, console: Console) -> dict[str, Any]:
    path = prepared.data_dir / "logs" / "stages.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with console.status("timing Rank stages in-process…"), open(path.with_suffix(".log"), "wb") as log:
        done = subprocess.run(
            [sys.executable, "-m", "bench.stages", str(path), str(users)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the stage profile failed; see {path.with_suffix('.log')}")
    stages = json.loads(path.read_text())
    console.print("  " + ", ".join(f"{k} {v['p50_ms']:.2f}" for k, v in stages["stages_ms"].items()) + " ms (p50)")
    return stages
