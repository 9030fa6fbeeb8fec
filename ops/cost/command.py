"""``python -m ops cost`` (``make cost``): the table, ``<reports>/cost/cost.json`` and ``cost.png``, and an
MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ops.cost import measured, prices, report, usage
from setlist.cli import console as cli_console
from setlist.errors import InputMissing
from setlist.kpis import ValueRule
from setlist.settings import get_settings


def command(
    days: int = typer.Option(14, "--days", min=0, help="days the table shows, newest last (0: all); JSON has all"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object instead of the tables"),
    mlflow: bool = typer.Option(True, help="log the report as an MLflow run; --no-mlflow skips it"),
    probe: bool = typer.Option(True, help="read CPU per call from the running servers' /metrics; --no-probe skips"),
    bench_report: Path | None = typer.Option(
        None,
        "--bench-report",
        help="the bench report whose CPU per Rank is used when no server answers, and whose player mix shows "
        "what sampling saves",
        show_default="bench/results/latest.json, else the published bench/results/latest-small.json",
    ),
    out: Path | None = typer.Option(None, "--out", help="where cost.json and cost.png go (default <reports>/cost)"),
) -> None:
    """Cost per day and per experiment arm: per 1,000 Rank calls, per engaged user, per value event, from
    measured CPU, bytes and memory times the prices in the cost file (SETLIST_COST_FILE)."""
    settings = get_settings()
    price = prices.load(settings.cost_file)
    rule = ValueRule.from_settings(settings)
    used = usage.collect(settings, rule)
    if not used.days:
        raise InputMissing(
            f"nothing to cost: no events under {settings.events_dir} and no impressions under "
            f"{settings.impressions_dir} (run make demo or make import)"
        )
    doc = report.build(used, measured.collect(settings, bench_report, probe), price, settings.cost_file)
    folder = out or settings.reports_dir / "cost"
    png = report.plot(doc, folder / "cost.png")
    path = report.write_json(doc, folder / "cost.json")
    if mlflow:
        doc["mlflow_run_id"] = report.log_run(settings, doc, [path, png])
        report.write_json(doc, path)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    console = cli_console()
    report.render(doc, console, days)
    console.print(f"report: {path}, trend: {png}" + (f", MLflow run {doc['mlflow_run_id']}" if mlflow else ""))
