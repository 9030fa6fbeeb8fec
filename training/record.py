"""The run in MLflow: parameters, metrics, lineage tags, plots, both models registered, and the
promotion gate's decision applied to the aliases."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from feature_repo.publish_record import latest_version
from setlist import mlflow_runs, registry
from setlist.eventlog import EventLog
from setlist.lineage import file_digest
from setlist.settings import Settings
from training import plots, promotion


@dataclass(frozen=True)
class Recorded:
    run_id: str
    versions: tuple[str, str]
    decision: promotion.Decision


def importance(booster: Any, names: tuple[str, ...]) -> dict[str, float]:
    """Each input's share of the ranker's total gain (0 for inputs no tree split on)."""
    gain = booster.get_score(importance_type="total_gain")
    total = sum(gain.values()) or 1.0
    return {n: float(gain.get(n, 0.0)) / total for n in names}


def record(
    settings: Settings,
    log: EventLog,
    plan: Any,
    ranking: Any,
    params: dict[str, Any],
    ev: Any,
    metrics: dict[str, float],
    rows: dict[str, int],
    gate_passed: bool,
) -> Recorded:
    """``plan``, ``ranking`` and ``ev`` are training.run's Plan, RankingSet and Evaluated."""
    names = ("popularity", *ev.baselines)
    decision = promotion.decide(
        metrics["ndcg_at_10"],
        ev.champion["ndcg_at_10"] if ev.champion else None,
        {n: metrics[f"baseline_{n}_ndcg_at_10"] for n in names},
        settings.promotion_margin,
        gate_passed,
        champion_note=ev.champion_note,
        gain_se={n: metrics[f"baseline_{n}_gain_se"] for n in names},
        min_se=settings.promotion_baseline_se,
        queries=int(metrics["queries"]),
        split=plan.split.kind,
    )
    client = promotion.use_experiment(settings)
    svc, split, booster = plan.svc, plan.split, ev.fitted.booster
    with mlflow_runs.tracked(settings, client, run_name=f"train-{plan.snapshot or log.snapshot_hash()}") as run:
        mlflow.log_params(params)
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        if ev.champion:
            mlflow.log_metrics({f"champion_{k}": v for k, v in ev.champion.items() if v == v})
        events = plan.events
        mlflow.set_tags(
            {
                registry.LINEAGE_FEATURE_SERVICE: svc.name,
                registry.LINEAGE_FEATURE_VIEWS: "user_profile,item_stats,session,context",
                registry.LINEAGE_FEATURES: ",".join(svc.inputs)[:5000],
                registry.LINEAGE_WINDOW_START: str(events["timestamp"].min()),
                registry.LINEAGE_CUTOFF: str(split.window.start) if split.window else "per user",
                registry.LINEAGE_WINDOW_END: str(events["timestamp"].max()),
                registry.LINEAGE_SNAPSHOT: plan.snapshot or log.snapshot_hash(),
                registry.LINEAGE_TRAINING_SET: plan.training_set or _training_set_digest(settings),
                registry.LINEAGE_PUBLISH: str(plan.publish if plan.publish is not None else latest_version(settings)),
                **{f"{registry.LINEAGE_ROWS}{k}": str(v) for k, v in rows.items()},
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(plots.feature_importance(booster, Path(tmp) / "feature_importance.png")))
            mlflow.log_artifact(
                str(
                    plots.evaluation_curves(
                        {n: ev.results[n].ndcg_curve for n in ("model", *names)},
                        ev.results["model"].scores,
                        ev.results["model"].labels,
                        Path(tmp) / "evaluation_curves.png",
                    )
                )
            )
        # why this ranker: every configuration's validation ndcg@10, so "why 200 trees" has an answer
        tried = sorted(ev.fitted.tried.items(), key=lambda kv: -kv[1].ndcg)
        mlflow.log_dict(
            {
                "chosen": ev.fitted.objective,
                "rule": (
                    "the cheapest (trees x depth) whose validation ndcg@10 trails the best by at most "
                    f"{settings.ranker_ndcg_tolerance:.1%} of it plus {settings.ranker_selection_se:g} "
                    "standard errors of the paired per-query loss"
                ),
                "validation_ndcg_at_10": {name: t.ndcg for name, t in tried},
                "tried": {name: dataclasses.asdict(t) for name, t in tried},
            },
            "ranker_selection.json",
        )
        mlflow.log_metrics({f"importance.{k}": v for k, v in importance(booster, svc.inputs).items()})
        versions = promotion.log_models(settings, ev.index, booster, ranking.X[:200], svc.inputs, svc.name)
        registry.set_alias(client, settings, versions, registry.CHALLENGER)
        has_champion = registry.find_pair(client, settings, registry.CHAMPION) is not None
        if decision.promote and not settings.promote and has_champion:
            decision = promotion.Decision(
                False, decision.reason + "; kept as challenger (SETLIST_PROMOTE=false): an experiment decides"
            )
        if decision.promote:
            registry.set_alias(client, settings, versions, registry.CHAMPION)
        mlflow.set_tag("training.choices", "\n".join(plan.choices)[:5000])  # what was derived from the data
        mlflow.set_tags(
            {"promotion.decision": "promoted" if decision.promote else "rejected", "promotion.reason": decision.reason}
        )
    return Recorded(run.info.run_id, versions, decision)


def _training_set_digest(settings: Settings) -> str:
    path = settings.training_set_path
    return file_digest(path) if path.exists() else ""
