"""What the processes measured: CPU per Rank and per Track event, the batch jobs' CPU, Redis memory,
the online store's file. Each number says where it came from; one that could not be measured is
None with the reason, never a guess.

- serving: the running servers' /metrics (``setlist_rpc_cpu_seconds_total`` over
  ``setlist_rpc_cpu_calls_total``, by RPC; events per Track call from
  ``setlist_track_events_acknowledged_total``), scraped as ``ops status`` does; with no server, the
  last ``make bench`` report's CPU per cache-miss Rank (the bench measures no Track CPU);
- batch jobs: ``setlist_job_cpu_seconds`` in each job's status file (its last run), times the runs a
  day ``ops/schedule.yaml`` gives it;
- Redis: ``INFO memory`` ``used_memory``, when the profile uses Redis and it answers;
- the SQLite online store (local profile): the size of its files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ops import jobtable
from ops.cost.model import GB, Rates
from ops.status import Samples, scrape_servers, total
from setlist import jobmetrics
from setlist.settings import Settings

_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
#: the last ``make bench`` report (bench.report writes it; ops does not import bench)
BENCH_REPORT = _RESULTS / "latest.json"
#: without one, the published result of the small scale (``make bench-publish``), which a clone has
PUBLISHED_BENCH_REPORT = _RESULTS / "latest-small.json"


def default_bench_report() -> Path:
    """The last bench run on this machine, else the published small-scale result."""
    return BENCH_REPORT if BENCH_REPORT.exists() else PUBLISHED_BENCH_REPORT


@dataclass
class Measured:
    rates: Rates
    sources: dict[str, str]  # rate → where it came from, or why it was not measured
    jobs: dict[str, dict[str, float | None]] = field(default_factory=dict)
    online_store_bytes: int = 0
    server: dict[str, float] = field(default_factory=dict)  # the counters read, for the report
    # what the tiers' sampling did to the last bench run's player mix (bench ``track.sampling``), or None
    bench_sampling: dict[str, Any] | None = None


def collect(settings: Settings, bench_report: Path | None = None, probe: bool = True) -> Measured:
    bench_report = bench_report or default_bench_report()
    samples = scrape_servers(settings) if probe else None
    bench = _bench(bench_report)
    rank, track, per_call, server, sources = serving(samples, bench, bench_report, probed=probe)
    jobs_per_day, jobs, sources["jobs_cpu"] = batch_jobs(settings, datetime.now().astimezone())
    redis_bytes, sources["redis"] = redis_memory(settings)
    online, sources["online_store"] = online_store(settings)
    sampled, sources["bench_sampling"] = bench_sampling(bench, bench_report)
    rates = Rates(rank, track, per_call, jobs_per_day, redis_bytes)
    return Measured(rates, sources, jobs, online, server, sampled)


def bench_sampling(bench: dict[str, Any] | None, path: Path) -> tuple[dict[str, Any] | None, str]:
    """The last bench run's player-mix phase (``track.sampling``: events sent by type, acknowledged,
    sampled out), with when and at which scale it ran; None when that report has none."""
    found = _get(bench, "track", "sampling")
    if not isinstance(found, dict) or not found.get("accepted"):
        return None, f"no bench report with a Track sampling phase at {path} (run make bench)"
    when, scale = _get(bench, "finished_at"), _get(bench, "scale")
    return {**found, "finished_at": when, "scale": scale}, f"the bench run of {when} (scale {scale}), {path}"


# --- serving ----------------------------------------------------------------------------------------------
def serving(
    samples: Samples | None, bench: dict[str, Any] | None, bench_path: Path, probed: bool = True
) -> tuple[float | None, float | None, float | None, dict[str, float], dict[str, str]]:
    """(CPU s per Rank, CPU s per Track event, events per Track call, counters read, sources); ``samples``
    is None when no server answered, or when none was asked (``probed=False``: ``--no-probe``)."""
    sources: dict[str, str] = {}
    rank = track = per_call = None
    server: dict[str, float] = {}
    if samples is None:
        why = "no server running" if probed else "servers not asked (--no-probe)"
        sources["track_cpu"] = f"{why}: CPU per Track event not measured (the bench measures none)"
        sources["rank_cpu"] = why
    else:
        for rpc in ("Rank", "Track"):
            server[f"{rpc.lower()}_cpu_s"] = total(samples, f'setlist_rpc_cpu_seconds_total{{rpc="{rpc}"}}')
            server[f"{rpc.lower()}_calls"] = total(samples, f'setlist_rpc_cpu_calls_total{{rpc="{rpc}"}}')
        server["track_events"] = total(samples, "setlist_track_events_acknowledged_total")
        server["process_cpu_s"] = total(samples, "process_cpu_seconds_total")
        if server["rank_calls"] > 0:
            rank = server["rank_cpu_s"] / server["rank_calls"]
            sources["rank_cpu"] = f"server /metrics: handler-thread CPU over {server['rank_calls']:,.0f} Rank calls"
        else:
            sources["rank_cpu"] = "the server has counted no Rank call yet"
        if server["track_calls"] > 0 and server["track_events"] > 0:
            track = server["track_cpu_s"] / server["track_events"]
            per_call = server["track_events"] / server["track_calls"]
            sources["track_cpu"] = (
                f"server /metrics: handler-thread CPU over {server['track_events']:,.0f} Track events "
                f"in {server['track_calls']:,.0f} calls"
            )
        else:
            sources["track_cpu"] = "the server has acknowledged no Track event yet: CPU per Track event not measured"
    if rank is None:
        ms = _get(bench, "rank", "server_cpu", "cpu_ms_per_request")
        if isinstance(ms, int | float) and ms > 0:
            rank = float(ms) / 1000
            sources["rank_cpu"] = (
                f"{sources['rank_cpu']}; from the last bench run ({_get(bench, 'finished_at')}, scale "
                f"{_get(bench, 'scale')}): whole server process per cache-miss Rank, {bench_path}"
            )
        else:
            sources["rank_cpu"] += f": CPU per Rank call not measured (no bench report with it at {bench_path})"
    return rank, track, per_call, server, sources


def _bench(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


# --- batch jobs -------------------------------------------------------------------------------------------
def runs_per_day(schedule: jobtable.Schedule, job: jobtable.Job, start: datetime, days: int = 7) -> float:
    """How often the job runs a day, over the ``days`` after ``start`` (its runs in (start, start + days])."""
    end, runs = start + timedelta(days=days), 0
    for at in jobtable.next_runs(schedule, job, start):
        if at > end:
            break
        runs += 1
    return runs / days


def batch_jobs(settings: Settings, now: datetime) -> tuple[float | None, dict[str, dict[str, float | None]], str]:
    """(scheduled jobs' CPU seconds a day, per job {cpu_s, runs_per_day}, source). A job without a
    status file, or with one older than the CPU measure, is listed with cpu_s None and adds nothing."""
    schedule = jobtable.load()
    status = jobmetrics.read_status(settings.status_dir)
    jobs: dict[str, dict[str, float | None]] = {}
    per_day, unmeasured = 0.0, []
    for name, job in schedule.jobs.items():
        cpu = status.get(name, {}).get(("setlist_job_cpu_seconds", (("job", name),)))
        runs = runs_per_day(schedule, job, now)
        jobs[name] = {"cpu_s": cpu, "runs_per_day": runs}
        if cpu is None:
            unmeasured.append(name)
        else:
            per_day += cpu * runs
    for name, samples in status.items():  # one-off jobs (generate, import): listed, not a daily cost
        if name not in jobs and ("setlist_job_cpu_seconds", (("job", name),)) in samples:
            jobs[name] = {"cpu_s": samples[("setlist_job_cpu_seconds", (("job", name),))], "runs_per_day": 0.0}
    if len(unmeasured) == len(schedule.jobs):
        return None, jobs, f"not measured: no scheduled job has a run with its CPU time under {settings.status_dir}"
    source = "each scheduled job's last run (setlist_job_cpu_seconds) × its runs a day in ops/schedule.yaml"
    if unmeasured:
        source += f"; not measured (no run with a CPU time yet): {', '.join(unmeasured)}"
    return per_day, jobs, source


# --- stores -----------------------------------------------------------------------------------------------
def redis_memory(settings: Settings) -> tuple[float | None, str]:
    if not settings.on_servers and settings.cache_store != "redis":
        return None, "not measured: this profile keeps nothing in Redis"
    from setlist.redis_client import fail_fast_redis

    try:
        info = fail_fast_redis(settings.redis_url, 1.0, 0).info("memory")
        used = float(info["used_memory"])
    except Exception as exc:  # a down or unreachable Redis is a line in the report, not a failure
        return None, f"not measured: Redis did not answer INFO memory ({type(exc).__name__})"
    return used, f"Redis INFO memory used_memory, now: {used / GB:.3f} GB (online store, cache, Track dedupe)"


def online_store(settings: Settings) -> tuple[int, str]:
    """The SQLite online store's bytes (with its WAL); production keeps it in Redis (priced as memory)."""
    if settings.on_servers:
        return 0, "in Redis: priced as Redis memory"
    path = settings.data_dir / "online.db"  # feature_repo.store.repo_config's SQLite path
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.is_file())
    if not size:
        return 0, f"no SQLite online store at {path} yet"
    return size, f"SQLite files at {path}, now (every day is charged today's size)"
