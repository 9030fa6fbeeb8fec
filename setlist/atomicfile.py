"""Files replaced whole: a crash leaves the old file or the new one, never half of either.

The new contents go to ``.<name>.tmp`` beside the file, are synced, and are renamed over it; the rename is
then made durable by syncing the directory. ``eventlog.remove_stale_temporaries`` sweeps the temporaries
a killed writer leaves, by that name."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    """A directory's entries (a rename, a new or removed file) made durable: syncing the file is not enough."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary(path: Path) -> Path:
    """Where ``replace_atomic`` writes ``path``'s next contents before the rename."""
    return path.with_name(f".{path.name}.tmp")


def replace_atomic(path: Path, write: Callable[[BinaryIO], object], *, sync_dir: bool = True) -> None:
    """``path`` replaced by what ``write`` puts in its temporary, synced first. A failure removes the
    half-written temporary (on a full disk it would only take more of what is left) and re-raises.
    ``sync_dir=False`` for a caller that syncs the directory once after several files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def write_atomic_bytes(path: Path, data: bytes | str) -> None:
    """``replace_atomic`` for contents at hand; text is written as UTF-8."""
    payload = data.encode() if isinstance(data, str) else data
    replace_atomic(path, lambda fh: fh.write(payload))
