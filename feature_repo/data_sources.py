"""Where the feature views read from. Paths depend on settings, so sources are built by a function."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from feast import Field as RequestField
from feast import FileSource, PushSource, RequestSource
from feast.data_source import DataSource
from feast.types import Int64, String

USER_PROFILE_FILE = "user_profile.parquet"
ITEM_STATS_FILE = "item_stats.parquet"
SESSION_FILE = "session.parquet"
CONSENT_FILE = "consent.parquet"
#: the online view each published file feeds (metrics name views, not files)
VIEW_OF_FILE = {
    USER_PROFILE_FILE: "user_profile",
    ITEM_STATS_FILE: "item_stats",
    SESSION_FILE: "session",
    CONSENT_FILE: "user_consent",
}


@dataclass(frozen=True)
class Sources:
    user_profile: DataSource
    item_stats: DataSource
    session_push: PushSource
    consent_push: PushSource
    request_context: RequestSource


def _file_source(spark: bool) -> Callable[..., DataSource]:
    """One definition per view, the source type chosen by the profile: the Spark offline store only
    reads ``SparkSource``; DuckDB reads ``FileSource``. Both read the same parquet files."""
    if not spark:
        return lambda name, path: FileSource(name=name, path=path, timestamp_field="event_timestamp")
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    # Feast warns on every SparkSource that the API is "alpha": once per process says it
    warnings.filterwarnings("once", message="The spark data source API is an experimental feature")

    return lambda name, path: SparkSource(
        name=name, path=path, file_format="parquet", timestamp_field="event_timestamp"
    )


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if "://" in root else str(Path(root).resolve() / name)


def build_sources(features_location: Path | str, *, spark: bool = False) -> Sources:
    """``features_location``: a directory, or an object-storage URI (``s3a://…``) on Spark."""
    root = str(features_location)
    source = _file_source(spark)
    session_batch = source("session_batch", _join(root, SESSION_FILE))
    return Sources(
        user_profile=source("user_profile_source", _join(root, USER_PROFILE_FILE)),
        item_stats=source("item_stats_source", _join(root, ITEM_STATS_FILE)),
        # Track pushes session state here in real time; the batch file is the offline history
        # (one row per event) so that training joins the same values point-in-time.
        session_push=PushSource(name="session_push", batch_source=session_batch),
        # Consent is a feature like any other so every replica reads it from the online store; the
        # batch file holds every user's latest flags (opted-out users included), Track pushes changes.
        consent_push=PushSource(
            name="consent_push",
            batch_source=source("consent_batch", _join(root, CONSENT_FILE)),
        ),
        request_context=RequestSource(
            name="request_context",
            schema=[
                RequestField(name="device", dtype=String),
                RequestField(name="request_hour", dtype=Int64),
                RequestField(name="request_weekday", dtype=Int64),
            ],
        ),
    )
