"""Latency CDFs as a PNG: fast vs baseline, and cache hit vs cache miss, on log-scaled latency axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: (label, {"n": sample count, "points": [[latency_ms, cumulative fraction], ...]})
Series = tuple[str, Mapping[str, Any]]


def plot_cdfs(
    path: Path,
    title: str,
    left: Sequence[Series],
    right: Sequence[Series],
    left_target_ms: float = 10.0,
    right_target_ms: float = 1.0,
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe when a GUI backend is installed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    panels = (
        (
            axes[0],
            left,
            "Rank: fast (all users, new users) vs baseline (open loop; dotted: one at a time)",
            left_target_ms,
        ),
        (axes[1], right, "Fast engine: cache hit vs cache miss", right_target_ms),
    )
    for ax, series, subtitle, target in panels:
        for label, cdf in series:
            if cdf["points"]:
                xs, ys = zip(*cdf["points"])
                style = ":" if "unloaded" in label else "-"  # unloaded runs are context, not the comparison
                ax.step(xs, ys, where="post", linestyle=style, label=f"{label} (n={cdf['n']:,})")
        ax.axvline(target, color="grey", linestyle="--", linewidth=1)
        ax.text(target, 0.02, f" p99 target {target:g} ms", color="grey", fontsize=8)
        ax.axhline(0.99, color="lightgrey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("client-side latency, ms (log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_ylim(0, 1.01)
        ax.set_title(subtitle, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title + "\nlatency from the scheduled send time; failed calls counted at their deadline", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
