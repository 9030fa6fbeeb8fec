"""A small generated world, run through the real pipeline once per test session.

The builder lives in ``bench.world`` (``make chaos`` builds the same world); this module holds its
session fixtures and is loaded as a pytest plugin from conftest, so they really run once.
Tests that change state copy the data directory first (``tiny_copy``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.world import END, SEED, World, build_world, tiny_settings

__all__ = ["END", "SEED", "World", "build_world", "tiny_copy", "tiny_settings", "tiny_world"]


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
