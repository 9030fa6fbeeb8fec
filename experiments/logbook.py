"""The report in MLflow: one run per analysis, tagged with the model versions each arm served."""

from __future__ import annotations

import re
from pathlib import Path

from experiments.analysis import Report
from setlist import mlflow_runs, registry
from setlist.experiment import METRICS
from setlist.settings import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _key(*parts: str) -> str:
    return ".".join(_UNSAFE.sub("_", p) for p in parts)


def log_report(settings: Settings, r: Report, artifacts: list[Path]) -> str:
    """Log ``r`` as a run in the project's MLflow experiment; returns the run id."""
    import mlflow

    client = registry.connect(settings)
    tags = {
        "ab.experiment": r.experiment,
        "ab.control": r.control,
        "ab.primary": r.primary,
        "ab.verdict": " | ".join(r.verdicts)[:5000],
        "ab.srm_p_value": f"{r.srm.p_value:.4g}",
        "ab.srm_detected": str(r.srm.detected()),
    }
    tags.update({_key("ab.versions", a.arm): a.versions[:5000] for a in r.arms})
    metrics: dict[str, float] = {"srm_chi2": r.srm.chi2}
    for a in r.arms:
        metrics[_key(a.arm, "users")] = float(a.users)
        metrics[_key(a.arm, "items_shown")] = float(a.shown)
        for m in METRICS:
            metrics[_key(a.arm, m)] = a.rates[m].rate
        for m, c in a.comparison.items():
            metrics.update(
                {
                    _key(a.arm, m, "lift"): c.lift,
                    _key(a.arm, m, "lift_lo"): c.lift_lo,
                    _key(a.arm, m, "lift_hi"): c.lift_hi,
                    _key(a.arm, m, "diff"): c.diff,
                    _key(a.arm, m, "p_value"): c.p_value,
                }
            )
    with mlflow_runs.tracked(
        settings, client, experiment_id=registry.ensure_experiment(client, settings), run_name=f"ab-{r.experiment}"
    ) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        for path in artifacts:
            mlflow.log_artifact(str(path))
    return run.info.run_id
