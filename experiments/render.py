"""A report for people: a rich table, a PNG, and a JSON summary for machines."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from experiments.analysis import Report
from setlist.experiment import METRICS


def _pct(x: float) -> str:
    return "—" if x != x else f"{x:.1%}"


SHORT = {"play_rate": "play", "skip_rate": "skip", "completion_rate": "complete", "positive_rate": "positive"}


def table(r: Report) -> Table:
    t = Table(
        title=f"experiment {r.experiment}: rates per item shown, {1 - r.alpha:.0%} CIs, "
        f"feedback within {r.window_s / 60:.0f} min"
    )
    for col in ("arm", "users", "shown", *(SHORT[m] for m in METRICS), f"{SHORT[r.primary]} vs {r.control}", "models"):
        t.add_column(col, justify="left" if col in ("arm", "models") else "right")
    for a in r.arms:
        cells = [_pct(a.rates[m].rate) for m in METRICS]
        vs = "—"
        if a.comparison:
            c = a.comparison[r.primary]
            vs = f"{c.lift:+.1%} [{c.lift_lo:+.1%}, {c.lift_hi:+.1%}]"
            if c.lift != c.lift:  # no such event in control: no relative lift, the difference in points
                vs = f"{c.diff:+.1%} pts [{c.lo:+.1%}, {c.hi:+.1%}]"
        t.add_row(a.arm, f"{a.users:,}", f"{a.shown:,}", *cells, vs, a.versions)
    return t


def show(r: Report, console: Console | None = None) -> None:
    console = console or Console()
    console.print(table(r))
    s = r.srm
    console.print(
        f"sample ratio: users {s.observed} vs expected "
        f"{ {k: round(v, 1) for k, v in s.expected.items()} } — chi-square {s.chi2:.2f}, p={s.p_value:.3g}"
    )
    for note in r.notes:
        console.print(f"[yellow]note:[/] {note}")
    for v in r.verdicts:
        colour = "red" if "SRM" in v or "worse" in v else "green" if "beats" in v else "yellow"
        console.print(f"[bold {colour}]verdict:[/] {v}")


def plot(r: Report, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6))
    for ax, m in zip(axes, METRICS):
        names = [a.arm for a in r.arms]
        rates = [a.rates[m].rate for a in r.arms]
        errs = [1.96 * a.rates[m].se if a.rates[m].se == a.rates[m].se else 0 for a in r.arms]
        colours = ["#888888" if n == r.control else "#1f77b4" for n in names]
        ax.bar(names, rates, yerr=errs, capsize=4, color=colours)
        ax.set_title(m.replace("_", " ") + (" (primary)" if m == r.primary else ""))
        ax.set_ylim(bottom=0)
    fig.suptitle(f"{r.experiment}: " + "; ".join(r.verdicts)[:140], fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(r: Report) -> dict:
    """Everything in the report as JSON-friendly data (NaN becomes null)."""

    def clean(v):
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(asdict(r))


def write_json(r: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary(r), indent=2))
    return path
