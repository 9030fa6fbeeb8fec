"""Writes to the online store: every view materialized by Feast from the feature files (a full
build) or the recomputed rows written directly (an incremental one); after either, the personal rows
of users who withdrew consent are deleted. And the cheap check that the store still holds what the
last build wrote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import pandas as pd
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.infra.online_stores.redis import RedisOnlineStoreConfig

from feature_repo.build import FeatureBatches
from feature_repo.data_sources import CONSENT_FILE
from feature_repo.incremental import latest_rows
from feature_repo.store import apply, get_store
from setlist.settings import Settings

#: the views only a publish writes (``overwriting``)
BATCH_VIEWS = ("user_profile", "item_stats")


def materialize_views(
    settings: Settings,
    start: pd.Timestamp,
    as_of: pd.Timestamp,
    consent: pd.DataFrame,
    say: Callable[[str], None] | None = None,
) -> None:
    """Every view materialized from the feature files as written (a full build). ``say``: what the
    apply before it drops online (``store.apply``)."""
    store = get_store(settings)
    defs = apply(store, settings, say=say)
    if defs.dropped and say is not None:
        say("materializing to the online store")
    # By default Feast reads every row of each file into pandas to keep each entity's newest
    # (~2 GB for the 2M-row session file at bench scale); DuckDB can pick the newest rows itself.
    # Same online values. (Set on this publishing store; repo_config in store.py could carry it.)
    store.config.materialization_config.pull_latest_features = True
    store.config.materialization_config.online_write_batch_size = 20_000
    end = as_of + pd.Timedelta(seconds=1)
    window = {"start_date": start.to_pydatetime(), "end_date": end.to_pydatetime()}
    with overwriting(store):
        store.materialize(**window, feature_views=[defs.views.user_profile.name, defs.views.item_stats.name])
    store.materialize(**window, feature_views=[defs.views.session.name, defs.views.consent.name])
    _forget_withdrawn(store, defs, consent)


@contextmanager
def overwriting(store: FeatureStore) -> Iterator[None]:
    """Writes to the batch views (user_profile, item_stats) that replace a stored row even when it is
    as new. Feast's Redis write keeps a row whose time is the same as or newer than the one written (its
    SQLite write always replaces), and a rebuild from the same log stamps each entity's rows at the same
    snapshot times: a feature added, redefined or declared again, or a changed table, never reached
    Redis, which served the values it had (NOTES.md, Features). A publish is the one writer of these
    views (one at a time), so its rows are the ones to serve. The session and consent views are not
    written so: Track pushes newer rows into them between publishes."""
    config = store.config.online_store
    if not isinstance(config, RedisOnlineStoreConfig):
        yield
        return
    was = config.skip_dedup
    config.skip_dedup = True
    try:
        yield
    finally:
        config.skip_dedup = was


def write_rows(settings: Settings, changed: FeatureBatches, say: Callable[[str], None] | None = None) -> None:
    """Each recomputed entity's newest row written to its view (an incremental build)."""
    store = get_store(settings)
    defs = apply(store, settings, say=say)
    for feature_view, frame, key in (
        (defs.views.user_profile, changed.user_profile, "user_id"),
        (defs.views.item_stats, changed.item_stats, "item_id"),
        (defs.views.session, changed.session, "user_id"),
        (defs.views.consent, changed.consent, "user_id"),
    ):
        latest = latest_rows(frame, key)
        if len(latest):
            with overwriting(store) if feature_view.name in BATCH_VIEWS else nullcontext():
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
