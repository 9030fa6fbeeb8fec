"""Suite for raw events in the event contract (``setlist.contract.EVENT_SCHEMA``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import great_expectations as gx
import great_expectations.expectations as gxe
import pyarrow as pa
from great_expectations.expectations.row_conditions import Column

from setlist.contract import EVENT_SCHEMA, EVENT_TYPES, KNOWN_SCHEMA_VERSIONS, NO_ITEM_TYPES
from validation.expectations import ExpectColumnLogicalTypeToBe
from validation.expectations.types import LogicalType

#: no calendar floor: a ratings log may well start in 1996. Only the impossible is refused, by the
#: rule ingestion applies (``setlist.contract.reject_reason``): at or before the Unix epoch (an
#: unset or zero timestamp) or more than ``max_future_skew_s`` after now
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REQUIRED_IDS = ("event_id", "user_id", "item_id")


def logical_type(arrow_type: pa.DataType) -> LogicalType:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp_utc"
    raise ValueError(f"no logical type for {arrow_type}")


def events_suite(now: datetime | None = None, max_future_skew_s: float = 300.0) -> gx.ExpectationSuite:
    """Contract checks for a frame of events; ``now`` bounds timestamps from above (plus skew)."""
    now = now or datetime.now(UTC)
    latest = now + timedelta(seconds=max_future_skew_s)
    exps: list = []
    # Extra columns are allowed: new context keys arrive as new optional columns.
    exps.append(gxe.ExpectTableColumnsToMatchSet(column_set=list(EVENT_SCHEMA.names), exact_match=False))
    for f in EVENT_SCHEMA:
        exps.append(gxe.ExpectColumnToExist(column=f.name))
        exps.append(ExpectColumnLogicalTypeToBe(column=f.name, logical_type=logical_type(f.type)))
    for col in REQUIRED_IDS:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
        # empty strings are as missing as nulls for an id (the contract's reject_reason agrees), but
        # a search or a feature_use names no item
        only = Column("type").is_not_in(list(NO_ITEM_TYPES)) if col == "item_id" else None
        exps.append(gxe.ExpectColumnValueLengthsToBeBetween(column=col, min_value=1, row_condition=only))
    # a search carries its text, a feature_use the feature's name
    exps.append(
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="query", min_value=1, row_condition=Column("type").is_in(list(NO_ITEM_TYPES))
        )
    )
    exps.append(
        gxe.ExpectColumnValuesToNotBeNull(column="query", row_condition=Column("type").is_in(list(NO_ITEM_TYPES)))
    )
    # a sampled event stands for 1/rate events (setlist.tiers); unsampled ones are null
    exps.append(gxe.ExpectColumnValuesToBeBetween(column="weight", min_value=1.0))
    for col in ("type", "schema_version", "timestamp"):
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
    exps.append(gxe.ExpectColumnValuesToBeUnique(column="event_id"))
    exps.append(gxe.ExpectColumnValuesToBeInSet(column="type", value_set=list(EVENT_TYPES)))
    exps.append(gxe.ExpectColumnValuesToBeInSet(column="schema_version", value_set=sorted(KNOWN_SCHEMA_VERSIONS)))
    exps.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="timestamp",
            min_value=EPOCH,
            max_value=latest,
            strict_min=True,
            meta={"max_future_skew_s": max_future_skew_s},
        )
    )
    # the listen fraction only has a meaning for plays; other types may carry other values
    exps.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="value", min_value=0.0, max_value=1.0, row_condition=Column("type") == "play"
        )
    )
    # any value is a finite number (a missing one is NaN, which the check passes over)
    exps.append(gxe.ExpectColumnValuesToNotBeInSet(column="value", value_set=[float("inf"), float("-inf")]))
    return gx.ExpectationSuite(name="events", expectations=exps)
