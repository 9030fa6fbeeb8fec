"""``python -m bench.chaos [--scenario NAME ...] [--json PATH]`` (``make chaos``): run the fault drills
against real servers and print one table: requests, acknowledged, stored, lost, duplicated, failed
requests and recovery time per scenario. The rows also go to ``--json``. Exits 1 if any acknowledged
event was lost, any event stored twice, or a drill broke; a drill that cannot run on this machine
(no root for the tmpfs, no Redis or PostgreSQL binaries) is shown as skipped, with the reason.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import typer

from bench.chaos import report
from bench.chaos.lab import ROOT, Worlds
from bench.chaos.scenarios import SCENARIOS, run
from setlist.cli import App
from setlist.cli import console as cli_console
from setlist.errors import UsageError

WORK = ROOT / "var" / "chaos" / "work"
REPORT = ROOT / "var" / "chaos" / "report.json"

app = App(add_completion=False, help="Fault drills against real servers under a retrying Track load.")
# Logs and CI are no terminal (rich would assume 80 columns): wide enough for the table on one line per row.
console = cli_console()
SCENARIO_HELP = f"run only this scenario (repeatable); one of: {'; '.join(SCENARIOS)}"


@app.command()
def main(
    scenario: list[str] | None = typer.Option(None, "--scenario", help=SCENARIO_HELP),
    json_path: Path = typer.Option(REPORT, "--json", help="where the rows go as JSON"),
    workdir: Path = typer.Option(WORK, help="worlds, copies, server logs and mounts; emptied first"),
) -> None:
    chosen = scenario or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        raise UsageError(f"unknown scenario {', '.join(map(repr, unknown))}; choose from: {'; '.join(SCENARIOS)}")
    if workdir.exists():
        shutil.rmtree(workdir)  # a mount left by a killed run makes this fail loudly, which is right
    workdir.mkdir(parents=True)
    started = time.monotonic()
    worlds = Worlds(workdir, console)
    rows: list[report.Row] = []
    try:
        for n, name in enumerate(chosen, 1):
            s = SCENARIOS[name]
            console.rule(f"[{n}/{len(chosen)}] {name}")
            began = time.monotonic()
            row = run(s, functools.partial(worlds.lab, s.profile, s.name, s.slug))
            if row.status != "ok":
                console.print(f"  [yellow]{row.status}[/]: {row.note}", highlight=False)
            console.print(f"  [dim]{time.monotonic() - began:,.0f} s[/]")
            rows.append(row)
    finally:
        worlds.close()
    command = " ".join(["python -m bench.chaos", shlex.join(sys.argv[1:])]).rstrip()
    if os.environ.get("MAKELEVEL"):
        command = f"make chaos  ({command})"
    report.write_json(rows, json_path, command)
    console.print()
    console.print(report.table(rows))
    for line in report.notes(rows):
        console.print(f"  [dim]{line}[/]", highlight=False)
    console.print(f"wrote {json_path} after {time.monotonic() - started:,.0f} s; logs under {workdir}")
    if any(r.faulty for r in rows):
        console.print("[red]chaos found lost or duplicated events, or a drill broke[/]")
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
