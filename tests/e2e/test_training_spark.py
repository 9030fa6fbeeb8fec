"""Training in the cluster profile: the candidate embeddings by Spark MLlib's ALS, the ranker by
SparkXGBRanker, registered in the same format as the driver's models, and close to them in quality.

The world is the session's tiny world (trained by the driver, in the local profile); the same data
directory, copied, is trained again in the cluster profile, on a fresh PostgreSQL database (Feast
registry, MLflow and the publish log, as that profile has them) and the shared Spark session. The
online store (Redis Cluster) is not needed for training. ``spark_als_min_pairs=0`` forces Spark's ALS.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from setlist import registry
from setlist.blend import scorer
from setlist.candidate_sources import GLOBAL_COHORT
from tests.spark_fixtures import spark_settings

pytestmark = pytest.mark.spark

#: the cluster path's hold-out ndcg@10 against the driver path's on the same data, absolute. Measured
#: on the tiny world: see NOTES.md, "Training on Spark"
NDCG_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def spark_trained(tiny_world, spark_session, postgres_server, tmp_path_factory):
    from feature_repo.store import apply, get_store
    from training.run import train

    data = tmp_path_factory.mktemp("spark-training") / "data"
    shutil.copytree(tiny_world.settings.data_dir, data)
    s = spark_settings(
        data,
        scale="tiny",
        seed=tiny_world.settings.seed,
        database_url=postgres_server.create_database(),
        spark_als_min_pairs=0,  # the world has a few thousand pairs: force Spark's ALS
        # the tiny world's events carry no consent flags; the local profile grants by default
        consent_default="grant",
        reload_interval_s=3600,
    )
    apply(get_store(s), s)  # the cluster profile's registry: the same views over SparkSources
    started = time.perf_counter()
    result = train(s, progress=True)
    print(f"cluster-profile training: {time.perf_counter() - started:.1f} s")
    return s, result


def test_spark_fits_each_model_and_says_so(spark_trained):
    _, r = spark_trained
    als = [c for c in r.choices if c.startswith("candidate embeddings")]
    assert als and all("Spark MLlib ALS" in c for c in als)
    assert any(c.startswith("ranker: xgboost.spark SparkXGBRanker") for c in r.choices)


def test_the_models_register_under_the_same_names_and_aliases(spark_trained):
    s, r = spark_trained
    client = registry.connect(s)
    assert registry.lookup_pair(client, s, registry.CHALLENGER).pair == r.versions
    if r.promoted:
        assert registry.lookup_pair(client, s, registry.CHAMPION).pair == r.versions


def test_serving_loads_the_pair_in_the_driver_format(spark_trained, tiny_world):
    s, r = spark_trained
    index, booster = registry.load_pair(s, r.versions)
    local = tiny_world.settings
    client = registry.connect(local)
    ref_index, ref_booster = registry.load_pair(local, registry.lookup_pair(client, local, registry.CHAMPION).pair)
    registry.connect(s)
    # the same catalogue; users as the driver lists them (sorted, unique), though not necessarily the
    # same ones: other tests of the session may have added events to the world since its champion
    assert list(index.item_ids) == list(ref_index.item_ids)
    users = list(index.user_ids)
    assert users == sorted(set(users)) and len(users) > 0
    for got, ref, ids in (
        (index.user_factors, ref_index.user_factors, index.user_ids),
        (index.item_factors, ref_index.item_factors, index.item_ids),
    ):
        assert got.dtype == ref.dtype == np.float32 and got.shape == (len(ids), ref.shape[1])
        assert np.isfinite(got).all() and np.abs(got).sum() > 0
    assert booster.feature_names == ref_booster.feature_names
    X = np.zeros((5, len(booster.feature_names)), np.float32)
    assert np.isfinite(scorer(booster)(X)).all()
    # the candidate model serves: a known user gets personalized candidates, scored by the embeddings
    c = index.generate(str(index.user_ids[0]), [], GLOBAL_COHORT, set(), 50)
    assert c.personalized and len(c.idx) == 50 and np.abs(c.emb_score).sum() > 0


def test_the_metrics_are_within_tolerance_of_the_driver_path(spark_trained, tiny_world):
    _, r = spark_trained
    spark_m, local_m = r.metrics, tiny_world.training.metrics
    print({k: (round(spark_m[k], 4), round(local_m[k], 4)) for k in local_m if k in spark_m})
    assert spark_m["queries"] == local_m["queries"]
    assert abs(spark_m["ndcg_at_10"] - local_m["ndcg_at_10"]) <= NDCG_TOLERANCE
    assert spark_m["ndcg_at_10"] > spark_m["baseline_popularity_ndcg_at_10"]
