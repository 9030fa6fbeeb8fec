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

import logging
import time
from collections.abc import Iterator
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
        mark = liveness.Mark.take(marks_dir(settings) / f"{run_id}{OPEN}", {"run_id": run_id, "started": time.time()})
    except OSError as exc:  # the run is still worth having; it just cannot be settled later
        log.warning("could not mark MLflow run %s as open: %s", run_id, exc)
        mark = None
    ended = False
    try:
        yield run
    except BaseException:
        ended = _end(run_id, "FAILED")
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


def left_open(settings: Settings) -> list[str]:
    """The ids of runs whose process is gone and whose end MLflow never recorded."""
    directory = marks_dir(settings)
    found = (liveness.look(p) for p in sorted(directory.glob(f"*{OPEN}"))) if directory.is_dir() else ()
    return [f.path.name.removesuffix(OPEN) for f in found if f is not None and not f.alive]


def settle(settings: Settings, client: MlflowClient) -> list[str]:
    """End every run left open FAILED (if MLflow still has it RUNNING), tag a candidates version it left
    without a ranker, and drop its mark. Returns the ids of the runs ended here."""
    from mlflow.exceptions import MlflowException

    ended: list[str] = []
    for run_id in left_open(settings):
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code not in registry.NOT_FOUND:
                raise
            log.warning("MLflow run %s, left open, is not in this tracking store; forgetting it", run_id)
        else:
            if run.info.status == "RUNNING":
                client.set_tag(
                    run_id,
                    TAG_SETTLED,
                    "ended FAILED by a later run: its process stopped before MLflow recorded the end",
                )
                client.set_terminated(run_id, "FAILED")
                ended.append(run_id)
                log.warning("MLflow run %s was left RUNNING by a stopped process; ended it as FAILED", run_id)
            _tag_incomplete(settings, client, run_id)
        (marks_dir(settings) / f"{run_id}{OPEN}").unlink(missing_ok=True)
    return ended


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
