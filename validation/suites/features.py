"""Suites for feature batches before they are published to the online store.

Data-driven: each feature view is a small table of ``FeatureSpec``; adding a feature is one line.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import great_expectations as gx
import great_expectations.expectations as gxe

from validation.expectations import ExpectColumnListElementsToBeBetween, ExpectColumnLogicalTypeToBe
from validation.expectations.types import LogicalType

TIMESTAMP = "event_timestamp"
#: a batch older than this (relative to ``as_of``) is stale; materialization runs at least daily
DEFAULT_MAX_AGE = timedelta(hours=48)
#: stands in for an open bound in list checks; infinities do not survive GE's JSON suite store
_UNBOUNDED = 1e300


@dataclass(frozen=True)
class FeatureSpec:
    column: str
    logical_type: LogicalType
    min: float | None = None
    max: float | None = None
    nullable: bool = False


@dataclass(frozen=True)
class FeatureView:
    name: str
    entity: str
    features: tuple[FeatureSpec, ...]

    def spec(self, column: str) -> FeatureSpec:
        return next(f for f in self.features if f.column == column)


def _count(c: str) -> FeatureSpec:
    return FeatureSpec(c, "integer", min=0)


def _rate(c: str) -> FeatureSpec:
    return FeatureSpec(c, "float", min=0.0, max=1.0)


def _nonneg(c: str) -> FeatureSpec:
    return FeatureSpec(c, "float", min=0.0)


USER_PROFILE = FeatureView("user_profile", "user_id", (
    _count("user_plays_7d"), _count("user_plays_30d"), _count("user_likes_30d"), _count("user_active_days_30d"),
    _rate("user_skip_rate_30d"), _rate("user_completion_30d"),
    _nonneg("user_days_since_last"),
    FeatureSpec("user_genre_affinity", "float_list", min=0.0, max=1.0),
    FeatureSpec("user_top_genre", "string"),
))

ITEM_STATS = FeatureView("item_stats", "item_id", (
    _count("item_plays_1d"), _count("item_plays_7d"), _count("item_plays_30d"),
    _rate("item_skip_rate_30d"), _rate("item_like_rate_30d"), _rate("item_completion_30d"),
    _nonneg("item_age_days"), _nonneg("item_duration_s"),
    FeatureSpec("item_genre", "string"),
))

VIEWS: dict[str, FeatureView] = {v.name: v for v in (USER_PROFILE, ITEM_STATS)}


def feature_suite(view: FeatureView, as_of: datetime, max_age: timedelta = DEFAULT_MAX_AGE) -> gx.ExpectationSuite:
    """Presence, type, nulls and range per feature; one row per entity and snapshot; freshness."""
    exps: list = []
    columns = [view.entity, TIMESTAMP] + [f.column for f in view.features]
    exps.append(gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=False))
    exps.append(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    exps.append(gxe.ExpectColumnValuesToNotBeNull(column=view.entity))
    # batches are daily snapshots: one row per entity *and* snapshot time
    exps.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=[view.entity, TIMESTAMP]))
    exps.append(ExpectColumnLogicalTypeToBe(column=TIMESTAMP, logical_type="timestamp_utc"))
    exps.append(gxe.ExpectColumnValuesToNotBeNull(column=TIMESTAMP))
    exps.append(gxe.ExpectColumnMaxToBeBetween(column=TIMESTAMP, min_value=as_of - max_age))
    for f in view.features:
        exps.append(ExpectColumnLogicalTypeToBe(column=f.column, logical_type=f.logical_type))
        if not f.nullable:
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=f.column))
        if f.logical_type == "float_list":
            exps.append(ExpectColumnListElementsToBeBetween(
                column=f.column, min_value=f.min if f.min is not None else -_UNBOUNDED,
                max_value=f.max if f.max is not None else _UNBOUNDED))
        elif f.min is not None or f.max is not None:
            exps.append(gxe.ExpectColumnValuesToBeBetween(column=f.column, min_value=f.min, max_value=f.max))
    return gx.ExpectationSuite(name=f"features-{view.name}", expectations=exps)
