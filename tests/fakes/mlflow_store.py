"""A real MLflow on a SQLite file of the test's own, for tests of setlist.registry and setlist.mlflow_runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils

from setlist.settings import Settings


def private_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a private SQLite store under ``tmp_path``. MLflow's process-wide URIs (and the environment
    variables MLflow exports for child processes) are put back after the test, so no later test reads it."""
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(var, "unset")  # records the original value for teardown
        monkeypatch.delenv(var)
    return Settings(
        data_dir=tmp_path,
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        candidates_model="test-candidates",
        ranker_model="test-ranker",
    )
