"""A server allowed only to read the artifact store still loads its models: MLflow writes a small
file into a local store's model directory on every load, and a refusal there must not refuse the model.

The refusal is simulated at MLflow's own write (the suite runs as root, which no file mode stops, and a
read-only bind mount needs privileges CI may not have); every other step is the real load."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import pytest
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

from setlist import registry
from tests.world import World

pytestmark = pytest.mark.integration


def _refuse_writes_under(root: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> list[str]:
    """MLflow's metadata write fails with ``code`` inside ``root``, as on a read-only mount; returns
    the directories it was written to."""
    written: list[str] = []
    real = ModelsArtifactRepository._add_registered_model_meta_file

    def write(self: ModelsArtifactRepository, model_path: str) -> None:
        if Path(model_path).resolve().is_relative_to(root.resolve()):
            raise OSError(code, "Read-only file system", str(Path(model_path) / "registered_model_meta"))
        written.append(model_path)
        real(self, model_path)

    monkeypatch.setattr(ModelsArtifactRepository, "_add_registered_model_meta_file", write)
    return written


def test_a_read_only_artifact_store_serves_the_pair_from_a_copy(
    tiny_world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s = tiny_world.settings
    pair = registry.lookup_pair(registry.connect(s), s, registry.CHAMPION).pair
    index, booster = registry.load_pair(s, pair)
    written = _refuse_writes_under(s.artifact_root, monkeypatch, errno.EROFS)
    with caplog.at_level(logging.WARNING, logger="setlist.registry"):
        copied_index, copied_booster = registry.load_pair(s, pair)
    assert len(written) == 2 and not any(Path(w).is_relative_to(s.artifact_root) for w in written)
    assert not any(Path(w).exists() for w in written)  # each copy removed once its model was loaded
    assert [r.getMessage().count("from a copy") for r in caplog.records] == [1, 1]
    assert list(copied_index.item_ids) == list(index.item_ids)
    probe = np.random.default_rng(0).random((4, booster.num_features()), dtype=np.float32)
    assert np.array_equal(copied_booster.inplace_predict(probe), booster.inplace_predict(probe))


def test_other_load_errors_are_not_hidden_behind_a_copy(tiny_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    s = tiny_world.settings
    pair = registry.lookup_pair(registry.connect(s), s, registry.CHAMPION).pair
    written = _refuse_writes_under(s.artifact_root, monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError) as raised:
        registry.load_pair(s, pair)
    assert raised.value.errno == errno.ENOSPC and written == []
