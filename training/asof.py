"""Item statistics at many moments, read point-in-time from the ``item_stats`` view's own file.

Feast's DuckDB offline store joins each entity row to *every* earlier row of its key, then keeps the
newest. A ranker's candidates are mostly popular items, each with a snapshot for nearly every day
of the log: on a 2M-rating MovieLens-shaped log, 270k training rows became ~300M joined rows, took
330 s and 21 GB, and a 16M-rating log was killed by the kernel there. DuckDB's ASOF join finds the
same row (the newest at or before the moment, within the view's TTL) by sorting once.

The view's definition still says what is read: its registered source file, its timestamp field and
its TTL. A source that is not a local file (the cluster profile's Spark source) goes through Feast.
``tests/e2e/test_item_asof.py`` checks that the answers equal Feast's ``get_historical_features``.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureStore, FileSource

ITEM_VIEW = "item_stats"
#: the item's key in the view and in the entity rows
KEY = "item_id"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def item_stats_at(
    store: FeatureStore, items: Sequence[str] | np.ndarray, moments: pd.Series, names: Sequence[str]
) -> pd.DataFrame | None:
    """The view's ``names`` for each (item, moment) pair, in the pairs' order; None when the view's
    source is not a local file (then Feast's retrieval is the way). A pair before the item's first
    snapshot, or past the view's TTL, gets nulls, as Feast gives."""
    view = store.get_feature_view(ITEM_VIEW)
    source = view.batch_source
    if not isinstance(source, FileSource) or "://" in source.path:
        return None
    ts = source.timestamp_field
    moments = pd.to_datetime(pd.Series(moments).reset_index(drop=True), utc=True).dt.as_unit("us")
    pairs = pa.table(
        {
            "row": pa.array(np.arange(len(moments), dtype=np.int64)),
            "key": pa.array(np.asarray(items, dtype=object).astype(str), pa.string()),
            "at": pa.array(moments, pa.timestamp("us", tz="UTC")),
        }
    )
    cols = ", ".join(f"f.{_quoted(n)}" for n in names)
    path = source.path.replace("'", "''")
    sql = (
        f"SELECT q.row, f.{_quoted(ts)} AS snapshot{', ' + cols if cols else ''} FROM pairs q "
        f"ASOF LEFT JOIN read_parquet('{path}') f ON q.key = f.{_quoted(KEY)} AND q.at >= f.{_quoted(ts)} "
        "ORDER BY q.row"
    )
    with duckdb.connect() as con:
        con.register("pairs", pairs)
        out = con.sql(sql).df()
    ttl = view.ttl
    if ttl and ttl > pd.Timedelta(0):  # Feast: a row older than the TTL at the moment is no answer
        expired = (pd.to_datetime(out["snapshot"], utc=True) < moments - ttl).to_numpy()
        out.loc[expired, list(names)] = None
    return out[list(names)]
