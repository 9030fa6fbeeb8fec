"""The promotion gate, and registering a trained pair in the project's MLflow experiment.

Names, aliases, tags and lookups are the registry contract in setlist.registry, shared with serving."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from setlist.blend import scorer
from setlist.candidate_model import INDEX_ARTIFACT, CandidateModel
from setlist.candidates import CandidateIndex
from setlist.featureset import MODEL_SERVICE_ATTR
from setlist.registry import TAG_FEATURE_SERVICE, connect, ensure_experiment
from setlist.request_time import set_model_zone
from setlist.settings import Settings


def _pins(*packages: str) -> list[str]:
    """Exact requirements from the running environment; skips MLflow's slow inference subprocess."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in packages]


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


#: baselines a challenger must beat before it may serve; others (EASE) are reported beside them
REQUIRED_BASELINES = ("popularity", "als")


#: the setting that gives the hold-out more queries, by the split the run used (training.splits' kinds)
_MORE_QUERIES = {
    "global": "a longer held-out period: SETLIST_HOLDOUT_DAYS or SETLIST_HOLDOUT_SHARE",
    # one query per user with enough positives: SETLIST_HOLDOUT_FRACTION adds labels to each, not queries
    "per_user": "the per-user split asks each user once: more users, or SETLIST_SPLIT=global with SETLIST_HOLDOUT_DAYS",
}
_EITHER = "SETLIST_HOLDOUT_DAYS or SETLIST_HOLDOUT_SHARE for the global split; the per-user one asks each user once"


def decide(
    challenger_ndcg: float,
    champion_ndcg: float | None,
    baselines: dict[str, float],
    margin: float,
    validation_passed: bool,
    champion_note: str | None = None,
    gain_se: dict[str, float] | None = None,
    min_se: float = 0.0,
    queries: int | None = None,
    split: str | None = None,
) -> Decision:
    """The promotion gate. Pure, so it can be tested on numbers alone.

    ``baselines`` maps a baseline's name to its ndcg@10 on the same queries; the challenger must beat
    every required one that was measured, by more than ``min_se`` standard errors of its paired
    per-query gain (``gain_se``, over ``queries``) where one is given, then the champion by ``margin``.
    The gap to EASE is part of the reason either way, so a model that trails it is visible.
    ``champion_note`` says why an existing champion has no score here: the challenger is then judged
    against the baselines alone. ``split``: the hold-out's kind (``global`` or ``per_user``), so that a
    refusal names the one setting that gives it more queries."""
    if not validation_passed:
        return Decision(False, "validation failed")
    ease = baselines.get("ease")
    gap = "" if ease is None or ease != ease else f"; EASE {ease:.4f} ({challenger_ndcg - ease:+.4f})"
    for name in REQUIRED_BASELINES:
        value = baselines.get(name)
        if value is None or value != value:
            continue
        if challenger_ndcg <= value:
            return Decision(False, f"ndcg@10 {challenger_ndcg:.4f} does not beat {name} {value:.4f}{gap}")
        se = (gain_se or {}).get(name)
        if min_se > 0 and se is not None and se == se and challenger_ndcg - value <= min_se * se:
            over = f" over {queries:,} hold-out queries" if queries is not None else ""
            return Decision(
                False,
                f"ndcg@10 {challenger_ndcg:.4f} beats {name} {value:.4f} by {challenger_ndcg - value:+.4f}, within "
                f"the noise{over} ({min_se:g} standard errors of the paired per-query gain: {min_se * se:.4f}); a "
                f"larger gain or more hold-out queries ({_MORE_QUERIES.get(split or '', _EITHER)}) would tell, or "
                f"SETLIST_PROMOTION_BASELINE_SE=0 compares the means alone{gap}",
            )
    beaten = ", ".join(f"{n} {baselines[n]:.4f}" for n in REQUIRED_BASELINES if n in baselines)
    if champion_ndcg is None:
        first = f"champion not scored ({champion_note})" if champion_note else "first model"
        return Decision(True, f"{first}; ndcg@10 {challenger_ndcg:.4f} beats {beaten}{gap}")
    if challenger_ndcg >= champion_ndcg + margin:
        return Decision(
            True, f"ndcg@10 {challenger_ndcg:.4f} beats champion {champion_ndcg:.4f} by >= {margin} and {beaten}{gap}"
        )
    return Decision(
        False, f"ndcg@10 {challenger_ndcg:.4f} does not beat champion {champion_ndcg:.4f} + margin {margin}{gap}"
    )


def use_experiment(settings: Settings) -> MlflowClient:
    """Connect, and make the project's experiment the one fluent runs (mlflow.start_run) log to."""
    client = connect(settings)
    mlflow.set_experiment(experiment_id=ensure_experiment(client, settings))
    return client


def log_models(
    settings: Settings,
    index: CandidateIndex,
    booster,
    sample_X: np.ndarray,
    inputs: tuple[str, ...],
    service: str,
) -> tuple[str, str]:
    """Log and register both models in the active run; returns the new version numbers. The ranker
    carries its feature service in the model file and as a version tag, and its input names in
    the signature, so serving can check what it reads at load, and the clock of its request
    features, so serving computes them as it learned them."""
    booster.set_attr(**{MODEL_SERVICE_ATTR: service})
    set_model_zone(booster, settings.request_zone)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index"
        index.save(path)
        example = pd.DataFrame({"user_id": [str(index.user_ids[0])], "locale": ["en_US"], "device": ["mobile"]})
        cand_info = mlflow.pyfunc.log_model(
            name="candidates",
            python_model=CandidateModel(),
            artifacts={INDEX_ARTIFACT: str(path)},
            signature=infer_signature(example, pd.DataFrame({"user_id": ["u"], "candidates": [["i"]]})),
            registered_model_name=settings.candidates_model,
            pip_requirements=_pins("mlflow", "numpy", "scipy", "pandas", "faiss-cpu"),
        )
    X = pd.DataFrame(sample_X, columns=list(inputs))
    rank_info = mlflow.xgboost.log_model(
        booster,
        name="ranker",
        signature=infer_signature(X, scorer(booster)(sample_X)),
        input_example=X.head(3),
        registered_model_name=settings.ranker_model,
        model_format="ubj",
        pip_requirements=_pins("mlflow", "xgboost-cpu", "numpy", "pandas"),
    )
    versions = str(cand_info.registered_model_version), str(rank_info.registered_model_version)
    connect(settings).set_model_version_tag(settings.ranker_model, versions[1], TAG_FEATURE_SERVICE, service)
    return versions
