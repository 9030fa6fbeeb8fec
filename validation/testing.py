"""Small, deterministic, clean frames for tests of the gates (and of code that calls them).

Each factory returns data that passes its gate; tests corrupt a copy and expect a failure that
names the corruption.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from setlist.contract import DEVICES, EVENT_TYPES
from setlist.eventlog import to_table
from validation.suites.features import ITEM_STATS, USER_PROFILE

LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR")
GENRES = ("rock", "pop", "jazz", "hiphop", "classical", "electronic")
_TYPE_P = (0.55, 0.2, 0.08, 0.04, 0.03, 0.10)  # play, skip, like, add_to_playlist, not_interested, impression


def clean_events(n: int = 3000, days: int = 14, users: int = 120, items: int = 400, seed: int = 1,
                 end: datetime | None = None) -> pd.DataFrame:
    """Events in the contract's dtypes (as read back from the log), spread evenly over ``days``."""
    rng = np.random.default_rng(seed)
    end = end or datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    offsets = np.sort(rng.uniform(0, days * 86400, n))
    ts = (pd.to_datetime(end) - pd.to_timedelta(days * 86400 - offsets, unit="s")).floor("ms")
    user = rng.integers(0, users, n)
    etype = rng.choice(EVENT_TYPES, n, p=_TYPE_P)
    value = np.where(etype == "play", rng.uniform(0, 1, n), np.where(etype == "skip", rng.uniform(0, 0.3, n), np.nan))
    frame = pd.DataFrame({
        "event_id": [f"ev-{seed}-{i:07d}" for i in range(n)],
        "schema_version": 1,
        "user_id": [f"u{u:05d}" for u in user],
        "session_id": [f"s{u:05d}-{d}" for u, d in zip(user, (offsets // 3600).astype(int))],
        "item_id": [f"i{i:06d}" for i in rng.zipf(1.3, n) % items],
        "type": etype,
        "timestamp": ts,
        "value": value,
        "device": np.array(DEVICES)[user % len(DEVICES)],
        "locale": np.array(LOCALES)[(user // 7) % len(LOCALES)],
        "consent_personalization": user % 17 != 0,
        "consent_analytics": True,
        "arm": "control",
    })
    return to_table(frame).to_pandas()


def clean_items(items: int = 400) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{i:06d}" for i in range(items)],
                         "genre": [GENRES[i % len(GENRES)] for i in range(items)]})


def clean_feature_batch(view_name: str, as_of: datetime, entities: int = 50, snapshots: int = 3,
                        seed: int = 2) -> pd.DataFrame:
    """Daily snapshots (one row per entity and day, the last stamped at ``as_of``)."""
    rng = np.random.default_rng(seed)
    view = {"user_profile": USER_PROFILE, "item_stats": ITEM_STATS}[view_name]
    prefix = "u" if view.entity == "user_id" else "i"
    ids = np.repeat([f"{prefix}{k:05d}" for k in range(entities)], snapshots)
    stamps = np.tile([pd.Timestamp(as_of) - pd.Timedelta(days=snapshots - 1 - d) for d in range(snapshots)], entities)
    n = len(ids)
    out = {view.entity: ids, "event_timestamp": pd.to_datetime(stamps, utc=True)}
    for f in view.features:
        if f.logical_type == "integer":
            out[f.column] = rng.integers(0, 100, n).astype("int64")
        elif f.logical_type == "float":
            hi = f.max if f.max is not None else 50.0
            out[f.column] = rng.uniform(f.min or 0.0, hi, n)
        elif f.logical_type == "float_list":
            aff = rng.dirichlet(np.ones(len(GENRES)), n).astype(np.float32)
            out[f.column] = list(aff)
        else:
            out[f.column] = rng.choice(GENRES, n)
    return pd.DataFrame(out)


def clean_training_set(queries: int = 200, per_query: int = 10, seed: int = 3) -> tuple[pd.DataFrame, list[str]]:
    """(frame, feature_columns): one positive in ``per_query`` rows, numeric features."""
    rng = np.random.default_rng(seed)
    n = queries * per_query
    q = np.repeat(np.arange(queries), per_query)
    features = ["user_plays_7d", "item_plays_7d", "x_embedding_score", "session_skip_rate"]
    frame = pd.DataFrame({
        "query_id": [f"q{k:05d}" for k in q],
        "user_id": [f"u{k % 60:05d}" for k in q],
        "item_id": [f"i{k:06d}" for k in rng.integers(0, 400, n)],
        "event_timestamp": pd.Timestamp("2024-05-01", tz="UTC") + pd.to_timedelta(q, unit="h"),
        "label": (np.arange(n) % per_query == 0).astype("int64"),
    })
    for f in features:
        frame[f] = rng.normal(size=n)
    return frame, features
