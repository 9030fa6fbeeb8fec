"""Synthetic users who react to what serving shows them, following the generator's hidden tastes.

Each simulated user asks for a slate (Rank), reacts to it with :func:`ingest.latent.respond` — the
same response model that generated the training data — and reports the reactions (Track), a few
times in a row, so session features move as they would. A ranking that learned the world well
gets more plays and fewer skips, which is what an experiment should then measure.

It drives anything with ``rank``/``track``: the in-process server (serving.bootstrap.Server) or a
real one through :class:`ClientRanking`.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ingest.latent import Latent, respond
from serving.types import RankQuery, TrackEvent, TrackResult
from setlist.contract import DEVICES
from setlist.settings import Settings


class Ranking(Protocol):
    def rank(self, query: RankQuery): ...

    def track(self, events: list[TrackEvent]) -> TrackResult: ...


@dataclass(frozen=True)
class SimUser:
    user_id: str  # the application's id (the server pseudonymizes it)
    index: int  # row in the latent arrays
    locale: str = "unknown"
    consent: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SimConfig:
    users: int = 300
    sessions: int = 3  # Rank → react → Track rounds per user
    k: int = 10
    seed: int = 11
    # concurrent users. 1 for the local profile: its SQLite online store shares one connection
    # between threads, and concurrent Track pushes then fail (events stay durable; sessions lag)
    threads: int = 1


@dataclass
class SimStats:
    ranks: int = 0
    events: int = 0
    rejected: int = 0
    arms: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, other: SimStats) -> None:
        self.ranks += other.ranks
        self.events += other.events
        self.rejected += other.rejected
        self.arms.update(other.arms)


def load_latent(settings: Settings) -> Latent:
    path = settings.data_dir / "generated" / "latent.npz"
    if not path.exists():
        raise FileNotFoundError(
            f"no generated world at {path}: the simulator needs the generator's "
            "latent tastes (run `make generate`; imported data has none)"
        )
    return Latent.load(path)


def population(latent: Latent, n: int, seed: int, users: pd.DataFrame | None = None) -> list[SimUser]:
    """``n`` distinct users of the generated world, with locale and consent when known."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(latent.n_users, size=min(n, latent.n_users), replace=False)
    info = users.set_index("user_id") if users is not None else None
    out = []
    for r in rows.tolist():
        uid = str(latent.user_ids[r])
        locale, consent = "unknown", {}
        if info is not None and uid in info.index:
            row = info.loc[uid]
            locale = str(row["locale"])
            # Track pushes these flags to the online store: an opted-out user must stay opted out
            consent = {k: str(bool(row[k])).lower() for k in ("consent_personalization", "consent_analytics")}
        out.append(SimUser(uid, int(r), locale, consent))
    return out


def users_frame(settings: Settings) -> pd.DataFrame | None:
    path = settings.data_dir / "generated" / "users.parquet"
    return pd.read_parquet(path) if path.exists() else None


class Simulator:
    def __init__(
        self, ranking: Ranking, latent: Latent, config: SimConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.ranking, self.latent, self.config, self.clock = ranking, latent, config, clock
        self._items = {str(i): n for n, i in enumerate(latent.item_ids)}

    def run(self, users: Sequence[SimUser], between: Callable[[], None] | None = None, batch: int = 50) -> SimStats:
        """Simulate every user; ``between`` runs after each batch (a canary check, for instance)."""
        total = SimStats()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, self.config.threads), thread_name_prefix="sim") as pool:
            for start in range(0, len(users), batch):
                for stats in pool.map(self.run_user, users[start : start + batch]):
                    total.add(stats)
                if between is not None:
                    between()
        total.seconds = time.perf_counter() - started
        return total

    def run_user(self, user: SimUser) -> SimStats:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, user.index])  # per user: the same run whatever the threads
        stats = SimStats()
        mix = self.latent.user_device_mix[user.index].astype(np.float64)
        session = f"sim-{uuid.uuid4().hex[:12]}"
        device = DEVICES[int(rng.choice(len(DEVICES), p=mix / mix.sum()))]
        ctx = {"device": device, "locale": user.locale}
        for _ in range(cfg.sessions):
            reply = self.ranking.rank(RankQuery(user.user_id, cfg.k, dict(ctx)))
            stats.ranks += 1
            stats.arms[reply.arm] += 1
            shown = [self._items[i.item_id] for i in reply.items if i.item_id in self._items]
            if not shown:
                continue
            now_ms = int(self.clock() * 1000)
            events = [
                TrackEvent(
                    uuid.uuid4().hex,
                    user.user_id,
                    str(self.latent.item_ids[r.item_index]),
                    r.type,
                    now_ms + 1 + n,
                    session,
                    {**ctx, **user.consent},
                    r.value,
                )
                for n, r in enumerate(respond(self.latent, user.index, np.asarray(shown), rng))
            ]
            result = self.ranking.track(events)
            stats.events += result.accepted
            stats.rejected += len(result.rejected)
        return stats


class ClientRanking:
    """A real server through serving.client, with the in-process interface."""

    def __init__(self, target: str, token: str | None = None, timeout: float = 10.0) -> None:
        from serving.client import SetlistClient

        self.client = SetlistClient(target, token=token, timeout=timeout)

    def rank(self, query: RankQuery):
        return self.client.rank(query.user_id, query.k, query.context, query.exclude_item_ids)

    def track(self, events: list[TrackEvent]) -> TrackResult:
        accepted, rejected = self.client.track(events)
        return TrackResult(accepted, rejected)

    def close(self) -> None:
        self.client.close()


def simulation_settings(settings: Settings) -> Settings:
    """``settings`` with the event log, the Track journal and the impressions moved under
    ``settings.simulation_dir``: simulated listeners are not users, and their events must never reach
    the log that the gates, features and training read. Models, features and the registry are the
    real ones, so the simulation exercises what is actually served."""
    sim = settings.simulation_dir
    return settings.model_copy(
        update={
            "events_dir_override": sim / "events",
            "wal_dir_override": sim / "wal",
            "impressions_dir_override": sim / "impressions",
        }
    )


def experiment_settings(settings: Settings, config: Path) -> Settings:
    """The settings an in-process simulation serves with: the experiment on, impressions on, and
    everything it writes kept under ``settings.simulation_dir``."""
    return simulation_settings(settings).model_copy(update={"experiments_file": config, "impressions_enabled": True})
