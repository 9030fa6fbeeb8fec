"""The registry contract (setlist.registry) against a real MLflow on a SQLite file, the embedded default."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from ops.status import model_lines
from setlist import registry
from setlist.errors import InputMissing
from setlist.featureset import DEFAULT_SERVICE
from setlist.settings import Settings
from tests.fakes.mlflow_store import private_store


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return private_store(tmp_path, monkeypatch)


def _register(client: MlflowClient, model: str, count: int, root: Path) -> list[str]:
    """``count`` versions of ``model``; their artifacts are never loaded, so any source will do."""
    client.create_registered_model(model)
    return [str(client.create_model_version(model, (root / f"{model}-{n}").as_uri()).version) for n in range(count)]


@pytest.fixture
def versions(settings: Settings, tmp_path: Path) -> tuple[list[str], list[str]]:
    client = registry.connect(settings)
    return (
        _register(client, settings.candidates_model, 2, tmp_path),
        _register(client, settings.ranker_model, 3, tmp_path),
    )


def test_model_names_come_from_settings(settings: Settings) -> None:
    names = registry.model_names(settings)
    assert names == (settings.candidates_model, settings.ranker_model)
    assert (names.candidates, names.ranker) == ("test-candidates", "test-ranker")


def test_connect_points_tracking_and_registry_at_settings_and_is_idempotent(settings: Settings) -> None:
    first = registry.connect(settings)
    first.create_registered_model(settings.ranker_model)
    second = registry.connect(settings)
    assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == settings.tracking_uri
    assert second.tracking_uri == settings.tracking_uri
    assert [m.name for m in second.search_registered_models()] == [settings.ranker_model]
    # the experiment is created once, with its artifacts under the settings' artifact root
    exp_id = registry.ensure_experiment(first, settings)
    assert registry.ensure_experiment(second, settings) == exp_id
    assert [e.experiment_id for e in second.search_experiments() if e.name == settings.experiment_name] == [exp_id]
    assert second.get_experiment(exp_id).artifact_location == settings.artifact_root.as_uri()


def test_a_copied_data_directory_is_told_its_model_files_are_the_originals(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import shutil

    registry.ensure_experiment(registry.connect(settings), settings)
    assert registry.artifacts_elsewhere(registry.reader(settings), settings) is None  # where settings say
    copy = tmp_path.parent / f"{tmp_path.name}-copy"
    shutil.copytree(tmp_path, copy)
    moved = settings.model_copy(update={"data_dir": copy, "mlflow_tracking_uri": f"sqlite:///{copy}/mlflow.db"})
    client = registry.connect(moved)
    assert registry.artifacts_elsewhere(client, moved) == settings.artifact_root
    with caplog.at_level(logging.WARNING, logger="setlist.registry"):
        registry.ensure_experiment(client, moved)
    assert f"the models' files are in {settings.artifact_root}, outside this data directory's" in caplog.text
    (line,) = [line for line in model_lines(moved, time.time()) if line.name == "model files"]
    assert line.mark == "warn" and "train under a new SETLIST_EXPERIMENT_NAME" in line.value


def test_connect_replaces_an_inherited_registry_override(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{tmp_path}/elsewhere.db")
    registry.connect(settings)
    assert mlflow.get_registry_uri() == settings.tracking_uri


def test_cheap_to_import_without_mlflow() -> None:
    """Experiment config and routing read the alias names; they must not pay MLflow's import."""
    code = "import sys, setlist.registry; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2]).returncode == 0


def test_alias_lookup_per_model_and_as_a_pair(settings: Settings, versions: tuple[list[str], list[str]]) -> None:
    client = registry.connect(settings)
    cands, rankers = versions
    registry.set_alias(client, settings, (cands[1], rankers[2]), registry.CHAMPION)
    registry.set_alias(client, settings, (cands[0], rankers[0]), registry.CHALLENGER)
    assert registry.alias_version(client, settings.ranker_model, registry.CHAMPION) == rankers[2]
    champion = registry.lookup_pair(client, settings, registry.CHAMPION)
    assert champion == registry.ModelPair(cands[1], rankers[2]) and champion.pair == (cands[1], rankers[2])
    assert registry.find_pair(client, settings, registry.CHALLENGER) == registry.ModelPair(cands[0], rankers[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        champion.ranker = rankers[0]
    # moving an alias moves both halves together
    registry.set_alias(client, settings, (cands[0], rankers[1]), registry.CHAMPION)
    assert registry.lookup_pair(client, settings, registry.CHAMPION).pair == (cands[0], rankers[1])


class _Killed(Exception):
    """Stands for SIGKILL: the process stops between two registry calls."""


class _DiesAfter:
    """A registry client whose process dies after its first ``calls`` writes."""

    def __init__(self, client: MlflowClient, calls: int) -> None:
        self._client, self._left = client, calls

    def __getattr__(self, name: str) -> object:
        method = getattr(self._client, name)
        if not name.startswith("set_"):
            return method

        def write(*args: object) -> object:
            if self._left == 0:
                raise _Killed
            self._left -= 1
            return method(*args)

        return write


def test_an_alias_move_killed_anywhere_leaves_one_whole_pair(
    settings: Settings, versions: tuple[list[str], list[str]]
) -> None:
    client = registry.connect(settings)
    cands, rankers = versions
    old, new = (cands[0], rankers[0]), (cands[1], rankers[1])
    for dies_after in range(4):  # set_alias makes four writes
        registry.set_alias(client, settings, old, registry.CHAMPION)
        with pytest.raises(_Killed):
            registry.set_alias(_DiesAfter(client, dies_after), settings, new, registry.CHAMPION)  # type: ignore[arg-type]
        found = registry.lookup_pair(client, settings, registry.CHAMPION)
        assert found.pair == old, dies_after  # never the new candidates beside the old ranker
        moved = client.get_model_version_by_alias(settings.candidates_model, registry.CHAMPION).version
        assert (found.cut_short is not None) == (str(moved) == new[0]), dies_after
    # the note says what happened and how to get past it; a finished move is whole again
    assert found.cut_short and "cut short" in found.cut_short and f"v{old[0]}+v{old[1]}" in found.cut_short
    warned = [line for line in model_lines(settings, time.time()) if line.mark == "warn"]
    assert [line.value for line in warned] == [found.cut_short]  # make status shows it
    registry.set_alias(client, settings, new, registry.CHAMPION)
    assert registry.lookup_pair(client, settings, registry.CHAMPION) == registry.ModelPair(*new)
    assert registry.lookup_pair(client, settings, registry.CHAMPION).cut_short is None


def test_a_candidates_version_paired_again_is_no_cut_short_move(
    settings: Settings, versions: tuple[list[str], list[str]]
) -> None:
    """A ranker is trained on one candidates version, but a candidates version may be paired again (a
    drill, a test): while either half names the other, the aliases are a pair."""
    client = registry.connect(settings)
    cands, rankers = versions
    registry.set_alias(client, settings, (cands[0], rankers[0]), registry.CHAMPION)
    registry.set_alias(client, settings, (cands[1], rankers[0]), registry.CHALLENGER)  # the ranker renamed its partner
    champion = registry.lookup_pair(client, settings, registry.CHAMPION)
    assert champion == registry.ModelPair(cands[0], rankers[0]) and champion.cut_short is None


def test_a_missing_alias_is_a_clear_error(settings: Settings, versions: tuple[list[str], list[str]]) -> None:
    client = registry.connect(settings)
    with pytest.raises(registry.AliasNotSet, match=f"{settings.candidates_model}.*{registry.CHAMPION}"):
        registry.lookup_pair(client, settings, registry.CHAMPION)
    assert registry.find_pair(client, settings, registry.CHAMPION) is None
    # only half a pair under the alias is still no pair, and the error names the half that lacks it
    client.set_registered_model_alias(settings.candidates_model, registry.CHAMPION, versions[0][0])
    with pytest.raises(registry.AliasNotSet, match=settings.ranker_model) as caught:
        registry.lookup_pair(client, settings, registry.CHAMPION)
    assert isinstance(caught.value, InputMissing)  # the pipeline's "not there yet" kind


def test_a_registry_without_the_models_is_a_missing_alias(settings: Settings) -> None:
    client = registry.connect(settings)
    with pytest.raises(registry.AliasNotSet, match=settings.candidates_model):
        registry.alias_version(client, settings.candidates_model, registry.CHAMPION)


def test_lineage_tags_round_trip(settings: Settings, versions: tuple[list[str], list[str]]) -> None:
    client = registry.connect(settings)
    cands, rankers = versions
    pair = (cands[1], rankers[0])
    registry.set_alias(client, settings, pair, registry.CHALLENGER)
    # each half names its partner
    assert registry.ranker_tags(client, settings, pair[1])[registry.TAG_CANDIDATES_VERSION] == pair[0]
    cand_tags = client.get_model_version(settings.candidates_model, pair[0]).tags
    assert cand_tags[registry.TAG_RANKER_VERSION] == pair[1]
    # the feature service: the default for a ranker registered without it, else what was written
    assert registry.feature_service_of(client, settings, rankers[2]) == DEFAULT_SERVICE
    client.set_model_version_tag(settings.ranker_model, rankers[2], registry.TAG_FEATURE_SERVICE, "ranker_v7")
    assert registry.feature_service_of(client, settings, rankers[2]) == "ranker_v7"
    # a pair's status is written on both halves; a pair survives being written as one tag value
    stable = (cands[0], rankers[1])
    registry.tag_pair(
        client,
        settings,
        pair,
        {registry.TAG_ROLLOUT_STATUS: "canary", registry.TAG_ROLLOUT_STABLE: registry.pair_tag(stable)},
    )
    for model, version in zip(registry.model_names(settings), pair, strict=True):
        assert client.get_model_version(model, version).tags[registry.TAG_ROLLOUT_STATUS] == "canary"
    read = registry.ranker_tags(client, settings, pair[1])[registry.TAG_ROLLOUT_STABLE]
    assert registry.parse_pair_tag(read) == stable
    assert registry.parse_pair_tag("") is None and registry.parse_pair_tag("1:2:3") is None


def test_errors_raised_right_after_are_not_also_logged_as_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from setlist.registry import _quiet_mlflow

    _quiet_mlflow()
    caplog.set_level(logging.WARNING)
    store, pg = logging.getLogger("mlflow.store.db.utils"), logging.getLogger("psycopg")
    store.error("SQLAlchemy database error. The following exception is caught.\n%s", "could not connect")
    pg.warning("error ignored terminating %r: %s", "<psycopg.Pipeline [INERROR]>", "pipeline aborted")
    store.error("a store error of another kind")
    pg.warning("another psycopg warning")
    assert [r.getMessage() for r in caplog.records] == ["a store error of another kind", "another psycopg warning"]
