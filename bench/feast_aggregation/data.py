"""Event logs for the comparison: the real-shaped fixture and synthetic logs of a given size.

Every log is one parquet file with the columns both engines read: ``user_id``, ``item_id``,
``event_timestamp`` (UTC, ns), ``type`` (play/like/skip), ``value`` (listen fraction; NaN for skips)
and ``event_id`` (only our builder's ``prepare`` needs it, for a stable order).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.import_values import LIKE_FROM, SKIP_UP_TO

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var" / "feast_aggregation"
GENRES = np.array(["rock", "pop", "jazz", "electronic", "classical", "hiphop", "folk", "metal"], dtype=object)

#: size name → number of events of a synthetic log (the fixture has its own)
SIZES: dict[str, int | None] = {"fixture": None, "1m": 1_000_000, "3m": 3_000_000}


def events_path(size: str) -> Path:
    return VAR / "data" / f"events_{size}.parquet"


def items_path(size: str) -> Path:
    return VAR / "data" / f"items_{size}.parquet"


def _fixture_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    """ratings.csv → events with the importer's rating → type rule (like ≥ 0.8, skip ≤ 0.4 of the top)."""
    out = VAR / "fixture"
    if not (out / "ratings.csv").exists():
        subprocess.run([sys.executable, "-m", "ingest", "fixture", "--out", str(out)], check=True, cwd=ROOT)
    r = pd.read_csv(out / "ratings.csv", dtype={"userId": str, "movieId": str})
    norm = (r["rating"] / r["rating"].max()).to_numpy()
    types = np.select([norm >= LIKE_FROM - 1e-9, norm <= SKIP_UP_TO + 1e-9], ["like", "skip"], "play").astype(object)
    events = pd.DataFrame(
        {
            "user_id": "u" + r["userId"],
            "item_id": "i" + r["movieId"],
            "event_timestamp": pd.to_datetime(r["timestamp"], unit="s", utc=True).dt.as_unit("ns"),
            "type": types,
            "value": np.where(types == "skip", np.nan, norm),
        }
    )
    movies = pd.read_csv(out / "movies.csv", dtype={"movieId": str})
    year = pd.to_numeric(movies["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    items = pd.DataFrame(
        {
            "item_id": "i" + movies["movieId"],
            "genre": movies["genres"].str.split("|").str[0],
            "release_date": pd.to_datetime(year.astype("Int64").astype(str) + "-01-01", errors="coerce", utc=True),
            "duration_s": 200.0,
        }
    )
    return events, items


def _synthetic_events(n: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` events over two years: 70% plays, 20% skips, 10% likes; about 30 events per user and
    100 per item (the bench generator's proportions), with log-normal activity and popularity.
    (A Zipf law put a quarter of all events on one user: a skew no real log has, and one that
    turns every per-entity join into a cross product.)"""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(n // 30, 10), max(n // 100, 10)
    activity, popularity = rng.lognormal(0, 1.0, n_users), rng.lognormal(0, 1.5, n_items)
    users = rng.choice(n_users, n, p=activity / activity.sum())
    items = rng.choice(n_items, n, p=popularity / popularity.sum())
    start = pd.Timestamp("2024-01-01", tz="UTC").value
    ts = start + rng.integers(0, 730 * 86_400, n) * 10**9
    types = rng.choice(np.array(["play", "skip", "like"], dtype=object), n, p=[0.7, 0.2, 0.1])
    value = np.where(types == "skip", np.nan, rng.uniform(0.0, 1.0, n))
    events = pd.DataFrame(
        {
            "user_id": np.char.add("u", users.astype(str)).astype(object),
            "item_id": np.char.add("i", items.astype(str)).astype(object),
            "event_timestamp": pd.to_datetime(ts, utc=True),
            "type": types,
            "value": value,
        }
    )
    catalog = pd.DataFrame(
        {
            "item_id": np.char.add("i", np.arange(n_items).astype(str)).astype(object),
            "genre": GENRES[rng.integers(0, len(GENRES), n_items)],
            "release_date": pd.to_datetime(start - rng.integers(0, 3650, n_items) * 86_400 * 10**9, utc=True),
            "duration_s": rng.uniform(120, 400, n_items),
        }
    )
    return events, catalog


def ensure(size: str) -> tuple[Path, Path]:
    """Write the size's events and items once; later runs reuse them."""
    ev_path, it_path = events_path(size), items_path(size)
    if ev_path.exists() and it_path.exists():
        return ev_path, it_path
    n = SIZES[size]
    events, items = _fixture_events() if n is None else _synthetic_events(n)
    events = events.sort_values("event_timestamp", kind="mergesort").reset_index(drop=True)
    events["event_id"] = [f"e{i:09d}" for i in range(len(events))]
    ev_path.parent.mkdir(parents=True, exist_ok=True)
    events.to_parquet(ev_path, index=False)
    items.to_parquet(it_path, index=False)
    return ev_path, it_path


def entity_rows(events: pd.DataFrame, n: int, seed: int = 11) -> pd.DataFrame:
    """``n`` label rows (user_id, item_id, event_timestamp): a sampled event's user and item, at a
    time between that event and three days later (labels follow activity, rarely at a midnight)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(events), n)
    offset = pd.to_timedelta(rng.integers(0, 3 * 86_400, n), unit="s")
    stamp = events["event_timestamp"].iloc[pick].reset_index(drop=True) + pd.Series(offset)
    return pd.DataFrame(
        {
            "user_id": events["user_id"].to_numpy()[pick],
            "item_id": events["item_id"].to_numpy()[pick],
            "event_timestamp": stamp,
        }
    )
