"""``report <experiment>``: load, join, analyse, show, plot and log one experiment."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd
from rich.console import Console

from experiments import analysis, data, render
from experiments.logbook import log_report
from experiments.simulate import simulation_settings
from setlist.errors import SetlistError
from setlist.experiment import Experiment, load_experiment
from setlist.settings import Settings

Source = Literal["auto", "live", "simulation"]
#: which Rank responses the report reads: all of them, only those the server chose the items of, or only
#: those that ordered a caller's own slate (RankRequest.candidate_item_ids; impressions' ``caller_slate``)
Slates = Literal["include", "exclude", "only"]


DEFAULT_CONFIG = Path("experiments.yaml")  # the repository's, when run from its root


class ReportError(SetlistError, RuntimeError):
    """Nothing to analyse, or no configuration to analyse it with; the message says which."""


def configured(settings: Settings, name: str, path: Path | None = None) -> Experiment:
    """The configuration that defined ``name`` (its shares drive the SRM check)."""
    source = path or settings.experiments_file or DEFAULT_CONFIG
    exp = load_experiment(source)
    if exp is None:
        raise ReportError(
            f"no experiments file at {source}: pass --config or set SETLIST_EXPERIMENTS_FILE "
            "to the file that defined the experiment (its shares are needed for the SRM check)"
        )
    if exp.name != name:
        raise ReportError(f"{source} defines experiment {exp.name!r}, not {name!r}")
    return exp


def source_settings(settings: Settings, experiment: str, source: Source = "auto") -> tuple[Settings, str]:
    """The settings whose event log and impressions hold the experiment's traffic, and which those are:
    ``live`` (what serving wrote), ``simulation`` (``experiments simulate``, kept under
    ``settings.simulation_dir``) or ``auto``: live when it holds impressions of the experiment, else
    the simulation's."""
    sim = simulation_settings(settings)
    if source == "live" or (source == "auto" and data.has_impressions(settings.impressions_dir, experiment)):
        return settings, "live traffic"
    if source == "simulation" or data.has_impressions(sim.impressions_dir, experiment):
        return sim, f"simulated traffic under {settings.simulation_dir}"
    return settings, "live traffic"


def run(
    settings: Settings,
    exp: Experiment,
    console: Console | None = None,
    log_mlflow: bool = True,
    alpha: float = 0.05,
    since: datetime | None = None,
    caller_slates: Slates = "include",
) -> tuple[analysis.Report, Path]:
    loaded = data.load(settings, exp.name, exp.window_s, since)
    if loaded.impressions.empty and loaded.daily.empty:
        raise ReportError(f"no impressions of experiment {exp.name!r} under {settings.impressions_dir}")
    impressions, daily = _slates(loaded, caller_slates, exp.name)
    joined = data.outcomes(impressions, loaded.events, exp.window_s)
    # the sample-ratio check is of the assignment, so of every user: which of them sent slates is the
    # callers' doing, and an arm that keeps its users coming back would take more of them
    report = analysis.build(exp, joined, alpha, daily, assigned=loaded.impressions)
    report.notes += analysis.slates_note(loaded.impressions, caller_slates)
    render.show(report, console)
    out = settings.reports_dir / "experiments"
    png = render.plot(report, out / f"{exp.name}.png")
    summary = render.write_json(report, out / f"{exp.name}.json")
    if log_mlflow:
        run_id = log_report(settings, report, [png, summary])
        (console or Console()).print(f"[dim]plot {png}; MLflow run {run_id}[/]")
    return report, png


def _slates(loaded: data.Loaded, caller_slates: Slates, experiment: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw impressions and the daily counts the report reads; refused when a choice cannot be made of
    every one of them."""
    imp, daily = loaded.impressions, loaded.daily
    if caller_slates == "include":
        return imp, daily
    # days an earlier release counted without the flag cannot be split (raw rows from before the column can:
    # Rank took no slate then, while that release's counted days may hold slates)
    if "caller_slate" not in daily:  # a frame made without the column: its days do not know
        daily = daily.assign(caller_slate=None)
    unknown = daily["caller_slate"].isna()
    if unknown.any():
        first, last = min(daily.loc[unknown, "date"]), max(daily.loc[unknown, "date"])
        raise ReportError(
            f"--caller-slates {caller_slates}: the days down-sampled before their counts told caller slates apart "
            f"({first} to {last}) cannot be split; report from the day after them on (--since), or with "
            "--caller-slates include"
        )
    caller = imp["caller_slate"].eq(True).to_numpy()  # null (written before the column existed): the server's
    counted = daily["caller_slate"].eq(True).to_numpy()
    if caller_slates == "exclude":
        caller, counted = ~caller, ~counted
    kept, kept_daily = imp[caller].reset_index(drop=True), daily[counted].reset_index(drop=True)
    if kept.empty and kept_daily.empty:
        which = "ordered a caller's slate" if caller_slates == "only" else "ordered the server's own candidates"
        raise ReportError(f"no impression of experiment {experiment!r} {which}")
    return kept, kept_daily
