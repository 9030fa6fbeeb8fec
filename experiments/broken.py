"""A deliberately broken ranker, for canary drills and tests.

It is a valid XGBoost model over a declared feature service's inputs (so serving's load checks pass, as a
subtly bad model's would), trained on the kept training set with its labels shuffled: the scores
vary across candidates but carry no signal, so slates are effectively random. ``inverted`` learns
the labels upside down instead, for a model that is reliably worse than random.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from setlist import mlflow_runs, registry
from setlist.featureset import MODEL_SERVICE_ATTR, Service
from setlist.request_time import set_model_zone
from setlist.settings import Settings

Mode = Literal["shuffled", "inverted"]


def service_of(frame: pd.DataFrame) -> Service:
    """The newest declared service whose inputs the kept training set holds."""
    from feature_repo.declarations import load

    fs = load()
    for v in reversed(fs.versions):
        svc = fs.service(v)
        if set(svc.inputs) <= set(frame.columns):
            return svc
    raise ValueError("the kept training set matches no declared feature service; run `make train` first")


def broken_booster(frame: pd.DataFrame, mode: Mode = "shuffled", trees: int = 40, seed: int = 0):
    import xgboost as xgb

    svc = service_of(frame)
    X = frame[list(svc.inputs)].to_numpy(np.float32)
    y = frame["label"].to_numpy(np.float32)
    y = np.random.default_rng(seed).permutation(y) if mode == "shuffled" else 1.0 - y
    params = {
        "objective": "binary:logistic",
        "max_depth": 6,
        "eta": 0.3,
        "tree_method": "hist",
        "nthread": 2,
        "seed": seed,
    }
    booster = xgb.train(params, xgb.DMatrix(X, label=y, feature_names=list(svc.inputs)), num_boost_round=trees)
    booster.set_attr(**{MODEL_SERVICE_ATTR: svc.name})
    return booster


def register_broken_ranker(
    settings: Settings, mode: Mode = "shuffled", promote: bool = True, seed: int = 0
) -> tuple[str, str]:
    """Register a broken ranker next to the champion's candidate index, as ``challenger`` and (with
    ``promote``) ``champion``, as a careless promotion would. Returns (candidates, ranker) versions."""
    import mlflow

    frame = pd.read_parquet(settings.training_set_path)
    booster = broken_booster(frame, mode, seed=seed)
    # the kept set's request block is on the clock of the training that kept it: SETLIST_TIMEZONE, unless the
    # setting changed since (a drill's broken model; its hours being off then changes nothing it shows)
    set_model_zone(booster, settings.request_zone)
    client = registry.connect(settings)
    candidates = registry.lookup_pair(client, settings, registry.CHAMPION).candidates  # as serving reads it
    with mlflow_runs.tracked(
        settings, client, experiment_id=registry.ensure_experiment(client, settings), run_name=f"broken-ranker-{mode}"
    ):
        mlflow.set_tag("drill.broken_ranker", mode)
        info = mlflow.xgboost.log_model(
            booster,
            name="ranker",
            registered_model_name=settings.ranker_model,
            model_format="ubj",
            pip_requirements=["xgboost"],
        )
    pair = (candidates, str(info.registered_model_version))
    registry.set_alias(client, settings, pair, registry.CHALLENGER)
    if promote:
        registry.set_alias(client, settings, pair, registry.CHAMPION)
    return pair
