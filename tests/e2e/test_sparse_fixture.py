"""The MovieLens-shaped fixture: its shape, its determinism, its signal, and that the importer takes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.importer import load_interactions
from ingest.sparse import GENRES, NO_GENRES, Fixture, make_fixture, write_fixture

YEAR_S = 365.2425 * 86_400
SMALL = dict(users=40, items=200, ratings=2_000)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Fixture]:
    out = tmp_path_factory.mktemp("fixture")
    return out, write_fixture(out, seed=7)  # the default size, as CI uses it


@pytest.fixture(scope="module")
def ratings(written: tuple[Path, Fixture]) -> pd.DataFrame:
    return pd.read_csv(written[0] / "ratings.csv")


@pytest.fixture(scope="module")
def movies(written: tuple[Path, Fixture]) -> pd.DataFrame:
    return pd.read_csv(written[0] / "movies.csv", dtype=str, keep_default_na=False)


def test_files_have_the_public_columns_and_nothing_else(ratings, movies):
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert list(movies.columns) == ["movieId", "title", "genres"]
    cols = {c.lower() for c in [*ratings.columns, *movies.columns]}
    assert not cols & {"device", "locale", "session", "session_id", "sessionid"}
    assert pd.api.types.is_integer_dtype(ratings["timestamp"])
    assert len(ratings) == 25_000 and ratings["userId"].nunique() == 300
    assert not ratings.duplicated(["userId", "movieId"]).any()


def test_ratings_are_half_stars_from_half_to_five(ratings):
    r = ratings["rating"]
    assert r.between(0.5, 5.0).all() and (r * 2 == np.round(r * 2)).all()
    assert set(r.unique()) == set(np.arange(1, 11) / 2)
    assert 3.0 < r.mean() < 4.0 and 0.7 < r.std() < 1.3


def test_span_is_over_twenty_years_with_users_arriving_throughout(ratings):
    ts = ratings["timestamp"]
    assert (ts.max() - ts.min()) / YEAR_S > 20
    first_year = pd.to_datetime(ratings.groupby("userId")["timestamp"].min(), unit="s").dt.year
    assert first_year.nunique() >= 15 and first_year.min() < 2000 and first_year.max() > 2014


def test_movies_have_pipe_separated_genres_and_a_year(movies, ratings):
    lists = movies["genres"].str.split("|")
    assert all(g == [NO_GENRES] or (set(g) <= set(GENRES) and g == sorted(g)) for g in lists)
    assert (lists.str.len() > 1).mean() > 0.3 and (movies["genres"] == NO_GENRES).any()
    assert movies["title"].str.contains(", The (", regex=False).any()  # needs CSV quoting
    year = movies["title"].str.extract(r"\((\d{4})\)$")[0].astype(int)
    assert year.notna().all() and year.min() < 1980
    # every rated film is listed, and nobody rates a film before the year it came out
    released = ratings["movieId"].astype(str).map(dict(zip(movies["movieId"], year)))
    assert released.notna().all()
    assert (pd.to_datetime(ratings["timestamp"], unit="s").dt.year >= released).all()


def test_users_rate_in_bursts_and_activity_is_long_tailed(ratings):
    g = ratings.sort_values(["userId", "timestamp"]).groupby("userId")["timestamp"]
    per_user = pd.DataFrame(
        {"gap": g.diff().groupby(ratings["userId"]).median(), "span": g.max() - g.min(), "n": g.size()}
    )
    spread = per_user[per_user["span"] > 30 * 86_400]
    assert len(spread) > 50  # many users come back months or years later ...
    assert (spread["gap"] < 0.001 * spread["span"]).mean() > 0.9  # ... but rate in short bursts
    assert per_user["n"].min() >= 20 and per_user["n"].max() > 4 * per_user["n"].median()
    pop = ratings["movieId"].value_counts()
    assert pop.iloc[: len(pop) // 10].sum() > 0.35 * len(ratings) and (pop == 1).any()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = write_fixture(tmp_path / "a", seed=3, **SMALL)
    write_fixture(tmp_path / "b", seed=3, **SMALL)
    for name in ("ratings.csv", "movies.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    c = make_fixture(seed=4, **SMALL)
    assert not a.ratings.equals(c.ratings) and len(c.ratings) == len(a.ratings) == 2_000


def test_taste_beats_popularity(ratings):
    """A linear item-item model (EASE) fitted on each user's earlier ratings finds clearly more of
    their later ones than popularity does: there is personal signal to learn."""
    r = ratings.sort_values(["userId", "timestamp"])
    late = r.groupby("userId").cumcount() >= 0.8 * r.groupby("userId")["userId"].transform("size")
    users, items = pd.factorize(r["userId"])[0], pd.factorize(r["movieId"])[0]
    X = np.zeros((users.max() + 1, items.max() + 1))
    X[users[~late.to_numpy()], items[~late.to_numpy()]] = 1
    inv = np.linalg.inv(X.T @ X + 50 * np.eye(X.shape[1]))
    ease = -inv / np.diag(inv)
    np.fill_diagonal(ease, 0)

    def recall(score: np.ndarray) -> float:
        top = np.argsort(-np.where(X > 0, -np.inf, score), axis=1)[:, :10]
        held = pd.Series(items[late.to_numpy()]).groupby(users[late.to_numpy()]).agg(set)
        return float(np.mean([len(s & set(top[u])) / min(10, len(s)) for u, s in held.items()]))

    assert recall(X @ ease) > 1.3 * recall(np.broadcast_to(X.sum(0), X.shape))  # 1.45–1.66 over seeds 1–6


def test_the_importer_accepts_every_row(written):
    out, fx = written
    events, items, summary = load_interactions(
        out / "ratings.csv",
        user_col="userId",
        item_col="movieId",
        time_col="timestamp",
        time_unit="s",
        rating_col="rating",
        items=out / "movies.csv",
        item_id_col="movieId",
    )
    assert len(events) == summary.rows == len(fx.ratings)
    assert not any(summary.problems.values()), summary.problems
    assert events["timestamp"].notna().all() and events["type"].notna().all()
    assert {"like", "play", "skip"} <= set(summary.type_counts)
    assert summary.catalog_rows == len(fx.movies) and summary.items_without_metadata == 0
    assert len(items) == len(fx.movies) and (items["genre"] != "unknown").mean() > 0.95


def test_cli_writes_files_and_prints_the_import_line(tmp_path, monkeypatch):
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "fx"
    res = CliRunner().invoke(
        app, ["fixture", "--out", str(out), "--users", "40", "--items", "200", "--ratings", "2000", "--seed", "1"]
    )
    assert res.exit_code == 0, res.output
    assert (out / "ratings.csv").is_file() and (out / "movies.csv").is_file()
    # a profile per user, keyed as the ratings are, and imported beside them
    users = pd.read_csv(out / "users.csv")
    assert set(users["userId"]) == set(pd.read_csv(out / "ratings.csv")["userId"])
    assert (
        f"make import SOURCE={out}/ratings.csv IMPORT_ARGS='--user-col userId --item-col movieId "
        f"--time-col timestamp --time-unit s --rating-col rating --items {out}/movies.csv "
        f"--item-id-col movieId --users {out}/users.csv'"
    ) in res.output
    assert "2,000 ratings" in res.output


def test_generate_points_the_sparse_scale_to_the_fixture_command(tmp_path, monkeypatch):
    from ingest.__main__ import app

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SETLIST_SCALE", "sparse")
    res = CliRunner().invoke(app, ["generate"])
    assert res.exit_code == 2 and "python -m ingest fixture --out DIR" in res.output
    assert not (tmp_path / "data").exists()
