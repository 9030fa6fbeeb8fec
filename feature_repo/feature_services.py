"""Versioned feature services: the contract between a model version and its features."""
from __future__ import annotations

from feast import FeatureService

from setlist.features import FEATURE_SERVICE

from .features import Views


def build_services(views: Views) -> list[FeatureService]:
    ranker_v1 = FeatureService(
        name=FEATURE_SERVICE,
        features=[views.user_profile, views.item_stats, views.session, views.context],
        description="Inputs of the XGBoost ranker (setlist-ranker). Bump to _v2 when a view changes shape.",
    )
    return [ranker_v1]
