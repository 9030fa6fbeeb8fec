"""Writes to the online store: every view materialized by Feast from the feature files (a full
build) or the recomputed rows written directly (an incremental one); after either, the personal rows
of users who withdrew consent are deleted. And the cheap check that the store still holds what the
last build wrote."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from feature_repo.build import FeatureBatches
from feature_repo.data_sources import CONSENT_FILE
from feature_repo.incremental import latest_rows
from feature_repo.store import apply, get_store
from setlist.settings import Settings


def materialize_views(settings: Settings, start: pd.Timestamp, as_of: pd.Timestamp, consent: pd.DataFrame) -> None:
    """Every view materialized from the feature files as written (a full build)."""
    store = get_store(settings)
    defs = apply(store, settings)
    # By default Feast reads every row of each file into pandas to keep each entity's newest
    # (~2 GB for the 2M-row session file at bench scale); DuckDB can pick the newest rows itself.
    # Same online values. (Set on this publishing store; repo_config in store.py could carry it.)
    store.config.materialization_config.pull_latest_features = True
    store.config.materialization_config.online_write_batch_size = 20_000
    end = as_of + pd.Timedelta(seconds=1)
    store.materialize(
        start_date=start.to_pydatetime(),
        end_date=end.to_pydatetime(),
        feature_views=[
            defs.views.user_profile.name,
            defs.views.item_stats.name,
            defs.views.session.name,
            defs.views.consent.name,
        ],
    )
    _forget_withdrawn(store, defs, consent)


def write_rows(settings: Settings, changed: FeatureBatches) -> None:
    """Each recomputed entity's newest row written to its view (an incremental build)."""
    store = get_store(settings)
    defs = apply(store, settings)
    for feature_view, frame, key in (
        (defs.views.user_profile, changed.user_profile, "user_id"),
        (defs.views.item_stats, changed.item_stats, "item_id"),
        (defs.views.session, changed.session, "user_id"),
        (defs.views.consent, changed.consent, "user_id"),
    ):
        latest = latest_rows(frame, key)
        if len(latest):
            store.write_to_online_store(feature_view.name, latest)
    _forget_withdrawn(store, defs, changed.consent)


def _forget_withdrawn(store, defs, consent: pd.DataFrame) -> None:
    """Users who withdrew personalization consent lose their personal rows online too;
    materialization alone would leave their last profile and session in place."""
    from feature_repo.online import OnlineFeatures

    withdrawn = consent.loc[~consent["consent_personalization"], "user_id"]
    if withdrawn.empty:
        return
    online = OnlineFeatures(store, [defs.views.user_profile, defs.views.session])
    for uid in withdrawn:
        for view in ("user_profile", "session"):
            online.delete(view, uid)


def online_intact(settings: Settings) -> bool:
    """A cheap check that the online store still holds what the last build wrote: the first
    user's consent row (every user has one, and only erasure, which forces a full build, removes
    it). An emptied store (a Redis restarted without its data, a deleted SQLite file) fails it."""
    from feature_repo.online import OnlineFeatures
    from feature_repo.store import definitions

    consent = pq.read_table(settings.features_dir / CONSENT_FILE, columns=["user_id"]).slice(0, 1)
    if consent.num_rows == 0:
        return True
    defs = definitions(settings)
    try:
        online = OnlineFeatures(get_store(settings), [defs.views.consent])
        return online.read(defs.views.consent.name, [consent["user_id"][0].as_py()])[0][1] is not None
    except Exception:
        return False
