"""Versioned feature services: the contract between a model version and its features.

One service per declared version: ``ranker_vN`` reads the features declared with ``since <= N``
(and ``until`` unset or ``>= N``), projected out of the shared views, so a champion on
``ranker_v1`` and a challenger on ``ranker_v2`` read the same store side by side.
"""

from __future__ import annotations

from feast import FeatureService

from feature_repo.features import Views
from setlist.featureset import FeatureSet


def build_services(views: Views, features: FeatureSet) -> list[FeatureService]:
    out = []
    for version in features.versions:
        svc = features.service(version)
        projections = []
        for view in (views.user_profile, views.item_stats, views.context):
            names = svc.view_features(view.name)
            if names:
                projections.append(view[list(names)])
        projections.append(views.session)
        out.append(
            FeatureService(
                name=svc.name,
                features=projections,
                description=f"Inputs of the XGBoost ranker trained on {svc.name} ({len(svc.inputs)} inputs).",
            )
        )
    return out
