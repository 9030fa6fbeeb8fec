"""Small, deterministic, clean frames for tests of the gates (and of code that calls them).

Each factory returns data that passes its gate; tests corrupt a copy and expect a failure that
names the corruption.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from setlist.contract import DEVICES, ITEM_TYPES
from setlist.eventlog import to_table
from setlist.featureset import FeatureSet

LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR")
GENRES = ("rock", "pop", "jazz", "hiphop", "classical", "electronic")
_TYPE_P = (0.55, 0.2, 0.08, 0.04, 0.03, 0.10)  # play, skip, like, add_to_playlist, not_interested, impression


def clean_events(
    n: int = 3000, days: int = 14, users: int = 120, items: int = 400, seed: int = 1, end: datetime | None = None
) -> pd.DataFrame:
    """Events in the contract's dtypes (as read back from the log), spread evenly over ``days``."""
    rng = np.random.default_rng(seed)
    end = end or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    offsets = np.sort(rng.uniform(0, days * 86400, n))
    ts = (pd.to_datetime(end) - pd.to_timedelta(days * 86400 - offsets, unit="s")).floor("ms")
    user = rng.integers(0, users, n)
    etype = rng.choice(ITEM_TYPES, n, p=_TYPE_P)
    value = np.where(etype == "play", rng.uniform(0, 1, n), np.where(etype == "skip", rng.uniform(0, 0.3, n), np.nan))
    frame = pd.DataFrame(
        {
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
        }
    )
    return to_table(frame).to_pandas()


def clean_items(items: int = 400) -> pd.DataFrame:
    return pd.DataFrame(
        {"item_id": [f"i{i:06d}" for i in range(items)], "genre": [GENRES[i % len(GENRES)] for i in range(items)]}
    )


def clean_feature_batch(
    view_name: str, as_of: datetime, entities: int = 50, snapshots: int = 3, seed: int = 2, *, features: FeatureSet
) -> pd.DataFrame:
    """Daily snapshots (one row per entity and day, the last stamped at ``as_of``) of a view of the
    declarations ``features``."""
    rng = np.random.default_rng(seed)
    from validation.suites.features import views_of  # loads Great Expectations: only when asked

    view = views_of(features)[view_name]
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
    frame = pd.DataFrame(
        {
            "query_id": [f"q{k:05d}" for k in q],
            "user_id": [f"u{k % 60:05d}" for k in q],
            "item_id": [f"i{k:06d}" for k in rng.integers(0, 400, n)],
            "event_timestamp": pd.Timestamp("2024-05-01", tz="UTC") + pd.to_timedelta(q, unit="h"),
            "label": (np.arange(n) % per_query == 0).astype("int64"),
        }
    )
    for f in features:
        frame[f] = rng.normal(size=n)
    return frame, features


def ratings_events(
    users: int = 300,
    ratings: int = 25_000,
    years: float = 20.0,
    items: int = 1_500,
    seed: int = 4,
    start: datetime = datetime(1996, 4, 1, tzinfo=UTC),
) -> pd.DataFrame:
    """An explicit-ratings log in the contract's dtypes, shaped like the public ones: decades long,
    each user rating in a few bursts (a rating a minute or so) months or years apart, busy and quiet
    years, no devices, locales or sessions. Its habits do not change over time, so every gate should
    pass on it; ``items`` are ``clean_items``' ids (genres from there)."""
    rng = np.random.default_rng(seed)
    span = years * 365.25 * 86400
    # busy periods: a third of the users arrive in one of three half-year booms
    booms = rng.uniform(0, span - 0.5 * 365.25 * 86400, 3)
    arrive = np.where(
        rng.random(users) < 0.35,
        booms[rng.integers(0, 3, users)] + rng.uniform(0, 1.6e7, users),
        rng.uniform(0, span * 0.97, users),
    )
    per_user = 20 + np.floor(rng.lognormal(0, 1.1, users) / np.exp(0.6) * (ratings / users - 20)).astype(int)
    hours = np.array([1, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 6, 8, 9, 9, 8, 5, 3], float)
    rows: dict[str, list] = {"u": [], "t": []}
    for u in range(users):
        starts = arrive[u] + np.r_[0.0, np.cumsum(rng.exponential(1.5 * 365.25 * 86400, rng.poisson(0.6)))]
        starts = starts[starts < span * 0.99]
        # a burst starts on the hour, at an hour drawn from one evening-heavy daily rhythm
        starts = np.floor(starts / 86400) * 86400 + rng.choice(24, len(starts), p=hours / hours.sum()) * 3600
        shares = rng.dirichlet(np.r_[4.0, np.full(len(starts) - 1, 0.8)])  # the first burst is the big one
        for s, n in zip(starts, rng.multinomial(per_user[u], shares)):
            offsets = np.r_[0.0, np.cumsum(np.minimum(rng.lognormal(np.log(60), 1.0, max(n - 1, 0)), 3 * 3600))]
            rows["u"].append(np.full(n, u))
            rows["t"].append(s + offsets[:n])
    user, t = np.concatenate(rows["u"]), np.concatenate(rows["t"])
    keep = t < span
    user, t = user[keep], t[keep]
    n = len(user)
    bias = rng.normal(0, 0.5, users)
    stars = np.clip(np.round(3.5 + bias[user] + rng.normal(0, 0.9, n)), 1, 5)
    value = stars / 5
    etype = np.where(stars >= 4, "like", np.where(stars <= 2, "skip", "play"))
    frame = pd.DataFrame(
        {
            "event_id": [f"r-{seed}-{i:07d}" for i in range(n)],
            "schema_version": 1,
            "user_id": [f"u{u:05d}" for u in user],
            "session_id": None,
            "item_id": [f"i{i:06d}" for i in (rng.zipf(1.4, n) - 1) % items],
            "type": etype,
            "timestamp": pd.Timestamp(start) + pd.to_timedelta(np.floor(t), unit="s"),
            "value": np.where(etype == "skip", np.nan, value),
            "device": "unknown",
            "locale": "unknown",
            "consent_personalization": True,
            "consent_analytics": True,
            "arm": None,
        }
    )
    return to_table(frame.sort_values("timestamp", kind="mergesort")).to_pandas()
