"""The current champion, scored on this run's hold-out, so the promotion gate compares like with like."""

from __future__ import annotations

import mlflow
import pandas as pd
from feast import FeatureStore

from feature_repo import declarations
from setlist import registry
from setlist.blend import scorer
from setlist.featureset import DEFAULT_SERVICE, MODEL_SERVICE_ATTR, DeclarationError, Service
from setlist.request_time import model_zone
from setlist.settings import Settings
from training.candidates_fit import refit_registered_popularity, seen_matrix
from training.dataset import daily_item_matrix, query_state
from training.evaluate import evaluate
from training.splits import QUERY_LEAD


def _note(key: str, value: str) -> None:
    if mlflow.active_run():
        mlflow.set_tag(key, value[:500])


def not_comparable(champion_cutoff: str | None, split_kind: str, query_times: pd.Series) -> str | None:
    """Why the champion cannot be scored fairly on this hold-out, or None when it can.

    The champion learned from the events before its own hold-out (its run's ``lineage.cutoff``: a
    time, or "per user"). Scored on a hold-out that starts earlier, it would be asked about events it
    learned from, and a new model could never beat it. That happens when the split protocol changes
    between runs (``auto`` moves between ``global`` and ``per_user`` as a log grows, or a setting
    changes). A per-user champion scored on a per-user hold-out of a grown log is fair: each user's
    held-out positives are later than the ones it learned from. Runs from before the cutoff was
    recorded are taken as comparable, as they always were."""
    if not champion_cutoff or query_times.empty:
        return None
    if champion_cutoff == "per user":
        if split_kind == "per_user":
            return None
        return "it was trained under the per-user split, and this hold-out is a trailing period"
    try:
        cutoff = pd.Timestamp(champion_cutoff)
    except ValueError:
        return None
    if cutoff.tzinfo is None:
        cutoff = cutoff.tz_localize("UTC")
    first = pd.Timestamp(query_times.min()) + QUERY_LEAD  # a query is just before its first held-out event
    if first >= cutoff:
        return None
    return (
        f"it learned from events up to {cutoff.isoformat()}, and this hold-out asks about events from "
        f"{first.isoformat()} on"
    )


def champion_metrics(
    settings: Settings,
    store: FeatureStore,
    state: pd.DataFrame,
    q_hold: pd.DataFrame,
    labels_hold: pd.DataFrame,
    cold: set[str],
    train_events: pd.DataFrame,
    svc: Service,
    split_kind: str = "global",
) -> tuple[dict[str, float] | None, str | None]:
    """The champion's hold-out metrics, or None when there is none or it cannot be scored here (the
    gate then judges the challenger against the baselines alone, which it must still beat); and why
    an existing champion was not scored."""
    client = registry.connect(settings)
    pair = registry.find_pair(client, settings, registry.CHAMPION)
    if pair is None:
        return None, None
    version = client.get_model_version(settings.ranker_model, pair.ranker)
    cutoff = client.get_run(version.run_id).data.tags.get(registry.LINEAGE_CUTOFF) if version.run_id else None
    unfair = not_comparable(cutoff, split_kind, q_hold["event_timestamp"])
    if unfair:
        why = f"not comparable: {unfair}"
        _note("promotion.champion_unscored", why)
        return None, why
    try:
        index, booster = registry.load_pair(settings, pair.pair)
    except Exception as exc:  # an unloadable champion must not block a healthy challenger
        _note("promotion.champion_unloadable", str(exc))
        return None, f"unloadable: {exc}"
    # the champion reads its own feature service, which may be older than this run's, on its own clock
    name = booster.attr(MODEL_SERVICE_ATTR) or DEFAULT_SERVICE
    try:
        zone = model_zone(booster)
    except ValueError as exc:
        _note("promotion.champion_unscored", str(exc))
        return None, f"its request time zone does not read: {exc}"
    try:
        own: Service | None = declarations.load(settings).service(name)
    except DeclarationError:
        own = None
    if own is None or list(booster.feature_names or []) != list(own.inputs):
        why = f"its feature service {name} is no longer declared as trained"
        _note("promotion.champion_unscored", why)
        return None, why
    if own.name != svc.name:
        state = query_state(store, q_hold, str(index.item_ids[0]), own)
    # The champion serves with whole histories, the hold-out included; scored with them it could
    # never find a held-out item. It gets the same history as the challenger.
    index.seen = seen_matrix(train_events, index.user_ids, pd.Index(index.item_ids))
    # likewise its popularity lists, where they were fitted again over its whole log to serve
    refit_registered_popularity(index, train_events)
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
        zone=zone,
    )
    return results["model"].metrics, None
