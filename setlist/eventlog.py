"""The append-only event log: parquet files, hive-partitioned by ``date=YYYY-MM-DD``.

Every append writes new files and never rewrites old ones (except erasure compaction), so a
replay over the same files gives the same features. Files are written to a temporary name,
fsynced and renamed, so a crash leaves either a whole file or none.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from setlist.contract import EVENT_SCHEMA

TOMBSTONES = "_tombstones.parquet"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


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
        dates = pd.to_datetime(frame["timestamp"], utc=True).dt.strftime("%Y-%m-%d").to_numpy()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        written = 0
        for date in sorted(set(dates)):
            mask = pa.array(dates == date)
            part = table.filter(mask).sort_by("timestamp")
            fname = f"{name}.parquet" if name else f"{stamp}-{tag}-{uuid.uuid4().hex[:8]}.parquet"
            write_atomic(part, self.root / f"date={date}" / fname)
            written += part.num_rows
        return written

    # --- reading ---------------------------------------------------------------------------
    def files(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.glob("date=*/*.parquet") if not p.name.startswith("."))

    def read(
        self,
        columns: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        include_erased: bool = False,
    ) -> pd.DataFrame:
        """Read the log as a frame sorted by (timestamp, event_id); erased users are dropped."""
        files = self.files()
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
        frame = dataset.to_table(columns=needed, filter=flt).to_pandas()
        if not include_erased:
            erased = self.erased_users()
            if erased:
                frame = frame[~frame["user_id"].isin(erased)]
        frame = frame.sort_values(["timestamp", "event_id"], kind="mergesort").reset_index(drop=True)
        return frame[cols]

    def count(self) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files())

    def snapshot_hash(self) -> str:
        """A content hash of the log's file set: names, sizes and the tombstone list."""
        h = hashlib.sha256()
        for f in self.files():
            h.update(f"{f.relative_to(self.root)}:{f.stat().st_size}\n".encode())
        for u in sorted(self.erased_users()):
            h.update(u.encode())
        return h.hexdigest()[:16]

    # --- erasure ---------------------------------------------------------------------------
    def erased_users(self) -> set[str]:
        path = self.root / TOMBSTONES
        if not path.exists():
            return set()
        return set(pq.read_table(path, columns=["user_id"]).column("user_id").to_pylist())

    def tombstone(self, pseudonym: str) -> None:
        erased = sorted(self.erased_users() | {pseudonym})
        table = pa.table(
            {
                "user_id": pa.array(erased, pa.string()),
                "erased_at": pa.array([datetime.now(UTC)] * len(erased), pa.timestamp("ms", tz="UTC")),
            }
        )
        write_atomic(table, self.root / TOMBSTONES)

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
    """Rejected rows with their reasons, kept as parquet next to the log."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, frame: pd.DataFrame, reasons: list[str], source: str) -> int:
        if frame.empty:
            return 0
        out = frame.copy()
        for col in out.columns:  # heterogenous bad values must still be storable
            if out[col].dtype == object:
                out[col] = out[col].map(lambda v: None if v is None else str(v))
        out["timestamp"] = out["timestamp"].astype(str) if "timestamp" in out else None
        out["reason"] = reasons
        out["source"] = source
        out["quarantined_at"] = datetime.now(UTC)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        write_atomic(
            pa.Table.from_pandas(out, preserve_index=False),
            self.root / f"{stamp}-{source}-{uuid.uuid4().hex[:8]}.parquet",
        )
        return len(out)

    def read(self) -> pd.DataFrame:
        files = sorted(self.root.glob("*.parquet")) if self.root.exists() else []
        if not files:
            return pd.DataFrame(columns=["reason", "source"])
        return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
