"""Turns: which batch jobs may run at the same time on one data directory, and who waits for whom.

- **Imports one at a time.** An import reads the event ids the log holds once, then writes: two imports of
  the same file at once would each find the rows new and store every event twice.
- **An erasure alone against the jobs that carry users' rows into something new** (import, materialize,
  train). Each reads the tombstones once, as it starts: one running across an erasure would write the user
  back (into the log, the identity map, a feature file, a training set or a model) after the erasure's scrub.
  Those jobs hold the users' turn shared, an erasure holds it alone.
- **Readers of the event log against its rewriters.** Import, materialize, validate and train hold the event
  log's swap lock shared while they run; compaction, down-sampling, retention and erasure take it alone
  (``setlist.swap.locked``), so no file is merged or deleted under a reader. A compaction that finds the log
  in use skips it for that run, as it skips one another compaction holds.

Every wait is said on stderr before it starts. Locks are taken in one order, the import turn, the users'
turn, then a dataset's swap lock, and never the other way round, so two jobs never wait for each other.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from setlist import swap
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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing drops the flock


@contextmanager
def job(settings: Settings, name: str, say: Say = _stderr) -> Iterator[None]:
    """The turns ``name`` (a job as ``setlist.jobmetrics`` names it) takes for its whole run."""
    # the lock files stay, whatever the run's end: one removed while another job holds or waits for it
    # would let a third take the "same" turn on a new file
    with ExitStack() as stack:
        yield from _take(stack, settings, name, settings.data_dir / TURNS, say)


def _take(stack: ExitStack, settings: Settings, name: str, folder: Path, say: Say) -> Iterator[None]:
    if name == "import":
        stack.enter_context(
            turn(folder / "import", False, lambda: say("waiting for another import into this data directory"))
        )
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
