"""Suites for feature batches before they are published to the online store.

Data-driven: each feature view is a small table of ``FeatureSpec``, derived from the feature
declarations (``views_of``): a declared feature's dtype, range and null share become its checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import great_expectations as gx
import great_expectations.expectations as gxe

from setlist.featureset import FeatureSet
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
    mostly: float = 1.0  # the share of rows that must be non-null, when not nullable


@dataclass(frozen=True)
class FeatureView:
    name: str
    entity: str
    features: tuple[FeatureSpec, ...]

    def spec(self, column: str) -> FeatureSpec:
        return next(f for f in self.features if f.column == column)


_LOGICAL: dict[str, LogicalType] = {
    "int64": "integer",
    "float64": "float",
    "float_list": "float_list",
    "string": "string",
    "bool": "boolean",
}
_ENTITY_KEY = {"user_profile": "user_id", "item_stats": "item_id"}


def views_of(features: FeatureSet) -> dict[str, FeatureView]:
    """The batch views' checks, from the declarations: type, range (``Expect.min``/``max``) and
    nulls (``Expect.max_null_share``; none allowed without an expectation)."""
    out = {}
    for view, key in _ENTITY_KEY.items():
        specs = []
        for f in features.view(view):
            e = f.expect
            share = e.max_null_share if e else 0.0
            specs.append(
                FeatureSpec(
                    f.name,
                    _LOGICAL[f.dtype],
                    e.min if e else None,
                    e.max if e else None,
                    nullable=share >= 1.0,
                    mostly=1.0 - share,
                )
            )
        out[view] = FeatureView(view, key, tuple(specs))
    return out


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
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=f.column, mostly=f.mostly))
        if f.logical_type == "float_list":
            exps.append(
                ExpectColumnListElementsToBeBetween(
                    column=f.column,
                    min_value=f.min if f.min is not None else -_UNBOUNDED,
                    max_value=f.max if f.max is not None else _UNBOUNDED,
                )
            )
        elif f.min is not None or f.max is not None:
            exps.append(gxe.ExpectColumnValuesToBeBetween(column=f.column, min_value=f.min, max_value=f.max))
    return gx.ExpectationSuite(name=f"features-{view.name}", expectations=exps)
