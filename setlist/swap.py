"""Replace a set of files by another, crash-safe: the commit protocol compaction and down-sampling share.

Every path is relative to a dataset root (an event log, the impressions, the quarantine), which holds
one hidden directory ``.swaps/`` with the manifests of swaps under way and a generation number, and
the lock (``locked``). A swap goes in five steps:

1. the new files are written under hidden temporary names (``.<name>.swap.tmp``) and fsynced;
2. a manifest naming the new files and the files they replace (with the size and mtime each had
   when it was read) is written atomically under ``.swaps/``, then the generation is bumped. This is
   the commit point: a swap with a manifest only ever rolls forward;
3. each new file is renamed to its visible name;
4. each replaced file is deleted (one rewritten meanwhile only when its rows are still all elsewhere);
5. the manifest is deleted.

A crash before step 2 leaves hidden temporaries nobody reads (``recover`` removes them); a crash
after it leaves the manifest, and ``recover`` (run, under the lock, before any new swap) finishes
steps 3-5. So no row is ever lost, and none is kept twice once a swap is finished.

What a reader sees meanwhile. Many files cannot be renamed or deleted in one atomic step, so between
the first rename (3) and the last delete (4) a plain directory listing may hold a replaced file and
the file that replaces it, and count their rows twice. :func:`listing` gives the settled view instead:
it reads the manifests and the generation around its directory scan, drops the new files of a swap
whose renames are not all done and the old files of one whose renames are, and scans again if a swap
committed, finished or was half-seen during the scan. Readers that list through it (the impressions
readers, and ``EventLog.files`` once it does) see each swap happen at one instant.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from setlist.atomicfile import fsync_dir, write_atomic_bytes
from setlist.errors import Refused

SWAPS = ".swaps"
_LOCK = "lock"
_GENERATION = "generation"
_TMP = ".swap.tmp"
#: the end of a staged output's name. Such a file is the swap's, not a killed writer's leftover: once its
#: manifest is written it may be the only copy of the rows it holds (the inputs go at step 4), so only
#: :func:`recover` removes one, and only when no manifest names it
STAGED_SUFFIX = _TMP
log = logging.getLogger("setlist.swap")


def checkpoint(step: str) -> None:
    """Called between the protocol's steps (``staged``, ``committed``, ``renamed``, ``visible``,
    ``deleted``, ``done``). Does nothing; the crash tests replace it to stop a swap at a chosen step."""


class Busy(Refused):
    """Another process holds the dataset's swap lock (a compaction, down-sampling, retention or erasure is
    rewriting it, or a job is reading it)."""


@dataclass(frozen=True)
class Replaced:
    """A file a swap replaces, as it was when read: a different size or mtime means it was rewritten since."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, root: Path, path: Path) -> Replaced:
        st = path.stat()
        return cls(path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Manifest:
    name: str
    outputs: tuple[str, ...]
    inputs: tuple[Replaced, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "outputs": list(self.outputs),
                "inputs": [[r.path, r.size, r.mtime_ns] for r in self.inputs],
            },
            indent=1,
        )

    @classmethod
    def load(cls, path: Path) -> Manifest:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(path.name, tuple(raw["outputs"]), tuple(Replaced(p, s, m) for p, s, m in raw["inputs"]))


#: asked about a replaced file that was rewritten after it was read: are its rows still all in some
#: file that stays (the outputs, or other files)? Arguments: the file, and every file the swap replaces.
Covered = Callable[[Path, frozenset[Path]], bool]


# --- writing ---------------------------------------------------------------------------------------------
def micro(table: pa.Table) -> pa.Table:
    """Nanosecond timestamps as microseconds: Spark 4 refuses nanosecond parquet, and the same files
    serve every profile. Cast in memory, not by the writer, so the file's embedded schema says
    microseconds too and a file rewritten from one read back is byte-identical."""
    fields = [
        pa.field(f.name, pa.timestamp("us", f.type.tz), f.nullable, f.metadata)
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
        else f
        for f in table.schema
    ]
    target = pa.schema(fields, metadata=table.schema.metadata)
    return table if target.equals(table.schema) else table.cast(target, safe=False)


def staging(root: Path, rel: str) -> Path:
    """Where output ``rel`` is written before the swap commits: hidden, and matching no ``*.parquet``."""
    path = root / rel
    return path.with_name(f".{path.name}{_TMP}")


def stage(table: pa.Table, root: Path, rel: str) -> None:
    """Step 1 for one output: written in full and fsynced under its staging name."""
    tmp = staging(root, rel)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(micro(table), fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # before the commit point no one needs it, and a full disk wants it back
        raise


def commit(root: Path, outputs: Sequence[str], inputs: Sequence[Replaced], covered: Covered) -> int:
    """Steps 2-5 for outputs already staged; the caller holds :func:`locked`. Returns the inputs deleted."""
    root = Path(root)
    for d in {staging(root, o).parent for o in outputs}:
        fsync_dir(d)
    checkpoint("staged")
    folder = root / SWAPS
    name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.json"
    manifest = Manifest(name, tuple(outputs), tuple(inputs))
    write_atomic_bytes(folder / name, manifest.to_json())
    checkpoint("committed")
    _bump(folder)  # after the manifest exists: see listing() for why the order matters
    return _finish(root, manifest, covered)


def _finish(root: Path, manifest: Manifest, covered: Covered) -> int:
    """Steps 3-5; also what recovery runs for a manifest left by a crash (each step may be done already)."""
    for rel in manifest.outputs:
        tmp = staging(root, rel)
        if tmp.exists():
            os.replace(tmp, root / rel)
            checkpoint("renamed")
    for d in {(root / o).parent for o in manifest.outputs}:
        fsync_dir(d)
    checkpoint("visible")
    replaced = frozenset(root / r.path for r in manifest.inputs)
    deleted = 0
    for r in manifest.inputs:
        path = root / r.path
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # deleted by an earlier attempt, or by retention or erasure
        # rewritten since it was read (erasure and retention remove rows, a journal re-roll writes the same
        # ones): deleted only when its rows are all elsewhere, else kept for the next run to merge
        if (st.st_size, st.st_mtime_ns) != (r.size, r.mtime_ns) and not covered(path, replaced):
            log.warning("%s was rewritten during a swap and holds rows the outputs lack: kept", r.path)
            continue
        path.unlink(missing_ok=True)
        deleted += 1
        checkpoint("deleted")
    for d in {(root / r.path).parent for r in manifest.inputs}:
        if d.exists():
            fsync_dir(d)
    (root / SWAPS / manifest.name).unlink(missing_ok=True)
    fsync_dir(root / SWAPS)
    checkpoint("done")
    return deleted


# --- recovery and the lock ----------------------------------------------------------------------------------
def pending(root: Path) -> list[Manifest]:
    """Manifests of swaps that committed and did not finish (a crash, or one running now)."""
    folder = Path(root) / SWAPS
    if not folder.exists():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(Manifest.load(path))
        except FileNotFoundError:
            continue  # finished meanwhile
    return out


def recover(root: Path, covered: Covered) -> int:
    """Roll every leftover manifest forward and remove staged files no manifest names (a crash before the
    commit point). The caller holds :func:`locked`. Returns the swaps finished."""
    root = Path(root)
    manifests = pending(root)
    if manifests:
        _bump(root / SWAPS)  # its renames may be about to happen: a reader scanning now must scan again
    for m in manifests:
        log.warning("finishing an interrupted swap in %s (%s)", root, m.name)
        _finish(root, m, covered)
    for tmp in root.rglob(f".*{_TMP}"):
        tmp.unlink(missing_ok=True)
    return len(manifests)


@contextmanager
def locked(
    root: Path, blocking: bool = False, waiting: Callable[[], None] | None = None, shared: bool = False
) -> Iterator[None]:
    """The dataset's swap lock, held for a whole run: one compaction or down-sampling at a time. Another
    rewriter of the dataset's files (erasure, retention) takes it with ``blocking`` to wait for a run to end;
    a job that reads the files for a long time takes it ``shared`` (``setlist.turns``), so no rewriter
    deletes a file under it. ``waiting`` is called first when it has to wait. The lock is a file under
    ``.swaps/`` (a network filesystem's locks reach other machines through files, not directories); on a
    disk too full to create it, the dataset's directory itself, so retention and erasure still run there
    (no compaction can: it would need room for its own files)."""

    def busy() -> None:
        if not blocking:
            raise Busy(
                f"{root} is in use (a compaction, down-sampling, retention or erasure is rewriting it, or a "
                "job is reading it): skipped, the next run takes it"
            )
        if waiting is not None:
            waiting()

    with flocked(_lock_fd(Path(root)), shared, busy):
        yield


@contextmanager
def flocked(fd: int, shared: bool, busy: Callable[[], None]) -> Iterator[None]:
    """``fd`` flock'ed, shared or alone, for the block, then closed (closing drops the flock). When another
    holder makes it wait, ``busy`` is called first: it may say so, or raise to give up instead."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            taken = True
        except BlockingIOError:
            taken = False
        if not taken:
            busy()  # outside the except: a refusal it raises is not chained to the flock's error
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _lock_fd(root: Path) -> int:
    try:
        (root / SWAPS).mkdir(exist_ok=True)
        return os.open(root / SWAPS / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY)


# --- reading -------------------------------------------------------------------------------------------------
def listing(root: Path, patterns: Sequence[str], attempts: int = 50) -> list[Path]:
    """The visible files matching ``patterns`` (globs relative to ``root``; names starting with ``.`` are
    never data), as of one instant with respect to swaps: a swap's old files or its new ones, never both
    and never neither.

    The scan is bracketed: generation, then manifests (and which outputs were already renamed), then the
    scan, then manifests and generation again. A swap bumps the generation after writing its manifest and
    before its first rename, so a swap that changed files during the scan either shows up as a changed
    generation (it committed after the first read) or has its manifest in both reads; a manifest that
    came or went means a swap committed or finished meanwhile. Either way the scan is repeated."""
    root = Path(root)
    seen: list[Path] = []
    for _ in range(attempts):
        gen, before = _generation(root), pending(root)
        renamed_before = {m.name: {o for o in m.outputs if not staging(root, o).exists()} for m in before}
        seen = _scan(root, patterns)
        after = pending(root)
        if _generation(root) != gen or [m.name for m in after] != [m.name for m in before]:
            continue
        view = set(seen)
        settled = True
        for m in before:
            listed = {o for o in m.outputs if (root / o) in view}
            # an output renamed before the scan and absent from it was removed since (erasure emptied it)
            if listed | renamed_before[m.name] >= set(m.outputs):
                view -= {root / r.path for r in m.inputs}
            else:
                view -= {root / o for o in listed}
                # renames not all seen, yet an input gone: the scan crossed the swap's deletes, or
                # retention or erasure removed the file; scanning again tells which
                settled &= all((root / r.path) in view for r in m.inputs)
        if settled:
            return sorted(view)
    log.warning("the files under %s kept changing during %d scans; reading the last one as is", root, attempts)
    return sorted(seen)


def _scan(root: Path, patterns: Sequence[str]) -> list[Path]:
    if not root.exists():
        return []
    return sorted({p for pattern in patterns for p in root.glob(pattern) if not p.name.startswith(".")})


def _generation(root: Path) -> str:
    try:
        return (root / SWAPS / _GENERATION).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _bump(folder: Path) -> None:
    current = _generation(folder.parent)
    write_atomic_bytes(folder / _GENERATION, str(int(current or 0) + 1))


# --- files ---------------------------------------------------------------------------------------------------
