"""Run artifacts: feature importance and evaluation curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def feature_importance(booster, path: Path) -> Path:
    gain = booster.get_score(importance_type="total_gain")
    names = sorted(gain, key=gain.get)[-25:]
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.barh(names, [gain[n] for n in names])
    ax.set_title("Ranker feature importance (total gain)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def evaluation_curves(curves: dict[str, dict], scores: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    from sklearn.metrics import roc_curve

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, curve in curves.items():
        if curve.get("ndcg"):
            a.plot(curve["k"], curve["ndcg"], marker="o", label=name)
    a.set_xscale("log")
    a.set_xlabel("k")
    a.set_ylabel("NDCG@k (hold-out)")
    a.legend()
    if len(scores) and 0 < labels.sum() < len(labels):
        fpr, tpr, _ = roc_curve(labels, scores)
        b.plot(fpr, tpr)
    b.plot([0, 1], [0, 1], "--", color="grey")
    b.set_xlabel("false positive rate")
    b.set_ylabel("true positive rate")
    b.set_title("ROC over hold-out candidates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
