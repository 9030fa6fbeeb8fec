"""The champion models, loaded from the MLflow registry and swapped atomically on change.

A new champion is loaded and checked *before* it replaces the old one; a version that fails to
load or to score a smoke input is refused and the current one keeps serving.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from setlist.candidates import CandidateIndex
from setlist.features import RANKER_FEATURES
from setlist.settings import Settings

log = logging.getLogger("setlist.serving.models")
ALIAS = "champion"


class ModelLoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelBundle:
    index: CandidateIndex
    booster: object            # xgboost.Booster, scored with inplace_predict only
    candidates_version: str
    ranker_version: str

    @property
    def version(self) -> str:
        return f"candidates:{self.candidates_version}+ranker:{self.ranker_version}"

    def score(self, X: np.ndarray) -> np.ndarray:
        return self.booster.inplace_predict(X)  # type: ignore[attr-defined]


def champion_versions(settings: Settings) -> tuple[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    c = client.get_model_version_by_alias(settings.candidates_model, ALIAS).version
    r = client.get_model_version_by_alias(settings.ranker_model, ALIAS).version
    return str(c), str(r)


def load_bundle(settings: Settings, versions: tuple[str, str]) -> ModelBundle:
    """Load one pair of versions and prove it can rank before anyone uses it."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    try:
        cand = mlflow.pyfunc.load_model(f"models:/{settings.candidates_model}/{versions[0]}")
        index = cand.unwrap_python_model().index
        booster = mlflow.xgboost.load_model(f"models:/{settings.ranker_model}/{versions[1]}")
    except Exception as exc:  # noqa: BLE001 - any failure means "refuse this version"
        raise ModelLoadError(f"cannot load champion {versions}: {type(exc).__name__}: {exc}") from exc
    names = list(getattr(booster, "feature_names", None) or [])
    if names != list(RANKER_FEATURES):
        raise ModelLoadError(f"ranker v{versions[1]} expects features {names[:3]}… not this server's "
                             f"{len(RANKER_FEATURES)} ranker_v1 features")
    if not len(index.item_ids) or index.item_factors.shape[0] != len(index.item_ids):
        raise ModelLoadError(f"candidate index v{versions[0]} is empty or inconsistent")
    probe = booster.inplace_predict(np.zeros((2, len(RANKER_FEATURES)), np.float32))
    if probe.shape != (2,) or not np.all(np.isfinite(probe)):
        raise ModelLoadError(f"ranker v{versions[1]} returned {probe!r} on a probe input")
    return ModelBundle(index, booster, versions[0], versions[1])


class ModelHolder:
    """Holds the current bundle; ``current`` is one attribute read, so a request that started on
    the old bundle finishes on it while new requests see the new one."""

    def __init__(self, settings: Settings, on_change: Callable[[ModelBundle], None] | None = None,
                 loader: Callable[[Settings, tuple[str, str]], ModelBundle] = load_bundle,
                 versions: Callable[[Settings], tuple[str, str]] = champion_versions) -> None:
        self.settings = settings
        self.current: ModelBundle | None = None
        self._loader, self._versions, self._on_change = loader, versions, on_change
        self._refused: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Load the champion if it changed. Returns True when a new bundle went live."""
        with self._lock:
            try:
                wanted = self._versions(self.settings)
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot read champion aliases: %s", exc)
                return False
            cur = self.current
            if cur is not None and (cur.candidates_version, cur.ranker_version) == wanted:
                return False
            if wanted in self._refused:
                return False
            try:
                bundle = self._loader(self.settings, wanted)
            except ModelLoadError as exc:
                self._refused.add(wanted)
                log.error("refused champion %s, keeping %s: %s", wanted, cur.version if cur else "none", exc)
                return False
            self.current = bundle
            log.info("serving models %s", bundle.version)
        if self._on_change is not None:
            self._on_change(bundle)
        return True
