"""Journal directories: where each worker's journal lives, the exclusive lock that makes one process
its owner, and the recovery of directories nobody holds (a dead worker or pod), whose segments
nobody else would ever move into the event log.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from setlist.atomicfile import fsync_dir, temporary, write_atomic_bytes
from setlist.consent import FLAGS
from setlist.eventlog import EventLog

log = logging.getLogger("setlist.serving.journal")

LOCK = "LOCK"
_LOCK_POLL_S = 0.05  # flock has no timed wait: how often a waiting owner retries
#: consent withdrawals the owner could not write to the online store yet (``serving.tracking``): kept
#: beside its journal, so that a process that dies holding some leaves them to its successor or to a
#: sweep, not to the next materialize
HELD = "withdrawals-held.json"
#: where ``write_held`` writes before it replaces ``HELD``: left behind only by a crash mid-write
HELD_TMP = temporary(Path(HELD)).name
_HELD_VERSION = 1

#: pseudonym -> that user's events carrying a consent flag, in time order (``timestamp`` a datetime)
Held = dict[str, list[dict[str, Any]]]


def journal_dir(wal_dir: Path, worker: int) -> Path:
    """Each serving process (worker) has its own journal directory under the WAL directory."""
    return Path(wal_dir) / f"worker-{worker}"


#: told the event ids a recovery moved into the log (Track's dedupe marks them stored)
Recovered = Callable[[list[str]], None]


def segment_to_log(segment: Path, events: EventLog, on_recovered: Recovered | None = None) -> int:
    """Move one closed segment into the event log; a torn last line was never acknowledged."""
    rows = []
    with open(segment, encoding="utf-8") as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    if rows:
        frame = pd.DataFrame(rows)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        frame = frame.drop_duplicates("event_id", keep="first")
        # a user erased since these were journaled never reaches the log (read fresh: erasure waits
        # for the segments of running servers to roll, and relies on this)
        gone = events.erased().among(frame["user_id"].unique())
        if gone:
            frame = frame[~frame["user_id"].isin(gone)]
        events.append(frame, name=f"journal-{segment.stem}")  # atomic, and the same name on a retry
        if on_recovered is not None:
            _tell(on_recovered, list(frame["event_id"]))
    segment.unlink()  # only now: until here a crash leaves the segment for recovery
    return len(rows)


def _tell(on_recovered: Recovered, ids: list[str]) -> None:
    try:
        on_recovered(ids)
    except Exception:  # the events are in the log either way; at worst a later retry is stored twice
        log.exception("could not mark %d recovered events as stored", len(ids))


def recover_directory(directory: Path, events: EventLog, on_recovered: Recovered | None = None) -> int:
    """Move every segment in ``directory`` into the event log. The caller holds its lock.

    A process that died between writing a batch and answering left a client that will retry it:
    ``on_recovered`` learns the ids moved, so that retry is known as a duplicate."""
    segments = sorted(Path(directory).glob("*.jsonl"))
    total = sum(segment_to_log(seg, events, on_recovered) for seg in segments)
    if total:
        log.info("recovered %d journaled events from %s into the event log", total, directory)
    return total


# --- the directory lock ----------------------------------------------------------------------------
class JournalLocked(RuntimeError):
    """Another live process owns the journal directory."""

    def __init__(self, directory: Path, holder: str) -> None:
        super().__init__(
            f"journal directory {directory} is locked by another process ({holder or 'unknown'}): "
            "another server is running on this data; stop it, or give each server its own SETLIST_WAL_DIR"
        )


class DirLock:
    """An exclusive flock on ``directory/LOCK``, released by ``release`` or by the process's death."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.dir, self._fd = directory, fd

    @classmethod
    def acquire(cls, directory: Path, wait_s: float = 0.0) -> DirLock:
        """Take the lock, waiting up to ``wait_s`` (another server's orphan sweep holds it briefly)."""
        deadline = time.monotonic() + wait_s
        while True:
            fd = _try_lock(Path(directory))
            if isinstance(fd, int):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
                return cls(Path(directory), fd)
            if time.monotonic() >= deadline:
                raise JournalLocked(directory, fd)
            time.sleep(_LOCK_POLL_S)

    def release(self, remove_dir: bool = False) -> None:
        """Unlock; with ``remove_dir``, first remove the lock file and the directory if that empties it
        (an owner that opened the old lock file notices it is gone and takes a new one)."""
        if self._fd < 0:
            return
        if remove_dir:
            (self.dir / LOCK).unlink(missing_ok=True)
            try:
                self.dir.rmdir()
            except OSError:
                pass  # not empty: something else lives there, leave it
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = -1


def _try_lock(directory: Path) -> int | str:
    """A locked descriptor on the current lock file, or who holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return "a sweep removing the directory"  # gone between mkdir and open: try again
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        os.close(fd)
        return holder
    if _same_file(fd, path):
        return fd
    os.close(fd)  # a sweep removed the file we locked: lock the one now at the path
    return "a sweep removing the directory"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)


def probe_lock(directory: Path, wait_s: float = 0.0) -> None:
    """Raise :class:`JournalLocked` when a live process owns ``directory`` (a start-up check)."""
    DirLock.acquire(directory, wait_s).release()


# --- held consent withdrawals ------------------------------------------------------------------------
def read_held(path: Path, *, look_only: bool = False, strict: bool = False) -> Held:
    """The withdrawals held in ``path`` (none when it does not exist). A file that cannot be parsed is
    removed with an error in the log: nothing in it can be pushed, and kept it would hold pseudonyms
    that an erasure cannot read to strip (the events are in the log: the next materialize writes their
    consent). ``look_only``, a reader that is not the owner: left alone, read as none. ``strict``: a file
    the disk or a permission keeps from being read raises, rather than reading as none."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return {
            user: [{**r, "timestamp": datetime.fromtimestamp(r["timestamp"] / 1000, tz=UTC)} for r in rows]
            for user, rows in doc["users"].items()
        }
    except FileNotFoundError:
        return {}
    except OSError as exc:  # not the content: a disk or a permission, which a removal would not fix
        if strict:
            raise
        if not look_only:
            log.error("held consent withdrawals in %s cannot be read: %s", path, exc)
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if look_only:
            return {}
        log.error(
            "held consent withdrawals in %s cannot be read (%s): removed; the next materialize writes every "
            "user's consent from the event log",
            path,
            exc,
        )
        Path(path).unlink(missing_ok=True)
        return {}


def write_held(path: Path, held: Held) -> None:
    """Replace ``path`` with ``held`` atomically (removed when nothing is held). Only the event id, the
    time and the consent flags of each event are kept: what a later push of the consent row needs."""
    path = Path(path)
    if not held:
        if path.exists():
            path.unlink()
            fsync_dir(path.parent)
        return
    users = {
        user: [
            {"event_id": r["event_id"], "timestamp": int(r["timestamp"].timestamp() * 1000)}
            | {f: r.get(f) for f in FLAGS}
            for r in rows
        ]
        for user, rows in held.items()
    }
    write_atomic_bytes(path, json.dumps({"version": _HELD_VERSION, "users": users}, separators=(",", ":")))


def merge_held(into: Held, more: Held) -> Held:
    """Both sets of held events, each user's once per event id and in time order."""
    out = {user: list(rows) for user, rows in into.items()}
    for user, rows in more.items():
        seen = {r["event_id"] for r in out.get(user, [])}
        merged = out.get(user, []) + [r for r in rows if r["event_id"] not in seen]
        out[user] = sorted(merged, key=lambda r: r["timestamp"])
    return out


def adopt_held(source: Path, into: Path) -> int:
    """Fold the withdrawals an orphaned directory held (``source``) into ``into`` (written first, so a
    crash in between leaves them in both, never in neither); returns the users adopted."""
    if Path(source).resolve() == Path(into).resolve():
        return 0  # its own file (a sweep of a directory this process holds unlocked): nothing to take
    held = read_held(source, strict=True)  # unread for the disk's sake, it stays where it is
    if held:
        write_held(into, merge_held(read_held(into), held))
        log.warning("took over %d users' held consent withdrawals from %s", len(held), Path(source).parent)
    Path(source).unlink(missing_ok=True)
    return len(held)


#: given an orphaned directory's held-withdrawals file, under that directory's lock: takes them (and
#: removes the file) or rewrites it
OnHeld = Callable[[Path], object]


# --- orphans -----------------------------------------------------------------------------------------
def journal_dirs(root: Path) -> list[Path]:
    """Directories under ``root`` (itself included) that hold a lock file, segments or held withdrawals."""
    found = []
    for here, _, files in os.walk(root):
        if LOCK in files or HELD in files or any(f.endswith(".jsonl") for f in files):
            found.append(Path(here))
    return sorted(found)


def recover_orphans(
    root: Path, events: EventLog, on_recovered: Recovered | None = None, on_held: OnHeld | None = None
) -> dict[Path, int]:
    """Move the segments of every journal directory under ``root`` that no live process holds into
    the event log, each exactly once (under its lock; a moved segment is gone). Returns rows per
    directory recovered; directories of live processes are skipped. A directory's held consent
    withdrawals go to ``on_held``; a directory whose file is left (no ``on_held``, or one that does not
    take them) stays, holding them for the next server's start-up sweep."""
    done: dict[Path, int] = {}
    for directory in journal_dirs(Path(root)):
        try:
            lock = DirLock.acquire(directory)
        except JournalLocked:
            continue  # a live server's
        try:
            done[directory] = recover_directory(directory, events, on_recovered)
            (directory / HELD_TMP).unlink(missing_ok=True)  # a dead writer's, never the file's state
            if on_held is not None and (directory / HELD).exists():
                on_held(directory / HELD)
        finally:
            # a directory still holding withdrawals is not empty: the removal leaves it in place
            lock.release(remove_dir=directory != Path(root))
    return done


def held_files(root: Path) -> list[Path]:
    """Every held-withdrawals file under ``root`` (live servers' and orphans')."""
    return sorted(Path(root).rglob(HELD)) if Path(root).exists() else []


def sweep_orphans(
    root: Path, events: EventLog, on_recovered: Recovered | None = None, on_held: OnHeld | None = None
) -> int:
    """:func:`recover_orphans` at start-up: a failure is logged, never stops the server."""
    try:
        return sum(recover_orphans(root, events, on_recovered, on_held).values())
    except Exception:
        log.exception("could not recover orphaned journal directories under %s", root)
        return 0


# --- the journal -------------------------------------------------------------------------------------
