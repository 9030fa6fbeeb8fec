"""Training: both models registered, better than popularity, and the promotion gate holds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow import MlflowClient

from training.promotion import decide
from training.ranker import RankerParams

FIXED_METRICS = (
    "ndcg_at_10",
    "recall_at_10",
    "recall_at_100",
    "auc",
    "candidate_recall_at_100",
    "candidate_recall_at_500",
    "baseline_popularity_ndcg_at_10",
    "baseline_als_ndcg_at_10",
    "baseline_ease_ndcg_at_10",
)


def test_training_registers_both_models_with_aliases_and_fixed_metrics(tiny_world):
    s, r = tiny_world.settings, tiny_world.training
    client = MlflowClient(tracking_uri=s.tracking_uri)
    for name, version in ((s.candidates_model, r.versions[0]), (s.ranker_model, r.versions[1])):
        assert str(client.get_model_version_by_alias(name, "challenger").version) == version
        assert str(client.get_model_version_by_alias(name, "champion").version) == version
    run = client.get_run(r.run_id)
    for metric in FIXED_METRICS:
        assert metric in run.data.metrics and math.isfinite(run.data.metrics[metric])
    assert run.data.tags["lineage.feature_service"] == "ranker_v1"
    assert run.data.tags["lineage.event_log_snapshot"]
    assert run.data.params["split"] in ("global", "per_user") and run.data.params["split.reason"]
    assert "evaluation:" in run.data.tags["training.choices"]
    artifacts = {a.path for a in client.list_artifacts(r.run_id)}
    assert {"feature_importance.png", "evaluation_curves.png", "ranker_selection.json"} <= artifacts
    selection = json.loads(Path(client.download_artifacts(r.run_id, "ranker_selection.json")).read_text())
    tried = selection["tried"]
    # the kept configuration is one of those tried, the cheapest of those validation cannot tell from the best
    assert selection["chosen"] in tried and len(tried) > 1
    best = max(tried, key=lambda n: tried[n]["ndcg"])
    admissible = {n for n, t in tried.items() if t["admissible"]}
    assert best in admissible and selection["chosen"] in admissible
    assert tried[selection["chosen"]]["cost"] == min(tried[n]["cost"] for n in admissible)
    assert selection["validation_ndcg_at_10"] == {n: t["ndcg"] for n, t in tried.items()}


def test_the_model_beats_popularity_on_the_holdout(tiny_world):
    m = tiny_world.training.metrics
    assert m["ndcg_at_10"] > m["baseline_popularity_ndcg_at_10"]
    assert m["queries"] > 0


@pytest.mark.parametrize(
    "challenger, champion, baselines, passed, promote",
    [
        (0.20, None, {"popularity": 0.10}, True, True),  # first model beating popularity
        (0.05, None, {"popularity": 0.10}, True, False),  # first model worse than popularity
        (0.20, None, {"popularity": 0.10, "als": 0.25}, True, False),  # beats popularity, not ALS
        (0.20, None, {"popularity": 0.10, "als": 0.15, "ease": 0.30}, True, True),  # EASE is reported, not required
        (0.30, 0.20, {"popularity": 0.10}, True, True),  # clear improvement
        (0.30, 0.20, {"popularity": 0.10, "als": 0.31}, True, False),  # better than the champion, not ALS
        (0.201, 0.20, {"popularity": 0.10}, True, False),  # inside the margin
        (0.90, 0.20, {"popularity": 0.10}, False, False),  # never promoted when validation failed
    ],
)
def test_promotion_gate_decisions(challenger, champion, baselines, passed, promote):
    assert decide(challenger, champion, baselines, margin=0.005, validation_passed=passed).promote is promote


def test_the_promotion_reason_reports_the_gap_to_ease():
    d = decide(0.20, None, {"popularity": 0.10, "als": 0.15, "ease": 0.25}, margin=0.005, validation_passed=True)
    assert "EASE 0.2500 (-0.0500)" in d.reason


def test_a_worse_challenger_keeps_the_champion(tiny_copy, monkeypatch):
    from training import run as pipeline
    from training.dataset import RankingSet
    from training.ranker import fit

    def learns_the_opposite(rs, p, seed):
        # certainly worse than the champion, whatever the data: a weak model (a stump) can rank
        # a tiny hold-out as well as the real one by chance
        return fit(RankingSet(rs.frame.assign(label=1 - rs.frame["label"]), rs.groups, rs.inputs), p, seed)

    monkeypatch.setattr(pipeline, "fit", learns_the_opposite)
    s = tiny_copy.settings
    client = MlflowClient(tracking_uri=s.tracking_uri)
    before = client.get_model_version_by_alias(s.ranker_model, "champion").version
    worse = pipeline.train(s, progress=False, ranker_params=RankerParams(trees=20))
    assert not worse.promoted and "does not beat" in worse.reason
    # the champion is scored on the same hold-out with the same history as when it was trained
    assert worse.champion is not None
    assert worse.champion["ndcg_at_10"] == pytest.approx(tiny_copy.training.metrics["ndcg_at_10"], rel=1e-6)
    assert client.get_model_version_by_alias(s.ranker_model, "champion").version == before
    assert str(client.get_model_version_by_alias(s.ranker_model, "challenger").version) == worse.versions[1]
    tags = client.get_run(worse.run_id).data.tags
    assert tags["promotion.decision"] == "rejected"


def test_the_request_features_are_learned_on_the_set_clock_and_the_champion_scored_on_its_own(tiny_copy):
    import numpy as np
    import pandas as pd

    from setlist import registry
    from setlist.request_time import model_zone
    from training import run as pipeline

    # the world was trained on UTC; Kolkata's clock is 5:30 ahead, so every query's hour moves
    s = tiny_copy.settings.model_copy(update={"timezone": "Asia/Kolkata"})
    trained = pipeline.train(s, progress=False, ranker_params=RankerParams(trees=20))
    frame = pd.read_parquet(s.training_set_path)
    at = pd.to_datetime(frame["event_timestamp"], utc=True)
    local = at.dt.tz_convert("Asia/Kolkata")
    assert np.allclose(frame["ctx_hour_sin"], np.sin(2 * np.pi * local.dt.hour / 24), atol=1e-5)
    assert (frame["ctx_is_weekend"] == (local.dt.weekday >= 5)).all()
    assert not np.allclose(frame["ctx_hour_sin"], np.sin(2 * np.pi * at.dt.hour / 24), atol=1e-5)
    _, booster = registry.load_pair(s, trained.versions)
    assert str(model_zone(booster)) == "Asia/Kolkata"
    assert MlflowClient(tracking_uri=s.tracking_uri).get_run(trained.run_id).data.params["request_timezone"] == (
        "Asia/Kolkata"
    )
    # the champion, trained on UTC, is scored on UTC's clock: as it was when it was trained
    assert trained.champion is not None
    assert trained.champion["ndcg_at_10"] == pytest.approx(tiny_copy.training.metrics["ndcg_at_10"], rel=1e-6)
