"""The impression log: what the server showed, one row per shown item.

It lives next to the event log, not in it (``<data_dir>/impressions/date=YYYY-MM-DD/*.parquet``):
- the event log's ``impression`` type means "shown and *not* engaged" (the generator and importers
  write it that way, and training labels it a negative); a server exposure log also covers items
  that were then played, so mixing the two would change what training learns;
- exposure rows carry what the event contract has no room for: request id, position, score, the
  experiment, the served strategy and both model versions;
- at k rows per Rank it outgrows the interaction log quickly and is kept for a shorter time.

Feedback stays in the event log (Track rows carry ``arm``); analysis joins the two by
(user, item, time) — see experiments.data.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from setlist import swap
from setlist.eventlog import write_atomic

IMPRESSION_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),  # the pseudonym, as in the event log
        pa.field("experiment", pa.string()),  # "" when no experiment is configured
        pa.field("arm", pa.string()),
        pa.field("holdout", pa.bool_()),
        pa.field("served", pa.string()),  # model | popularity: what produced the list
        pa.field("variant", pa.string()),  # champion | canary | challenger | …
        pa.field("candidates_version", pa.string()),
        pa.field("ranker_version", pa.string()),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("position", pa.int16(), nullable=False),  # 1-based
        pa.field("score", pa.float32()),
        pa.field("k", pa.int16()),
        pa.field("cache_hit", pa.bool_()),
        pa.field("degraded", pa.bool_()),
        pa.field("device", pa.string()),
        pa.field("locale", pa.string()),
        # the caller chose the candidates (RankRequest.candidate_item_ids) and the models only ordered them:
        # what such a response shows says nothing of the candidate stage. Null in files written before it.
        pa.field("caller_slate", pa.bool_()),
    ]
)


@dataclass(frozen=True, slots=True)
class Impression:
    """One Rank response as shown; expanded to one row per item only by the writer."""

    request_id: str
    timestamp_ms: int
    user_id: str
    experiment: str
    arm: str
    holdout: bool
    served: str
    variant: str
    candidates_version: str
    ranker_version: str
    item_ids: tuple[str, ...]
    scores: tuple[float, ...]
    cache_hit: bool = False
    degraded: bool = False
    device: str = "unknown"
    locale: str = "unknown"
    caller_slate: bool = False


_PER_RECORD = (
    "request_id",
    "user_id",
    "experiment",
    "arm",
    "holdout",
    "served",
    "variant",
    "candidates_version",
    "ranker_version",
    "cache_hit",
    "degraded",
    "device",
    "locale",
    "caller_slate",
)


def to_table(records: list[Impression]) -> pa.Table:
    counts = np.fromiter((len(r.item_ids) for r in records), np.int64, count=len(records))
    cols: dict[str, object] = {
        name: np.repeat(np.array([getattr(r, name) for r in records], dtype=object), counts) for name in _PER_RECORD
    }
    cols["timestamp"] = np.repeat(np.array([r.timestamp_ms for r in records], "datetime64[ms]"), counts)
    cols["item_id"] = [i for r in records for i in r.item_ids]
    cols["position"] = (
        np.concatenate([np.arange(1, n + 1, dtype=np.int16) for n in counts]) if len(records) else np.zeros(0, np.int16)
    )
    cols["score"] = np.array([s for r in records for s in r.scores], np.float32)
    cols["k"] = np.repeat(counts.astype(np.int16), counts)
    arrays = []
    for f in IMPRESSION_SCHEMA:
        values = cols[f.name]
        if f.name == "timestamp":
            arrays.append(pa.array(values, pa.timestamp("ms")).cast(f.type))
        else:
            arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=IMPRESSION_SCHEMA)


def write_batch(root: Path, records: list[Impression]) -> int:
    """Write records as new parquet files, one per UTC date. Returns rows written."""
    table = to_table(records)
    if table.num_rows == 0:
        return 0
    dates = np.array([datetime.fromtimestamp(r.timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%d") for r in records])
    per_row = np.repeat(dates, [len(r.item_ids) for r in records])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    for date in sorted(set(dates.tolist())):
        part = table.filter(pa.array(per_row == date))
        write_atomic(part, Path(root) / f"date={date}" / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet")
    return table.num_rows


def read_impressions(root: Path, experiment: str | None = None) -> pd.DataFrame:
    """Every impression row (optionally of one experiment), sorted by time and position. Days already
    down-sampled to counts are not rows any more (``setlist.downsample.read_all`` reads both)."""
    return read_impression_files(swap.listing(Path(root), ["date=*/*.parquet"]), experiment)


def read_impression_files(files: list[Path], experiment: str | None = None) -> pd.DataFrame:
    if not files:
        return IMPRESSION_SCHEMA.empty_table().to_pandas()
    dataset = ds.dataset([str(f) for f in files], schema=IMPRESSION_SCHEMA, format="parquet")
    flt = ds.field("experiment") == experiment if experiment is not None else None
    frame = dataset.to_table(filter=flt).to_pandas()
    return frame.sort_values(["timestamp", "request_id", "position"], kind="mergesort").reset_index(drop=True)
