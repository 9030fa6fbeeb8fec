"""The run's results as the report docs/design.md fixes (``bench/results/latest.json``), plus the details.

``build`` turns the runner's measurements into one JSON-ready dict; ``write`` stores it under a UTC
timestamp under ``var/bench/runs/`` (with the plot and the markdown summary beside it) and as
``bench/results/latest.json``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.latency import cdf_points
from bench.machine import git_revision
from bench.plot import plot_cdfs
from bench.prepare import ROOT
from bench.scenarios import CHANNELS
from bench.summary import render

RESULTS = Path(__file__).resolve().parent / "results"
# Timestamped runs stay out of the working tree; git keeps the history of the published ones.
RUNS = Path(__file__).resolve().parent.parent / "var" / "bench" / "runs"

#: docs/design.md's Rank p99 at the open-loop rate; new users (< 10 events) are held to it too
RANK_P99_MS = 10.0
#: the plot's and the JSON's CDF of the new-user scenario
NEW_USERS_SERIES = "fast, cache miss, new users (< 10 events)"
#: docs/design.md's performance targets: (name, where in the report, comparison, threshold, unit)
TARGETS = (
    ("Rank p99 at the open-loop rate", ("rank", "p99_ms"), "<=", RANK_P99_MS, "ms"),
    ("Rank p99 for new users (< 10 events), same rate", ("rank_new_users", "p99_ms"), "<=", RANK_P99_MS, "ms"),
    ("Rank errors at the open-loop rate", ("rank", "errors"), "<=", 0, ""),
    ("Rank throughput at saturation", ("saturation", "best_rps"), ">=", 600.0, "req/s"),
    ("Server CPU per cache-miss Rank", ("rank", "server_cpu", "cpu_ms_per_request"), "<=", 2.0, "ms"),
    ("Cache-hit p99, unloaded", ("cache_hit", "unloaded", "p99_ms"), "<=", 1.0, "ms"),
    ("Cache-hit p99 at the open-loop rate", ("cache_hit", "p99_ms"), "<=", 3.0, "ms"),
    ("Track throughput, durable acks", ("track", "events_per_s"), ">=", 5000.0, "events/s"),
    ("Freshness p99 (Track ack → Rank reflects it)", ("track", "freshness_p99_ms"), "<=", 100.0, "ms"),
    ("p99 advantage over the baseline", ("ratio_p99",), ">=", 20.0, "×"),
)
REQUIRED = {
    "scale": None,
    "candidates": None,
    "features": None,
    "trees": None,
    "rps_target": None,
    "rank": ("p50_ms", "p99_ms", "rps", "errors"),
    "cache_hit": ("p50_ms", "p99_ms"),
    "baseline": ("p50_ms", "p99_ms", "rps", "errors"),
    "ratio_p99": None,
    "track": ("events_per_s", "freshness_p99_ms"),
}


def _get(report: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = report
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def missing_fields(report: dict[str, Any]) -> list[str]:
    """docs/design.md fields absent from ``report`` (an empty list when the contract holds)."""
    missing = []
    for key, sub in REQUIRED.items():
        if key not in report:
            missing.append(key)
        elif sub:
            missing += [f"{key}.{s}" for s in sub if not isinstance(report[key], dict) or s not in report[key]]
    return missing


def judge(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, path, op, threshold, unit in TARGETS:
        value = _get(report, path)
        met = None if value is None else (value <= threshold if op == "<=" else value >= threshold)
        rows.append(
            {
                "target": name,
                "field": ".".join(path),
                "goal": f"{op} {threshold:g} {unit}".strip(),
                "measured": value,
                "met": met,
            }
        )
    return rows


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 1) if a is not None and b else None


def build(out: dict[str, Any], scale: str, seed: int, command: str) -> dict[str, Any]:
    stages, plan, prepared = out["stages"], out["plan"], out["prepared"]
    rank, base = out["rank_open"].summary, out["baseline_open"].summary
    seq, base_seq = out["sequential"].summary, out["baseline_sequential"].summary
    sat = {str(c): m.summary for c, m in out["saturation"].items()}
    track, fresh = out["track"], out["freshness"]
    hit = out["cache_hit"].summary
    report: dict[str, Any] = {
        "scale": scale,
        "generator_scale": prepared.scale.generator,
        "profile": prepared.scale.profile,
        "seed": seed,
        "candidates": stages["candidate_pool"],
        "candidates_measured_mean": stages["candidates_mean"],
        "features": stages["features"],
        "trees": stages["trees"],
        "rps_target": plan.rps,
        "rank": {**rank, "unloaded": seq, "server_cpu": _server_cpu(out.get("server_cpu"), stages)},
        "rank_new_users": _new_users(out),
        "saturation": {"best_rps": max((s["rps"] or 0) for s in sat.values()), "by_concurrency": sat},
        "cache_hit": {
            **hit,
            "unloaded": out["cache_hit_unloaded"].summary,
            "service_side": stages["service_rank_hit_ms"],
            # runs saved before the floor was measured have none
            "grpc_floor": out["grpc_floor"].summary if "grpc_floor" in out else None,
        },
        "baseline": {**base, "unloaded": base_seq, "agreement_with_fast": stages.get("baseline_agreement")},
        "ratio_p99": _ratio(base["p99_ms"], rank["p99_ms"]),
        "ratio_p99_unloaded": _ratio(base_seq["p99_ms"], seq["p99_ms"]),
        "track": {
            "events_per_s": track["events_per_s"],
            "freshness_p99_ms": fresh["freshness_p99_ms"],
            "freshness_p50_ms": fresh["freshness_p50_ms"],
            "throughput": track,
            "freshness": fresh,
            "sampling": out.get("track_sampling"),
        },
        "impressions": _impressions(out),
        "tracing": _tracing(out),
        "stages": {
            **stages,
            "grpc_and_client_overhead_p50_ms": _diff(seq["p50_ms"], stages["service_rank_miss_ms"]["p50_ms"]),
        },
        "machine": out["machine"],
        "git": git_revision(),
        "command": command,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": out["duration_s"],
        "prepare": {"reused": prepared.reused, "data_dir": _shown_path(prepared.data_dir), "stage_s": prepared.stage_s},
        "server_startup_s": {"fast": out.get("startup_fast_s"), "baseline": out.get("startup_baseline_s")},
        "plan": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(plan).items()},
            "server_env": dict(plan.server_env),
            "channels": CHANNELS,
        },
    }
    report["targets"] = judge(report)
    report["cdf_ms"] = cdfs(out)
    return report


#: the stage split of a cache-miss Rank's CPU: report name → bench.stages' stage
CPU_STAGES = {
    "rows": "user_features",
    "candidates": "candidates",
    "assemble": "assembly",
    "score": "scoring",
    "top_k": "topk",
}


def _server_cpu(server: dict[str, Any] | None, stages: dict[str, Any]) -> dict[str, Any] | None:
    """The servers' CPU per request over the open loop, split by stage: each stage's CPU measured
    in-process (bench.stages); when the servers' own handler CPU was scraped,
    ``handler_beyond_stages`` (the handler's CPU in the servers less those stages: cold caches, the
    pseudonym, routing, building the result) and ``grpc_and_other`` (the servers' CPU outside the
    handler: gRPC, the guard, metrics, other threads); else ``grpc_and_other`` is all of the rest.
    Far steadier than p99 on a shared machine: compare runs on it."""
    if server is None:
        return None
    cpu = stages.get("stages_cpu_ms") or {}
    split: dict[str, float | None] = {name: cpu.get(stage) for name, stage in CPU_STAGES.items()}
    total = server.get("cpu_ms_per_request")
    known = [v for v in split.values() if v is not None]
    handler = server.get("handler_cpu_ms_per_request")
    if handler is not None and total is not None and known:
        # measured inside the servers: what the handler spent beyond the in-process stages (a tight
        # loop keeps its caches warm; a served call follows other work), and gRPC and the rest apart
        split["handler_beyond_stages"] = round(handler - sum(known), 3)
        split["grpc_and_other"] = round(total - handler, 3)
    else:
        split["grpc_and_other"] = round(total - sum(known), 3) if total is not None and known else None
    return {**server, "stages_ms": split}


def _shown_path(path: Path) -> str:
    """A path as the published report shows it: relative to the repository when inside it, so the
    results name no machine's directories."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return path.name


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _new_users(out: dict[str, Any]) -> dict[str, Any] | None:
    """Rank cache misses for new users (fewer than 10 events) at the main open loop's rate: the whole
    run, and per group (``brand_new``: never in the event log; ``few_events``: 1 to 9 events). None
    when the run did not measure it."""
    m = out.get("rank_new_users")
    if m is None:
        return None
    rank = out["rank_open"].summary
    return {
        **m.summary,
        "n": m.summary["count"],
        "p99_minus_rank_p99_ms": _diff(m.summary["p99_ms"], rank["p99_ms"]),
        "selection": out.get("rank_new_users_selection"),
        "by_group": {g: {**g_m.summary, "n": g_m.summary["count"]} for g, g_m in m.groups.items()},
    }


def _impressions(out: dict[str, Any]) -> dict[str, Any]:
    return {"supported": True, "off": out["rank_open"].summary, "on": out["rank_open_impressions"].summary}


def _tracing(out: dict[str, Any]) -> dict[str, Any] | None:
    """Rank cache misses with tracing off (the main run) and on (every trace sampled, the console
    exporter behind a BatchSpanProcessor): over gRPC at the open-loop rate and one at a time, and
    in-process (CPU per call, the export thread's included). None when the run did not measure it."""
    if "rank_open_tracing" not in out:
        return None
    off, on = out["rank_open"].summary, out["rank_open_tracing"].summary
    seq_off, seq_on = out["sequential"].summary, out["sequential_tracing"].summary
    st = out["stages"]
    traced = st.get("tracing_on") or {}
    return {
        "exporter": "console (JSON lines to the server log) behind a BatchSpanProcessor",
        "sample_ratio": 1.0,
        "off": off,
        "on": on,
        "overhead_p50_ms": _diff(on["p50_ms"], off["p50_ms"]),
        "overhead_p99_ms": _diff(on["p99_ms"], off["p99_ms"]),
        # server CPU per request sent over the open loop (refused calls cost less: read with errors)
        "server_cpu": {"off": out.get("server_cpu"), "on": out.get("server_cpu_tracing")},
        "unloaded": {
            "off": seq_off,
            "on": seq_on,
            "overhead_p50_ms": _diff(seq_on["p50_ms"], seq_off["p50_ms"]),
        },
        # CPU per cache-miss service.rank, off and on measured in alternating rounds
        "in_process": {
            "off_cpu_ms": traced.get("off_cpu_ms"),
            "on_cpu_ms": traced.get("service_rank_miss_cpu_ms"),
            "overhead_cpu_ms": _diff(traced.get("service_rank_miss_cpu_ms"), traced.get("off_cpu_ms")),
            "spans_only_cpu_ms": traced.get("spans_only_cpu_ms"),  # every span made, none exported
            "sampled_0_1_cpu_ms": traced.get("sampled_0_1_cpu_ms"),  # SETLIST_TRACE_SAMPLE_RATIO=0.1
            "off_ms": traced.get("off_ms"),
            "on_ms": traced.get("service_rank_miss_ms"),
            "spans_per_rank": traced.get("spans_per_rank"),
        },
        "spans_exported": out.get("tracing_spans_exported"),
    }


def _cdf(m: Any) -> dict[str, Any]:
    return {"n": len(m.latencies_ms), "points": [[round(x, 3), round(y, 5)] for x, y in cdf_points(m.latencies_ms)]}


def cdfs(out: dict[str, Any]) -> dict[str, Any]:
    """Thinned latency CDFs, kept in the JSON so a plot can be redrawn (or runs compared) from it."""
    cdf = {
        "fast, cache miss": _cdf(out["rank_open"]),
        "baseline": _cdf(out["baseline_open"]),
        "fast, unloaded": _cdf(out["sequential"]),
        "baseline, unloaded": _cdf(out["baseline_sequential"]),
        "cache hit": _cdf(out["cache_hit"]),
    }
    if "rank_open_tracing" in out:
        cdf["fast, cache miss, tracing on"] = _cdf(out["rank_open_tracing"])
    if "rank_new_users" in out:
        cdf[NEW_USERS_SERIES] = _cdf(out["rank_new_users"])
    return cdf


def write(report: dict[str, Any], runs_dir: Path, results_dir: Path) -> dict[str, Path]:
    """``<runs_dir>/<stamp>.json/.png/.md`` (kept out of git), copied to ``<results_dir>/latest.json``
    and ``latest.png`` (the fixed contract; also ignored by git). Publishing one run as the
    result of its scale is a separate, deliberate step (``bench.publish``)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = report["finished_at"].replace("-", "").replace(":", "")
    paths = {"json": runs_dir / f"{stamp}.json", "png": runs_dir / f"{stamp}.png", "summary": runs_dir / f"{stamp}.md"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    tmp.replace(paths["json"])
    draw(report, paths["png"])
    paths["summary"].write_text(render(report, paths["json"].name, paths["png"].name))
    shutil.copyfile(paths["json"], results_dir / "latest.json")
    shutil.copyfile(paths["png"], results_dir / "latest.png")
    return paths


LEFT_SERIES = (
    "fast, cache miss",
    NEW_USERS_SERIES,
    "fast, cache miss, tracing on",
    "baseline",
    "fast, unloaded",
    "baseline, unloaded",
)


def draw(report: dict[str, Any], path: Path) -> None:
    c = report["cdf_ms"]
    plot_cdfs(
        path,
        f"Setlist bench ({report['scale']}): {report['candidates']} candidates, "
        f"{report['features']} features, {report['trees']} trees, {report['rps_target']:g} req/s "
        f"open loop; {report['machine']['cores']} cores shared with the load generator",
        # runs from before tracing was measured have no "tracing on" series
        left=[(k, c[k]) for k in LEFT_SERIES if k in c],
        right=[("cache miss", c["fast, cache miss"]), ("cache hit", c["cache hit"])],
    )


if __name__ == "__main__":  # redraw a stored run: python -m bench.report var/bench/runs/<stamp>.json
    import sys

    stored = json.loads(Path(sys.argv[1]).read_text())
    draw(stored, Path(sys.argv[1]).with_suffix(".png"))
