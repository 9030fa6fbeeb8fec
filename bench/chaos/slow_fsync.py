"""``python -m bench.chaos.slow_fsync [serving options]``: ``python -m serving`` on a slow disk.

Every ``os.fsync`` in the server (and its forked workers) first sleeps ``SETLIST_CHAOS_FSYNC_DELAY_MS``
milliseconds. That variable is a drill knob read only here, not a product setting: the server itself
never reads it, and unset or 0 leaves fsync alone.

The wrapper must be in place before anything from serving is imported: ``serving.journal.Journal``
binds ``sync=os.fsync`` as a default argument when its module is imported, so a later patch would
miss the journal's own fsyncs. Then serving's ``__main__`` runs as if started with ``-m serving``.
"""

from __future__ import annotations

import os
import runpy
import time
from collections.abc import Callable
from typing import Any

DELAY_ENV = "SETLIST_CHAOS_FSYNC_DELAY_MS"


def slowed(fsync: Callable[[Any], None], delay_s: float) -> Callable[[Any], None]:
    """``fsync`` (of a descriptor or anything with ``fileno``) that takes ``delay_s`` longer, as a
    disk with a slow write cache would."""

    def slow_fsync(fd: Any) -> None:
        time.sleep(delay_s)
        fsync(fd)

    return slow_fsync


def main() -> None:
    delay_ms = float(os.environ.get(DELAY_ENV) or 0)
    if delay_ms > 0:
        os.fsync = slowed(os.fsync, delay_ms / 1000)  # type: ignore[assignment]  # replaced on purpose
    runpy.run_module("serving", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
