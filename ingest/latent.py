"""The hidden "truth" behind synthetic users, and the one response model that turns it into events.

The generator draws a :class:`Latent` world (taste factors, genre preferences, item quality) and
lets users react to what they are shown through :func:`react`. A later simulator loads the same
world with :meth:`Latent.load` and calls :func:`respond`, so both produce behaviour from the same
model and a policy that learns the world well is rewarded in both.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np

from setlist.contract import SKIP_PLAY_FRACTION

GENRES = (
    "pop",
    "rock",
    "hip_hop",
    "electronic",
    "indie",
    "r_and_b",
    "latin",
    "country",
    "jazz",
    "classical",
    "metal",
    "folk",
)
#: global genre shares: a few big genres and a long tail, like real catalogues
GENRE_SHARES = np.array([0.20, 0.14, 0.14, 0.11, 0.08, 0.07, 0.06, 0.05, 0.04, 0.04, 0.04, 0.03])
DIM = 16

# outcome codes of the primary reaction to a shown item
IMPRESSION, PLAY, SKIP = 0, 1, 2
PRIMARY_TYPES = ("impression", "play", "skip")


@dataclass
class Latent:
    """Ground-truth arrays; rows are user or item indices (``user_ids[i]`` names row ``i``)."""

    user_ids: np.ndarray  # (U,) str
    item_ids: np.ndarray  # (I,) str
    genres: np.ndarray  # (G,) str
    user_taste: np.ndarray  # (U, D) float32 low-rank taste
    user_genre_pref: np.ndarray  # (U, G) float32, rows sum to 1
    user_bias: np.ndarray  # (U,) float32: some users engage more than others
    user_activity: np.ndarray  # (U,) float32 relative session rate
    user_device_mix: np.ndarray  # (U, len(DEVICES)) float32, rows sum to 1
    item_vec: np.ndarray  # (I, D) float32
    item_genre: np.ndarray  # (I,) int16 index into genres
    item_bias: np.ndarray  # (I,) float32 quality, correlated with popularity
    item_pop: np.ndarray  # (I,) float64 exposure weight, sums to 1
    item_duration_s: np.ndarray  # (I,) float32
    item_release_s: np.ndarray  # (I,) int64 epoch seconds: nobody is shown a track before it exists
    genre_weight: float = 1.0  # how much genre preference adds to affinity
    affinity_mean: float = 0.0  # raw affinity → z-score, so response thresholds are scale-free
    affinity_std: float = 1.0

    def save(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub takes **kwargs for allow_pickle

    @classmethod
    def load(cls, path: Path) -> Latent:
        with np.load(path, allow_pickle=False) as data:
            kw = {f.name: data[f.name] for f in fields(cls)}
        for name in ("genre_weight", "affinity_mean", "affinity_std"):
            kw[name] = float(kw[name])
        return cls(**kw)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def raw_affinity(latent: Latent, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Row-wise affinity of ``users[k]`` for ``items[k]`` (broadcasts like numpy indexing)."""
    users, items = np.broadcast_arrays(np.asarray(users), np.asarray(items))
    dot = np.einsum("...d,...d->...", latent.user_taste[users], latent.item_vec[items])
    pref = latent.user_genre_pref[users, latent.item_genre[items]]
    # log of preference relative to uniform: disliked genres hurt a lot, loved ones help
    genre = latent.genre_weight * np.log(pref * len(latent.genres) + 1e-3)
    return dot + genre + latent.item_bias[items]


def affinity(latent: Latent, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Standardized affinity plus the user's engagement bias; about N(0, 1) over random pairs."""
    users = np.asarray(users)
    z = (raw_affinity(latent, users, items) - latent.affinity_mean) / latent.affinity_std
    return z + latent.user_bias[np.broadcast_to(users, z.shape)]


class Reactions(NamedTuple):
    """Vectorized reactions to shown items, aligned with the input arrays."""

    primary: np.ndarray  # int8 IMPRESSION | PLAY | SKIP
    fraction: np.ndarray  # float32 listen fraction (NaN unless engaged)
    like: np.ndarray  # bool
    add_to_playlist: np.ndarray  # bool
    not_interested: np.ndarray  # bool


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def react(latent: Latent, users: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> Reactions:
    """How users react to shown items. Everything is monotone in affinity so the signal is
    learnable, and noisy enough that no model gets it all right."""
    z = affinity(latent, users, items)
    n = z.shape[0]
    engaged = rng.random(n) < _sigmoid(1.3 * z - 0.9)
    fraction = _sigmoid(1.4 * z - 1.3 + rng.normal(0.0, 1.2, n)).astype(np.float32)
    fraction = np.where(engaged, fraction, np.float32(np.nan))
    primary = np.full(n, IMPRESSION, np.int8)
    primary[engaged] = PLAY
    primary[engaged & (fraction < SKIP_PLAY_FRACTION)] = SKIP
    played = primary == PLAY
    # explicit feedback only from users who listened most of the track and liked it a lot
    keen = played & (fraction > 0.6)
    like = keen & (rng.random(n) < _sigmoid(1.5 * z - 4.0))
    add = keen & (rng.random(n) < _sigmoid(1.5 * z - 4.6))
    not_interested = (~played) & (rng.random(n) < _sigmoid(-2.0 * z - 4.2))
    return Reactions(primary, fraction, like, add, not_interested)


class Reaction(NamedTuple):
    item_index: int
    type: str
    value: float | None


def respond(latent: Latent, user_index: int, item_indices: np.ndarray, rng: np.random.Generator) -> list[Reaction]:
    """One user's reactions to a slate, in the order they would be logged: per item its primary
    event (impression, play with a listen fraction, skip), then like / add_to_playlist /
    not_interested when they happen."""
    items = np.asarray(item_indices, dtype=np.int64)
    r = react(latent, np.full(len(items), user_index), items, rng)
    out: list[Reaction] = []
    for k, item in enumerate(items.tolist()):
        kind = PRIMARY_TYPES[r.primary[k]]
        out.append(Reaction(item, kind, float(r.fraction[k]) if kind == "play" else None))
        if r.like[k]:
            out.append(Reaction(item, "like", 1.0))
        if r.add_to_playlist[k]:
            out.append(Reaction(item, "add_to_playlist", None))
        if r.not_interested[k]:
            out.append(Reaction(item, "not_interested", None))
    return out


def calibrate(latent: Latent, rng: np.random.Generator, pairs: int = 20_000) -> None:
    """Set the z-score constants from random user-item pairs (in place)."""
    users = rng.integers(0, latent.n_users, pairs)
    items = rng.integers(0, latent.n_items, pairs)
    raw = raw_affinity(latent, users, items)
    latent.affinity_mean = float(raw.mean())
    latent.affinity_std = float(raw.std() + 1e-9)
