"""The feature builder on Spark: the same declarations, run by the same engine, over entity buckets.

Every entity's rows depend on that entity's own events only (``build``'s contract), so the event log
is shuffled by a hash of the entity id into buckets and each bucket runs the pandas builder as a
grouped-map UDF on an executor. Nothing is collected to the driver: the frames go from the events
on storage to the feature files on storage. The values are the pandas builder's by construction,
and ``tests/e2e/test_features_spark.py`` holds them equal on the fixture datasets.

Why not Feast's ``SparkComputeEngine``: it runs a ``BatchFeatureView``'s aggregations over the first
window only, as tumbling buckets, and has no session or consent views (NOTES.md, "Features").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from feature_repo.build import Catalog, build_consent, build_item_stats, build_sessions, build_user_profile, prepare
from feature_repo.data_sources import CONSENT_FILE, ITEM_STATS_FILE, SESSION_FILE, USER_PROFILE_FILE
from feature_repo.incremental import BUILD_COLUMNS
from setlist.consent import FLAGS, personalizable
from setlist.contract import ITEM_TYPES
from setlist.featureset import Feature, FeatureSet
from setlist.search_terms import SearchGenres

#: the columns a session row holds, in ``build_sessions``' order
SESSION_COLUMNS = (
    ("user_id", "string"),
    ("event_timestamp", "timestamp"),
    ("session_id", "string"),
    ("session_last_items", "array<string>"),
    ("session_blocked_items", "array<string>"),
    ("session_skip_rate", "double"),
    ("session_genre", "string"),
    ("session_length", "bigint"),
    ("session_updated_ms", "bigint"),
)
_SPARK_TYPE = {
    "int64": "bigint",
    "float64": "double",
    "float_list": "array<float>",
    "string": "string",
    "bool": "boolean",
}
ERASED_SALT = "setlist/erased/"  # setlist.eventlog.erasure_digest's prefix, for Spark's sha2


def view_schema(key: str, features: Sequence[Feature]) -> str:
    """A declared view as a Spark DDL schema: the entity, the snapshot time, one column per feature."""
    cols = [f"`{key}` string", "`event_timestamp` timestamp"]
    cols += [f"`{f.name}` {_SPARK_TYPE[f.dtype]}" for f in features]
    return ", ".join(cols)


def consent_schema() -> str:
    return ", ".join(["`user_id` string", "`event_timestamp` timestamp", *[f"`{f}` boolean" for f in FLAGS]])


def session_schema() -> str:
    return ", ".join(f"`{n}` {t}" for n, t in SESSION_COLUMNS)


@dataclass(frozen=True)
class SparkBatches:
    """The four views as Spark DataFrames (lazy until written), and what publishing needs."""

    user_profile: Any
    item_stats: Any
    session: Any
    consent: Any
    genres: list[str]
    #: the events item stats count (lazy), whose newest judges the item stats' freshness
    counted: Any = None

    def files(self) -> list[tuple[str, Any, list[str]]]:
        """(file name, frame, sort keys): the order the pandas builder writes each file in."""
        return [
            (USER_PROFILE_FILE, self.user_profile, ["event_timestamp", "user_id"]),
            (ITEM_STATS_FILE, self.item_stats, ["event_timestamp", "item_id"]),
            (SESSION_FILE, self.session, ["event_timestamp", "user_id"]),
            (CONSENT_FILE, self.consent, ["user_id"]),
        ]


def read_events(
    spark: Any, paths: Sequence[str], erased_digests: frozenset[str], columns: Sequence[str] | None = None
) -> Any:
    """The event log's build columns (``incremental.build_columns``: ``BUILD_COLUMNS`` unless given; files of
    older schemas get nulls), erased users dropped."""
    from pyspark.sql import functions as F

    frame = spark.read.option("mergeSchema", "true").parquet(*paths)
    types = {
        "value": "float",
        "weight": "float",
        "consent_personalization": "boolean",
        "consent_analytics": "boolean",
        "timestamp": "timestamp",
    }
    cols = [
        (F.col(c) if c in frame.columns else F.lit(None)).cast(types.get(c, "string")).alias(c)
        for c in (columns or BUILD_COLUMNS)
    ]
    frame = frame.select(*cols)
    if erased_digests:
        digest = F.sha2(F.concat(F.lit(ERASED_SALT), F.col("user_id")), 256)
        frame = frame.where(~digest.isin(sorted(erased_digests)))
    return frame


def _empty(schema_cols: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in schema_cols})


def _grouped(events: Any, key: str, buckets: int, fn: Callable[[pd.DataFrame], pd.DataFrame], schema: str) -> Any:
    """``fn`` over the events of each bucket of entities (a hash of ``key``), on the executors."""
    from pyspark.sql import functions as F

    names = [c.split("`")[1] for c in schema.split(", ")]

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        if pdf.empty:
            return _empty(names)
        out = fn(pdf)
        return out[names] if len(out) else _empty(names)

    bucketed = events.withColumn("_bucket", F.pmod(F.xxhash64(F.col(key)), F.lit(buckets)))
    return bucketed.groupBy("_bucket").applyInPandas(lambda pdf: run(pdf.drop(columns=["_bucket"])), schema)


def build(
    events: Any,
    items: pd.DataFrame,
    features: FeatureSet,
    user_tables: dict[str, pd.DataFrame] | None = None,
    item_tables: dict[str, pd.DataFrame] | None = None,
    *,
    consent_default: bool,
    buckets: int,
    term_key: bytes | None = None,
) -> SparkBatches:
    """``build.build`` on Spark: events (from :func:`read_events`) → the four views as DataFrames.

    The catalogue and the registered tables travel to the executors with the functions (they are
    per item or per user, and small next to the log); the events never leave the executors. So does
    the search index, with its terms hashed on the driver: the key stays here."""
    from pyspark.sql import functions as F

    catalog = Catalog.of(items)  # without the key: the catalogue is pickled to the executors
    search = SearchGenres.of(items, catalog.genres, term_key)
    user_view, item_view = features.view("user_profile"), features.view("item_stats")

    def consent(pdf: pd.DataFrame) -> pd.DataFrame:
        return build_consent(prepare(pdf), consent_default)

    def profile(pdf: pd.DataFrame) -> pd.DataFrame:
        personal = personalizable(prepare(pdf), consent_default).reset_index(drop=True)
        return build_user_profile(personal, catalog, features, user_tables) if len(personal) else personal.iloc[:0]

    def sessions(pdf: pd.DataFrame) -> pd.DataFrame:
        personal = personalizable(prepare(pdf), consent_default).reset_index(drop=True)
        return build_sessions(personal, catalog.item_genre, search) if len(personal) else personal.iloc[:0]

    def item_stats(pdf: pd.DataFrame) -> pd.DataFrame:
        ev = prepare(pdf).reset_index(drop=True)
        return build_item_stats(ev, catalog, features, item_tables)

    consent_frame = _grouped(events, "user_id", buckets, consent, consent_schema()).cache()
    # item statistics count the events about items of users whose analytics consent is on, their
    # flag taken from all of their events (the consent view)
    allowed = consent_frame.where(F.col("consent_analytics")).select("user_id")
    counted = events.where(F.col("type").isin(list(ITEM_TYPES))).join(allowed, "user_id", "left_semi")
    return SparkBatches(
        user_profile=_grouped(events, "user_id", buckets, profile, view_schema("user_id", user_view)),
        item_stats=_grouped(counted, "item_id", buckets, item_stats, view_schema("item_id", item_view)),
        session=_grouped(events, "user_id", buckets, sessions, session_schema()),
        consent=consent_frame,
        genres=catalog.genres,
        counted=counted,
    )


def write(batches: SparkBatches, location: str) -> dict[str, int]:
    """Each view written as a parquet directory under ``location`` (a path or an object-storage
    URI), rows sorted within files as the pandas builder sorts them. Returns rows per file."""
    rows: dict[str, int] = {}
    for name, frame, keys in batches.files():
        frame = frame.cache()
        rows[name] = frame.count()
        frame.sortWithinPartitions(*keys).write.mode("overwrite").parquet(f"{location.rstrip('/')}/{name}")
        frame.unpersist()
    return rows
