"""``python -m validation <gate> [--path PATH]``: run a gate, print the table, build Data Docs.

Exit codes: 0 when every gate passed (warnings allowed), 1 when anything failed, 2 for usage
errors (a --path that does not exist, a single gate whose input is missing, bad options).
"""
from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from setlist.settings import get_settings
from validation import gates, sources
from validation.gx import Workspace
from validation.result import GateResult
from validation.suites.drift import DriftThresholds

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Data-quality gates (Great Expectations). Exit 0 pass, 1 fail, 2 usage error.")


def _out() -> Console:
    return Console(width=max(140, Console().width))  # wide enough that names are not folded

PATH_HELP = "a parquet file or a hive-partitioned directory in the event contract (default: the event log)"
REF_HELP = "explicit reference data (parquet file or directory) instead of the log's earlier days"


def _usage(message: str) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(2)


def _options(path: Optional[Path] = None, reference: Optional[Path] = None, holdout_days: Optional[int] = None,
             as_of: Optional[str] = None, max_age_hours: float = 48.0, ratio: tuple[float, float] = (0.5, 2.0),
             psi_warn: float = 0.1, psi_fail: float = 0.25, categorical_method: str = "psi",
             min_match: float = 0.99, adapter: str = sources.DEFAULT_PARITY_ADAPTER) -> gates.GateOptions:
    for label, p in (("--path", path), ("--reference", reference)):
        if p is not None and not p.exists():
            _usage(f"{label} {p} does not exist")
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            _usage(f"--as-of {as_of!r} is not an ISO date/time (e.g. 2024-05-01T00:00:00+00:00)")
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    if not 0 < ratio[0] <= 1 <= ratio[1]:
        _usage(f"--ratio {ratio[0]} {ratio[1]} must satisfy 0 < low <= 1 <= high")
    if not 0 < psi_warn <= psi_fail:
        _usage("--psi-warn must be positive and not above --psi-fail")
    if categorical_method not in ("psi", "js"):
        _usage(f"--categorical-method {categorical_method!r}: allowed are psi, js")
    if holdout_days is not None and holdout_days < 1:
        _usage("--holdout-days must be at least 1")
    return gates.GateOptions(
        path=path, reference=reference, holdout_days=holdout_days, as_of=when,
        max_age=timedelta(hours=max_age_hours), ratio=ratio, min_match=min_match, parity_adapter=adapter,
        thresholds=DriftThresholds(psi_warn=psi_warn, psi_fail=psi_fail,
                                   categorical_method="js" if categorical_method == "js" else "psi"))


def _finish(results: list[GateResult], docs: Path) -> None:
    console = _out()
    for r in results:
        r.render(console)
        console.print()
    if any(r.skipped is None for r in results):
        console.print(f"Data Docs: {docs}")
    failed = [r.gate for r in results if r.skipped is None and not r.passed]
    skipped = sum(r.skipped is not None for r in results)
    tail = f" ({skipped} skipped: no input yet)" if skipped else ""
    if failed:
        console.print("[bold red]FAILED:[/] " + ", ".join(failed) + tail)
    else:
        console.print(("[bold green]all gates passed[/]" if skipped < len(results) else "nothing to validate") + tail)
    raise typer.Exit(1 if failed else 0)


def _run(name: str, opts: gates.GateOptions) -> None:
    settings = get_settings()
    ws = Workspace.from_settings(settings)
    try:
        if name == "all":
            results = gates.run_all(settings, opts, ws)
        else:
            results = gates.GATES[name](settings, opts, ws)
    except (sources.InputMissing, sources.BadInput) as exc:
        _usage(f"{name}: {exc}")
    _finish(results, ws.docs_index)


Path_ = typer.Option(None, "--path", help=PATH_HELP)
Ref_ = typer.Option(None, "--reference", help=REF_HELP)
Holdout_ = typer.Option(None, "--holdout-days", help="current window length in days (default: settings.holdout_days)")


@app.command()
def events(path: Optional[Path] = Path_) -> None:
    """Raw events: schema, types, ids, event types, timestamps, play values, unique event ids."""
    _run("events", _options(path))


@app.command()
def features(as_of: Optional[str] = typer.Option(None, help="freshness reference time (default: newest event)"),
             max_age_hours: float = typer.Option(48.0, help="a batch older than this is stale")) -> None:
    """Feature batches under <data_dir>/features: types, nulls, ranges, freshness."""
    _run("features", _options(as_of=as_of, max_age_hours=max_age_hours))


@app.command("training-set")
def training_set() -> None:
    """<data_dir>/training/training_set.parquet: label balance, no id features, no opted-out users."""
    _run("training-set", _options())


@app.command()
def parity(adapter: str = typer.Option(sources.DEFAULT_PARITY_ADAPTER, help="module:function returning ParityInputs"),
           min_match: float = typer.Option(0.99, help="minimum match rate per feature")) -> None:
    """Online vs offline feature values (training–serving skew)."""
    _run("parity", _options(adapter=adapter, min_match=min_match))


@app.command()
def drift(path: Optional[Path] = Path_, reference: Optional[Path] = Ref_, holdout_days: Optional[int] = Holdout_,
          psi_warn: float = typer.Option(0.1), psi_fail: float = typer.Option(0.25),
          categorical_method: str = typer.Option("psi", help="psi or js")) -> None:
    """Distribution drift of every event feature: current window vs reference window."""
    _run("drift", _options(path, reference, holdout_days, psi_warn=psi_warn, psi_fail=psi_fail,
                           categorical_method=categorical_method))


@app.command()
def cardinality(path: Optional[Path] = Path_, reference: Optional[Path] = Ref_,
                holdout_days: Optional[int] = Holdout_,
                ratio: tuple[float, float] = typer.Option((0.5, 2.0), help="allowed low/high × reference")) -> None:
    """Distinct users/items/genres/devices/locales and id uniqueness within learned bounds."""
    _run("cardinality", _options(path, reference, holdout_days, ratio=ratio))


@app.command("all")
def all_(path: Optional[Path] = Path_, reference: Optional[Path] = Ref_,
         holdout_days: Optional[int] = Holdout_) -> None:
    """Every gate; gates whose input does not exist yet are skipped."""
    _run("all", _options(path, reference, holdout_days))


@app.command("learn-reference")
def learn_reference(path: Optional[Path] = Path_, reference: Optional[Path] = Ref_,
                    holdout_days: Optional[int] = Holdout_) -> None:
    """Learn the cardinality reference from the reference window and store it."""
    opts = _options(path, reference, holdout_days)
    settings = get_settings()
    try:
        ref, where = gates.learn_reference(settings, opts, Workspace.from_settings(settings))
    except (sources.InputMissing, sources.BadInput) as exc:
        _usage(f"learn-reference: {exc}")
    _out().print(f"learned {ref.windows} window(s) of {ref.window_days} day(s): "
                  + ", ".join(f"{k}={v:g}" for k, v in ref.distinct.items()) + f"\nsaved to {where}")


def main() -> None:
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
