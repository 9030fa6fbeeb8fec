"""Turns: which batch jobs may run at the same time on one data directory, and who waits for whom.

- **One run of a job at a time.** Two runs of one job would do the same work twice and race each other's
  writes (a scheduler beside a hand-run `make materialize`, or two schedulers). A second run waits for the
  first, as a CronJob's ``Forbid`` policy keeps them apart on Kubernetes. Imports especially: an import reads
  the event ids the log holds once, then writes, so two imports of the same file at once would each find the
  rows new and store every event twice.
- **An erasure alone against the jobs that carry users' rows into something new** (import, materialize,
  train). Each reads the tombstones once, as it starts: one running across an erasure would write the user
  back (into the log, the identity map, a feature file, a training set or a model) after the erasure's scrub.
  Those jobs hold the users' turn shared, an erasure holds it alone.
- **Readers of the event log against its rewriters.** Import, materialize, validate and train hold the event
  log's swap lock shared while they run; compaction, down-sampling, retention and erasure take it alone
  (``setlist.swap.locked``), so no file is merged or deleted under a reader. A compaction that finds the log
  in use skips it for that run, as it skips one another compaction holds.

Every wait is said on stderr before it starts. Locks are taken in one order, the job's own turn, the users'
turn, then a dataset's swap lock, and never the other way round, so two jobs never wait for each other.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from setlist import swap
from setlist.errors import Refused, UsageError
from setlist.settings import Settings

TURNS = ".turns"
#: the jobs that write users' rows somewhere new from what they read, and the jobs that read the event log
WRITES_USERS = frozenset({"import", "materialize", "train"})
READS_LOG = frozenset({"import", "materialize", "validate", "train"})

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def turn(path: Path, shared: bool, waiting: Callable[[], None]) -> Iterator[None]:
    """``path`` flock'ed, shared or alone, for the block; ``waiting`` is called first if it must wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        if not path.exists():
            raise
        fd = os.open(path, os.O_RDONLY)  # another user's lock file: flock needs no write access
    with swap.flocked(fd, shared, waiting):
        yield


@contextmanager
def job(settings: Settings, name: str, say: Say = _stderr) -> Iterator[None]:
    """The turns ``name`` (a job as ``setlist.jobmetrics`` names it) takes for its whole run: its own,
    then the others."""
    with own(settings, name, say), others(settings, name, say):
        yield


@contextmanager
def own(settings: Settings, name: str, say: Say | None = None) -> Iterator[None]:
    """The job's own turn: one run of it at a time on the data directory. ``jobmetrics.reports`` takes it
    before the run counts as one, so a run waiting for another is no run yet: no duration, and no failure
    when it is stopped while it waits (a scheduler's deadline during a long hand-run training)."""
    # the lock files stay, whatever the run's end: one removed while another job holds or waits for it
    # would let a third take the "same" turn on a new file. A usage error is no run (jobmetrics.job_run),
    # so in a data directory this run made, the turn files it made go with it.
    folder = settings.data_dir / TURNS
    made = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first
    file, waiting = own_turn(name)
    tell = say or _stderr  # looked up now, not at import: tests listen for the wait
    try:
        with turn(folder / file, False, lambda: tell(waiting)):
            yield
    except UsageError:
        if folder in made:
            for lock in (file, "users"):
                (folder / lock).unlink(missing_ok=True)
            for directory in made:
                try:
                    directory.rmdir()
                except OSError:  # something else was written there meanwhile
                    break
        raise


@contextmanager
def others(settings: Settings, name: str, say: Say = _stderr) -> Iterator[None]:
    """The turns ``name`` takes against other jobs (the users', the event log's), after its own."""
    with ExitStack() as stack:
        yield from _take(stack, settings, name, settings.data_dir / TURNS, say)


def own_turn(name: str) -> tuple[str, str]:
    """(lock file under ``.turns``, what a second run says while it waits) for job ``name``."""
    if name == "import":  # the file name predates the other jobs' turns: a running import still holds it
        return "import", "waiting for another import into this data directory"
    return f"run-{name}", f"waiting for another {name} run on this data directory to finish"


def _take(stack: ExitStack, settings: Settings, name: str, folder: Path, say: Say) -> Iterator[None]:
    if name in WRITES_USERS:
        stack.enter_context(
            turn(folder / "users", True, lambda: say("waiting for a running erasure to finish (make erase)"))
        )
    # a log that does not exist yet has no rewriter to wait for, and is not created here: an import refused
    # before it starts must leave no log behind (a first import is therefore not locked against a compaction
    # that starts once its first files exist)
    if name in READS_LOG and settings.events_dir.exists():
        stack.enter_context(
            swap.locked(
                settings.events_dir,
                blocking=True,
                shared=True,
                waiting=lambda: say("waiting for a compaction, retention or erasure of the event log to finish"),
            )
        )
    yield


@contextmanager
def scheduling(settings: Settings, jobs: Iterable[str]) -> Iterator[None]:
    """A scheduler's claim on the jobs it schedules on this data directory, for the block.

    Two schedulers would each start every run, and each run would then wait for the other's: every job
    done twice. So a job is scheduled by one scheduler at a time; a second one claiming it is refused, naming
    the holder's process. A hand-run job (``--once``, ``make train``) claims nothing: it waits for a
    scheduled run of the same job through the job's own turn, and the scheduled run for it.
    """
    folder = settings.data_dir / TURNS
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for name in jobs:
            fd = os.open(folder / f"schedule-{name}", os.O_RDWR | os.O_CREAT, 0o644)
            stack.callback(os.close, fd)  # closing drops the flock
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                raise Refused(
                    f"{name} is already scheduled on {settings.data_dir} by another scheduler"
                    + (f" (pid {holder})" if holder.isdigit() else "")
                    + ": stop that one first, or leave the job out of this one with --jobs; "
                    "--once runs a job now beside it"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield


@contextmanager
def erasure(settings: Settings, say: Say) -> Iterator[None]:
    """An erasure's turn: alone against imports, materializations and trainings (each waited for)."""
    with turn(
        settings.data_dir / TURNS / "users",
        False,
        lambda: say(
            "waiting for running imports, materializations and trainings to finish: each could write the user back"
        ),
    ):
        yield
