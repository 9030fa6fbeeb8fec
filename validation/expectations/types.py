"""Custom expectations for types and shapes that GE's built-ins cannot express on pandas.

* ``ExpectColumnLogicalTypeToBe``: GE's type expectations compare exact numpy dtypes, which cannot
  match a tz-aware ``datetime64[ms, UTC]`` and would reject ``int64`` where the contract says
  ``int32``. A logical type ("integer", "timestamp_utc", "float_list", …) is what the contract means.
* ``ExpectColumnListElementsToBeBetween``: list-valued features (genre affinities) per element.
* ``ExpectFeatureColumnsToExcludeIdentifiers``: identifier columns among model features leak
  memorised ids into the ranker; it checks the declared feature list against the batch.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    BatchExpectation,
    ColumnAggregateExpectation,
    ColumnMapExpectation,
)
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from validation.expectations._render import TemplateRendered

LogicalType = Literal["string", "integer", "float", "number", "boolean", "timestamp_utc", "float_list"]
IDENTIFIER_COLUMNS = frozenset({"id", "user_id", "item_id", "session_id", "event_id", "query_id"})


def is_identifier(name: str) -> bool:
    return name in IDENTIFIER_COLUMNS or name.endswith("_id")


def _is_number_list(v: Any) -> bool:
    if not isinstance(v, (list, tuple, np.ndarray)):
        return False
    return np.asarray(v).dtype.kind in "fiu" or len(v) == 0


def describe_dtype(column: pd.Series) -> str:
    """``str(dtype)``, or ``object[<what the values are>]`` for object columns (and
    ``category[...]`` for categoricals, which parquet dictionary columns become)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return f"category[{pd.api.types.infer_dtype(column.cat.categories, skipna=True)}]"
    if column.dtype != object:
        return str(column.dtype)
    present = column.dropna()
    if present.empty:
        return "object[empty]"
    if isinstance(present.iloc[0], (list, tuple, np.ndarray)):
        return "object[float_list]" if present.map(_is_number_list).all() else "object[mixed_list]"
    return f"object[{pd.api.types.infer_dtype(present, skipna=True)}]"


def matches(logical: str, observed: str) -> bool:
    if observed == "object[empty]":  # all-null: nullability is a separate expectation
        return True
    if logical == "string":
        return observed in ("object[string]", "category[string]", "string", "str") or observed.startswith("string[")
    if logical == "integer":
        return observed.lower().lstrip("u").startswith("int")
    if logical == "float":
        return observed.lower().startswith("float")
    if logical == "number":
        return matches("integer", observed) or matches("float", observed)
    if logical == "boolean":
        return observed in ("bool", "boolean", "object[boolean]")
    if logical == "timestamp_utc":
        return observed.startswith("datetime64[") and observed.endswith(", UTC]")
    if logical == "float_list":
        return observed == "object[float_list]"
    raise ValueError(f"unknown logical type {logical!r}")


class ColumnLogicalType(ColumnAggregateMetricProvider):
    metric_name = "column.setlist_logical_type"

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return describe_dtype(column)


class ExpectColumnLogicalTypeToBe(TemplateRendered, ColumnAggregateExpectation):
    """Expect a column's values to be of a logical type (dtype-family aware, nulls ignored)."""

    logical_type: LogicalType
    metric_dependencies: ClassVar[tuple[str, ...]] = ("column.setlist_logical_type",)
    success_keys: ClassVar[tuple[str, ...]] = ("logical_type",)
    args_keys: ClassVar[tuple[str, ...]] = ("column", "logical_type")
    library_metadata: ClassVar[dict] = {
        "maturity": "experimental",
        "tags": ["setlist", "schema"],
        "contributors": ["setlist"],
    }

    @classmethod
    def _template(cls, params: dict[str, Any]) -> str:
        return "$column values must be of logical type $logical_type"

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None) -> dict:
        observed = metrics.get("column.setlist_logical_type")
        ok = observed is not None and matches(self.logical_type, observed)
        return {"success": ok, "result": {"observed_value": observed}}


class ColumnListElementsBetween(ColumnMapMetricProvider):
    condition_metric_name = "column_values.setlist_list_elements_between"
    condition_value_keys = ("min_value", "max_value")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, min_value, max_value, **kwargs):
        def ok(v: Any) -> bool:
            if not _is_number_list(v):
                return False
            a = np.asarray(v, dtype=float)
            return bool(np.all((a >= min_value) & (a <= max_value)))  # NaN elements fail too

        if _equal_arrays(column):
            # equally long numeric arrays (per-genre shares): checked a block of rows at a time, as
            # row by row in Python it was most of the feature gate's time. NaN elements fail too
            values, inside = column.to_numpy(), np.empty(len(column), dtype=bool)
            for i in range(0, len(values), _BLOCK_ROWS):
                grid = np.stack(values[i : i + _BLOCK_ROWS])
                inside[i : i + _BLOCK_ROWS] = ((grid >= min_value) & (grid <= max_value)).all(axis=1)
            return pd.Series(inside, index=column.index)
        return column.map(ok)


#: rows stacked at a time by the list check (a bounded copy: 20 shares × 4 B × 1M rows = 80 MB)
_BLOCK_ROWS = 1_000_000


def _equal_arrays(column: pd.Series) -> bool:
    """Whether every cell is a 1-D numeric array of one length; any other column (lists, ragged or
    mixed cells) is checked cell by cell."""
    values = column.to_numpy()
    if not len(values) or {type(v) for v in values} != {np.ndarray}:
        return False
    kinds = {(v.dtype.kind, v.shape) for v in values}
    return len(kinds) == 1 and all(k in "fiu" and len(shape) == 1 for k, shape in kinds)


class ExpectColumnListElementsToBeBetween(TemplateRendered, ColumnMapExpectation):
    """Expect every element of each list-valued cell to lie within [min_value, max_value]."""

    min_value: float
    max_value: float
    map_metric: ClassVar[str] = "column_values.setlist_list_elements_between"
    success_keys: ClassVar[tuple[str, ...]] = ("min_value", "max_value", "mostly")
    args_keys: ClassVar[tuple[str, ...]] = ("column", "min_value", "max_value")
    library_metadata: ClassVar[dict] = {
        "maturity": "experimental",
        "tags": ["setlist", "features"],
        "contributors": ["setlist"],
    }

    @classmethod
    def _template(cls, params: dict[str, Any]) -> str:
        return "every element of $column lists must be between $min_value and $max_value"


class ExpectFeatureColumnsToExcludeIdentifiers(TemplateRendered, BatchExpectation):
    """Expect none of the declared model feature columns to be an identifier (``*_id`` and friends)."""

    feature_columns: list[str]
    metric_dependencies: ClassVar[tuple[str, ...]] = ("table.columns",)
    success_keys: ClassVar[tuple[str, ...]] = ("feature_columns",)
    args_keys: ClassVar[tuple[str, ...]] = ("feature_columns",)
    library_metadata: ClassVar[dict] = {
        "maturity": "experimental",
        "tags": ["setlist", "leakage"],
        "contributors": ["setlist"],
    }

    @classmethod
    def _template(cls, params: dict[str, Any]) -> str:
        n = len(params.get("feature_columns") or [])
        return f"none of the {n} feature columns may be an identifier (user_id, item_id, *_id)"

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None) -> dict:
        leaked = sorted(c for c in self.feature_columns if is_identifier(c))
        return {"success": not leaked, "result": {"observed_value": leaked}}
