"""MLflow runs left open by a process that stopped (SIGKILL, a tracking store gone mid-run) are ended
FAILED by the next run, against a real MLflow on a SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from ops.status import model_lines
from setlist import mlflow_runs, registry
from setlist.settings import Settings
from tests.fakes.mlflow_store import private_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    yield private_store(tmp_path, monkeypatch)
    if mlflow.active_run() is not None:
        mlflow.end_run()


def _client(settings: Settings):
    client = registry.connect(settings)
    mlflow.set_experiment(experiment_id=registry.ensure_experiment(client, settings))
    return client


def _killed_inside_a_run(settings: Settings, register: list[str]) -> str:
    """A process that opens a tracked run, registers ``register`` models from it and is SIGKILLed."""
    script = textwrap.dedent(
        f"""
        import os, signal
        import mlflow
        from setlist import mlflow_runs, registry
        from setlist.settings import Settings
        s = Settings(data_dir={str(settings.data_dir)!r}, mlflow_tracking_uri={settings.tracking_uri!r},
                     candidates_model="test-candidates", ranker_model="test-ranker")
        client = registry.connect(s)
        mlflow.set_experiment(experiment_id=registry.ensure_experiment(client, s))
        with mlflow_runs.tracked(s, client, run_name="doomed") as run:
            for name in {register!r}:
                try:
                    client.create_registered_model(name)
                except Exception:
                    pass
                client.create_model_version(name, "file:///nowhere", run_id=run.info.run_id)
            print(run.info.run_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    return done.stdout.split()[-1]


def test_a_run_killed_inside_is_ended_failed_by_the_next_and_its_lone_candidates_version_tagged(
    settings: Settings,
) -> None:
    run_id = _killed_inside_a_run(settings, [settings.candidates_model])
    client = _client(settings)
    assert client.get_run(run_id).info.status == "RUNNING"  # what MLflow alone would leave for good
    assert mlflow_runs.left_open(settings) == [run_id]
    (said,) = [line for line in model_lines(settings, time.time()) if line.name == "runs left open"]
    assert said.mark == "warn" and run_id[:8] in said.value
    with mlflow_runs.tracked(settings, client, run_name="next") as run:
        assert mlflow_runs.left_open(settings) == []  # its own mark is held, the dead one settled
    settled = client.get_run(run_id)
    assert settled.info.status == "FAILED" and mlflow_runs.TAG_SETTLED in settled.data.tags
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    (lone,) = client.search_model_versions(f"name = '{settings.candidates_model}'")
    assert mlflow_runs.TAG_INCOMPLETE in client.get_model_version(lone.name, lone.version).tags
    assert not list(mlflow_runs.marks_dir(settings).iterdir())
    assert not [line for line in model_lines(settings, time.time()) if line.name == "runs left open"]


def test_a_killed_run_that_registered_both_models_leaves_them_untagged(settings: Settings) -> None:
    run_id = _killed_inside_a_run(settings, [settings.candidates_model, settings.ranker_model])
    client = _client(settings)
    assert mlflow_runs.settle(settings, client) == [run_id]
    for name in (settings.candidates_model, settings.ranker_model):
        (v,) = client.search_model_versions(f"name = '{name}'")
        assert mlflow_runs.TAG_INCOMPLETE not in client.get_model_version(name, v.version).tags
    assert mlflow_runs.settle(settings, client) == []  # settled once


def test_a_run_that_fails_is_ended_failed_and_leaves_no_mark(settings: Settings) -> None:
    client = _client(settings)
    with pytest.raises(RuntimeError, match="boom"):
        with mlflow_runs.tracked(settings, client, run_name="failing") as run:
            raise RuntimeError("boom")
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    assert mlflow_runs.left_open(settings) == [] and not list(mlflow_runs.marks_dir(settings).iterdir())


def test_a_run_whose_end_cannot_be_recorded_is_settled_by_the_next(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(settings)
    real_end = mlflow.end_run

    def store_down(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("the tracking store went away")

    monkeypatch.setattr(mlflow, "end_run", store_down)
    with pytest.raises(RuntimeError, match="boom"):
        with mlflow_runs.tracked(settings, client, run_name="cut off") as run:
            raise RuntimeError("boom")  # the run's own error, not the end's, is what the caller sees
    monkeypatch.setattr(mlflow, "end_run", real_end)
    real_end()  # this process's fluent run, which MLflow still thinks is active
    client.set_terminated(run.info.run_id, "RUNNING")  # as the store holds it when it was down at the end
    assert mlflow_runs.left_open(settings) == [run.info.run_id]
    assert mlflow_runs.settle(settings, client) == [run.info.run_id]
    assert client.get_run(run.info.run_id).info.status == "FAILED"


def test_a_mark_whose_run_this_store_does_not_have_is_dropped(settings: Settings) -> None:
    client = _client(settings)
    directory = mlflow_runs.marks_dir(settings)
    directory.mkdir(parents=True)
    (directory / f"{'0' * 32}{mlflow_runs.OPEN}").write_text("{}")  # unlocked: its process is gone
    assert mlflow_runs.left_open(settings) == ["0" * 32]
    assert mlflow_runs.settle(settings, client) == []
    assert mlflow_runs.left_open(settings) == []


def test_a_run_that_fails_before_its_ranker_is_registered_leaves_its_candidates_version_tagged(
    settings: Settings,
) -> None:
    client = _client(settings)
    client.create_registered_model(settings.candidates_model)
    with pytest.raises(OSError, match="disk full"):
        with mlflow_runs.tracked(settings, client, run_name="half") as run:
            client.create_model_version(settings.candidates_model, "file:///nowhere", run_id=run.info.run_id)
            raise OSError("disk full")
    (lone,) = client.search_model_versions(f"name = '{settings.candidates_model}'")
    assert mlflow_runs.TAG_INCOMPLETE in client.get_model_version(lone.name, lone.version).tags


def test_a_run_that_cannot_be_settled_never_stops_the_next_and_one_deleted_by_hand_is_forgotten(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = _killed_inside_a_run(settings, [])
    client = _client(settings)
    deleted = client.create_run(registry.ensure_experiment(client, settings)).info.run_id
    facts = {"run_id": deleted, "data_dir": str(settings.data_dir.resolve())}
    (mlflow_runs.marks_dir(settings) / f"{deleted}{mlflow_runs.OPEN}").write_text(json.dumps(facts))  # unlocked
    client.delete_run(deleted)  # what an operator does to a stuck run in the UI
    assert sorted(mlflow_runs.left_open(settings)) == sorted([stuck, deleted])
    real = client.set_terminated

    def refuse(run_id: str, *args: object, **kwargs: object) -> None:
        if run_id == stuck:
            raise RuntimeError("the store refused the write")
        real(run_id, *args, **kwargs)

    monkeypatch.setattr(client, "set_terminated", refuse)
    with mlflow_runs.tracked(settings, client, run_name="next") as run:
        pass
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert mlflow_runs.left_open(settings) == [stuck]  # tried again by the next run; the deleted one is gone
    monkeypatch.setattr(client, "set_terminated", real)
    assert mlflow_runs.settle(settings, client) == [stuck]


def test_marks_a_copied_data_directory_brought_along_are_not_its_own(settings: Settings, tmp_path: Path) -> None:
    run_id = _killed_inside_a_run(settings, [])
    copy = settings.model_copy(update={"data_dir": tmp_path / "copy"})
    mlflow_runs.marks_dir(copy).mkdir(parents=True)
    for mark in mlflow_runs.marks_dir(settings).iterdir():
        (mlflow_runs.marks_dir(copy) / mark.name).write_bytes(mark.read_bytes())
    assert mlflow_runs.left_open(copy) == []  # the original's run, perhaps live in a shared store
    assert mlflow_runs.left_open(settings) == [run_id]
