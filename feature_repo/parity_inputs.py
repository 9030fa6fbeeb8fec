"""Inputs for the training–serving skew gate: the same entities read online and point-in-time offline.

Only batch views are compared: the session view is pushed by Track between materializations, so
its online values are meant to be newer than anything offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, timedelta

import numpy as np
import pandas as pd

from feature_repo.online import OnlineFeatures
from feature_repo.store import definitions, get_store
from setlist.errors import InputMissing
from setlist.settings import Settings
from validation.skew import ParityInput

SAMPLE = 200
#: a view without a TTL (Feast's zero) never makes a value stale; far beyond any log's span
NEVER_STALE = timedelta(days=365 * 200)


def parity_inputs(settings: Settings, sample: int = SAMPLE, seed: int = 0) -> Iterable[ParityInput]:

    missing = [v for v in ("user_profile", "item_stats") if not (settings.features_dir / f"{v}.parquet").exists()]
    if missing:
        raise InputMissing(f"no published features ({', '.join(missing)}): run `make materialize` first")
    store = get_store(settings)
    defs = definitions(settings)
    views = (defs.views.user_profile, defs.views.item_stats)
    online = OnlineFeatures(store, views)
    rng = np.random.default_rng(seed)
    for view in views:
        key = "user_id" if view.name == "user_profile" else "item_id"
        batch = pd.read_parquet(settings.features_dir / f"{view.name}.parquet", columns=[key, "event_timestamp"])
        # Compared as of the published batch's newest snapshot, not the wall clock: the online store
        # holds what that publish wrote, and an event log that ended long ago (an import of past
        # data) would otherwise be all "older than the TTL" offline and never match.
        as_of = pd.Timestamp(batch["event_timestamp"].max()).tz_convert(UTC).to_pydatetime()
        ids = np.sort(batch[key].unique())
        ids = ids if len(ids) <= sample else np.sort(rng.choice(ids, size=sample, replace=False))
        names = [f.name for f in view.features]
        rows = online.read(view.name, list(ids))
        on = pd.DataFrame(
            [
                {key: i, "event_timestamp": ts, **(values or {})}
                for i, (ts, values) in zip(ids, rows)
                if values is not None
            ]
        )
        entity = pd.DataFrame({key: ids, "event_timestamp": as_of})
        off = store.get_historical_features(entity_df=entity, features=[f"{view.name}:{n}" for n in names]).to_df()
        off = off.dropna(subset=names, how="all")
        yield ParityInput(
            view=view.name,
            online=on,
            offline=off[[key, *names]],
            entity_col=key,
            features=names,
            ttl=view.ttl or NEVER_STALE,
            as_of=as_of,
        )
