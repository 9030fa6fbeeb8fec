"""Retention: each dataset is kept for its own period (``SETLIST_RETENTION_*``), counted back from now.

Every step is atomic per file (a whole date partition goes file by file; the boundary day's files are
rewritten without the old rows, through ``write_atomic``) and idempotent: a second run finds nothing
to do. ``dry_run`` reports what would go and changes nothing.

Acknowledged events are never deleted outside the events retention: an orphaned Track journal
segment is not removed but moved into the event log, where that retention applies.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setlist.compaction import dataset_at, files_bytes, rewriting, written_at
from setlist.eventlog import EventLog, write_atomic
from setlist.settings import Settings

_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass
class DatasetResult:
    dataset: str
    cutoff: datetime | None  # None: kept forever (no retention set)
    files_before: int = 0
    bytes_before: int = 0
    files_removed: int = 0
    rows_removed: int = 0
    files_rewritten: int = 0
    bytes_after: int = 0
    files_after: int = 0
    moved: int = 0  # journal rows moved into the event log
    notes: list[str] = field(default_factory=list)
    #: bytes of the files that go whole, for a dry run's "after" (a day rewritten without some rows counts
    #: as kept: a small file shrinks little, as its size is mostly its metadata)
    bytes_gone: int = 0


Progress = Callable[[str], None]


def apply(
    settings: Settings, *, now: datetime | None = None, dry_run: bool = False, progress: Progress | None = None
) -> list[DatasetResult]:
    now = now or datetime.now(UTC)
    say = progress or (lambda _: None)
    days = timedelta(days=1)
    results = []
    say("events")
    events_cutoff = now - settings.retention_events_days * days if settings.retention_events_days else None
    with _rewriting(settings, settings.events_dir, dry_run, say) as finished:
        results.append(_partitioned("events", settings.events_dir, events_cutoff, dry_run))
    _finished(results[-1], finished)
    say("impressions")
    with _rewriting(settings, settings.impressions_dir, dry_run, say) as finished:
        results.append(
            _partitioned(
                "impressions", settings.impressions_dir, now - settings.retention_impressions_days * days, dry_run
            )
        )
    _finished(results[-1], finished)
    say("quarantine")
    with _rewriting(settings, settings.quarantine_dir, dry_run, say) as finished:
        results.append(_quarantine(settings.quarantine_dir, now - settings.retention_quarantine_days * days, dry_run))
    _finished(results[-1], finished)
    say("journal")
    results.append(_journal(settings, now - timedelta(hours=settings.retention_journal_hours), dry_run))
    say("reports")
    results.append(_by_mtime("reports", settings.reports_dir, now - settings.retention_reports_days * days, dry_run))
    return results


def _rewriting(settings: Settings, root: Path, dry_run: bool, say: Progress) -> AbstractContextManager[int]:
    """A dataset's files with no compaction or down-sampling under way (one would merge files retention is
    deleting, and a killed one's staged outputs would bring expired rows back when finished). A dry run
    changes nothing and waits for nothing."""
    return nullcontext(0) if dry_run else rewriting(dataset_at(settings, root), say)


def _finished(result: DatasetResult, swaps: int) -> None:
    if swaps:
        result.notes.append(f"{swaps} interrupted compaction(s) finished first")


def events_cutoff(settings: Settings, now: datetime) -> datetime | None:
    """The oldest event time ingestion and Track accept (None: no events retention)."""
    if not settings.retention_events_days:
        return None
    return now - timedelta(days=settings.retention_events_days)


# --- datasets ------------------------------------------------------------------------------------------
def _partitioned(name: str, root: Path, cutoff: datetime | None, dry_run: bool) -> DatasetResult:
    """Hive-partitioned parquet (``date=YYYY-MM-DD/…``, at any depth): partitions before the cutoff's
    day go whole; the cutoff's own day is rewritten without the rows before it."""
    out = DatasetResult(name, cutoff)
    files = list(_parquet(root))
    out.files_before, out.bytes_before = len(files), files_bytes(files)
    if cutoff is None:
        out.notes.append("no retention set: kept")
        _after(out, files, dry_run)
        return out
    day = cutoff.date().isoformat()
    for f in files:
        partition = _partition_day(f)
        if partition is None or partition > day:
            continue
        if partition < day:
            out.rows_removed += pq.ParquetFile(f).metadata.num_rows
            out.files_removed += 1
            out.bytes_gone += f.stat().st_size
            if not dry_run:
                f.unlink()
            continue
        table = pq.read_table(f)
        if "timestamp" not in table.column_names:
            continue
        keep = pc.greater_equal(table["timestamp"], pa.scalar(cutoff, table.schema.field("timestamp").type))
        kept = table.filter(pc.fill_null(keep, True))
        if kept.num_rows == table.num_rows:
            continue
        out.rows_removed += table.num_rows - kept.num_rows
        if dry_run:
            continue
        if kept.num_rows:
            write_atomic(kept, f)
            out.files_rewritten += 1
        else:
            f.unlink()
            out.files_removed += 1
    if not dry_run:
        _drop_empty_dirs(root)
    _after(out, files, dry_run)
    return out


def _quarantine(root: Path, cutoff: datetime, dry_run: bool) -> DatasetResult:
    """Quarantined rows (one parquet file per batch) and rejected feature batches (a directory per
    rejection), by the time in their names (their modification time when the name has none)."""
    out = DatasetResult("quarantine", cutoff)
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    out.files_before, out.bytes_before = len(files), files_bytes(files)
    gone: list[Path] = []
    for f in sorted(root.glob("*.parquet")) if root.exists() else []:
        if written_at(f) < cutoff:
            out.rows_removed += pq.ParquetFile(f).metadata.num_rows
            gone.append(f)
    batches = root / "features"
    for d in sorted(batches.iterdir()) if batches.exists() else []:
        if d.is_dir() and written_at(d) < cutoff:
            gone.append(d)
    for p in gone:
        inside = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
        out.files_removed += len(inside)
        out.bytes_gone += files_bytes(inside)
        if not dry_run:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    _after(out, files, dry_run)
    return out


def _journal(settings: Settings, cutoff: datetime, dry_run: bool) -> DatasetResult:
    """Orphaned journal directories (no live server holds them) with a segment older than the cutoff
    are moved into the event log, exactly once, under each directory's lock."""
    from setlist.journal_dirs import DirLock, JournalLocked, journal_dirs, recover_directory

    root = settings.journal_sweep_dir or settings.wal_dir
    out = DatasetResult("journal", cutoff)
    segments = list(root.rglob("*.jsonl")) if root.exists() else []
    out.files_before, out.bytes_before = len(segments), files_bytes(segments)
    events = EventLog(settings.events_dir)
    for directory in journal_dirs(root) if root.exists() else []:
        old = [s for s in directory.glob("*.jsonl") if _mtime(s) < cutoff]
        if not old:
            continue
        try:
            lock = DirLock.acquire(directory)
        except JournalLocked:
            continue  # a live server's: it rolls its own segments within seconds
        try:
            if dry_run:
                moving = list(directory.glob("*.jsonl"))
                out.files_removed += len(moving)
                out.bytes_gone += files_bytes(moving)
                continue
            n = len(list(directory.glob("*.jsonl")))
            out.moved += recover_directory(directory, events)
            out.files_removed += n
        finally:
            lock.release()
    if out.moved or (dry_run and out.files_removed):
        out.notes.append("orphaned segments hold acknowledged events: moved into the event log, not deleted")
    _after(out, segments, dry_run)
    return out


def _by_mtime(name: str, root: Path, cutoff: datetime, dry_run: bool) -> DatasetResult:
    out = DatasetResult(name, cutoff)
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    out.files_before, out.bytes_before = len(files), files_bytes(files)
    for f in files:
        if _mtime(f) < cutoff:
            out.files_removed += 1
            out.bytes_gone += f.stat().st_size
            if not dry_run:
                f.unlink()
    if not dry_run:
        _drop_empty_dirs(root)
    _after(out, files, dry_run)
    return out


# --- helpers -------------------------------------------------------------------------------------------
def _parquet(root: Path) -> Iterator[Path]:
    if root.exists():
        yield from sorted(p for p in root.rglob("date=*/*.parquet") if not p.name.startswith("."))


def _partition_day(path: Path) -> str | None:
    m = _DATE_DIR.match(path.parent.name)
    return m.group(1) if m else None


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _after(out: DatasetResult, before: list[Path], dry_run: bool) -> None:
    if dry_run:
        out.files_after = out.files_before - out.files_removed
        out.bytes_after = max(0, out.bytes_before - out.bytes_gone)
        return
    left = [f for f in before if f.exists()]
    out.files_after, out.bytes_after = len(left), files_bytes(left)


def _drop_empty_dirs(root: Path) -> None:
    if not root.exists():
        return
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass  # not empty
