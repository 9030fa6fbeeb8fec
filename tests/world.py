"""A small generated world, run through the real pipeline once per test session.

Loaded as a pytest plugin from conftest, so the session-scoped fixtures really run once.
Tests that change state copy the data directory first (``tiny_copy``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from setlist.settings import Settings

END = datetime(2026, 11, 1, tzinfo=UTC)
SEED = 7


@dataclass
class World:
    settings: Settings
    users: pd.DataFrame
    items: pd.DataFrame
    raw_events: pd.DataFrame
    training: object  # training.run.TrainingResult


def tiny_settings(data_dir: Path, **over: object) -> Settings:
    return Settings(
        data_dir=data_dir,
        scale="tiny",
        seed=SEED,
        hmac_key="test-hmac-key",
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
    assert report.accepted == len(data.events)
    publish(settings)
    result = train(settings, progress=False)
    return World(settings, data.users, data.items, data.events, result)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("tiny-world"))


@pytest.fixture
def tiny_copy(tiny_world: World, tmp_path: Path) -> Iterator[World]:
    """A private copy of the world's data directory, for tests that write to it."""
    target = tmp_path / "data"
    shutil.copytree(tiny_world.settings.data_dir, target)
    settings = tiny_world.settings.model_copy(update={"data_dir": target})
    # MLflow stores absolute artifact locations; the copy keeps pointing at the original run's
    # artifacts, which is fine for reading models.
    yield World(settings, tiny_world.users, tiny_world.items, tiny_world.raw_events, tiny_world.training)
