"""A small generated world, run through the real pipeline in this process: generate (tiny scale),
ingest, publish features, train. Tests build it once per session; ``make chaos`` once per profile.

``build_world`` takes the settings of the profile to build for (the production profile's registry
and online store live in PostgreSQL and Redis); without them, the local profile under ``data_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import SecretStr

from setlist.settings import Settings

# A fixed end and seed: the same world every time, whatever day it is built.
END = datetime(2026, 11, 1, tzinfo=UTC)
SEED = 7


@dataclass
class World:
    settings: Settings
    users: pd.DataFrame
    items: pd.DataFrame
    raw_events: pd.DataFrame
    training: object  # training.run.TrainingResult


def tiny_settings(data_dir: Path, **over: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        scale="tiny",
        seed=SEED,
        hmac_key=SecretStr("test-hmac-key"),
        reload_interval_s=3600,
        cache_ttl_s=3600,
        **over,
    )


def build_world(data_dir: Path, settings: Settings | None = None) -> World:
    from feature_repo.materialize import publish
    from ingest.generate import generate
    from ingest.intake import ingest
    from setlist.catalog import save_items
    from training.run import train

    settings = settings or tiny_settings(data_dir)
    data = generate("tiny", seed=SEED, end=END, progress=False)
    save_items(data.items, settings.catalog_path)
    data.latent.save(settings.data_dir / "generated" / "latent.npz")
    report = ingest(data.events, settings, source="generator", check_log_duplicates=False)
    if report.accepted != len(data.events):  # not an assert: it must hold under python -O too
        raise RuntimeError(f"the tiny world's ingest accepted {report.accepted} of {len(data.events)} events")
    publish(settings)
    result = train(settings, progress=False)
    return World(settings, data.users, data.items, data.events, result)
