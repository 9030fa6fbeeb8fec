"""The full build a shard of entities at a time, so its memory follows a shard, not the whole log.

Every entity's rows depend on that entity's own events only (``build``'s contract), so the users are
split into shards by id, each shard's events are taken out of the compact Arrow log and built with
the pandas builder, and the rows are put back in the order a build at once writes. The same goes
for items. The session view, a row per event, never exists whole in pandas: each shard's rows go to
a part file, and the parts are merged in Arrow.

Measured on a 16.4M-rating log, a build at once peaked at 15.8 GB: the log as a pandas frame (its
strings as Python objects) and every view's rows held together. ``tests/e2e/test_features_sparse.py``
holds the shards' result equal to ``build.build_prepared``'s.

The categories of a ``share``/``top`` over an *event* column come from the events in hand, so they
may differ by shard, as they may by the Spark builder's bucket or an incremental run's entities; a
catalogue column's come from the catalogue, which every shard sees whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_repo.build import (
    DAY,
    Catalog,
    FeatureBatches,
    build_consent,
    build_item_stats,
    build_sessions,
    build_user_profile,
    fresh_from_consent,
)
from feature_repo.gate import feature_table
from feature_repo.incremental import as_from_pandas
from setlist.consent import FLAGS, personalizable
from setlist.contract import ITEM_TYPES
from setlist.eventlog import ROW_GROUP_ROWS, write_atomic_groups
from setlist.featureset import FeatureSet


@dataclass
class ShardedBuild:
    """The batches of a sharded build; its session rows are in ``session_file``, not in ``batches``."""

    batches: FeatureBatches
    session_file: Path
    session_rows: int
    session_start: pd.Timestamp | None


def shards_for(events: int, shard_events: int) -> int:
    return max(1, -(-events // max(shard_events, 1)))


def _shard_of_rows(ids: pa.ChunkedArray, shards: int) -> np.ndarray:
    """Each row's shard: its id's place among the distinct ids (in order of first appearance), modulo
    the shards, so each shard holds about as many ids, and as many events as they happen to have."""
    return pc.index_in(ids, value_set=pc.unique(ids)).to_numpy() % shards


def _in_order(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Rows by (snapshot, entity id), as ``engine.compute`` orders one build at once."""
    if frame.empty:
        return frame.reset_index(drop=True)
    codes = pd.factorize(frame[key].to_numpy(), sort=True)[0]
    stamps = pd.DatetimeIndex(frame["event_timestamp"]).asi8
    return frame.take(np.lexsort((codes, stamps))).reset_index(drop=True)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The shards' rows together; a shard without any (no user in it consents) adds no columns'
    dtypes of its own."""
    kept = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(kept, ignore_index=True)


def _write_part(table: pa.Table, path: Path) -> None:
    """A shard's session rows as an uncompressed Arrow file, read back memory-mapped (no copy)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_part(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _merge_sessions(parts: list[Path], into: Path, empty: pa.Table) -> tuple[int, pd.Timestamp | None]:
    """The shards' session rows as one file in (time, user) order, the order ``build_sessions``
    writes, a row group at a time: only the sort keys and one group are in memory, the parts are
    mapped from disk. Returns its row count and first time."""
    tables = [_read_part(p) for p in parts]
    merged = pa.concat_tables(tables, promote_options="default") if tables else empty
    del tables
    # as a table from pandas is written, to the byte (an incremental merge is held equal to it)
    schema = as_from_pandas(merged.schema)
    keys = merged.select(["event_timestamp", "user_id"])
    order = pc.sort_indices(keys, sort_keys=[("event_timestamp", "ascending"), ("user_id", "ascending")])
    del keys
    groups = (
        merged.take(order[i : i + ROW_GROUP_ROWS]).cast(schema).combine_chunks()
        for i in range(0, max(merged.num_rows, 1), ROW_GROUP_ROWS)
    )
    write_atomic_groups(schema, groups, into)
    start = pc.min(merged["event_timestamp"]).as_py() if merged.num_rows else None
    return merged.num_rows, (pd.Timestamp(start) if start is not None else None)


def build_in_shards(
    log: list[pa.Table],
    items: pd.DataFrame,
    features: FeatureSet,
    user_tables: dict[str, pd.DataFrame] | None,
    item_tables: dict[str, pd.DataFrame] | None,
    *,
    consent_default: bool,
    term_key: bytes | None = None,
    shard_events: int,
    session_file: Path,
    step: Callable[[str], None],
) -> ShardedBuild:
    """``build.build_prepared`` on a prepared Arrow log (``incremental.read_events_table``), a shard
    of about ``shard_events`` events at a time. ``log`` holds the table and is emptied, so that the
    table is freed once the shards are built, before the session parts are merged."""
    table = log.pop()
    catalog = Catalog.of(items, term_key)
    consent = build_consent(table.select(["user_id", "timestamp", *FLAGS]).to_pandas(), consent_default)
    newest = pc.max(table["timestamp"]).as_py()

    parts_dir = session_file.parent / (session_file.name + ".parts")
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    try:
        shards = shards_for(table.num_rows, shard_events)
        shard = _shard_of_rows(table["user_id"], shards)
        profiles, session_parts = [], []
        empty_sessions: pa.Table | None = None
        for s in range(shards):
            events = table.filter(pa.array(shard == s)).to_pandas() if shards > 1 else table.to_pandas()
            if shards > 1:
                step(f"users, shard {s + 1} of {shards}: {len(events):,} events")
            personal = personalizable(events, consent_default).reset_index(drop=True)
            del events
            profiles.append(build_user_profile(personal, catalog, features, user_tables))
            sessions = feature_table(build_sessions(personal, catalog.item_genre, catalog.genre_of_search), features)
            del personal
            if sessions.num_rows:
                session_parts.append(parts_dir / f"part-{s:05d}.arrow")
                _write_part(sessions, session_parts[-1])
            elif empty_sessions is None:
                empty_sessions = sessions
            del sessions
        del shard
        profile = _in_order(_concat(profiles), "user_id")
        del profiles

        allowed = consent.loc[consent["consent_analytics"].to_numpy(dtype=bool), "user_id"]
        about_items = pc.and_(
            pc.is_in(table["type"], value_set=pa.array(sorted(ITEM_TYPES))),
            pc.is_in(table["user_id"], value_set=pa.array(allowed.tolist(), pa.string())),
        )
        counted = table.filter(about_items)
        del table, about_items
        items_newest = pc.max(counted["timestamp"]).as_py() if counted.num_rows else None
        item_shards = shards_for(counted.num_rows, shard_events)
        shard = _shard_of_rows(counted["item_id"], item_shards)
        stats = []
        for s in range(item_shards):
            events = counted.filter(pa.array(shard == s)).to_pandas() if item_shards > 1 else counted.to_pandas()
            if item_shards > 1:
                step(f"items, shard {s + 1} of {item_shards}: {len(events):,} events")
            stats.append(build_item_stats(events, catalog, features, item_tables))
            del events
        del counted, shard
        item_stats = _in_order(_concat(stats), "item_id")
        del stats

        if empty_sessions is None:
            empty_sessions = _read_part(session_parts[0]).schema.empty_table()
        rows, start = _merge_sessions(session_parts, session_file, empty_sessions)
    except BaseException:
        session_file.unlink(missing_ok=True)  # half a merge is no file to read
        raise
    finally:
        # the parts hold as much as the sessions: on a full disk, the room every other writer needs back
        shutil.rmtree(parts_dir, ignore_errors=True)
    batches = FeatureBatches(
        user_profile=profile,
        item_stats=item_stats,
        session=pd.DataFrame(),
        consent=consent,
        genres=catalog.genres,
        as_of=pd.Timestamp(newest).floor("D") + DAY,
        fresh_as_of=fresh_from_consent(consent, pd.Timestamp(items_newest) if items_newest is not None else None),
    )
    return ShardedBuild(batches, session_file, rows, start)
