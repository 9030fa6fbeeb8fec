"""Local-mode smoke test of deploy/feast-spark/feature_store.yaml: Spark offline store + Spark engine.

Needs pyspark (not a project dependency: it is large) and Java 17, plus the production services:

    .venv/bin/pip install pyspark==4.0.1      # Feast 0.67 needs pyspark >= 4
    make services
    SETLIST_PROFILE=production .venv/bin/python scripts/spark_smoke.py

It loads the deploy YAML with its ${VAR}s pointed at the local services and SPARK_MASTER=local[2], registers
a SparkSource-backed feature view in a throwaway Feast project, materializes it with the Spark engine into
Redis, reads it back online, builds a point-in-time training frame with the Spark offline store, and
removes what it registered. Exit 0 means the whole path works.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "feast-spark" / "feature_store.yaml"
PROJECT = "setlist_spark_smoke"


def _environment(staging: Path) -> None:
    from feature_repo.store import redis_connection_string
    from setlist.settings import get_settings

    settings = get_settings()
    if not settings.on_servers:
        sys.exit("run with SETLIST_PROFILE=production (and `make services`): the smoke test uses Redis and PostgreSQL")
    os.environ.setdefault("SETLIST_FEAST_REGISTRY_URL", settings.sqlalchemy_database_url)
    os.environ.setdefault("SETLIST_FEAST_REDIS_TYPE", "redis")
    os.environ.setdefault("SETLIST_FEAST_REDIS", redis_connection_string(settings.redis_url, 2000))
    os.environ.setdefault("SPARK_MASTER", "local[2]")
    os.environ.setdefault("SETLIST_SPARK_STAGING", str(staging))  # a plain absolute path, not file://
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers need feast too


def _config(staging: Path):
    from feast.repo_config import load_repo_config

    _environment(staging)
    config = load_repo_config(ROOT / "feature_repo", CONFIG)
    config.project = PROJECT
    for conf in (config.offline_store.spark_conf, config.batch_engine.spark_conf):
        conf.update({"spark.driver.memory": "1g", "spark.executor.memory": "1g", "spark.sql.shuffle.partitions": "4"})
    config.batch_engine.partitions = 2
    return config


def _events(directory: Path, now: datetime) -> Path:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(6)] * 2,
            "event_timestamp": [now - timedelta(days=2)] * 6 + [now - timedelta(hours=1)] * 6,
            "plays_7d": list(range(6)) + [10 * i for i in range(6)],
            "skip_rate": [0.5] * 6 + [0.1 * i for i in range(6)],
        }
    )
    path = directory / "user_activity.parquet"
    # Spark cannot read parquet's nanosecond timestamps (pandas' default): write microseconds.
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    return path


def _remove(store, view, entity, source) -> None:
    """Drop the throwaway project and nothing else. Not ``store.teardown()``: with the SQL registry it
    deletes the rows of *every* project in the registry, production's included."""
    store._get_provider().teardown_infra(PROJECT, [view], [entity])  # this project's Redis keys only
    registry = store.registry
    registry.delete_feature_view(view.name, PROJECT, commit=True)
    registry.delete_entity(entity.name, PROJECT, commit=True)
    registry.delete_data_source(source.name, PROJECT, commit=True)
    registry.delete_project(PROJECT, commit=True)


def main() -> int:
    import pandas as pd
    from feast import FeatureStore, FeatureView, Field
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from feast.types import Float64, Int64

    from feature_repo.entities import user

    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="setlist-spark-") as tmp:
        staging = Path(tmp) / "staging"
        staging.mkdir()
        store = FeatureStore(config=_config(staging))
        source = SparkSource(
            name="user_activity_spark",
            path=str(_events(Path(tmp), now)),
            file_format="parquet",
            timestamp_field="event_timestamp",
        )
        view = FeatureView(
            name="user_activity",
            entities=[user],
            ttl=timedelta(days=7),
            source=source,
            online=True,
            schema=[Field(name="plays_7d", dtype=Int64), Field(name="skip_rate", dtype=Float64)],
        )
        store.apply([user, view])
        try:
            store.materialize(start_date=now - timedelta(days=3), end_date=now)
            online = store.get_online_features(
                ["user_activity:plays_7d", "user_activity:skip_rate"], entity_rows=[{"user_id": "u3"}]
            ).to_dict()
            print("online (Spark engine → Redis):", online)
            assert online["plays_7d"] == [30], online

            entities = pd.DataFrame({"user_id": ["u3", "u3"], "event_timestamp": [now - timedelta(days=1), now]})
            training = store.get_historical_features(entity_df=entities, features=["user_activity:plays_7d"]).to_df()
            print("point-in-time join (Spark offline store):")
            print(training.sort_values("event_timestamp").to_string(index=False))
            assert training.sort_values("event_timestamp")["plays_7d"].tolist() == [3, 30], training
        finally:
            _remove(store, view, user, source)
    print("spark smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
