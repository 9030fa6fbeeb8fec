"""MLflow runs that end in MLflow even when their process could not say so.

MLflow ends a run when its ``with`` block exits. A process killed inside it (SIGKILL, the OOM killer, a
pod deleted), or one whose tracking store went down mid-run (the store that would record the failure is
the one that is down), leaves the run RUNNING for good, and a training cut off between registering its
two models leaves a candidates version whose ranker never came.

``tracked`` holds a mark (``setlist.liveness``) beside the status files for as long as its run is open,
removed once MLflow has recorded the end. A mark left unlocked is a run whose end was never recorded:
the next ``tracked`` run ends it FAILED in MLflow, says why in a tag, and tags a candidates version it
registered without a ranker, before it starts its own.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from setlist import liveness, registry

if TYPE_CHECKING:
    from mlflow import ActiveRun, MlflowClient

    from setlist.settings import Settings

log = logging.getLogger("setlist.mlflow_runs")

OPEN = ".open"
#: on a run ended by a later one: why MLflow had no end for it
TAG_SETTLED = "setlist.settled"
#: on a candidates version whose run registered no ranker beside it
TAG_INCOMPLETE = "setlist.incomplete"


def marks_dir(settings: Settings) -> Path:
    return settings.status_dir / "mlflow-runs"


@contextmanager
def tracked(settings: Settings, client: MlflowClient, **start: Any) -> Iterator[ActiveRun]:
    """``mlflow.start_run(**start)``, after settling the runs earlier processes left open; the run's
    mark is removed only once MLflow has recorded how it ended."""
    import mlflow

    settle(settings, client)
    run = mlflow.start_run(**start)
    run_id = run.info.run_id
    try:
        facts = {"run_id": run_id, "started": time.time(), "data_dir": _here(settings)}
        mark = liveness.Mark.take(marks_dir(settings) / f"{run_id}{OPEN}", facts)
    except OSError as exc:  # the run is still worth having; it just cannot be settled later
        log.warning("could not mark MLflow run %s as open: %s", run_id, exc)
        mark = None
    ended = False
    try:
        yield run
    except BaseException:
        ended = _end(run_id, "FAILED")
        if ended:  # a training that failed between its two registrations, the store still up
            _best_effort(lambda: _tag_incomplete(settings, client, run_id), run_id)
        raise
    else:
        mlflow.end_run()  # an error here leaves the mark for the next run to settle
        ended = True
    finally:
        if mark is not None:
            mark.release(remove=ended)


def _end(run_id: str, status: str) -> bool:
    import mlflow

    try:
        mlflow.end_run(status)
    except Exception as exc:  # the store is down: the mark stays, and the next run ends this one
        log.warning("could not record MLflow run %s as %s: %s", run_id, status, type(exc).__name__)
        return False
    return True


def _here(settings: Settings) -> str:
    return str(settings.data_dir.resolve())


def left_open(settings: Settings) -> list[str]:
    """The ids of runs whose process is gone and whose end MLflow never recorded. Marks a copy of the
    data directory brought along name runs of the original's (maybe still live, in a shared tracking
    store): only this directory's own count."""
    directory = marks_dir(settings)
    found = (liveness.look(p) for p in sorted(directory.glob(f"*{OPEN}"))) if directory.is_dir() else ()
    here = _here(settings)
    return [
        f.path.name.removesuffix(OPEN)
        for f in found
        if f is not None and not f.alive and f.facts.get("data_dir", here) == here
    ]


def settle(settings: Settings, client: MlflowClient) -> list[str]:
    """End every run left open FAILED (if MLflow still has it RUNNING), tag a candidates version it left
    without a ranker, and drop its mark. Returns the ids of the runs ended here. Best effort, run by
    run: a run it cannot settle (a store refusing the write) is said and left for the next time, and
    never stops the run about to start."""
    ended: list[str] = []
    for run_id in left_open(settings):
        if _best_effort(functools.partial(_settle_one, settings, client, run_id, ended), run_id):
            try:
                (marks_dir(settings) / f"{run_id}{OPEN}").unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove the open mark of MLflow run %s: %s", run_id, exc)
    return ended


def _settle_one(settings: Settings, client: MlflowClient, run_id: str, ended: list[str]) -> None:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code not in registry.NOT_FOUND:
            raise
        log.warning("MLflow run %s, left open, is not in this tracking store; forgetting it", run_id)
        return
    if run.info.lifecycle_stage == "deleted":  # deleted by hand meanwhile: nothing left to end
        return
    if run.info.status == "RUNNING":
        client.set_tag(
            run_id, TAG_SETTLED, "ended FAILED by a later run: its process stopped before MLflow recorded the end"
        )
        client.set_terminated(run_id, "FAILED")
        ended.append(run_id)
        log.warning("MLflow run %s was left RUNNING by a stopped process; ended it as FAILED", run_id)
    _tag_incomplete(settings, client, run_id)


def _best_effort(step: Callable[[], None], run_id: str) -> bool:
    try:
        step()
    except Exception as exc:
        log.warning(
            "could not settle MLflow run %s (%s: %s); the next run tries again", run_id, type(exc).__name__, exc
        )
        return False
    return True


def _tag_incomplete(settings: Settings, client: MlflowClient, run_id: str) -> None:
    names = registry.model_names(settings)
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    if any(v.name == names.ranker for v in versions):
        return
    for v in versions:
        if v.name == names.candidates:
            client.set_model_version_tag(
                v.name, v.version, TAG_INCOMPLETE, "its training stopped before registering the ranker"
            )
            log.warning(
                "candidates version %s has no ranker (its training stopped); tagged %s", v.version, TAG_INCOMPLETE
            )
