"""``python -m bench.feast_aggregation [--sizes fixture,1m,3m]``: can Feast's BatchFeatureView
aggregations replace our windowed-aggregate engine? Runs every step of every size in a child
process (one at a time: the machine is shared), stops a child above ``--limit-gb`` or
``--timeout-s``, and writes bench/results/feast_aggregation.json (sizes not re-run are kept)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import typer
from rich.console import Console
from rich.table import Table

from bench.feast_aggregation import data

RESULTS = data.ROOT / "bench" / "results" / "feast_aggregation.json"
#: in order; correctness reads what the others wrote, capabilities runs on the fixture only
TIMED = ("ours_build", "ours_hist", "ours_materialize", "feast_hist", "feast_materialize", "feast_public_hist")
STEP_DOC = {
    "ours_build": "prepare + build_user_profile + build_item_stats (all snapshots)",
    "ours_hist": "FeatureStore.get_historical_features over our snapshots, N label rows",
    "ours_materialize": "FeatureStore.materialize of our snapshots into SQLite",
    "feast_hist": "LocalComputeEngine.get_historical_features, aggregations without time_window (ttl 30d)",
    "feast_materialize": "LocalComputeEngine.materialize, aggregation workaround over [end-30d, end]",
    "feast_public_hist": "FeatureStore.get_historical_features on the raw log (no aggregation), N label rows",
}

app = typer.Typer(add_completion=False)
console = Console(width=140)


def run_step(step: str, size: str, rows: int, limit_gb: float, timeout_s: float) -> dict[str, Any]:
    """One step in a child; kill it (by its own pid) above the memory or time limit."""
    work = data.VAR / size
    (work / "logs").mkdir(parents=True, exist_ok=True)
    result = work / "logs" / f"{step}.json"
    result.unlink(missing_ok=True)
    with open(work / "logs" / f"{step}.log", "w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.feast_aggregation.steps", step, size, str(rows), str(result)],
            cwd=data.ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc, start, seen_mb, stopped = psutil.Process(child.pid), time.monotonic(), 0.0, None
        while child.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
            except psutil.NoSuchProcess:
                rss = 0.0
            seen_mb = max(seen_mb, rss)
            if rss > limit_gb * 1024:
                stopped = f"stopped: RSS {rss / 1024:.1f} GB > {limit_gb} GB"
            elif time.monotonic() - start > timeout_s:
                stopped = f"stopped: still running after {timeout_s:.0f} s"
            if stopped:
                child.kill()
                child.wait()
                break
            time.sleep(0.2)
    wall = time.monotonic() - start
    if stopped:
        return {"status": stopped, "wall_s": wall, "peak_rss_mb": seen_mb}
    if child.returncode != 0 or not result.exists():
        tail = (work / "logs" / f"{step}.log").read_text().strip().splitlines()[-1:] or [""]
        return {"status": f"failed (exit {child.returncode}): {tail[0][:300]}", "wall_s": wall, "peak_rss_mb": seen_mb}
    return {"status": "ok", "wall_s": wall, **json.loads(result.read_text())}


def _fmt(r: dict[str, Any] | None) -> tuple[str, str]:
    if not r:
        return "-", "-"
    if r["status"] != "ok":
        return r["status"][:40], f"{r['peak_rss_mb']:,.0f}"
    return f"{r['seconds']:,.1f}", f"{r['peak_rss_mb']:,.0f}"


@app.command()
def main(
    sizes: str = typer.Option("fixture,1m,3m", help="comma-separated: " + ",".join(data.SIZES)),
    rows: int = typer.Option(10_000, help="label rows for historical retrieval"),
    limit_gb: float = typer.Option(8.0, help="stop a step above this RSS"),
    timeout_s: float = typer.Option(900.0, help="stop a step after this long"),
    out: Path = typer.Option(RESULTS, help="results JSON"),
) -> None:
    report: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    report.update(
        feast_version=version("feast"),
        cpus=psutil.cpu_count(),
        mem_gb=round(psutil.virtual_memory().total / 2**30, 1),
        label_rows=rows,
        limits={"rss_gb": limit_gb, "seconds": timeout_s},
        steps=STEP_DOC,
    )
    report.setdefault("sizes", {})
    for size in sizes.split(","):
        console.rule(f"[bold]{size}")
        # the machine is shared: the load says how much other work the timings competed with
        entry: dict[str, Any] = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_avg_before": [round(x, 2) for x in os.getloadavg()],
        }
        entry["data"] = run_step("prepare", size, rows, limit_gb, timeout_s)
        console.print(
            f"data: {entry['data'].get('events', '?'):,} events, {entry['data'].get('users', '?'):,} users, "
            f"{entry['data'].get('items', '?'):,} items"
        )
        entry["timings"] = {}
        for step in TIMED:
            console.print(f"  {step} … ", end="")
            r = entry["timings"][step] = run_step(step, size, rows, limit_gb, timeout_s)
            secs, rss = _fmt(r)
            console.print(f"{secs} s, peak {rss} MB" if r["status"] == "ok" else f"[red]{r['status']}[/]")
        console.print("  correctness …")
        entry["correctness"] = run_step("correctness", size, rows, limit_gb, timeout_s)
        if size == "fixture":
            console.print("  capabilities …")
            report["capabilities"] = run_step("capabilities", size, rows, limit_gb, timeout_s)
        report["sizes"][size] = entry
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))  # after every size: a stopped run keeps the rest

    table = Table(title=f"time (s) / peak RSS (MB), {rows:,} label rows")
    table.add_column("step")
    for size in report["sizes"]:
        table.add_column(f"{size} s", justify="right")
        table.add_column(f"{size} MB", justify="right")
    for step in TIMED:
        table.add_row(step, *[c for s in report["sizes"].values() for c in _fmt(s["timings"].get(step))])
    console.print(table)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    app()
