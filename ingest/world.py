"""The synthetic catalogue and user base: who exists, what they like, what the tracks are.

Everything here is static over the event window (tastes are stable, so time-based train/test
splits measure generalization rather than drift). :mod:`ingest.generate` turns it into events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingest.latent import DIM, GENRE_SHARES, GENRES, Latent, calibrate
from setlist.contract import DEVICES

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "pt_BR", "ja_JP")
LOCALE_SHARES = np.array([0.40, 0.12, 0.14, 0.10, 0.14, 0.10])
#: UTC offset (hours) used to give each locale a believable local day rhythm
LOCALE_UTC_OFFSET_H = np.array([-5, 0, 1, 1, -3, 9])
#: the genre each locale over-indexes on, so locale is a weak but real feature
LOCALE_TILT = ("country", "indie", "electronic", "hip_hop", "latin", "jazz")
DEVICE_SHARES = np.array([0.55, 0.20, 0.08, 0.07, 0.10])
assert len(DEVICE_SHARES) == len(DEVICES)

DAY_S = 86_400
YEAR_S = 365 * DAY_S
COLD_SHARE = 0.04  # users with one tiny session right before the end: cold start
NEW_USER_SHARE = 0.10  # users who sign up during the window
NEW_ITEM_SHARE = 0.06  # tracks released during the window
OPT_OUT_PERSONALIZATION = 0.05
OPT_OUT_ANALYTICS = 0.10


@dataclass
class World:
    users: pd.DataFrame
    items: pd.DataFrame
    latent: Latent
    user_locale: np.ndarray  # (U,) int index into LOCALES
    user_signup_s: np.ndarray  # (U,) int64 epoch seconds
    cold: np.ndarray  # (U,) bool


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(n)))
    return np.array([f"{prefix}_{k:0{width}d}" for k in range(1, n + 1)], dtype=object)


def _dirichlet_rows(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Dirichlet with a different concentration per row (numpy's takes one alpha)."""
    g = rng.gamma(np.maximum(alpha, 1e-3))
    return g / g.sum(axis=1, keepdims=True)


def _items(rng: np.random.Generator, n_items: int, start_s: int, end_s: int, centers: np.ndarray):
    g = len(GENRES)
    n_artists = max(20, n_items // 8)
    artist_genre = rng.choice(g, n_artists, p=GENRE_SHARES)
    # Zipf over artists times a heavy-tailed per-track factor: a long-tailed catalogue
    artist_pop = (rng.permutation(n_artists) + 1.0) ** -0.9
    catalog = rng.lognormal(0.0, 0.7, n_artists)
    item_artist = rng.choice(n_artists, n_items, p=catalog / catalog.sum())
    item_genre = artist_genre[item_artist].copy()
    crossover = rng.random(n_items) < 0.10
    item_genre[crossover] = rng.choice(g, int(crossover.sum()), p=GENRE_SHARES)

    scale = 1.0 / np.sqrt(DIM)
    artist_vec = 0.9 * centers[artist_genre] + rng.normal(0.0, 0.6 * scale, (n_artists, DIM))
    item_vec = (
        artist_vec[item_artist]
        + 0.5 * (centers[item_genre] - centers[artist_genre][item_artist])
        + rng.normal(0.0, 0.35 * scale, (n_items, DIM))
    )
    pop = artist_pop[item_artist] * rng.lognormal(0.0, 1.0, n_items)
    pop /= pop.sum()
    logp = np.log(pop)
    # popular tracks are better on average, so popularity is a fair (but beatable) baseline
    bias = 0.35 * (logp - logp.mean()) / logp.std() + rng.normal(0.0, 0.4, n_items)
    duration = np.clip(rng.lognormal(np.log(210.0), 0.25, n_items), 45, 900).round(1)

    released = start_s - rng.exponential(3 * YEAR_S, n_items)
    released = np.maximum(released, end_s - 40 * YEAR_S)
    new = rng.random(n_items) < NEW_ITEM_SHARE
    released[new] = rng.uniform(start_s, end_s - 2 * DAY_S, int(new.sum()))
    released = (released // DAY_S * DAY_S).astype(np.int64)  # releases land at midnight

    frame = pd.DataFrame(
        {
            "item_id": _ids("track", n_items),
            "artist": np.array([f"artist_{a:05d}" for a in range(n_artists)], dtype=object)[item_artist],
            "genre": np.array(GENRES, dtype=object)[item_genre],
            "duration_s": duration.astype(np.float32),
            "release_date": pd.to_datetime(released, unit="s", utc=True),
            "genres": np.array(GENRES, dtype=object)[item_genre],
            "title": None,  # the generated world names no tracks: searches match genres and artists
        }
    )
    arrays = dict(
        item_vec=item_vec.astype(np.float32),
        item_genre=item_genre.astype(np.int16),
        item_bias=bias.astype(np.float32),
        item_pop=pop,
        item_duration_s=duration.astype(np.float32),
        item_release_s=released,
    )
    return frame, arrays


def build_world(rng: np.random.Generator, n_users: int, n_items: int, start_s: int, end_s: int) -> World:
    g = len(GENRES)
    centers = rng.normal(0.0, 1.0 / np.sqrt(DIM), (g, DIM))
    items, item_arrays = _items(rng, n_items, start_s, end_s, centers)

    locale = rng.choice(len(LOCALES), n_users, p=LOCALE_SHARES)
    tilt = np.tile(GENRE_SHARES, (len(LOCALES), 1))
    tilt[np.arange(len(LOCALES)), [GENRES.index(t) for t in LOCALE_TILT]] *= 2.5
    tilt /= tilt.sum(axis=1, keepdims=True)
    base = tilt[locale]
    # small concentration: most users love two or three genres and ignore the rest
    pref = 0.85 * _dirichlet_rows(rng, 0.35 * g * base) + 0.15 * base
    taste = 3.0 * (pref @ centers + rng.normal(0.0, 1.0 / np.sqrt(DIM), (n_users, DIM)))

    primary = rng.choice(len(DEVICES), n_users, p=DEVICE_SHARES)
    mix = 0.3 * rng.dirichlet(np.full(len(DEVICES), 0.5), n_users)
    mix[np.arange(n_users), primary] += 0.7

    # signup: most long before the window, some during it, cold-start users in the last week
    kind = rng.random(n_users)
    cold = kind < COLD_SHARE
    fresh = (kind >= COLD_SHARE) & (kind < COLD_SHARE + NEW_USER_SHARE)
    signup = start_s - rng.exponential(YEAR_S, n_users)
    signup[fresh] = rng.uniform(start_s, end_s - DAY_S, int(fresh.sum()))
    signup[cold] = rng.uniform(end_s - 7 * DAY_S, end_s - 3600, int(cold.sum()))
    signup = signup.astype(np.int64)
    activity = rng.lognormal(-0.5, 1.0, n_users)  # mean 1: a few heavy users, many light ones

    user_ids = _ids("user", n_users)
    users = pd.DataFrame(
        {
            "user_id": user_ids,
            "locale": np.array(LOCALES, dtype=object)[locale],
            "device": np.array(DEVICES, dtype=object)[primary],
            "signup_time": pd.to_datetime(signup, unit="s", utc=True),
            "consent_personalization": rng.random(n_users) >= OPT_OUT_PERSONALIZATION,
            "consent_analytics": rng.random(n_users) >= OPT_OUT_ANALYTICS,
        }
    )
    latent = Latent(
        user_ids=user_ids.astype(str),
        item_ids=items["item_id"].to_numpy().astype(str),
        genres=np.array(GENRES),
        user_taste=taste.astype(np.float32),
        user_genre_pref=pref.astype(np.float32),
        user_bias=rng.normal(0.0, 0.35, n_users).astype(np.float32),
        user_activity=activity.astype(np.float32),
        user_device_mix=mix.astype(np.float32),
        **item_arrays,
    )
    calibrate(latent, rng)
    return World(users, items, latent, locale, signup, cold)
