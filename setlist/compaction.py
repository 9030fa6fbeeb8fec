"""Compaction: merge each partition's small parquet files into files of about ``target_bytes``.

Track's journal rolls a file every couple of seconds per worker, and impressions and the quarantine are
written in small batches too: a day of traffic leaves tens of thousands of files, and every reader pays
for each one (a footer read, a schema check, a task). Compaction rewrites them into few large files.

Which files merge. A partition is a ``date=YYYY-MM-DD/`` directory of the event log or the impressions,
or, in the quarantine (one flat directory, whose retention goes by the time in each file's name), the
files of one UTC day. In each, the files smaller than half the target are merged (the journal's rolls
only once older than ``min_age_s``: the journal may still re-roll a recent one under the same name), in batches of about
``target_bytes`` of input, into ``<stamp>-compacted-<id>.parquet`` files. A partition is merged only when
it has a small file that no compaction wrote and that is not alone there, so a second run does nothing,
and a partition of one file at size is never rewritten. A merged file of the quarantine is stamped with
its newest input's time, so quarantine retention removes it when its newest row is due: the older rows
of that day are kept up to a day longer than ``retention_quarantine_days``.

Rows. Event-log rows are de-duplicated by ``event_id`` across the partition, keeping a copy already in
a file that stays: a journal segment re-rolled after an earlier compaction brings its events back under
their old file name, and the next compaction removes that copy. Impression and quarantine rows have no
id and merge as they are. Rows of erased (tombstoned) users are dropped, checked again after the swap:
erasure removes them anyway, and a merge must not carry back rows it scrubbed from an input meanwhile.

Safety. Every merge is one :mod:`setlist.swap`: outputs staged and fsynced, a manifest is the commit
point, then renames and deletes; a killed run is finished by the next one, so no row is lost or kept
twice. Between the first rename and the last delete of a swap (the unlinking of its inputs, milliseconds)
a reader listing the directory itself may see a row in an input and in its output; ``swap.listing``
readers never do (the event log's ``files`` does not use it yet, and the feature build keeps the first
of each event_id). A reader that listed a file just before it was deleted fails to open it and must read
again, as with retention and erasure.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from setlist import swap
from setlist.contract import EVENT_SCHEMA
from setlist.eventlog import Erased, EventLog, write_atomic
from setlist.impressions import IMPRESSION_SCHEMA
from setlist.settings import Settings

DEFAULT_TARGET_BYTES = 128 * 2**20
DEFAULT_MIN_AGE_S = 3600.0
#: a journal roll is named after its segment (serving.journal): the one file that can be written twice
JOURNAL_PREFIX = "journal-"
_OUTPUT = re.compile(r"-compacted-[0-9a-f]{16}\.parquet$")
_STAMP = re.compile(r"^(\d{8}T\d{6})")
Layout = Literal["events", "impressions", "quarantine"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path
    layout: Layout
    #: the event log whose tombstones say which users' rows must not come back (None: no erasure check)
    tombstones: Path | None = None

    def erased(self) -> Erased:
        return EventLog(self.tombstones).erased() if self.tombstones else Erased()

    def files(self) -> list[Path]:
        """Every visible data file (not the impressions' daily aggregates, which are one file a day)."""
        pattern = "*.parquet" if self.layout == "quarantine" else "date=*/*.parquet"
        return swap.listing(self.root, [pattern])


def datasets(settings: Settings) -> list[Dataset]:
    """The event log, the impressions and the quarantine, and the simulation's log and impressions when
    it has any (erasure and retention cover those too)."""
    sim = settings.simulation_dir
    out = [Dataset("events", settings.events_dir, "events", settings.events_dir)]
    if (sim / "events").exists() and sim / "events" != settings.events_dir:
        out.append(Dataset("simulation events", sim / "events", "events", sim / "events"))
    out.append(Dataset("impressions", settings.impressions_dir, "impressions", settings.events_dir))
    if (sim / "impressions").exists() and sim / "impressions" != settings.impressions_dir:
        out.append(Dataset("simulation impressions", sim / "impressions", "impressions", sim / "events"))
    out.append(Dataset("quarantine", settings.quarantine_dir, "quarantine", settings.events_dir))
    return out


@dataclass
class Merge:
    """One partition's merge: planned (dry run) or done."""

    partition: str
    inputs: int
    input_bytes: int
    outputs: int


@dataclass
class DatasetStats:
    dataset: str
    files_before: int = 0
    bytes_before: int = 0
    files_after: int = 0
    bytes_after: int = 0
    rows_in: int = 0
    rows_out: int = 0
    duplicates: int = 0  # repeated event_ids dropped
    erased: int = 0  # rows of erased users dropped
    young: int = 0  # files left alone as younger than min_age_s
    recovered: int = 0  # interrupted merges finished (a dry run: found)
    merges: list[Merge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why this run left the dataset alone (another job held it)


@dataclass
class CompactionReport:
    dry_run: bool
    target_bytes: int
    min_age_s: float
    datasets: list[DatasetStats] = field(default_factory=list)

    def get(self, name: str) -> DatasetStats:
        return next(d for d in self.datasets if d.dataset == name)


def compact(
    root: Path | Dataset | Sequence[Dataset],
    target_bytes: int = DEFAULT_TARGET_BYTES,
    min_age_s: float = DEFAULT_MIN_AGE_S,
    dry_run: bool = False,
    progress: Progress | None = None,
    *,
    now: float | None = None,
) -> CompactionReport:
    """Compact an event log (``root`` a path), or the given datasets. ``now`` (epoch seconds) is what file
    ages are measured from."""
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    if isinstance(root, Dataset):
        chosen: Sequence[Dataset] = [root]
    elif isinstance(root, Path):
        chosen = [Dataset("events", root, "events", root)]
    else:
        chosen = root
    say = progress or (lambda _: None)
    report = CompactionReport(dry_run, target_bytes, min_age_s)
    for ds in chosen:
        say(ds.name)
        report.datasets.append(_dataset(ds, target_bytes, min_age_s, dry_run, now or time.time(), say))
    return report


def dataset_at(settings: Settings, root: Path) -> Dataset | None:
    """The dataset (of :func:`datasets`) whose files are under ``root``; None when there is none there."""
    return next((d for d in datasets(settings) if d.root == root), None)


@contextmanager
def rewriting(ds: Dataset | None, say: Progress) -> Iterator[int]:
    """For another rewriter of a dataset's files (erasure, retention): no compaction or down-sampling runs
    until the block ends (a running one is waited for, and the wait is said), and one a crash interrupted is
    finished first, so every row is in a file readers list and none only in a staged output. Yields the
    interrupted swaps finished. ``ds`` None or not there yet: nothing to wait for."""
    if ds is None or not ds.root.exists():
        yield 0
        return

    def waiting() -> None:
        say(f"waiting for the {ds.name} to be free (a compaction, retention or down-sampling, or a job reading them)")

    with swap.locked(ds.root, blocking=True, waiting=waiting):
        yield swap.recover(ds.root, _covered(ds))


# --- one dataset ---------------------------------------------------------------------------------------------
def _dataset(ds: Dataset, target: int, min_age_s: float, dry_run: bool, now: float, say: Progress) -> DatasetStats:
    stats = DatasetStats(ds.name)
    if not ds.root.exists():
        stats.notes.append("does not exist: nothing to do")
        return stats
    before = ds.files()
    stats.files_before, stats.bytes_before = len(before), files_bytes(before)
    if dry_run:
        stats.recovered = len(swap.pending(ds.root))
        if stats.recovered:
            stats.notes.append(f"{stats.recovered} interrupted merge(s) would be finished first")
        for key, files in _partitions(ds).items():
            batches, young = _plan(files, target, min_age_s, now)
            stats.young += len(young)
            if batches:
                inputs = [f for b in batches for f in b]
                stats.merges.append(Merge(key, len(inputs), files_bytes(inputs), len(batches)))
        stats.files_after = stats.files_before - sum(m.inputs - m.outputs for m in stats.merges)
        stats.bytes_after = stats.bytes_before  # unknown until written; compression usually shrinks it
        return stats
    try:
        with swap.locked(ds.root):
            stats.recovered = swap.recover(ds.root, _covered(ds))
            if stats.recovered:
                stats.notes.append(f"{stats.recovered} interrupted merge(s) finished")
            for key, files in _partitions(ds).items():
                batches, young = _plan(files, target, min_age_s, now)
                stats.young += len(young)
                if batches:
                    say(f"{ds.name}: {key}")
                    stats.merges.append(_merge_partition(ds, key, files, batches, stats))
    except swap.Busy as exc:
        stats.skipped = str(exc)
        stats.notes.append(f"skipped: {exc}")
    after = ds.files()
    stats.files_after, stats.bytes_after = len(after), files_bytes(after)
    return stats


def _partitions(ds: Dataset) -> dict[str, list[Path]]:
    """Partition name → its visible files. The caller holds the lock (or only plans): no swap is half-done."""
    if ds.layout == "quarantine":
        days: dict[str, list[Path]] = defaultdict(list)
        for f in _visible(ds.root.glob("*.parquet")):
            days[written_at(f).date().isoformat()].append(f)
        return dict(sorted(days.items()))
    return {d.name: _visible(d.glob("*.parquet")) for d in sorted(ds.root.glob("date=*")) if d.is_dir()}


def _plan(files: list[Path], target: int, min_age_s: float, now: float) -> tuple[list[list[Path]], list[Path]]:
    """(batches to merge, each about ``target`` bytes of input; the files too young to touch)."""
    stat = {}
    for f in files:
        try:
            stat[f] = f.stat()
        except FileNotFoundError:  # retention or erasure removed it meanwhile
            continue
    # only a journal roll can be written again under its name (a re-roll after a crash); every other
    # file is written once, and may merge at once
    young = [f for f in stat if f.name.startswith(JOURNAL_PREFIX) and now - stat[f].st_mtime < min_age_s]
    waiting = set(young)
    small = [f for f in stat if f not in waiting and stat[f].st_size < target / 2]
    fresh = [f for f in small if not _OUTPUT.search(f.name)]
    # only new small files start a merge (a run after a run finds none); a lone file has nothing to merge with
    if not fresh or (len(fresh) == 1 and len(files) == 1):
        return [], young
    batches: list[list[Path]] = [[]]
    held = 0
    for f in sorted(small, key=lambda p: p.name):
        if batches[-1] and held + stat[f].st_size > target:
            batches.append([])
            held = 0
        batches[-1].append(f)
        held += stat[f].st_size
    return batches, young


def _merge_partition(ds: Dataset, key: str, files: list[Path], batches: list[list[Path]], stats: DatasetStats) -> Merge:
    inputs = [f for b in batches for f in b]
    merging = set(inputs)
    staying = [f for f in files if f not in merging]
    erased = ds.erased()
    # event_ids already in a file that stays: a copy of one in the inputs is dropped
    seen: set[str] = set()
    if ds.layout == "events":
        for f in staying:
            seen.update(pq.read_table(f, columns=["event_id"]).column("event_id").to_pylist())
    replaced: list[swap.Replaced] = []
    outputs: list[str] = []
    try:
        for batch in batches:
            tables = []
            for f in batch:
                replaced.append(swap.Replaced.of(ds.root, f))  # before reading: a rewrite after this is noticed
                tables.append(_read(ds, f))
            stats.rows_in += sum(t.num_rows for t in tables)
            for table in _concat(ds, tables):
                table = _drop_erased(table, erased, stats)
                if ds.layout == "events":
                    table = _dedupe(table, seen, stats)
                if not table.num_rows:
                    continue
                rel = _output_name(ds, key, batch)
                swap.stage(_sorted(ds, table), ds.root, rel)
                outputs.append(rel)
                stats.rows_out += table.num_rows
    except BaseException:
        for rel in outputs:  # before the commit point no one needs them; a full disk wants the room back
            swap.staging(ds.root, rel).unlink(missing_ok=True)
        raise
    swap.commit(ds.root, outputs, replaced, _covered(ds))
    if ds.erased().fingerprint() != erased.fingerprint():
        _scrub(ds, [ds.root / o for o in outputs])  # an erasure ran meanwhile and may have scrubbed only the inputs
    return Merge(key, len(inputs), sum(r.size for r in replaced), len(outputs))


# --- rows ------------------------------------------------------------------------------------------------------
def _read(ds: Dataset, path: Path) -> pa.Table:
    table = pq.ParquetFile(path).read().replace_schema_metadata(None)
    schema = {"events": EVENT_SCHEMA, "impressions": IMPRESSION_SCHEMA}.get(ds.layout)
    if schema is None or table.schema.equals(schema):
        return table
    return pq.read_table(path, schema=schema)  # an older file: missing columns become nulls (half as fast)


def _concat(ds: Dataset, tables: list[pa.Table]) -> list[pa.Table]:
    """One table; the quarantine's files have the columns of whatever was rejected, so they are unified
    (a column missing from one file is null there) or, where types clash, merged per schema."""
    if ds.layout != "quarantine":
        return [pa.concat_tables(tables)]
    try:
        return [pa.concat_tables(tables, promote_options="permissive")]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        by_schema: dict[pa.Schema, list[pa.Table]] = defaultdict(list)
        for t in tables:
            by_schema[t.schema].append(t)
        return [pa.concat_tables(group) for group in by_schema.values()]


def _drop_erased(table: pa.Table, erased: Erased, stats: DatasetStats | None = None) -> pa.Table:
    if not erased or "user_id" not in table.column_names:
        return table
    users = table.column("user_id").to_pandas()
    gone = erased.among(users.dropna().unique())
    if not gone:
        return table
    keep = ~users.isin(gone).to_numpy()
    if stats is not None:
        stats.erased += int((~keep).sum())
    return table.filter(pa.array(keep))


def _dedupe(table: pa.Table, seen: set[str], stats: DatasetStats) -> pa.Table:
    """Keep the first row of each event_id not in ``seen``; the kept ids join ``seen``."""
    ids = table.column("event_id").to_pandas()
    keep = (~ids.duplicated(keep="first") & ~ids.isin(seen)).to_numpy()
    stats.duplicates += int((~keep).sum())
    seen.update(ids[keep])
    return table.filter(pa.array(keep)) if not keep.all() else table


def _sorted(ds: Dataset, table: pa.Table) -> pa.Table:
    keys = {
        "events": ["timestamp", "event_id"],
        "impressions": ["timestamp", "request_id", "position"],
        "quarantine": ["quarantined_at"],
    }[ds.layout]
    if not all(k in table.column_names for k in keys):
        return table
    return table.sort_by([(k, "ascending") for k in keys])


def _output_name(ds: Dataset, key: str, batch: list[Path]) -> str:
    # the newest input's time: quarantine retention goes by the time in a file's name
    stamp = max(written_at(f) for f in batch).strftime("%Y%m%dT%H%M%S%f")
    name = f"{stamp}-compacted-{uuid.uuid4().hex[:16]}.parquet"
    return name if ds.layout == "quarantine" else f"{key}/{name}"


def _covered(ds: Dataset) -> swap.Covered:
    """Whether a replaced file rewritten after it was read (erasure, retention, a journal re-roll) still has
    every row in a file that stays: by event_id in the event log, by the whole row elsewhere."""

    def covered(path: Path, replaced: frozenset[Path]) -> bool:
        erased = ds.erased()
        table = _drop_erased(_read(ds, path), erased)
        if not table.num_rows:
            return True
        folder = ds.root if ds.layout == "quarantine" else path.parent
        others = [_read(ds, f) for f in _visible(folder.glob("*.parquet")) if f not in replaced]
        if ds.layout == "events":
            ids = {i for t in others for i in t.column("event_id").to_pylist()}
            return set(table.column("event_id").to_pylist()) <= ids
        cols = table.column_names
        rows = {r for t in others for r in _rows(t, cols)}
        return set(_rows(table, cols)) <= rows

    return covered


def _rows(table: pa.Table, cols: list[str]) -> Iterable[tuple]:
    def norm(values: list) -> list:  # NaN != NaN would make a row never equal to itself
        return [None if isinstance(v, float) and math.isnan(v) else v for v in values]

    columns = [norm(table.column(c).to_pylist()) if c in table.column_names else [None] * len(table) for c in cols]
    return zip(*columns)


def _scrub(ds: Dataset, paths: list[Path]) -> None:
    erased = ds.erased()
    for path in paths:
        if not path.exists():
            continue
        table = _read(ds, path)
        kept = _drop_erased(table, erased)
        if kept.num_rows == table.num_rows:
            continue
        if kept.num_rows:
            write_atomic(kept, path)
        else:
            path.unlink()


# --- files -----------------------------------------------------------------------------------------------------
def _visible(paths: Iterable[Path]) -> list[Path]:
    return sorted(p for p in paths if not p.name.startswith("."))


def written_at(path: Path) -> datetime:
    """When a file was written: the time in its name (how retention dates the quarantine), else its mtime."""
    m = _STAMP.match(path.name)
    if m:
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def files_bytes(files: Iterable[Path]) -> int:
    """The bytes of ``files``; one removed meanwhile (retention, erasure) counts as none."""
    total = 0
    for f in files:
        try:
            total += f.stat().st_size
        except FileNotFoundError:
            continue
    return total
