"""``python -m experiments report|simulate|onboarding|drill``: analyse, simulate and rehearse experiments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from setlist.cli import App
from setlist.errors import InputMissing, UsageError
from setlist.experiment import load_experiment
from setlist.settings import get_settings

# App: a SetlistError (a bad experiments file, a report or drill that cannot run) ends a command
# with one line and its exit code
app = App(add_completion=False, help="A/B experiments: analysis, simulation and canary drills.")
console = Console(width=max(Console().width, 110))  # the per-arm table needs ~110 columns


@app.command()
def report(
    experiment: str = typer.Argument(..., help="the experiment's name (as in its YAML)"),
    config: Path | None = typer.Option(
        None, help="the experiments file (default SETLIST_EXPERIMENTS_FILE, else ./experiments.yaml)"
    ),
    alpha: float = typer.Option(0.05, help="1 - confidence level of the intervals"),
    source: str = typer.Option(
        "auto",
        help="live (what serving wrote), simulation (what `simulate` wrote "
        "under <data_dir>/simulation) or auto: live if it has impressions "
        "of the experiment, else the simulation",
    ),
    mlflow: bool = typer.Option(True, help="log the report as an MLflow run"),
    caller_slates: str = typer.Option(
        "include",
        help="Rank responses that ordered a caller's own slate (candidate_item_ids): include them, exclude "
        "them (the server's own rankings alone) or only them",
    ),
    since: str | None = typer.Option(
        None, help="only impressions from this UTC date or time on (ISO 8601: 2026-12-01 or 2026-12-01T12:00)"
    ),
) -> None:
    """Per-arm play, skip and completion rates, lift against control with CIs, SRM check, verdict."""
    from experiments.report import configured, run, source_settings

    if source not in ("auto", "live", "simulation"):
        raise UsageError(f"--source must be auto, live or simulation, got {source!r}")
    if caller_slates not in ("include", "exclude", "only"):
        raise UsageError(f"--caller-slates must be include, exclude or only, got {caller_slates!r}")
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            raise UsageError(
                f"--since must be an ISO 8601 date or time (2026-12-01, 2026-12-01T12:00), got {since!r}"
            ) from None
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    settings = get_settings()
    exp = configured(settings, experiment, config)
    chosen, label = source_settings(settings, exp.name, source)
    console.print(f"[dim]reading {label}: events {chosen.events_dir}, impressions {chosen.impressions_dir}[/]")
    run(chosen, exp, console, log_mlflow=mlflow, alpha=alpha, since=start, caller_slates=caller_slates)


@app.command()
def simulate(
    users: int = typer.Option(300, help="simulated users (distinct users of the generated world)"),
    sessions: int = typer.Option(3, help="Rank → react → Track rounds per user"),
    k: int = typer.Option(10, help="slate size"),
    quick: bool = typer.Option(False, help="two rounds per user: a short run for the demo"),
    config: Path | None = typer.Option(
        None, help="experiments file (default SETLIST_EXPERIMENTS_FILE, else ./experiments.yaml)"
    ),
    target: str | None = typer.Option(
        None, help="host:port of a running server configured with the same experiment; default: serve in process"
    ),
    seed: int = typer.Option(11),
    threads: int = typer.Option(1, help="concurrent simulated users (use more against Redis)"),
    mlflow: bool = typer.Option(True, help="log the report as an MLflow run"),
) -> None:
    """Simulated users (the generator's hidden tastes) use the service; then the report."""
    from experiments.drill import SIM_WORKER
    from experiments.report import DEFAULT_CONFIG, run
    from experiments.simulate import (
        ClientRanking,
        SimConfig,
        Simulator,
        experiment_settings,
        load_latent,
        population,
        users_frame,
    )
    from serving.bootstrap import build

    settings = get_settings()
    path = config or settings.experiments_file or DEFAULT_CONFIG
    exp = load_experiment(path)
    if exp is None:
        raise InputMissing(f"no experiments file at {path}: pass --config")
    try:
        latent = load_latent(settings)
    except FileNotFoundError as exc:
        raise InputMissing(str(exc)) from None
    cfg = SimConfig(users=users, sessions=2 if quick else sessions, k=k, seed=seed, threads=threads)
    # in process, everything the simulation writes (events, journal, impressions) stays under
    # simulation_dir; a --target server writes wherever it was configured to
    served = (
        experiment_settings(settings, Path(path))
        if not target
        else settings.model_copy(update={"experiments_file": Path(path)})
    )
    started = datetime.now(UTC)
    ranking = ClientRanking(target) if target else build(served, worker=SIM_WORKER)
    try:
        with console.status(f"simulating {cfg.users} users × {cfg.sessions} slates of {k} in experiment {exp.name}…"):
            stats = Simulator(ranking, latent, cfg).run(population(latent, cfg.users, seed, users_frame(settings)))
    finally:
        ranking.close()  # flushes impressions and moves journaled Track events into the event log
    console.print(
        f"{stats.ranks:,} Rank calls and {stats.events:,} Track events in {stats.seconds:.1f} s; "
        f"responses by arm: {dict(sorted(stats.arms.items()))}"
    )
    if not target:
        console.print(
            f"[dim]simulated events and impressions are kept apart under {settings.simulation_dir} "
            "(never in the event log that gates and training read)[/]"
        )
    if target:
        # the server writes impressions and rolls Track journals in the background: let both land
        import time

        with console.status("waiting for the server to write impressions and events…"):
            time.sleep(max(settings.impressions_flush_s, settings.journal_roll_s) + 1.0)
    run(served, exp, console, log_mlflow=mlflow, since=started)


@app.command()
def onboarding(
    users: int = typer.Option(300, help="brand-new simulated listeners (drawn from the world's prior)"),
    days: int = typer.Option(14, help="simulated days (arrivals over the first days - 7)"),
    slates: int = typer.Option(3, help="Rank → react → Track rounds per visit"),
    k: int = typer.Option(10, help="slate size"),
    seed: int = typer.Option(11),
    quick: bool = typer.Option(False, help="8 days and two slates per visit: a short run for the demo"),
    config: Path | None = typer.Option(
        None,
        help="experiments file: control (popularity) and a personalized arm (default: experiments/onboarding.yaml)",
    ),
    alpha: float = typer.Option(0.05, help="1 - confidence level of the intervals"),
    mlflow: bool = typer.Option(True, help="log the report as an MLflow run"),
) -> None:
    """New listeners with no history arrive and return over simulated days (in process); then
    time-to-first-value, return rate, value rate by week and engaged users per arm."""
    from experiments.newcomers import OnboardingConfig
    from experiments.onboarding_report import DEFAULT_CONFIG, run

    if users < 1 or days < 1 or slates < 1 or k < 1:
        raise UsageError("--users, --days, --slates and --k must be 1 or more")
    cfg = OnboardingConfig(users=users, days=8 if quick else days, slates=2 if quick else slates, k=k, seed=seed)
    run(get_settings(), config or DEFAULT_CONFIG, cfg, console, log_mlflow=mlflow, alpha=alpha)


@app.command()
def drill(
    users: int = typer.Option(200),
    mode: str = typer.Option("shuffled", help="shuffled | inverted"),
    seed: int = typer.Option(11),
) -> None:
    """Promote a broken ranker under the canary and show the automatic rollback."""
    from experiments.drill import run_drill
    from experiments.simulate import users_frame

    if mode not in ("shuffled", "inverted"):
        raise UsageError(f"--mode must be shuffled or inverted, got {mode!r}")
    settings = get_settings()
    result = run_drill(settings, users=users, mode=mode, seed=seed, users_info=users_frame(settings))
    for line in result.decisions:
        console.print(f"  canary {line}")
    ok = result.phase == "rolled_back" and result.champion_after == result.stable
    colour = "green" if ok else "red"
    console.print(
        f"[{colour}]broken ranker {result.candidate} → {result.phase}[/]; champion is "
        f"{result.champion_after} (stable {result.stable}). {result.reason}"
    )
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    app()
