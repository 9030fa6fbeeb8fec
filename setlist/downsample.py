"""Down-sampling of old impressions: past ``impressions_raw_days`` a day's impression rows become daily
counts, and the raw rows go.

At k rows per Rank the impression log outgrows the event log, while an old experiment is read for its
per-arm totals. What stays, per UTC day, under ``<impressions>/daily/date=YYYY-MM-DD/``: the rows shown
(``impressions``) per experiment, arm, holdout flag, position, serving model (served, variant and
both versions, which the report names per arm) and whether the response ordered a caller's own slate
(``caller_slate``: false for raw rows written before the flag, as the report reads them raw; null only in
counts an earlier release wrote, which did not keep it). Requests are the rows at position 1. What goes: who saw
what, so users, the feedback join, per-user rates, their intervals and the SRM check can only use days
still raw; ``experiments.data`` reads both and the report says which of its numbers cover which days.

Each day is one :mod:`setlist.swap`: its aggregate replaces its raw files (and that day's earlier
aggregate, when rows arrived late), so a killed run is finished by the next one and ``read_all`` readers
see a day either raw or counted, never both. A day with no raw rows left is done: a second run does
nothing. Rows of erased users are not counted (erasure removes them anyway). A raw file rewritten while
it was counted (erasure scrubs a user, retention cuts old rows: rewrites only ever remove rows) still
goes; its removed rows may stay counted, anonymously.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setlist import swap
from setlist.compaction import files_bytes
from setlist.eventlog import Erased, EventLog
from setlist.impressions import IMPRESSION_SCHEMA, read_impression_files

DAILY = "daily"
KEYS = ("experiment", "arm", "holdout", "served", "variant", "candidates_version", "ranker_version",
        "caller_slate", "position")  # fmt: skip
DAILY_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        *(IMPRESSION_SCHEMA.field(k) for k in KEYS),
        pa.field("impressions", pa.int64(), nullable=False),  # rows shown
    ]
)
RAW = "date=*/*.parquet"
AGGREGATES = f"{DAILY}/date=*/*.parquet"
_DAY = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
Progress = Callable[[str], None]


@dataclass
class DownsampleStats:
    dataset: str
    before_day: date  # days before this one are counted
    days: list[str] = field(default_factory=list)  # counted now (a dry run: would be)
    raw_files: int = 0
    raw_bytes: int = 0
    raw_rows: int = 0
    erased: int = 0  # rows of erased users, not counted
    aggregate_rows: int = 0
    young: int = 0  # raw files of old days left alone as younger than min_age_s
    recovered: int = 0
    files_before: int = 0
    bytes_before: int = 0
    files_after: int = 0
    bytes_after: int = 0
    notes: list[str] = field(default_factory=list)


def downsample(
    root: Path,
    older_than_days: float,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    min_age_s: float = 3600.0,
    tombstones: Path | None = None,
    name: str = "impressions",
    progress: Progress | None = None,
) -> DownsampleStats:
    """Count and remove the raw impressions of every UTC day that ended more than ``older_than_days``
    before ``now``. ``tombstones``: the event log whose erased users are not counted."""
    now = now or datetime.now(UTC)
    say = progress or (lambda _: None)
    stats = DownsampleStats(name, (now - timedelta(days=older_than_days)).date())
    root = Path(root)
    if not root.exists():
        stats.notes.append("does not exist: nothing to do")
        return stats
    before = swap.listing(root, [RAW, AGGREGATES])
    stats.files_before, stats.bytes_before = len(before), files_bytes(before)
    if dry_run:
        stats.recovered = len(swap.pending(root))
        for day, raw, young in _old_days(root, stats.before_day, min_age_s, now):
            stats.young += len(young)
            if raw:
                stats.days.append(day)
                stats.raw_files += len(raw)
                stats.raw_bytes += files_bytes(raw)
                stats.raw_rows += sum(pq.ParquetFile(f).metadata.num_rows for f in raw)
        stats.files_after = stats.files_before - stats.raw_files + len(stats.days)
        stats.bytes_after = stats.bytes_before
        return stats
    erased = EventLog(tombstones).erased() if tombstones else Erased()
    try:
        with swap.locked(root):
            stats.recovered = swap.recover(root, _always)
            for day, raw, young in _old_days(root, stats.before_day, min_age_s, now):
                stats.young += len(young)
                if raw:
                    say(f"{name}: {day}")
                    _count_day(root, day, raw, erased, stats)
                _drop_if_empty(root / f"date={day}")
    except swap.Busy as exc:
        stats.notes.append(f"skipped: {exc}")
    if stats.recovered:
        stats.notes.append(f"{stats.recovered} interrupted day(s) finished")
    after = swap.listing(root, [RAW, AGGREGATES])
    stats.files_after, stats.bytes_after = len(after), files_bytes(after)
    return stats


def _drop_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # impressions are written at the current time: a counted day stays empty
    except OSError:
        pass  # a file too young to count, or one written meanwhile


def _always(path: Path, replaced: frozenset[Path]) -> bool:
    """A raw file rewritten meanwhile still goes: rewrites only remove rows, and the counts are kept."""
    return True


def _old_days(
    root: Path, before_day: date, min_age_s: float, now: datetime
) -> list[tuple[str, list[Path], list[Path]]]:
    """(day, its raw files old enough to count, those too young) for each raw day before ``before_day``."""
    out = []
    for d in sorted(root.glob("date=*")):
        m = _DAY.match(d.name)
        if not m or not d.is_dir() or date.fromisoformat(m.group(1)) >= before_day:
            continue
        files = sorted(p for p in d.glob("*.parquet") if not p.name.startswith("."))
        young = [f for f in files if now.timestamp() - f.stat().st_mtime < min_age_s]
        out.append((m.group(1), [f for f in files if f not in young], young))
    return out


def _count_day(root: Path, day: str, raw: list[Path], erased: Erased, stats: DownsampleStats) -> None:
    replaced = []
    tables = []
    for f in raw:
        replaced.append(swap.Replaced.of(root, f))
        tables.append(pq.read_table(f, schema=IMPRESSION_SCHEMA))
    rows = pa.concat_tables(tables)
    stats.raw_rows += rows.num_rows
    stats.raw_files += len(raw)
    stats.raw_bytes += sum(r.size for r in replaced)
    if erased and rows.num_rows:
        users = rows.column("user_id").to_pandas()
        gone = erased.among(users.unique())
        if gone:
            keep = ~users.isin(gone).to_numpy()
            stats.erased += int((~keep).sum())
            rows = rows.filter(pa.array(keep))
    counts = aggregate(rows, date.fromisoformat(day))
    folder = root / DAILY / f"date={day}"
    earlier = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".")) if folder.exists() else []
    if earlier:  # rows that arrived after the day was counted: one aggregate holds the day
        replaced += [swap.Replaced.of(root, f) for f in earlier]
        counts = _combine([counts, *(pq.read_table(f, schema=DAILY_SCHEMA) for f in earlier)])
    outputs = []
    if counts.num_rows:
        rel = f"{DAILY}/date={day}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-daily-{uuid.uuid4().hex[:8]}.parquet"
        swap.stage(counts, root, rel)
        outputs.append(rel)
    swap.commit(root, outputs, replaced, _always)
    stats.days.append(day)
    stats.aggregate_rows += counts.num_rows


def aggregate(rows: pa.Table, day: date) -> pa.Table:
    """Impression rows of one day → rows shown per ``KEYS`` (nulls are a key like any value)."""
    # a raw row from before the flag existed is the server's own ranking (Rank took no slate then), as the
    # report reads it raw: counted so, a null flag is left to mean "counted by a release that dropped it"
    rows = rows.set_column(
        rows.schema.get_field_index("caller_slate"), "caller_slate", pc.fill_null(rows.column("caller_slate"), False)
    )
    grouped = rows.select(list(KEYS)).append_column("n", pa.array([1] * rows.num_rows, pa.int64()))
    counts = grouped.group_by(list(KEYS), use_threads=False).aggregate([("n", "sum")])
    table = pa.table(
        {
            "date": pa.array([day] * counts.num_rows, pa.date32()),
            **{k: counts.column(k) for k in KEYS},
            "impressions": counts.column("n_sum"),
        }
    )
    return _sorted(table.cast(DAILY_SCHEMA))


def _combine(parts: list[pa.Table]) -> pa.Table:
    both = pa.concat_tables([p.cast(DAILY_SCHEMA) for p in parts])
    counts = both.group_by(["date", *KEYS], use_threads=False).aggregate([("impressions", "sum")])
    counts = counts.rename_columns([c.removesuffix("_sum") for c in counts.column_names])
    return _sorted(counts.select(DAILY_SCHEMA.names).cast(DAILY_SCHEMA))


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in ("date", *KEYS)])


# --- reading ---------------------------------------------------------------------------------------------------
def read_all(root: Path, experiment: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw impression rows, daily counts of the down-sampled days), optionally of one experiment, from
    one settled listing: a day being down-sampled meanwhile is in exactly one of the two."""
    root = Path(root)
    files = swap.listing(root, [RAW, AGGREGATES])
    raw = [f for f in files if f.parent.parent == root]
    counted = [f for f in files if f.parent.parent == root / DAILY]
    return read_impression_files(raw, experiment), read_daily_files(counted, experiment)


def read_daily_files(files: list[Path], experiment: str | None = None) -> pd.DataFrame:
    if not files:
        return DAILY_SCHEMA.empty_table().to_pandas()
    table = pa.concat_tables([pq.read_table(f, schema=DAILY_SCHEMA) for f in files])
    if experiment is not None:
        table = table.filter(pc.equal(table.column("experiment"), pa.scalar(experiment)))
    return _sorted(table).to_pandas()
