"""The baseline engine's ranker clock: checked and said as the fast engine's load says it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serving.baseline import BaselineRanking
from serving.errors import InvalidArgument
from serving.rollout.models import ModelLoadError
from serving.types import RankQuery
from setlist.request_time import MODEL_ZONE_ATTR
from setlist.settings import Settings


class _Booster:
    def __init__(self, **attrs: str) -> None:
        self.attrs = attrs

    def attr(self, name: str) -> str | None:
        return self.attrs.get(name)


class _Pyfunc:
    def __init__(self, booster: _Booster) -> None:
        self.booster = booster

    def get_raw_model(self) -> _Booster:
        return self.booster


def _baseline(settings: Settings, booster: _Booster) -> BaselineRanking:
    # build_baseline's version: both models' numbers, of which the ranker's is the one its messages name
    return BaselineRanking(settings, None, None, _Pyfunc(booster), "candidates:1+ranker:7", None)


def test_the_baseline_names_its_ranker_by_version_as_the_fast_engine_does(tmp_path: Path, caplog) -> None:
    settings = Settings(data_dir=tmp_path, timezone="Europe/Paris")
    with caplog.at_level(logging.WARNING, logger="setlist.serving.rollout.models"):
        _baseline(settings, _Booster())
    assert "ranker v7 computes its request features (hour, weekday) in UTC" in caplog.text
    with pytest.raises(ModelLoadError, match=r"^ranker v7: its request time zone does not read"):
        _baseline(settings, _Booster(**{MODEL_ZONE_ATTR: "Nowhere/Land"}))


def test_the_baseline_refuses_a_callers_slate_rather_than_rank_the_catalogue(tmp_path: Path) -> None:
    baseline = _baseline(Settings(data_dir=tmp_path), _Booster(**{MODEL_ZONE_ATTR: "UTC"}))
    with pytest.raises(InvalidArgument, match="does not order a caller's candidate_item_ids"):
        baseline.rank(RankQuery("user-1", 5, candidate_item_ids=("item-1",)))
