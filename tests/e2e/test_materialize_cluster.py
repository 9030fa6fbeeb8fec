"""``make materialize`` in the cluster profile: features built on Spark from the tiny world's event
log, gated, swapped in, and materialized by Feast's Spark engine into a real 3-master Redis Cluster,
with the registry in PostgreSQL. What lands online equals what the local profile's pandas build
published from the same log; a batch that fails the gate leaves the served files as they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_repo.data_sources import ITEM_STATS_FILE, USER_PROFILE_FILE
from feature_repo.incremental import latest_rows
from feature_repo.online import OnlineFeatures
from feature_repo.store import definitions, get_store
from tests.servers import redis_cluster  # noqa: F401  (the fixture, by import)
from tests.spark_fixtures import SHUFFLE_PARTITIONS, SPARK_MASTER

pytestmark = [pytest.mark.spark, pytest.mark.integration]


@pytest.fixture
def cluster_settings(tiny_copy, redis_cluster, redis_server, postgres_server, spark_session):  # noqa: F811
    redis_cluster.start()
    redis_cluster.flush()
    local = tiny_copy.settings
    return local.model_copy(
        update={
            "profile": "cluster",
            "redis_cluster_nodes": redis_cluster.nodes,
            "redis_url": redis_server.url,
            "database_url": postgres_server.create_database(),
            "mlflow_tracking_uri": local.tracking_uri,
            "spark_master": SPARK_MASTER,
            "spark_shuffle_partitions": SHUFFLE_PARTITIONS,
        }
    )


def _online(settings, view: str, key: str, ids: list[str], names: list[str]) -> pd.DataFrame:
    defs = definitions(settings)
    fv = next(v for v in defs.views.all() if v.name == view)
    online = OnlineFeatures(get_store(settings), [fv])
    rows = []
    for entity, (_, values) in zip(ids, online.read(view, ids), strict=True):
        assert values is not None, f"{view}: {entity} is not online"
        rows.append({key: entity, **{n: values.get(n) for n in names}})
    return pd.DataFrame(rows)


def test_cluster_materialize_builds_on_spark_and_serves_the_local_values_from_redis_cluster(
    cluster_settings, tiny_world
):
    from feature_repo.materialize import publish

    s = cluster_settings
    want = {f: pd.read_parquet(tiny_world.settings.features_dir / f) for f in (USER_PROFILE_FILE, ITEM_STATS_FILE)}
    steps: list[str] = []
    report = publish(s, step=steps.append)
    assert report.mode == "full" and "Spark" in report.reason
    assert any("on Spark" in m for m in steps), steps
    assert report.rows[USER_PROFILE_FILE] == len(want[USER_PROFILE_FILE])
    assert report.rows[ITEM_STATS_FILE] == len(want[ITEM_STATS_FILE])
    # the files are Spark's parquet directories now, in microseconds
    assert (s.features_dir / USER_PROFILE_FILE).is_dir()
    assert not (s.features_dir / ".spark-staging").exists()
    assert redis_cluster_keys(s) > 0

    views = ((USER_PROFILE_FILE, "user_profile", "user_id"), (ITEM_STATS_FILE, "item_stats", "item_id"))
    for fname, view, key in views:
        latest = latest_rows(want[fname], key).sort_values(key).reset_index(drop=True)
        sample = latest.iloc[:: max(1, len(latest) // 25)].reset_index(drop=True)
        names = [c for c in latest.columns if c not in (key, "event_timestamp")]
        got = _online(s, view, key, list(sample[key]), names)
        for n in names:
            a, b = got[n].to_numpy(), sample[n].to_numpy()
            if b.dtype == object:
                for x, y in zip(a, b, strict=True):
                    if isinstance(y, np.ndarray):
                        np.testing.assert_allclose(np.asarray(x, dtype=float), y.astype(float), atol=1e-6)
                    else:
                        assert (x or "") == (y or ""), (view, n)
            else:
                np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-9, err_msg=n)


def redis_cluster_keys(settings) -> int:
    from redis.cluster import ClusterNode, RedisCluster

    client = RedisCluster(startup_nodes=[ClusterNode(*n.rsplit(":", 1)) for n in settings.redis_cluster_nodes])
    try:
        return int(client.dbsize())  # summed over the masters
    finally:
        client.close()


def test_a_spark_batch_that_fails_the_gate_keeps_the_served_files(cluster_settings, monkeypatch):
    from feature_repo import publish_spark
    from feature_repo.gate import FeatureBatchRejected
    from feature_repo.materialize import publish

    s = cluster_settings
    before = {p.name: p.stat().st_mtime_ns for p in Path(s.features_dir).glob("*.parquet")}
    assert before
    monkeypatch.setattr(publish_spark, "gate", lambda batches, features: ["user_plays_7d: 3 values below 0"])
    with pytest.raises(FeatureBatchRejected, match="last good features keep serving"):
        publish(s)
    after = {p.name: p.stat().st_mtime_ns for p in Path(s.features_dir).glob("*.parquet")}
    assert after == before
    assert not (s.features_dir / ".spark-staging").exists()
