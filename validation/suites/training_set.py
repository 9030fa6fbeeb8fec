"""Suite for a training set: (query, user, item, time, label) rows plus feature columns."""

from __future__ import annotations

from collections.abc import Sequence

import great_expectations as gx
import great_expectations.expectations as gxe

from validation.expectations import ExpectFeatureColumnsToExcludeIdentifiers

BASE_COLUMNS = ("query_id", "user_id", "item_id", "event_timestamp", "label")
#: derived column the gate adds (``user_id in opted_out``); the pseudonym set itself never enters
#: the suite, so it is neither stored in the GE store nor printed into Data Docs
OPTED_OUT_FLAG = "user_opted_out"
DEFAULT_POSITIVE_SHARE = (0.02, 0.8)


def training_set_suite(
    feature_columns: Sequence[str], positive_share: tuple[float, float] = DEFAULT_POSITIVE_SHARE
) -> gx.ExpectationSuite:
    exps: list = []
    exps.append(
        gxe.ExpectTableColumnsToMatchSet(column_set=list(BASE_COLUMNS) + list(feature_columns), exact_match=False)
    )
    exps.append(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    for col in BASE_COLUMNS:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
    exps.append(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]))
    # the positive share, i.e. the mean of a 0/1 label
    exps.append(
        gxe.ExpectColumnMeanToBeBetween(column="label", min_value=positive_share[0], max_value=positive_share[1])
    )
    exps.append(ExpectFeatureColumnsToExcludeIdentifiers(feature_columns=list(feature_columns)))
    exps.append(
        gxe.ExpectColumnValuesToBeInSet(
            column=OPTED_OUT_FLAG, value_set=[False], meta={"why": "users who opted out of personalization"}
        )
    )
    return gx.ExpectationSuite(name="training_set", expectations=exps)
