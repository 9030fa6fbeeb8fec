"""``python -m bench.publish [RUN.json]``: make one run the published result of its scale.

``make bench`` leaves the working tree clean (runs go to var/bench/runs/, the contract's
``bench/results/latest.json`` is ignored by git). Publishing is the deliberate step that replaces
``bench/results/latest-<scale>.json``, ``latest-<scale>.png`` and ``SUMMARY-<scale>.md``: one result per scale, and
git keeps the history.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer
from rich.console import Console

from bench.report import RESULTS
from bench.summary import render

app = typer.Typer(add_completion=False, help="Publish a bench run as its scale's result under bench/results/.")


@app.command()
def main(
    run: Path = typer.Argument(RESULTS / "latest.json", help="a run's JSON (default: the latest run)"),
    results: Path = typer.Option(RESULTS, help="the published results directory"),
) -> None:
    console = Console()
    if not run.is_file():
        console.print(f"[red]no run at {run}[/]: run `make bench` first, or name a JSON under var/bench/runs/")
        raise typer.Exit(2)
    try:
        report = json.loads(run.read_text())
        scale = report["scale"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        console.print(f"[red]{run} is not a bench report:[/] {exc}")
        raise typer.Exit(2) from None
    png = run.with_suffix(".png")
    if not png.is_file():
        console.print(f"[red]no plot beside {run}[/] (expected {png})")
        raise typer.Exit(2)
    published = publish(report, run, png, results)
    console.print(f"published the {scale} result: " + ", ".join(str(p) for p in published))


def publish(report: dict, run: Path, png: Path, results: Path) -> list[Path]:
    scale = report["scale"]
    results.mkdir(parents=True, exist_ok=True)
    targets = [results / f"latest-{scale}.json", results / f"latest-{scale}.png", results / f"SUMMARY-{scale}.md"]
    if run.resolve() != targets[0].resolve():
        shutil.copyfile(run, targets[0])
    if png.resolve() != targets[1].resolve():
        shutil.copyfile(png, targets[1])
    targets[2].write_text(render(report, targets[0].name, targets[1].name))
    return targets


if __name__ == "__main__":
    app()
