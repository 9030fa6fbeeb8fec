"""Suite for cardinality guards: distinct counts and unique proportions within learned bounds.

An exploding category (the device column suddenly holding free text, item ids multiplied by a
bad join) shows up as a distinct count far above the reference and fails here.
"""
from __future__ import annotations

import math

import great_expectations as gx
import great_expectations.expectations as gxe

from validation.reference import DEFAULT_RATIO, CardinalityReference


def cardinality_suite(ref: CardinalityReference, ratio: tuple[float, float] = DEFAULT_RATIO) -> gx.ExpectationSuite:
    lo, hi = ratio
    exps: list = []
    # event ids identify an event: any repeat is a duplicate delivery that escaped ingestion
    exps.append(gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
        column="event_id", min_value=1.0, max_value=1.0))
    for col, count in sorted(ref.distinct.items()):
        exps.append(gxe.ExpectColumnUniqueValueCountToBeBetween(
            column=col, min_value=int(math.floor(count * lo)), max_value=int(math.ceil(count * hi)),
            meta={"reference_distinct": count, "window_days": ref.window_days, "ratio": [lo, hi]}))
    for col, share in sorted(ref.unique_proportion.items()):
        exps.append(gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
            column=col, min_value=round(share * lo, 6), max_value=min(1.0, round(share * hi, 6)),
            meta={"reference_proportion": share, "window_days": ref.window_days, "ratio": [lo, hi]}))
    return gx.ExpectationSuite(name="cardinality", expectations=exps)
