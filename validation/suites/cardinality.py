"""Suite for cardinality guards: distinct counts and unique proportions within learned bounds.

An exploding category (the device column suddenly holding free text, item ids multiplied by a
bad join) shows up as a distinct count far above the reference and fails here. The reference was
learned from windows holding as many events as the current one (``validation.reference``); the
allowed range is ``ratio`` × their median, widened to the smallest and largest count any of them
had, so a log whose windows already vary that much (bursts, quiet years) does not fail for it.
"""

from __future__ import annotations

import math

import great_expectations as gx
import great_expectations.expectations as gxe

from validation.reference import DEFAULT_RATIO, CardinalityReference


def cardinality_suite(ref: CardinalityReference, ratio: tuple[float, float] = DEFAULT_RATIO) -> gx.ExpectationSuite:
    lo, hi = ratio
    exps: list = []
    meta = {"window_events": ref.window_events, "window_days": ref.window_days, "ratio": [lo, hi]}
    # event ids identify an event: any repeat is a duplicate delivery that escaped ingestion
    exps.append(gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(column="event_id", min_value=1.0, max_value=1.0))
    for col, count in sorted(ref.distinct.items()):
        low = min(count * lo, ref.distinct_low.get(col, count))
        high = max(count * hi, ref.distinct_high.get(col, count))
        exps.append(
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=col,
                min_value=int(math.floor(low)),
                max_value=int(math.ceil(high)),
                meta={**meta, "reference_distinct": count},
            )
        )
    for col, share in sorted(ref.unique_proportion.items()):
        low = min(share * lo, ref.proportion_low.get(col, share))
        high = max(share * hi, ref.proportion_high.get(col, share))
        exps.append(
            gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
                column=col,
                min_value=round(low, 6),
                max_value=min(1.0, round(high, 6)),
                meta={**meta, "reference_proportion": share},
            )
        )
    return gx.ExpectationSuite(name="cardinality", expectations=exps)
