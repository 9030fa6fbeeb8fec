"""Marks a running process leaves beside what it writes, so that a reader can tell "running" from "killed".

A mark is a small JSON file the process holds ``flock``'ed for as long as it works. The lock goes with the
process however it ends (SIGKILL, the OOM killer, a pod deleted), and the file stays: a reader that can
take the lock knows its writer is gone. No pid or host is compared, which a pod's fresh hostname and PID 1
(every CronJob's) would make meaningless, and a reused pid cannot pass for the dead process.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Mark:
    """A mark held by this process; ``release`` lets it go, leaving the file or removing it."""

    def __init__(self, path: Path, fd: int, facts: dict[str, Any] | None = None) -> None:
        self.path, self._fd, self.facts = path, fd, dict(facts or {})

    @classmethod
    def take(cls, path: Path, facts: dict[str, Any]) -> Mark:
        """Write ``facts`` to ``path``, locked before the file has its name: no reader sees it unlocked."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file of our own: never held by another
            os.write(fd, json.dumps(facts, default=str).encode())
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return cls(path, fd, facts)

    def amend(self, **facts: Any) -> bool:
        """Add ``facts`` to the mark in place, best effort: a mark is one small block already allocated, so
        this works on a disk too full for any new file (how a run that could not write its report still
        says how it ended). Returns whether it was written."""
        if self._fd < 0:
            return False
        amended = {**self.facts, **facts}
        body = json.dumps(amended, default=str).encode()
        try:
            if os.pwrite(self._fd, body, 0) != len(body):  # a full disk may cut a write short without an error
                return False
            os.ftruncate(self._fd, len(body))
        except OSError:
            return False
        self.facts = amended
        return True

    def release(self, remove: bool) -> None:
        """Let the mark go: removed when the work is done, left (unlocked) when it is not."""
        if self._fd < 0:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing the descriptor drops the lock
        self._fd = -1


@dataclass(frozen=True)
class Found:
    path: Path
    facts: dict[str, Any]
    #: the process that left it still holds it
    alive: bool


def look(path: Path) -> Found | None:
    """The mark at ``path`` and whether its process lives; None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            alive = True
        else:
            alive = False
            fcntl.flock(fd, fcntl.LOCK_UN)
        try:
            facts = json.loads(os.read(fd, 1 << 16) or b"{}")
        except ValueError:
            facts = {}
    finally:
        os.close(fd)
    return Found(path, facts if isinstance(facts, dict) else {}, alive)


def exclusive(path: Path, facts: dict[str, Any], wait: bool = False) -> Mark | None:
    """Hold ``path`` as the one process doing a kind of work (a publish, an erasure): the mark, or None when
    another process holds it (``wait``: block until it is let go). The file stays between holders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(facts, default=str).encode(), 0)
    return Mark(path, fd, facts)
