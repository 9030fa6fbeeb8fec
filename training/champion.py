"""The current champion, scored on this run's hold-out, so the promotion gate compares like with like."""

from __future__ import annotations

import mlflow
import pandas as pd
from feast import FeatureStore

from feature_repo import declarations
from setlist import registry
from setlist.blend import scorer
from setlist.featureset import DEFAULT_SERVICE, MODEL_SERVICE_ATTR, DeclarationError, Service
from setlist.settings import Settings
from training.candidates_fit import seen_matrix
from training.dataset import daily_item_matrix, query_state
from training.evaluate import evaluate


def _note(key: str, value: str) -> None:
    if mlflow.active_run():
        mlflow.set_tag(key, value[:500])


def champion_metrics(
    settings: Settings,
    store: FeatureStore,
    state: pd.DataFrame,
    q_hold: pd.DataFrame,
    labels_hold: pd.DataFrame,
    cold: set[str],
    train_events: pd.DataFrame,
    svc: Service,
) -> dict[str, float] | None:
    """The champion's hold-out metrics, or None when there is none or it cannot be scored here (the
    gate then treats the challenger as a first model, which must still beat the baselines)."""
    client = registry.connect(settings)
    pair = registry.find_pair(client, settings, registry.CHAMPION)
    if pair is None:
        return None
    try:
        index, booster = registry.load_pair(settings, pair.pair)
    except Exception as exc:  # an unloadable champion must not block a healthy challenger
        _note("promotion.champion_unloadable", str(exc))
        return None
    # the champion reads its own feature service, which may be older than this run's
    name = booster.attr(MODEL_SERVICE_ATTR) or DEFAULT_SERVICE
    try:
        own: Service | None = declarations.load(settings).service(name)
    except DeclarationError:
        own = None
    if own is None or list(booster.feature_names or []) != list(own.inputs):
        _note("promotion.champion_unscored", f"its feature service {name} is no longer declared as trained")
        return None
    if own.name != svc.name:
        state = query_state(store, q_hold, str(index.item_ids[0]), own)
    # The champion serves with whole histories, the hold-out included; scored with them it could
    # never find a held-out item. It gets the same history as the challenger.
    index.seen = seen_matrix(train_events, index.user_ids, pd.Index(index.item_ids))
    results = evaluate(
        index,
        {"model": scorer(booster)},
        state,
        q_hold,
        labels_hold,
        daily_item_matrix(store, index, own, q_hold["event_timestamp"]),
        settings.candidate_pool,
        cold,
        own,
    )
    return results["model"].metrics
