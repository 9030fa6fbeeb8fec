"""``onboarding``: new listeners in process over simulated days, then their KPIs, table, PNG, JSON and MLflow.

The server is built in process on the simulated clock with the onboarding experiment
(``experiments/onboarding.yaml``: control = cohort popularity, personalized = the champion), and
everything it writes stays under ``settings.simulation_dir`` (``experiment_settings``). Afterwards:

- the A/B report on this run's impressions (play, skip and completion per item shown), as
  ``experiments report`` shows it: ``<reports>/experiments/<experiment>.{png,json}``;
- the onboarding KPIs (``experiments.onboarding``) from the simulation's event log, this run's
  newcomers only, without users who declined analytics: tables, the 30% target line,
  ``onboarding.png`` and ``onboarding.json`` (the cost report reads it);
- one MLflow run holding both, its onboarding metrics prefixed ``onboarding.``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from experiments import analysis, data, render
from experiments.logbook import log_report
from experiments.newcomers import (
    Newcomer,
    Onboarding,
    OnboardingConfig,
    OnboardingStats,
    SimClock,
    Timeline,
    draw_newcomers,
)
from experiments.onboarding import TARGET_CUT, Kpis, Target, analyse, write_summary
from experiments.simulate import experiment_settings, load_latent
from setlist import mlflow_runs, registry
from setlist.consent import analytics_events
from setlist.errors import InputMissing, SetlistError
from setlist.eventlog import EventLog
from setlist.experiment import Experiment, load_experiment
from setlist.kpis import ValueRule
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings

DEFAULT_CONFIG = Path(__file__).with_name("onboarding.yaml")
SUMMARY = "onboarding"  # <reports>/experiments/onboarding.{json,png}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
EVENT_COLUMNS = ["user_id", "item_id", "timestamp", "type", "value", "arm", "consent_analytics"]


@dataclass
class OnboardingRun:
    experiment: Experiment
    timeline: Timeline
    users: list[Newcomer]
    stats: OnboardingStats
    kpis: Kpis
    ab: analysis.Report | None  # None when no impression of this run was written
    files: list[Path]
    run_id: str | None = None


def simulate(
    settings: Settings, exp_path: Path, cfg: OnboardingConfig, console: Console | None = None
) -> tuple[Settings, Timeline, list[Newcomer], OnboardingStats]:
    """Serve the experiment in process on the simulated clock and let the newcomers use it."""
    from experiments.drill import SIM_WORKER
    from serving.bootstrap import build

    try:
        latent = load_latent(settings)
    except FileNotFoundError as exc:
        raise InputMissing(str(exc)) from None
    timeline = Timeline.ending_before(pd.Timestamp.now(tz="UTC").to_pydatetime(), cfg.days)
    world, users = draw_newcomers(latent, cfg.users, cfg.seed, cfg.days, world_seed=settings.seed)
    served = experiment_settings(settings, exp_path)
    clock = SimClock(timeline.start_s)
    server = build(served, worker=SIM_WORKER, clock=clock)
    sim = Onboarding(server, world, cfg, clock, ValueRule.from_settings(settings), timeline)
    try:
        if console is not None:
            with console.status(
                f"{cfg.users} new listeners over {cfg.days} simulated days ({cfg.slates} slates of {cfg.k} a visit)…"
            ):
                stats = sim.run(users)
        else:
            stats = sim.run(users)
    finally:
        server.close()  # moves the journaled Track events into the simulation's event log
    return served, timeline, users, stats


def their_events(served: Settings, timeline: Timeline, pseudonyms: set[str]) -> pd.DataFrame:
    """This run's newcomers' events (the simulation's log holds earlier runs too), without users
    who declined analytics."""
    events = EventLog(served.events_dir).read(
        columns=EVENT_COLUMNS, start=timeline.start, end=timeline.end + pd.Timedelta(days=1)
    )
    events = events[events["user_id"].isin(pseudonyms)].reset_index(drop=True)
    return analytics_events(events, served.consent_granted_by_default)


def ab_report(served: Settings, exp: Experiment, timeline: Timeline, pseudonyms: set[str], alpha: float):
    """The A/B report (experiments.analysis) on this run's impressions and the feedback after them."""
    loaded = data.load(served, exp.name, exp.window_s, since=timeline.start)
    imp = loaded.impressions[loaded.impressions["user_id"].isin(pseudonyms)]
    if imp.empty:
        return None
    events = loaded.events[loaded.events["user_id"].isin(pseudonyms)]
    return analysis.build(exp, data.outcomes(imp, events, exp.window_s), alpha)


def run(
    settings: Settings,
    exp_path: Path,
    cfg: OnboardingConfig,
    console: Console | None = None,
    log_mlflow: bool = True,
    alpha: float = 0.05,
) -> OnboardingRun:
    console = console or Console()
    exp = load_experiment(exp_path)
    if exp is None:
        raise InputMissing(f"no experiments file at {exp_path}: pass --config")
    rule = ValueRule.from_settings(settings)
    served, timeline, users, stats = simulate(settings, exp_path, cfg, console)
    arrived = sum(stats.ranks.values())
    console.print(
        f"{len(users):,} new listeners, {stats.visits:,} visits ({stats.returns:,} returns), {arrived:,} Rank calls, "
        f"{stats.events:,} Track events in {stats.seconds:.1f} s; simulated {timeline.start:%Y-%m-%d} → "
        f"{timeline.end:%Y-%m-%d}; Rank calls by arm: {dict(sorted(stats.ranks.items()))}"
    )
    if stats.rejected:
        console.print(f"[yellow]Track rejected {stats.rejected:,} events: {dict(stats.reasons)}[/]")
    key = served.secret_hmac_key()
    pseudonyms = {pseudonymize(u.user_id, key) for u in users}
    events = their_events(served, timeline, pseudonyms)
    if events.empty:
        raise OnboardingError(f"no events of this run's newcomers under {served.events_dir}")
    kpis = analyse(events, rule, exp.control, end=pd.Timestamp(timeline.end), alpha=alpha, seed=cfg.seed)
    for a in kpis.arms:
        a.rank_calls = int(stats.ranks.get(a.arm, 0))
        a.track_calls, a.track_events = int(stats.tracks.get(a.arm, 0)), int(stats.tracked.get(a.arm, 0))
    out = settings.reports_dir / "experiments"
    files: list[Path] = []
    ab = ab_report(served, exp, timeline, pseudonyms, alpha)
    if ab is not None:
        render.show(ab, console)
        files += [render.plot(ab, out / f"{exp.name}.png"), render.write_json(ab, out / f"{exp.name}.json")]
    show(kpis, exp, console)
    simulation = {
        "users": cfg.users,
        "days": cfg.days,
        "slates_per_visit": cfg.slates,
        "k": cfg.k,
        "seed": cfg.seed,
        "start": timeline.start.isoformat(),
        "end": timeline.end.isoformat(),
        "visits": stats.visits,
        "returns": stats.returns,
        "rank_calls": arrived,
        "track_calls": sum(stats.tracks.values()),
        "track_events": stats.events,
        "track_rejected": stats.rejected,
    }
    onboarding_files = [
        plot(kpis, exp, out / f"{SUMMARY}.png"),
        write_summary(kpis, out / f"{SUMMARY}.json", exp.name, simulation=simulation),
    ]
    result = OnboardingRun(exp, timeline, users, stats, kpis, ab, files + onboarding_files)
    if log_mlflow:
        result.run_id = log(served, exp, ab, kpis, files, onboarding_files)
        console.print(
            f"[dim]plots {', '.join(str(p) for p in result.files if p.suffix == '.png')}; MLflow run {result.run_id}[/]"
        )
    else:
        console.print(f"[dim]wrote {', '.join(str(p) for p in result.files)}[/]")
    return result


class OnboardingError(SetlistError, RuntimeError):
    """The onboarding simulation left nothing to analyse; the message says where it looked."""


# --- showing --------------------------------------------------------------------------------------
def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or x != x:
        return "—"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def duration(seconds: float) -> str:
    """Seconds for people: 45 s, 3.2 min, 5.1 h, 2.3 d."""
    if seconds != seconds:
        return "—"
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _change(c) -> str:
    return "—" if c is None else f"{_pct(c.change, True)} [{_pct(c.lo, True)}, {_pct(c.hi, True)}]"


def _share(s) -> str:
    return "—" if s.n == 0 else f"{s.rate:.1%} [{s.lo:.0%}, {s.hi:.0%}] of {s.n:,}"


def tables(k: Kpis) -> list[Table]:
    level = f"{1 - k.alpha:.0%}"
    ttfv = Table(
        title=f"time-to-first-value per arm (value: {k.value_rule}; steps = items shown; mean over users, "
        f"never-reached censored at the window's end; {level} bootstrap CIs)"
    )
    for col in (
        "arm",
        "users",
        "reached value",
        "steps [CI]",
        "steps vs control",
        "seconds [CI]",
        "seconds vs control",
    ):
        ttfv.add_column(col, justify="left" if col == "arm" else "right")
    for a in k.arms:
        ttfv.add_row(
            a.arm,
            f"{a.users:,}",
            f"{a.reached.rate:.0%}",
            f"{a.steps.mean:.1f} [{a.steps.lo:.1f}, {a.steps.hi:.1f}]",
            _change(a.steps_change),
            f"{duration(a.seconds.mean)} [{duration(a.seconds.lo)}, {duration(a.seconds.hi)}]",
            _change(a.seconds_change),
        )
    days = sorted({d for a in k.arms for d in a.returns})
    back = Table(title=f"return rate (active again on day N after the first exposure) and engaged users, {level} CIs")
    back.add_column("arm")
    for d in days:
        back.add_column(f"return rate day {d}", justify="right")
    for col in ("engaged users", "value events", "Rank calls"):
        back.add_column(col, justify="right")
    for a in k.arms:
        back.add_row(
            a.arm,
            *(_share(a.returns[d]) for d in days),
            f"{a.engaged.k:,} ({_share(a.engaged)})",
            f"{a.value_events:,}",
            "—" if a.rank_calls is None else f"{a.rank_calls:,}",
        )
    weeks = Table(title="value rate (value events per item shown) by week of exposure, lift against control")
    for col in ("week", "arm", "users", "items shown", "value rate", "lift vs control"):
        weeks.add_column(col, justify="left" if col == "arm" else "right")
    for w in k.weeks:
        lift = "—" if w.lift != w.lift else f"{w.lift:+.1%} [{w.lift_lo:+.1%}, {w.lift_hi:+.1%}]"
        weeks.add_row(str(w.week), w.arm, f"{w.users:,}", f"{w.items_shown:,}", _pct(w.value_rate), lift)
    return [ttfv, back, weeks]


def target_line(t: Target, exp: Experiment) -> str:
    control = exp.arm(exp.control)
    versus = "popularity" if control.strategy == "popularity" else control.name
    return (
        f"target: {t.arm} cuts time-to-first-value by ≥{t.threshold:.0%} vs {versus}: {t.verdict()} "
        f"(steps {_change(t.steps)}, seconds {_change(t.seconds)})"
    )


def show(k: Kpis, exp: Experiment, console: Console) -> None:
    for table in tables(k):
        console.print(table)
    engaged = f"engaged users: at least {k.engaged_min} value events in the window"
    console.print(f"[dim]{engaged}; return rates count users whose day N is inside the simulated window[/]")
    for t in k.targets(TARGET_CUT):
        colour = "green" if t.met else "red"
        console.print(f"[bold {colour}]{target_line(t, exp)}[/]")


def _spans(points: list[float], lows: list[float], highs: list[float]) -> list[list[float]]:
    """Error-bar lengths below and above each point. Never negative: an interval computed at a rate
    of 0 or 1 can end a rounding error past the point, and matplotlib refuses a negative bar. A
    point or bound that is NaN (no users) gets no bar."""

    def span(a: float, b: float) -> float:
        return max(0.0, b - a) if a == a and b == b else 0.0

    return [[span(lo, p) for p, lo in zip(points, lows)], [span(p, hi) for p, hi in zip(points, highs)]]


def plot(k: Kpis, exp: Experiment, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [a.arm for a in k.arms]
    others = [n for n in names if n != k.control]
    palette = {n: "#888888" if n == k.control else f"C{others.index(n)}" for n in names}
    colours = [palette[n] for n in names]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    ax = axes[0]
    means = [a.steps.mean for a in k.arms]
    err = _spans(means, [a.steps.lo for a in k.arms], [a.steps.hi for a in k.arms])
    ax.bar(names, means, yerr=err, capsize=4, color=colours)
    ax.set_title("time-to-first-value (items shown)")
    ax.set_ylim(bottom=0)
    ax = axes[1]
    days = sorted({d for a in k.arms for d in a.returns})
    width = 0.8 / max(len(names), 1)
    for n, (a, colour) in enumerate(zip(k.arms, colours)):
        xs = [d + (n - (len(names) - 1) / 2) * width for d in range(len(days))]
        rates = [a.returns[d].rate for d in days]
        err = _spans(rates, [a.returns[d].lo for d in days], [a.returns[d].hi for d in days])
        ax.bar(xs, rates, width, yerr=err, capsize=3, color=colour, label=a.arm)
    ax.set_xticks(range(len(days)), [f"day {d}" for d in days])
    ax.set_title("return rate")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax = axes[2]
    for name in names:
        rows = [w for w in k.weeks if w.arm == name]
        ax.errorbar(
            [w.week for w in rows],
            [w.value_rate for w in rows],
            yerr=[1.96 * w.se if w.se == w.se else 0 for w in rows],
            marker="o",
            capsize=3,
            label=name,
            color=palette[name],
        )
    ax.set_title("value rate by week of exposure")
    ax.set_xlabel("week since first exposure")
    ax.set_xticks(sorted({w.week for w in k.weeks}))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax = axes[3]
    shares = [a.engaged.rate for a in k.arms]
    err = _spans(shares, [a.engaged.lo for a in k.arms], [a.engaged.hi for a in k.arms])
    ax.bar(names, shares, yerr=err, capsize=4, color=colours)
    ax.set_title(f"engaged users (≥{k.engaged_min} value events)")
    ax.set_ylim(0, 1)
    lines = [target_line(t, exp) for t in k.targets(TARGET_CUT)]
    fig.suptitle(f"{exp.name}: onboarding of new listeners. " + "; ".join(lines)[:170], fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- MLflow ---------------------------------------------------------------------------------------
def metrics(k: Kpis) -> dict[str, float]:
    """The onboarding KPIs as MLflow metrics, ``onboarding.<arm>.<name>``."""
    out: dict[str, float] = {}
    for a in k.arms:
        p = f"onboarding.{a.arm}."
        out.update(
            {
                p + "users": float(a.users),
                p + "engaged_users": float(a.engaged.k),
                p + "engaged_share": a.engaged.rate,
                p + "value_events": float(a.value_events),
                p + "reached_value_share": a.reached.rate,
                p + "ttfv_steps": a.steps.mean,
                p + "ttfv_steps_lo": a.steps.lo,
                p + "ttfv_steps_hi": a.steps.hi,
                p + "ttfv_seconds": a.seconds.mean,
            }
        )
        if a.rank_calls is not None:
            out[p + "rank_calls"] = float(a.rank_calls)
        for d, s in a.returns.items():
            out[p + f"return_day_{d}"] = s.rate
        for name, c in (("ttfv_steps_change", a.steps_change), ("ttfv_seconds_change", a.seconds_change)):
            if c is not None:
                out.update({p + name: c.change, p + name + "_lo": c.lo, p + name + "_hi": c.hi})
    return {_UNSAFE.sub("_", key): v for key, v in out.items() if v == v}


def log(
    settings: Settings,
    exp: Experiment,
    ab: analysis.Report | None,
    k: Kpis,
    ab_files: list[Path],
    files: list[Path],
) -> str:
    """One MLflow run: the A/B report's (experiments.logbook), with the onboarding metrics, tags and
    files added; a run of its own when there was no A/B report."""
    client = registry.connect(settings)
    if ab is not None:
        run_id = log_report(settings, ab, ab_files)
    else:
        with mlflow_runs.tracked(
            settings,
            client,
            experiment_id=registry.ensure_experiment(client, settings),
            run_name=f"onboarding-{exp.name}",
        ) as started:
            run_id = started.info.run_id
    from mlflow.entities import Metric, RunTag

    now = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
    tags = {"onboarding.experiment": exp.name, "onboarding.value_rule": k.value_rule}
    tags.update({f"onboarding.target.{t.arm}": t.verdict() for t in k.targets(TARGET_CUT)})
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in metrics(k).items()],
        tags=[RunTag(key, value[:5000]) for key, value in tags.items()],
    )
    for path in files:
        client.log_artifact(run_id, str(path))
    return run_id
