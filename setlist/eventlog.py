"""The append-only event log: parquet files, hive-partitioned by ``date=YYYY-MM-DD``.

Every append writes new files and never rewrites old ones (except erasure compaction), so a
replay over the same files gives the same features. Files are written to a temporary name,
fsynced and renamed, so a crash leaves either a whole file or none.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from setlist.atomicfile import replace_atomic
from setlist.contract import EVENT_SCHEMA
from setlist.memory import release_freed
from setlist.swap import STAGED_SUFFIX, listing, micro

TOMBSTONES = "_tombstones.parquet"
log = logging.getLogger("setlist.eventlog")


def erasure_digest(pseudonym: str) -> str:
    """What a tombstone keeps of an erased user: a one-way digest of the pseudonym, never the
    pseudonym itself (which would identify them again for anyone holding the key)."""
    return hashlib.sha256(b"setlist/erased/" + pseudonym.encode()).hexdigest()


class Erased:
    """The tombstoned users, as digests: asked about the pseudonyms a reader actually holds."""

    def __init__(self, digests: Iterable[str] = ()) -> None:
        self.digests = frozenset(digests)

    def __bool__(self) -> bool:
        return bool(self.digests)

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, pseudonym: object) -> bool:
        return isinstance(pseudonym, str) and erasure_digest(pseudonym) in self.digests

    def among(self, pseudonyms: Iterable[str]) -> set[str]:
        """Which of ``pseudonyms`` are erased (one digest per distinct pseudonym)."""
        if not self.digests:
            return set()
        return {p for p in set(pseudonyms) if isinstance(p, str) and erasure_digest(p) in self.digests}

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(sorted(self.digests)).encode()).hexdigest()


#: a writer's temporary untouched for this long was left by a process that died: it was never renamed
#: into place, so nothing it holds was acknowledged
STALE_TEMPORARY_S = 60.0


def remove_stale_temporaries(root: Path, older_than_s: float = STALE_TEMPORARY_S) -> int:
    """Delete the ``.<name>.tmp`` files ``write_atomic`` left under ``root`` when its process was killed
    before the rename; a live writer's (touched within ``older_than_s``) is left alone. Each holds rows
    (users' rows, among them) that no reader lists and no erasure would otherwise reach. Returns files removed.
    A swap's staged outputs are not such leftovers (``swap.STAGED_SUFFIX``): after its commit point one may
    hold the only copy of its rows, and ``swap.recover`` finishes or removes them."""
    if not root.exists():
        return 0
    cutoff, removed = time.time() - older_than_s, 0
    for tmp in root.rglob(".*.tmp"):
        if tmp.name.endswith(STAGED_SUFFIX):
            continue
        try:
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
    return removed


def write_atomic(table: pa.Table, path: Path) -> None:
    write_atomic_groups(table.schema, [table], path)


#: rows per parquet row group, pyarrow's default: ``write_atomic_groups`` writes tables of this many
#: rows so that a file written a group at a time is the file one table would give, to the byte
ROW_GROUP_ROWS = 1024 * 1024


def write_atomic_groups(schema: pa.Schema, tables: Iterable[pa.Table], path: Path) -> None:
    """``tables`` (each of ``schema``) written one after another as one parquet file, atomically,
    for a file too big to hold whole: every table but the last should hold ``ROW_GROUP_ROWS``."""

    def write(fh: BinaryIO) -> None:
        with pq.ParquetWriter(fh, micro(schema.empty_table()).schema, compression="zstd") as writer:
            for table in tables:
                writer.write_table(micro(table), row_group_size=ROW_GROUP_ROWS)

    replace_atomic(path, write)


def to_table(frame: pd.DataFrame) -> pa.Table:
    """Coerce a frame to the event schema (missing optional columns become nulls)."""
    frame = frame.copy()
    for name in EVENT_SCHEMA.names:
        if name not in frame.columns:
            frame[name] = None
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("ms")  # the contract stores ms
    return pa.Table.from_pandas(frame[list(EVENT_SCHEMA.names)], schema=EVENT_SCHEMA, preserve_index=False)


class EventLog:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- writing ---------------------------------------------------------------------------
    def append(self, frame: pd.DataFrame, tag: str = "batch", name: str | None = None) -> int:
        """Append valid events; one new file per date partition. Returns rows written.

        With ``name`` the files are named deterministically, so replaying the same batch (after a
        crash between writing and forgetting it) overwrites rather than duplicates."""
        if frame.empty:
            return 0
        table = to_table(frame)
        # the UTC day of each row, as datetime64[D] (str() of one is YYYY-MM-DD): formatting every
        # row with strftime was most of a journal roll's pandas time
        ns = pd.to_datetime(frame["timestamp"], utc=True).to_numpy(dtype="datetime64[ns]")
        days = ns.astype("datetime64[D]")
        # one stable sort by (day, time), then each day is a slice: a mask per day made an import
        # of decades of history (thousands of days) cost rows × days
        order = np.lexsort((ns, days))
        table, days = table.take(pa.array(order)), days[order]
        firsts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        written = 0
        for start, end in zip(firsts, [*firsts[1:], len(days)], strict=True):
            part = table.slice(int(start), int(end - start))
            fname = f"{name}.parquet" if name else f"{stamp}-{tag}-{uuid.uuid4().hex[:8]}.parquet"
            write_atomic(part, self.root / f"date={str(days[start])}" / fname)
            written += part.num_rows
        return written

    # --- reading ---------------------------------------------------------------------------
    def files(self) -> list[Path]:
        if not self.root.exists():
            return []
        # through the swap protocol: a compaction's inputs or its outputs, never both (setlist.swap)
        return listing(self.root, ["date=*/*.parquet"])

    def newest(self) -> pd.Timestamp | None:
        """The time of the log's newest event (read from its newest day's files only), None if empty."""
        files = self.files()
        if not files:
            return None
        last_day = max(f.parent.name for f in files)
        times = ds.dataset([str(f) for f in files if f.parent.name == last_day], schema=EVENT_SCHEMA, format="parquet")
        newest = pc.max(times.to_table(columns=["timestamp"]).column("timestamp")).as_py()
        return None if newest is None else pd.Timestamp(newest)

    def read(
        self,
        columns: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        include_erased: bool = False,
        *,
        codes: Iterable[str] = (),
        ids_as_positions: bool = False,
        files: list[Path] | None = None,
    ) -> pd.DataFrame:
        """Read the log as a frame sorted by (timestamp, event_id); erased users are dropped.

        For a caller that only compares some string columns for equality, ``codes`` turns them into
        integer codes (-1 for null), and ``ids_as_positions`` replaces event ids by their position in
        the sort: a Python string per event costs ~70 bytes, ~1 GB per column of a 16M-event log.
        ``files``: a listing taken before (the one a snapshot was hashed from), instead of a new one."""
        files = self.files() if files is None else files
        cols = list(columns) if columns else list(EVENT_SCHEMA.names)
        # the sort and the erasure filter need these, whatever the caller asked for
        needed = list(dict.fromkeys(cols + ["timestamp", "event_id", "user_id"]))
        if not files:
            return EVENT_SCHEMA.empty_table().to_pandas()[cols]
        dataset = ds.dataset([str(f) for f in files], schema=EVENT_SCHEMA, format="parquet")
        flt = None
        if start is not None:
            flt = ds.field("timestamp") >= pa.scalar(start, pa.timestamp("ms", tz="UTC"))
        if end is not None:
            e = ds.field("timestamp") < pa.scalar(end, pa.timestamp("ms", tz="UTC"))
            flt = e if flt is None else flt & e
        table = dataset.to_table(columns=needed, filter=flt)
        if not include_erased:
            gone = self.erased().among(pc.unique(table["user_id"]).to_pylist())
            if gone:
                table = table.filter(pc.invert(pc.is_in(table["user_id"], pa.array(sorted(gone), pa.string()))))
        # in Arrow, before any Python string exists: bytewise order is Python's order for UTF-8
        order = pc.sort_indices(table, sort_keys=[("timestamp", "ascending"), ("event_id", "ascending")])
        rows, columns = table.num_rows, {name: table[name] for name in cols}
        del table, dataset
        # a column at a time, each freed once converted: the read's peak is then the table and one
        # sorted column, not the table, its sorted copy and the frame at once
        series: dict[str, pd.Series] = {}
        for name in cols:
            column = columns.pop(name)
            if ids_as_positions and name == "event_id":
                series[name] = pd.Series(np.arange(rows, dtype=np.int64), name=name)
                continue
            column = column.take(order)
            if name in codes:
                encoded = column.combine_chunks().dictionary_encode().indices
                column = pc.fill_null(encoded.cast(pa.int64()), -1)
            series[name] = column.to_pandas()
        del column, order
        frame = pd.DataFrame(series)
        del series
        release_freed()  # what Arrow and the conversion freed stays held until handed back
        return frame

    def oldest_write_after(self, since: float) -> float | None:
        """The write time (mtime, Unix seconds) of the oldest file written after ``since``, or None.

        A compaction's merged outputs are skipped: they hold events that were in the log already, and
        would make a covered log look newly written."""
        times = []
        for f in self.files():
            if "-compacted-" in f.name:
                continue
            try:
                mtime = f.stat().st_mtime
            except FileNotFoundError:  # compacted or erased meanwhile
                continue
            if mtime > since:
                times.append(mtime)
        return min(times, default=None)

    def count(self, files: Iterable[Path] | None = None) -> int:
        """Rows stored (of ``files``, default all), from the files' footers: nothing is read."""
        return sum(pq.ParquetFile(f).metadata.num_rows for f in (self.files() if files is None else files))

    def snapshot_hash(self, files: list[Path] | None = None) -> str:
        """A content hash of the log's file set (``files``, else a new listing): names, sizes and the
        tombstone list."""
        h = hashlib.sha256()
        for f in self.files() if files is None else files:
            h.update(f"{f.relative_to(self.root)}:{f.stat().st_size}\n".encode())
        h.update(self.erased().fingerprint().encode())
        return h.hexdigest()[:16]

    # --- erasure ---------------------------------------------------------------------------
    def kinds_of(self, ids: Iterable[str], files: Iterable[Path] | None = None) -> dict[str, tuple[str, float | None]]:
        """The type and value of each logged event among ``ids`` (erased users' included), in ``files``
        (default the whole log): one pass over their ids, types and values."""
        wanted = pa.array(list(set(ids)), pa.string())
        files = self.files() if files is None else [f for f in files if f.exists()]
        if not len(wanted) or not files:
            return {}
        dataset = ds.dataset([str(f) for f in files], schema=EVENT_SCHEMA, format="parquet")
        table = dataset.to_table(columns=["event_id", "type", "value"], filter=ds.field("event_id").isin(wanted))
        return dict(
            zip(
                table["event_id"].to_pylist(),
                zip(table["type"].cast(pa.string()).to_pylist(), table["value"].to_pylist(), strict=True),
                strict=True,
            )
        )

    def erased(self) -> Erased:
        path = self.root / TOMBSTONES
        if not path.exists():
            return Erased()
        table = pq.read_table(path)
        if "digest" not in table.column_names:  # written before tombstones held digests
            return Erased(erasure_digest(u) for u in table.column("user_id").to_pylist())
        return Erased(table.column("digest").to_pylist())

    def erased_since(self, when: datetime) -> int:
        """How many users were erased after ``when`` (by their tombstones' times; a tombstone of the older
        format has none, and counts as erased before)."""
        path = self.root / TOMBSTONES
        if not path.exists() or "erased_at" not in pq.read_schema(path).names:
            return 0
        at = pq.read_table(path, columns=["erased_at"]).column("erased_at")
        return int(pc.sum(pc.greater(at, pa.scalar(when, at.type))).as_py() or 0)

    def tombstone(self, pseudonym: str) -> None:
        """Record the erasure, so no rebuild brings the user back; also rewrites a tombstone file of
        the older format (which held pseudonyms) into digests."""
        when = {d: datetime.now(UTC) for d in self.erased().digests | {erasure_digest(pseudonym)}}
        path = self.root / TOMBSTONES
        if path.exists() and "digest" in pq.read_schema(path).names:  # keep when each was erased
            old = pq.read_table(path).to_pydict()
            when.update(zip(old["digest"], old["erased_at"]))
        digests = sorted(when)
        table = pa.table(
            {
                "digest": pa.array(digests, pa.string()),
                "erased_at": pa.array([when[d] for d in digests], pa.timestamp("ms", tz="UTC")),
            }
        )
        write_atomic(table, path)

    def compact_out(self, pseudonym: str) -> int:
        """Physically remove one user's rows from every partition file. Returns rows removed."""
        removed = 0
        for f in self.files():
            table = pq.read_table(f, schema=EVENT_SCHEMA)
            keep = pa.compute.not_equal(table.column("user_id"), pa.scalar(pseudonym))
            kept = table.filter(keep)
            if kept.num_rows != table.num_rows:
                removed += table.num_rows - kept.num_rows
                if kept.num_rows:
                    write_atomic(kept, f)
                else:
                    f.unlink()
        return removed


class Quarantine:
    """Rejected rows with their reasons, kept as parquet next to the log. ``put`` writes one file
    (the importer's batches); a request path uses :meth:`buffered` instead."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, frame: pd.DataFrame, reasons: list[str], source: str) -> int:
        if frame.empty:
            return 0
        out = _quarantine_rows(frame, reasons, source)
        self._write(out, source)
        return len(out)

    def held(self) -> set[tuple[str, str, str]]:
        """(event id, reason code, type) of each row the quarantine's files hold (a type not given: ""): an
        import run again does not quarantine the same row for the same reason twice. Three columns of the
        quarantine, which is read whole: an import's own ids would make a set as large as the import."""
        out: set[tuple[str, str, str]] = set()
        for f in listing(self.root, ["*.parquet"]) if self.root.exists() else []:
            names = set(pq.read_schema(f).names)
            if not {"event_id", "reason"} <= names:
                continue
            table = pq.read_table(f, columns=["event_id", "reason", *(["type"] if "type" in names else [])])
            kinds = table["type"].to_pylist() if "type" in names else [None] * table.num_rows
            out.update(
                (e, str(r).partition(":")[0], str(k or ""))
                for e, r, k in zip(table["event_id"].to_pylist(), table["reason"].to_pylist(), kinds)
                if isinstance(e, str) and e
            )
        return out

    def buffered(self, max_rows: int, flush_s: float) -> QuarantineBuffer:
        return QuarantineBuffer(self, max_rows, flush_s)

    def read(self) -> pd.DataFrame:
        files = listing(self.root, ["*.parquet"]) if self.root.exists() else []  # through compaction's swaps
        parts = [pq.read_table(f).to_pandas() for f in files]
        parts += [p for p in map(_read_pending, self._pending()) if not p.empty]
        if not parts:
            return pd.DataFrame(columns=["reason", "source"])
        return pd.concat(parts, ignore_index=True)

    def _write(self, out: pd.DataFrame, source: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        write_atomic(
            pa.Table.from_pandas(out, preserve_index=False),
            self.root / f"{stamp}-{source}-{uuid.uuid4().hex[:8]}.parquet",
        )

    def _pending(self) -> list[Path]:
        return sorted(self.root.glob(PENDING)) if self.root.exists() else []


#: a buffer's rows not yet in parquet: read() includes them, and a later buffer adopts a dead one's
PENDING = "pending-*.jsonl"


def _as_text(v: object) -> str | None:
    """A bad value as storable text; a missing one stays missing (a file's empty cell is no "nan")."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v):
        return None
    return str(v)


def _quarantine_rows(frame: pd.DataFrame, reasons: list[str], source: str) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:  # heterogenous bad values must still be storable
        if out[col].dtype == object:
            out[col] = out[col].map(_as_text)
    out["timestamp"] = out["timestamp"].astype(str) if "timestamp" in out else None
    out["reason"] = reasons
    out["source"] = source
    out["quarantined_at"] = datetime.now(UTC)
    return out


def _read_pending(path: Path) -> pd.DataFrame:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                break
    frame = pd.DataFrame(rows)
    if "quarantined_at" in frame:
        frame["quarantined_at"] = pd.to_datetime(frame["quarantined_at"], utc=True)
    return frame


class QuarantineBuffer:
    """The quarantine for a request path (Track): ``put`` appends the rows to this process's pending
    file, one write and no fsync; they become one parquet file (and its fsyncs) per ``max_rows``
    rows, every ``flush_s`` seconds, and at close. A crash loses nothing already written: the
    pending file stays, ``Quarantine.read`` includes it, and the next buffer in that directory turns
    it into parquet (a dead owner no longer holds its lock)."""

    def __init__(self, quarantine: Quarantine, max_rows: int, flush_s: float) -> None:
        self.quarantine, self.max_rows = quarantine, max(1, max_rows)
        root = quarantine.root
        root.mkdir(parents=True, exist_ok=True)
        self._adopt_orphans()
        name = f"pending-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        tmp = root / f".{name}"
        self._fh = open(tmp, "a+", encoding="utf-8")
        # locked before it gets the name orphans are looked up by, so no one can adopt a live file
        fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = root / name
        os.replace(tmp, self.path)
        self._rows = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(flush_s,), name="quarantine-flush", daemon=True)
        self._thread.start()

    def put(self, frame: pd.DataFrame, reasons: list[str], source: str) -> int:
        if frame.empty:
            return 0
        out = _quarantine_rows(frame, reasons, source)
        lines = "".join(json.dumps(r, default=str) + "\n" for r in out.to_dict("records"))
        with self._lock:
            self._fh.write(lines)
            self._fh.flush()  # to the OS: a crash of this process keeps the rows
            self._rows += len(out)
            full = self._rows >= self.max_rows
        if full:
            self.flush()
        return len(out)

    def flush(self) -> int:
        """Move the pending rows into one parquet file now. Returns the rows moved."""
        with self._lock:
            if not self._rows:
                return 0
            frame = _read_pending(self.path)
            # parquet first, then truncate: a crash in between keeps the rows twice, never zero times
            self.quarantine._write(frame, "buffered")
            self._fh.truncate(0)
            moved, self._rows = self._rows, 0
            return moved

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()  # if this raises, the pending file stays for read() and the next buffer
        self._fh.close()
        self.path.unlink(missing_ok=True)

    def _run(self, flush_s: float) -> None:
        while not self._stop.wait(flush_s):
            try:
                self.flush()
            except OSError:
                log.exception("could not write the quarantine; its rows stay pending in %s", self.path.name)

    def _adopt_orphans(self) -> None:
        adopt_orphans(self.quarantine)


def adopt_orphans(quarantine: Quarantine) -> int:
    """Turn the pending files of dead processes into parquet; returns how many live ones remain."""
    live = 0
    for path in quarantine._pending():
        try:
            fh = open(path, encoding="utf-8")
        except FileNotFoundError:
            continue  # adopted by another process meanwhile
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1  # its process is alive
                continue
            frame = _read_pending(path)
            if not frame.empty:
                quarantine._write(frame, "recovered")
            path.unlink()
    return live


def settle_pending(quarantine: Quarantine, wait_s: float, poll_s: float = 0.1) -> list[Path]:
    """Bring every buffered row into the quarantine's parquet files, so a scrub of those files sees
    all of them (erasure): orphans are adopted now, live buffers are waited for until their owner's
    next flush empties them, at most ``wait_s``. Returns the live files still holding rows."""
    deadline = time.monotonic() + wait_s
    while True:
        adopt_orphans(quarantine)
        holding = [p for p in quarantine._pending() if p.exists() and p.stat().st_size > 0]
        if not holding or time.monotonic() >= deadline:
            return holding
        time.sleep(poll_s)  # another process flushes on its own clock; nothing to wait on but time
