"""``python -m bench --scale small|full``: prepare data, run every scenario, write the run under
var/bench/runs/ and ``bench/results/latest.json``/``.png``. ``python -m bench.publish`` makes a run the
published result of its scale."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import typer

from bench.plan import PLANS
from bench.report import RESULTS, RUNS
from setlist.cli import console as cli_console

app = typer.Typer(add_completion=False, help="Benchmark Rank and Track against the straightforward baseline.")
console = cli_console()


@app.command()
def main(
    scale: str = typer.Option("small", help="small (demo data, SQLite) or full (bench data, Redis)"),
    seed: int = typer.Option(7, help="generator seed; a prepared data dir is reused only for the same seed"),
    fresh: bool = typer.Option(False, help="rebuild the data dir even if one is prepared"),
    out: Path = typer.Option(RESULTS, help="where latest.json and latest.png go"),
    runs: Path = typer.Option(RUNS, help="where each run's timestamped JSON, PNG and summary go"),
    rps: float | None = typer.Option(None, help="open-loop rate (default 200)"),
    warmup_s: float | None = typer.Option(None, help="warm-up before each timed phase"),
    open_s: float | None = typer.Option(None, help="cache-miss open-loop duration"),
    new_s: float | None = typer.Option(None, help="new-user (< 10 events) open-loop duration, at the same rate"),
    new_users: int | None = typer.Option(None, help="new-user scenario: users of each kind (brand-new; 1-9 events)"),
    closed_s: float | None = typer.Option(None, help="each closed-loop saturation run"),
    concurrency: str | None = typer.Option(None, help="closed-loop workers, comma-separated, e.g. 4,16"),
    hit_s: float | None = typer.Option(None, help="cache-hit open-loop duration"),
    baseline_s: float | None = typer.Option(None, help="baseline open-loop duration (bounded)"),
    track_s: float | None = typer.Option(None, help="Track throughput duration"),
    freshness_trials: int | None = typer.Option(None, help="Track→Rank freshness trials"),
    workers: int | None = typer.Option(None, help="server processes (python -m serving --workers)"),
    server_env: list[str] | None = typer.Option(
        None, help="KEY=VALUE for every server, repeatable (what-if runs, e.g. OMP_NUM_THREADS=1)"
    ),
) -> None:
    from bench import report
    from bench.runner import run

    if scale not in PLANS:
        console.print(f"[red]unknown scale {scale!r}[/]: choose small or full")
        raise typer.Exit(2)
    plan = PLANS[scale].with_overrides(
        rps=rps,
        warmup_s=warmup_s,
        open_s=open_s,
        new_s=new_s,
        new_users=new_users,
        closed_s=closed_s,
        hit_s=hit_s,
        baseline_s=baseline_s,
        track_s=track_s,
        freshness_trials=freshness_trials,
        workers=workers,
        concurrency=tuple(int(c) for c in concurrency.split(",")) if concurrency else None,
        server_env=tuple(tuple(kv.split("=", 1)) for kv in server_env) if server_env else None,
    )
    if any(len(kv) != 2 for kv in plan.server_env):
        console.print("[red]--server-env takes KEY=VALUE[/]")
        raise typer.Exit(2)
    command = "python -m bench " + shlex.join(sys.argv[1:])
    if os.environ.get("MAKELEVEL"):
        command = f"make bench BENCH_SCALE={scale}  ({command})"
    try:
        measured = run(scale, seed, plan, fresh, console)
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]bench failed:[/] {exc}")
        raise typer.Exit(1) from None
    result = report.build(measured, scale, seed, command)
    paths = report.write(result, runs, out)
    missing = report.missing_fields(result)
    if missing:  # the contract is fixed; a run that cannot fill it must not pass as a result
        console.print(f"[red]report lacks the contract's fields (docs/design.md):[/] {', '.join(missing)}")
        raise typer.Exit(1)
    console.rule("results")
    for t in result["targets"]:
        mark = "[green]met[/]" if t["met"] else ("[red]not met[/]" if t["met"] is False else "—")
        console.print(f"  {t['target']:<48} {t['goal']:<16} measured {t['measured']}  {mark}")
    nu = result.get("rank_new_users")
    if nu:  # judged above against the Rank p99 target; here split by kind of new user
        groups = "; ".join(
            f"{g} p50 {s['p50_ms']} / p99 {s['p99_ms']} ms (n={s['n']}, popularity {s.get('popularity_fraction')})"
            for g, s in nu["by_group"].items()
        )
        console.print(f"  {'Rank, new users (< 10 events), by kind':<48} {'':<16} {groups}")
    tr = result.get("tracing")
    if tr:  # not a target: what turning tracing on costs Rank (cache misses, open loop)
        off, on, cpu = tr["off"], tr["on"], tr["in_process"]
        console.print(
            f"  {'Rank, tracing off → on (console exporter)':<48} {'':<16} p50 {off['p50_ms']} → {on['p50_ms']} ms, "
            f"p99 {off['p99_ms']} → {on['p99_ms']} ms; in-process CPU per Rank {cpu['off_cpu_ms']} → "
            f"{cpu['on_cpu_ms']} ms"
        )
    console.print(f"wrote {paths['json']}, {paths['png']}, {paths['summary']} and {out}/latest.json, latest.png")
    console.print(f"to publish it as the {scale} result: python -m bench.publish {paths['json']}")


if __name__ == "__main__":
    app()
