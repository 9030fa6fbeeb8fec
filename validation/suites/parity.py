"""Suite over a parity comparison frame (``ParityReport.comparison``): one 0/1 match column per
feature, so each feature's match rate is the column mean and shows in Data Docs like any check."""

from __future__ import annotations

from collections.abc import Sequence

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.metadata_types import FailureSeverity

from validation.skew import DEFAULT_MIN_MATCH, FRESH_COLUMN, MATCH_PREFIX

#: stale online values are reported as a warning: Feast already hides values past their TTL at
#: read time, so staleness means "materialization is late", not "serving reads wrong values"
DEFAULT_MIN_FRESH = 0.99


def parity_suite(
    view: str,
    features: Sequence[str],
    has_freshness: bool,
    min_match: float = DEFAULT_MIN_MATCH,
    min_fresh: float = DEFAULT_MIN_FRESH,
) -> gx.ExpectationSuite:
    exps: list = []
    for feat in features:
        exps.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=MATCH_PREFIX + feat, min_value=min_match, max_value=1.0, meta={"feature": feat}
            )
        )
    if has_freshness:
        exps.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=FRESH_COLUMN,
                min_value=min_fresh,
                max_value=1.0,
                severity=FailureSeverity.WARNING,
                meta={"label": view},
            )
        )
    return gx.ExpectationSuite(name=f"parity-{view}", expectations=exps)
