"""``report <experiment>``: load, join, analyse, show, plot and log one experiment."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Console

from setlist.experiment import Experiment, load_experiment
from setlist.settings import Settings

from . import analysis, data, render
from .logbook import log_report


DEFAULT_CONFIG = Path("experiments.yaml")   # the repository's, when run from its root


class ReportError(RuntimeError):
    """Nothing to analyse, or no configuration to analyse it with; the message says which."""


def configured(settings: Settings, name: str, path: Path | None = None) -> Experiment:
    """The configuration that defined ``name`` (its shares drive the SRM check)."""
    source = path or settings.experiments_file or DEFAULT_CONFIG
    exp = load_experiment(source)
    if exp is None:
        raise ReportError(f"no experiments file at {source}: pass --config or set SETLIST_EXPERIMENTS_FILE "
                          "to the file that defined the experiment (its shares are needed for the SRM check)")
    if exp.name != name:
        raise ReportError(f"{source} defines experiment {exp.name!r}, not {name!r}")
    return exp


def run(settings: Settings, exp: Experiment, console: Console | None = None, log_mlflow: bool = True,
        alpha: float = 0.05, since: datetime | None = None) -> tuple[analysis.Report, Path]:
    imp, events = data.load(settings, exp.name, exp.window_s, since)
    if imp.empty:
        raise ReportError(f"no impressions of experiment {exp.name!r} under {settings.impressions_dir}")
    report = analysis.build(exp, data.outcomes(imp, events, exp.window_s), alpha)
    render.show(report, console)
    out = settings.reports_dir / "experiments"
    png = render.plot(report, out / f"{exp.name}.png")
    summary = render.write_json(report, out / f"{exp.name}.json")
    if log_mlflow:
        run_id = log_report(settings, report, [png, summary])
        (console or Console()).print(f"[dim]plot {png}; MLflow run {run_id}[/]")
    return report, png
