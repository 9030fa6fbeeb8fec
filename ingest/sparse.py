"""A ratings log in the shape of a public explicit-ratings dataset (MovieLens "latest-small").

The project never commits third-party data, yet the pipeline must be tried on something that looks
like what users bring: decades of sparse explicit ratings given in bursts, with no device, locale
or session. This writes such files from a seed, with taste that a personalized model can learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# how often public catalogues tag a film with each genre: Drama and Comedy dominate, Film-Noir is rare
_GENRE_FREQ = np.array([18, 13, 6, 7, 39, 13, 4, 45, 8, 1, 10, 2, 3, 6, 17, 10, 20, 4, 2], float)
NO_GENRES = "(no genres listed)"
START = 828_057_600  # 1996-03-29T00:00:00Z, when the public logs begin
HALF_STARS_FROM = 1_045_526_400  # 2003-02-18: before it the public site offered whole stars only
YEAR_S, DAY_S = 365.2425 * 86_400, 86_400
MIN_PER_USER = 20  # the public datasets keep only users with at least 20 ratings
_K = 8  # latent factors beyond genre
_WORDS = (
    "Night",
    "River",
    "Summer",
    "Ghost",
    "City",
    "Last",
    "Blue",
    "Iron",
    "Secret",
    "Long",
    "Dark",
    "Little",
    "Silent",
    "Golden",
    "Wild",
    "Lost",
    "Broken",
    "Red",
    "Winter",
    "Star",
    "House",
    "Road",
    "Heart",
    "King",
    "Game",
    "Dream",
    "Fire",
    "Garden",
    "Stranger",
    "Machine",
    "Island",
)


@dataclass(frozen=True)
class Fixture:
    ratings: pd.DataFrame  # userId, movieId, rating, timestamp
    movies: pd.DataFrame  # movieId, title, genres
    users: pd.DataFrame  # userId, age, country: a profile per user, for ``--users``


def _titles(rng: np.random.Generator, year: np.ndarray) -> list[str]:
    out = []
    for y in year:
        words = " ".join(rng.choice(_WORDS, size=int(rng.integers(1, 4)), replace=False))
        if rng.random() < 0.15:  # the public files move a leading article to the end, with a comma
            words += ", The"  # ... so titles need CSV quoting, which an importer must survive
        elif rng.random() < 0.05:
            words += f" {int(rng.integers(2, 5))}"
        out.append(f"{words} ({y})")
    return out


def _genres(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    """Membership matrix and pipe-joined names. Names are alphabetical as in the public files, so the
    first listed genre is not the film's main one."""
    count = np.clip(1 + rng.poisson(1.1, n), 1, 5)
    keys = np.log(_GENRE_FREQ / _GENRE_FREQ.sum()) + rng.gumbel(size=(n, len(GENRES)))  # weighted draw
    member = np.argsort(np.argsort(-keys, axis=1), axis=1) < count[:, None]  # without replacement
    member[rng.random(n) < 0.01] = False
    names = ["|".join(g for g, m in zip(GENRES, row) if m) or NO_GENRES for row in member]
    return member, names


def _burst_offsets(rng: np.random.Generator, n: int) -> np.ndarray:
    # one rating every minute or so, sometimes a pause: a burst lasts minutes to hours
    gaps = np.minimum(rng.lognormal(np.log(60), 1.3, max(n - 1, 0)), 6 * 3600)
    return np.concatenate([[0.0], np.cumsum(gaps)])


def _activity(rng: np.random.Generator, users: int, ratings: int, cap: int) -> np.ndarray:
    """Ratings per user: at least MIN_PER_USER, long-tailed above it, at most ``cap``; they sum to
    ``ratings`` unless the cap forbids it."""
    weight = rng.lognormal(0, 1.1, users)
    n = np.full(users, MIN_PER_USER)
    for _ in range(4):  # those who hit the cap leave what they cannot take to the others
        room, left = n < cap, ratings - n.sum()
        if left <= 0 or not room.any():
            break
        n = np.minimum(n + np.floor(left * weight * room / (weight * room).sum()).astype(int), cap)
    spare = np.flatnonzero(n < cap)
    n[rng.choice(spare, min(max(ratings - n.sum(), 0), len(spare)), replace=False)] += 1  # flooring's leftovers
    return n


def make_fixture(
    users: int = 300, items: int = 1_500, ratings: int = 25_000, seed: int = 7, years: float = 22.0
) -> Fixture:
    """Same arguments give the same frames. ``items`` is the catalogue drawn from; like the public
    files, movies.csv keeps the films rated at least once, so it may hold a few fewer."""
    if users < 1 or items < 50 or years <= 1 or ratings < MIN_PER_USER * users:
        raise ValueError(f"need users ≥ 1, items ≥ 50, years > 1 and ratings ≥ {MIN_PER_USER} × users")
    rng = np.random.default_rng(seed)
    end = START + years * YEAR_S
    y0, y1 = 1996, int(np.datetime64(int(end), "s").astype("datetime64[Y]").astype(int)) + 1970

    # items: half are back catalogue when the log opens, half come out during it (and wait for release)
    back = rng.random(items) < 0.5
    year = np.where(
        back, y0 - np.minimum(rng.exponential(14, items), y0 - 1915).astype(int), rng.integers(y0, y1 + 1, items)
    )
    released = (year - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64) + rng.uniform(
        0, YEAR_S, items
    )
    member, genre_names = _genres(rng, items)
    m = member / np.sqrt(np.maximum(member.sum(1, keepdims=True), 1))
    logpop = rng.normal(0, 1.7, items)  # long-tailed popularity
    quality = 0.15 * logpop + rng.normal(0, 0.35, items)  # popular films are rated a bit higher
    factors = rng.normal(0, 1 / np.sqrt(_K), (items, _K))

    # users: genre tastes and latent tastes; a rating bias and a rating scale of their own
    taste_g, taste_f = rng.normal(0, 1, (users, len(GENRES))), rng.normal(0, 1, (users, _K))
    bias, spread = rng.normal(0, 0.45, users), rng.lognormal(0, 0.25, users)
    halves = rng.random(users) < 0.75  # some people only ever give whole stars
    # even the keenest rate under a third of a catalogue (the public maximum is about 28%)
    n_user = _activity(rng, users, ratings, cap=max(MIN_PER_USER, int(0.3 * items)))
    arrive = rng.uniform(START, end - 60 * DAY_S, users)

    cols: dict[str, list[np.ndarray]] = {"u": [], "i": [], "t": [], "r": []}
    for u in range(users):
        affinity = 0.8 * (m @ taste_g[u]) + 0.6 * (factors @ taste_f[u])  # ~ unit variance
        # a heavy user comes back more often; gaps between bursts are months to years
        n_bursts = 1 + rng.poisson(0.4 + 0.5 * np.log(n_user[u] / MIN_PER_USER))
        starts = arrive[u] + np.concatenate(
            [[0.0], np.cumsum(rng.exponential(1.5 * YEAR_S, n_bursts - 1) + 14 * DAY_S)]
        )
        starts = starts[starts < end - DAY_S]
        share = rng.dirichlet(np.r_[4.0, np.full(len(starts) - 1, 0.8)])  # the first burst is the big one
        rated, owed = np.zeros(items, bool), 0
        for s, n in zip(starts, rng.multinomial(n_user[u], share)):
            n += owed  # ratings an earlier burst could not give (too few films out yet) come later
            offsets = _burst_offsets(rng, n)
            s = max(min(s, end - offsets[-1] - 1), START)
            open_ = (released < s) & ~rated
            n, owed = min(n, int(open_.sum())), max(n - int(open_.sum()), 0)
            if n == 0:
                continue
            # which films: popularity × taste, with a lift for what came out recently
            fresh = np.exp(-np.maximum(s - released, 0) / (1.5 * YEAR_S))
            keys = logpop + 2.0 * affinity + 1.5 * fresh + rng.gumbel(size=items)
            keys[~open_] = -np.inf
            pick = rng.permutation(np.argpartition(-keys, n - 1)[:n])
            rated[pick] = True
            t = np.floor(s + offsets[:n]).astype(np.int64)
            # the value: overall level + own bias + film quality + taste, plus noise
            r = 2.65 + bias[u] + quality[pick] + 0.6 * spread[u] * affinity[pick] + rng.normal(0, 0.7, n)
            half = halves[u] & (t >= HALF_STARS_FROM)
            r = np.where(half, np.clip(np.round(2 * r) / 2, 0.5, 5.0), np.clip(np.round(r), 1.0, 5.0))
            for k, v in zip("uitr", (np.full(n, u), pick, t, r)):
                cols[k].append(v)

    flat = {k: np.concatenate(v) for k, v in cols.items()}
    # ids as in the public files: users numbered from 1 in no particular order, film ids with gaps
    user_id = rng.permutation(users) + 1
    movie_id = np.sort(rng.choice(items * 20, items, replace=False)) + 1
    titles = _titles(rng, year)
    frame = pd.DataFrame(
        {
            "userId": user_id[flat["u"]],
            "movieId": movie_id[flat["i"]],
            "rating": flat["r"].astype(float),
            "timestamp": flat["t"],
        }
    )
    frame = frame.sort_values(["userId", "movieId"], kind="mergesort").reset_index(drop=True)
    seen = np.unique(flat["i"])
    movies = pd.DataFrame(
        {"movieId": movie_id[seen], "title": [titles[i] for i in seen], "genres": [genre_names[i] for i in seen]}
    )
    return Fixture(ratings=frame, movies=movies, users=_profiles(seed, user_id, taste_g))


#: the countries of the profiles, written by name as web forms export them; one per favourite genre
_COUNTRIES = ("United States", "United Kingdom", "Germany", "Brazil", "Japan", "France")


def _profiles(seed: int, user_id: np.ndarray, taste_g: np.ndarray) -> pd.DataFrame:
    """A profile per user whose country follows their favourite genre (so that countries differ in
    what they rate, as markets do), a tenth elsewhere and one in twenty blank; drawn apart from the
    ratings' stream, which stays as it was."""
    rng = np.random.default_rng(seed + 1)
    n = len(user_id)
    country = np.array(_COUNTRIES, dtype=object)[taste_g.argmax(axis=1) % len(_COUNTRIES)]
    moved = rng.random(n) < 0.1
    country[moved] = rng.choice(np.array(_COUNTRIES, dtype=object), int(moved.sum()))
    country[rng.random(n) < 0.05] = ""
    users = pd.DataFrame({"userId": user_id, "age": rng.integers(16, 70, n), "country": country})
    return users.sort_values("userId", ignore_index=True)


def write_fixture(
    out: Path, users: int = 300, items: int = 1_500, ratings: int = 25_000, seed: int = 7, years: float = 22.0
) -> Fixture:
    """Write ``out/ratings.csv`` and ``out/movies.csv`` as the public files lay them out, and
    ``out/users.csv``, a profile per user (its country) to import with ``--users``."""
    fixture = make_fixture(users=users, items=items, ratings=ratings, seed=seed, years=years)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fixture.ratings.to_csv(out / "ratings.csv", index=False, float_format="%.1f")
    fixture.movies.to_csv(out / "movies.csv", index=False)
    fixture.users.to_csv(out / "users.csv", index=False)
    return fixture
