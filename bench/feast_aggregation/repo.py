"""A throwaway Feast repo under var/feast_aggregation/: config, entities and the views under test.

Entities are named after their join keys on purpose: the local engine groups aggregations by
``view.entities`` (entity *names*, feast/infra/compute_engines/local/feature_builder.py:68), so a
``user`` entity with join key ``user_id`` would fail with a KeyError before anything is measured.
"""

from __future__ import annotations

import shutil
import warnings
from datetime import timedelta
from pathlib import Path

import pandas as pd
from feast import BatchFeatureView, Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.aggregation import Aggregation
from feast.types import Float64, Int64

warnings.filterwarnings("ignore", message="Batch feature views are experimental")

W7, W30 = timedelta(days=7), timedelta(days=30)

YAML = """\
project: feast_aggregation
provider: local
registry: {root}/registry.db
online_store:
  type: sqlite
  path: {root}/online.db
offline_store:
  type: {offline}
batch_engine:
  type: local
  backend: pandas   # without it materialization fails: the engine infers the backend from entity_df
entity_key_serialization_version: 3
"""

user = Entity(name="user_id", join_keys=["user_id"], value_type=ValueType.STRING)
item = Entity(name="item_id", join_keys=["item_id"], value_type=ValueType.STRING)


def open_store(root: Path, fresh: bool = True, offline: str = "file") -> FeatureStore:
    """``offline="file"`` (dask) because it reads every source column when a udf needs them;
    duckdb (ibis) selects only the declared features, so a udf never sees ``type``."""
    if fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "feature_store.yaml").write_text(YAML.format(root=root.resolve(), offline=offline))
    return FeatureStore(repo_path=str(root))


def event_source(path: Path) -> FileSource:
    return FileSource(name="events", path=str(path.resolve()), timestamp_field="event_timestamp")


def flag_types(df: pd.DataFrame) -> pd.DataFrame:
    """The udf: 0/1 columns per event type, so "plays" and "skips" become sums. This is the only
    way to filter by type before aggregating (the transformation runs before the filter and
    aggregation nodes, feast/infra/compute_engines/feature_builder.py:84-106)."""
    out = df.copy()
    out["is_play"] = (out["type"] == "play").astype("int64")
    out["is_skip"] = out["type"].isin(["skip", "not_interested"]).astype("int64")
    return out


def windowed_user_view(source: FileSource) -> BatchFeatureView:
    """The declaration we would like to replace our engine with: trailing 7/30-day sums per user."""
    return BatchFeatureView(
        name="user_windows",
        entities=[user],
        source=source,
        mode="pandas",
        udf=flag_types,
        udf_string="flag_types",
        online=True,
        offline=False,
        ttl=W30,
        schema=[
            Field(name="user_plays_7d", dtype=Int64),
            Field(name="user_plays_30d", dtype=Int64),
            Field(name="user_skips_30d", dtype=Int64),
        ],
        aggregations=[
            Aggregation(column="is_play", function="sum", time_window=W7, name="user_plays_7d"),
            Aggregation(column="is_play", function="sum", time_window=W30, name="user_plays_30d"),
            Aggregation(column="is_skip", function="sum", time_window=W30, name="user_skips_30d"),
        ],
    )


def unwindowed_view(
    source: FileSource, entity: Entity, prefix: str, ttl: timedelta = W30, online: bool = False
) -> BatchFeatureView:
    """What the local engine accepts: the same sums without ``time_window``; the view's ``ttl`` is
    the only time bound left (feast/infra/compute_engines/local/nodes.py:139-152). ``online=False``
    because the engine's retrieval plan ends in the same output node as materialization, which
    writes to the online store (and fails there: the aggregate has no timestamp column)."""
    return BatchFeatureView(
        name=f"{prefix}_ttl{ttl.days}d",
        entities=[entity],
        source=source,
        mode="pandas",
        udf=flag_types,
        udf_string="flag_types",
        online=online,
        offline=False,
        ttl=ttl,
        schema=[
            Field(name=f"{prefix}_plays", dtype=Int64),
            Field(name=f"{prefix}_skips", dtype=Int64),
            Field(name=f"{prefix}_value_mean", dtype=Float64),
            Field(name=f"{prefix}_items", dtype=Int64),
        ],
        aggregations=[
            Aggregation(column="is_play", function="sum", name=f"{prefix}_plays"),
            Aggregation(column="is_skip", function="sum", name=f"{prefix}_skips"),
            Aggregation(column="value", function="mean", name=f"{prefix}_value_mean"),
            Aggregation(
                column="item_id" if prefix == "user" else "user_id", function="count_distinct", name=f"{prefix}_items"
            ),
        ],
    )


def builder_views(user_path: Path, item_path: Path) -> list[FeatureView]:
    """Our builder's output behind plain FeatureViews (what feature_repo/features.py declares)."""
    return [
        FeatureView(
            name="user_profile",
            entities=[user],
            ttl=timedelta(0),
            online=True,
            source=FileSource(
                name="user_profile_src", path=str(user_path.resolve()), timestamp_field="event_timestamp"
            ),
            schema=[
                Field(name="user_plays_7d", dtype=Int64),
                Field(name="user_plays_30d", dtype=Int64),
                Field(name="user_skip_rate_30d", dtype=Float64),
            ],
        ),
        FeatureView(
            name="item_stats",
            entities=[item],
            ttl=timedelta(0),
            online=True,
            source=FileSource(name="item_stats_src", path=str(item_path.resolve()), timestamp_field="event_timestamp"),
            schema=[Field(name="item_plays_30d", dtype=Int64), Field(name="item_skip_rate_30d", dtype=Float64)],
        ),
    ]


def online_window_view(source: FileSource, entity: Entity, prefix: str) -> BatchFeatureView:
    """A workaround that does reach the online store: sums over whatever the materialization reads
    (``start``..``end``), plus ``max(event_timestamp)`` renamed to the timestamp column, because the
    aggregation drops it and the online write needs it (feast/utils.py:596-600). Materializing
    [end - 30 days, end] then gives "30-day sums as of end" for entities active in that range only."""
    return BatchFeatureView(
        name=f"{prefix}_online30d",
        entities=[entity],
        source=source,
        mode="pandas",
        udf=flag_types,
        udf_string="flag_types",
        online=True,
        offline=False,
        ttl=W30,
        schema=[Field(name=f"{prefix}_plays_30d", dtype=Int64), Field(name=f"{prefix}_skips_30d", dtype=Int64)],
        aggregations=[
            Aggregation(column="is_play", function="sum", name=f"{prefix}_plays_30d"),
            Aggregation(column="is_skip", function="sum", name=f"{prefix}_skips_30d"),
            Aggregation(column="event_timestamp", function="max", name="event_timestamp"),
        ],
    )


def raw_view(source: FileSource) -> FeatureView:
    """The raw log behind a plain FeatureView: what the public ``get_historical_features`` can do
    with events (a point-in-time "latest row", no aggregation), timed as the floor of any Feast-side join."""
    return FeatureView(
        name="raw_events",
        entities=[user],
        ttl=W30,
        source=source,
        online=False,
        schema=[Field(name="value", dtype=Float64)],
    )
