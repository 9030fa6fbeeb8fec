"""The event contract: the one schema every producer writes and every consumer reads.

A row in the event log is one user interaction. ``user_id`` is always the pseudonym, never the
application's id. Context is kept as flat columns (``device``, ``locale``) because parquet readers
and Feast sources handle flat columns well; new context keys arrive as new optional columns with a
schema version bump. The consent columns are nullable: null means the event carried no flag, which
changes nothing (``setlist.consent``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from setlist.consent import FLAGS, flag_reason

#: 2 added the onboarding types (``search``, ``feature_use``), the light types (``view``,
#: ``heartbeat``) and the ``query`` and ``weight`` columns; version 1 events read with both null
SCHEMA_VERSION = 2
KNOWN_SCHEMA_VERSIONS = frozenset({1, 2})

#: what a user did to an item, and impressions (what they were shown): the types features,
#: labels and the generator use
ITEM_TYPES = ("play", "skip", "like", "add_to_playlist", "not_interested", "impression")
#: light item signals (an item page viewed, a play still going): cheap, many, sampled (setlist.tiers)
LIGHT_TYPES = ("view", "heartbeat")
#: onboarding signals with no item: ``query`` holds a search's text, or the product feature used
NO_ITEM_TYPES = ("search", "feature_use")
EVENT_TYPES = ITEM_TYPES + LIGHT_TYPES + NO_ITEM_TYPES
POSITIVE_TYPES = frozenset({"like", "add_to_playlist"})
NEGATIVE_TYPES = frozenset({"skip", "not_interested"})
#: a play counts as a positive label from this listen fraction on
POSITIVE_PLAY_FRACTION = 0.8
#: a play stopped before this listen fraction is a skip: the listener moved on almost at once
SKIP_PLAY_FRACTION = 0.25

DEVICES = ("mobile", "desktop", "tablet", "smart_speaker", "web")
UNKNOWN = "unknown"
#: a session id that starts so groups one user's imported history (clicks listed before the log,
#: without times: MIND's): no visit, so the gates do not count its length as a session's
HISTORY_SESSION_PREFIX = "h_"

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int32(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string()),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("value", pa.float32()),
        pa.field("device", pa.string()),
        pa.field("locale", pa.string()),
        pa.field("consent_personalization", pa.bool_()),
        pa.field("consent_analytics", pa.bool_()),
        pa.field("arm", pa.string()),
        # a search's normalized text (setlist.querytext), or the name of the product feature used
        pa.field("query", pa.string()),
        # how many events this one stands for: 1/rate for a sampled event (setlist.tiers), null for 1
        pa.field("weight", pa.float32()),
    ]
)
EVENT_COLUMNS = tuple(EVENT_SCHEMA.names)

ITEM_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("artist", pa.string()),
        pa.field("genre", pa.string()),
        pa.field("duration_s", pa.float32()),
        pa.field("release_date", pa.timestamp("ms", tz="UTC")),
        # every genre of the item, lower case, pipe-separated (``genre`` is the first): multi-hot features
        pa.field("genres", pa.string()),
        # the item's name as the items file gives it (searches match its words); null when unknown
        pa.field("title", pa.string()),
    ]
)


def reject_reason(row: Mapping[str, Any], now: datetime, max_future_s: float = 300.0) -> str | None:
    """Why an event breaks the contract, or ``None`` when it is valid.

    The reasons are short, stable codes followed by detail, so that quarantine counts group well.
    """
    for key in ("event_id", "user_id"):
        if _empty(row.get(key)):
            return f"missing_id: {key} is {blank_or_empty(row.get(key))}"
    etype = row.get("type")
    if etype not in NO_ITEM_TYPES and _empty(row.get("item_id")):
        return f"missing_id: item_id is {blank_or_empty(row.get('item_id'))}"
    version = row.get("schema_version")
    if version not in KNOWN_SCHEMA_VERSIONS:
        return f"unknown_schema_version: {version!r} (known: {sorted(KNOWN_SCHEMA_VERSIONS)})"
    if etype not in EVENT_TYPES:
        return f"unknown_type: {etype!r} (allowed: {', '.join(EVENT_TYPES)})"
    if etype in NO_ITEM_TYPES and _empty(row.get("query")):
        what = "a search's text" if etype == "search" else "the product feature used"
        return f"missing_query: a {etype} event needs {what} in query"
    ts = row.get("timestamp")
    if not isinstance(ts, datetime):
        return f"bad_timestamp: {ts!r} is not a timestamp"
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    if ts.timestamp() <= 0:
        return "bad_timestamp: epoch zero or earlier"
    if ts.timestamp() > now.timestamp() + max_future_s:
        return future_reason(ts, max_future_s)
    for flag in FLAGS:  # a consent value is a yes, a no or absent: anything else is not guessed at
        reason = flag_reason(flag, row.get(flag))
        if reason is not None:
            return reason
    value = row.get("value")
    if value is not None and value == value:  # NaN means "no value"
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"bad_value: {str(value)[:40]!r} is not a number"
        if not math.isfinite(number):  # a sum or mean over it would be infinite too
            return f"bad_value: {value} is not a finite number"
        if etype == "play" and not 0.0 <= number <= 1.0:
            return f"bad_value: play listen fraction {value} outside [0, 1]"
    weight = row.get("weight")
    if weight is not None and weight == weight:
        try:
            ok = 1.0 <= float(weight) < float("inf")
        except (TypeError, ValueError):
            ok = False
        if not ok:
            return f"bad_weight: {weight!r} is not a sampling weight (1 or more)"
    return None


def future_reason(ts: datetime, max_future_s: float) -> str:
    """The reason for a time too far ahead of the clock: to the millisecond, as events are stamped."""
    return f"future_timestamp: {ts.isoformat(timespec='milliseconds')} is more than {max_future_s:g} s after now"


def blank_or_empty(v: Any) -> str:
    """How a missing id is said, at every boundary that refuses one (the contract, Rank's request)."""
    return "blank (only whitespace)" if isinstance(v, str) and v else "empty"


def _empty(v: Any) -> bool:
    """None, a blank string, and the missing markers of a table (NaN, pandas' NA and NaT): a file's
    empty cell arrives as one of those, never as None."""
    if v is None:
        return True
    if isinstance(v, str):
        return not v.strip()
    if isinstance(v, float):
        return v != v
    return type(v).__name__ in ("NAType", "NaTType")
