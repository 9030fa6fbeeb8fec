"""Custom expectation: a column's distribution has not drifted from a binned reference.

The reference (bins and shares, see ``validation.distributions``) travels inside the expectation's kwargs, so
the suite stored by GE carries exactly the reference it was checked against. The warn and fail levels
are two expectations over the same metric (GE computes it once: identical metric kwargs), the warn one
with ``severity="warning"`` so the gate can tell them apart.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnAggregateExpectation
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)

from validation.distributions import drift_score
from validation.expectations._render import TemplateRendered


class ColumnDistributionDrift(ColumnAggregateMetricProvider):
    """PSI or Jensen–Shannon distance of the column against a binned reference (pandas only)."""

    metric_name = "column.setlist_distribution_drift"
    value_keys = ("method", "kind", "bins", "reference")

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, method, kind, bins, reference, **kwargs):
        return drift_score(method, kind, bins, reference, column)


class ExpectColumnDistributionDriftToBeLessThan(TemplateRendered, ColumnAggregateExpectation):
    """Expect the drift score (PSI or JS distance) of a column against its reference to stay below
    ``threshold``. ``kind`` is ``numeric`` (bins are quantile cut points) or ``categorical``."""

    method: Literal["psi", "js"] = "psi"
    kind: Literal["numeric", "categorical"]
    bins: list[Any]
    reference: list[float]
    threshold: float = pydantic.Field(gt=0)

    metric_dependencies: ClassVar[tuple[str, ...]] = ("column.setlist_distribution_drift",)
    success_keys: ClassVar[tuple[str, ...]] = ("method", "kind", "bins", "reference", "threshold")
    args_keys: ClassVar[tuple[str, ...]] = ("column", "method", "kind", "bins", "reference", "threshold")

    library_metadata: ClassVar[dict] = {
        "maturity": "experimental",
        "tags": ["setlist", "drift"],
        "contributors": ["setlist"],
    }

    @classmethod
    def _template(cls, params: dict[str, Any]) -> str:
        return (
            "$column $method drift against the reference window ($kind, "
            f"{len(params.get('bins') or [])} bins) must be below $threshold"
        )

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None) -> dict:
        score = metrics.get("column.setlist_distribution_drift")
        if score is None:
            return {"success": False, "result": {"observed_value": None}}
        return {
            "success": bool(score < self.threshold),
            "result": {
                "observed_value": round(float(score), 4),
                "details": {"method": self.method, "threshold": self.threshold},
            },
        }
