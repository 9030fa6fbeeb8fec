"""A deliberately broken ranker, for canary drills and tests.

It is a valid XGBoost model over the real ranker_v1 features (so serving's load checks pass, as a
subtly bad model's would), trained on the kept training set with its labels shuffled: the scores
vary across candidates but carry no signal, so slates are effectively random. ``inverted`` learns
the labels upside down instead, for a model that is reliably worse than random.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from setlist.features import RANKER_FEATURES
from setlist.settings import Settings

Mode = Literal["shuffled", "inverted"]


def broken_booster(frame: pd.DataFrame, mode: Mode = "shuffled", trees: int = 40, seed: int = 0):  # noqa: ANN201
    import xgboost as xgb

    X = frame[list(RANKER_FEATURES)].to_numpy(np.float32)
    y = frame["label"].to_numpy(np.float32)
    y = np.random.default_rng(seed).permutation(y) if mode == "shuffled" else 1.0 - y
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "tree_method": "hist", "nthread": 2,
              "seed": seed}
    return xgb.train(params, xgb.DMatrix(X, label=y, feature_names=list(RANKER_FEATURES)), num_boost_round=trees)


def register_broken_ranker(settings: Settings, mode: Mode = "shuffled", promote: bool = True,
                           seed: int = 0) -> tuple[str, str]:
    """Register a broken ranker next to the champion's candidate index, as ``challenger`` and (with
    ``promote``) ``champion``, as a careless promotion would. Returns (candidates, ranker) versions."""
    import mlflow

    from training.registry import CHALLENGER, CHAMPION, connect, set_aliases

    frame = pd.read_parquet(settings.data_dir / "training" / "training_set.parquet")
    booster = broken_booster(frame, mode, seed=seed)
    client = connect(settings)
    candidates = client.get_model_version_by_alias(settings.candidates_model, CHAMPION).version
    with mlflow.start_run(run_name=f"broken-ranker-{mode}"):
        mlflow.set_tag("drill.broken_ranker", mode)
        info = mlflow.xgboost.log_model(booster, name="ranker", registered_model_name=settings.ranker_model,
                                        model_format="ubj", pip_requirements=["xgboost"])
    pair = (str(candidates), str(info.registered_model_version))
    set_aliases(client, settings, pair, CHALLENGER)
    if promote:
        set_aliases(client, settings, pair, CHAMPION)
    return pair
