"""Where a declared feature's values come from: the event log (``Events``), a column of a table
(``Column``, ``Table``), the session state (``Session``), the request (``Request``) or the candidate
stage (``Candidate``), and the groups of event types declarations filter by.

Pure Python, like ``setlist.featureset``, which re-exports these for declaration files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from setlist.contract import ITEM_TYPES, POSITIVE_TYPES

Function = Literal[
    "count", "sum", "mean", "rate", "last", "distinct", "days_since_last", "days_since_first", "share", "top"
]
Transform = Literal["value", "days_since", "year", "contains"]

#: every item event type but impressions: what a user did, not what they were shown (the light and
#: onboarding types are not item interactions features count)
INTERACTIONS: tuple[str, ...] = tuple(t for t in ITEM_TYPES if t != "impression")
NEGATIVE_TYPES: tuple[str, ...] = ("skip", "not_interested")
POSITIVES: tuple[str, ...] = tuple(sorted(POSITIVE_TYPES))
FUNCTIONS: tuple[str, ...] = get_args(Function)
#: the functions that read their ``column`` (the engine's ``_events``); the others ignore one given
READS_COLUMN = frozenset({"sum", "mean", "last", "distinct", "share", "top"})
#: event columns the build reads only when a declaration names one (``incremental.build_columns``): the request
#: context each event carried and a sampled event's weight (``setlist.tiers``; none stored means 1)
CONTEXT_COLUMNS: tuple[str, ...] = ("device", "locale", "weight")
#: context columns whose values no contract bounds (a weight is any number): a ``share`` over one names its
#: ``categories``
OPEN_VOCABULARY: frozenset[str] = frozenset(CONTEXT_COLUMNS)
TRANSFORMS: tuple[str, ...] = get_args(Transform)


@dataclass(frozen=True)
class Events:
    """An aggregation over the event log, per entity, at the end of each day with events.

    ``types`` filters by event type (``None``: every event, impressions included); ``where`` is a
    further filter, a function of the event columns (``type``, ``value``, ``item_id``, ``user_id``,
    ``timestamp``, and ``device``, ``locale`` and ``weight``, read from the log for a filter that asks for
    them) returning a boolean array. ``rate`` divides the count of ``types`` by the count of
    ``over``. ``column`` names an event column (``device``, ``locale`` and ``weight`` among them), ``day``
    (for ``distinct``: active days) or a catalogue column joined by item (``genre``). ``windows`` are
    trailing days, the day itself included; none means all history. ``categories`` fixes the values a
    ``share`` or ``top`` looks at, in order: a share is then each one's part of *all* the counted events
    (others included), so one category gives a single number (``dtype="float64"``).
    """

    function: Function
    column: str | None = None
    types: tuple[str, ...] | None = None
    over: tuple[str, ...] | None = None
    where: Callable[[Any], Any] | None = None
    windows: tuple[int, ...] = ()
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Column:
    """A column of a table the user brings: ``items`` (the imported catalogue) or a registered
    ``Table``, joined by entity key (and as of the snapshot when the table has a timestamp).
    ``transform``: ``days_since`` a date, its ``year``, or whether a pipe-separated list
    ``contains`` ``argument`` (multi-hot). ``fallback`` fills rows the table has no value for."""

    table: str
    column: str
    transform: Transform = "value"
    argument: str | None = None
    fallback: Events | None = None


@dataclass(frozen=True)
class Session:
    """A field of the session state (``setlist.features.SessionState``), pushed by Track."""

    field: str


@dataclass(frozen=True)
class Request:
    """An on-demand transform of the request: ``fn(device, hour, weekday) -> float``, run by the
    Feast on-demand view offline and by Rank online. It must depend on its arguments alone: Rank
    computes each (device, hour, weekday) once per process and reuses the value."""

    fn: Callable[[str, int, int], float]


@dataclass(frozen=True)
class Candidate:
    """A user×item score from the candidate stage (``CandidateIndex.cross_features``)."""


Source = Events | Column | Session | Request | Candidate


@dataclass(frozen=True)
class Table:
    """A table the user registers as a feature source: a parquet or CSV file, or a SQL query.

    ``personal`` user attributes are joined only for users with personalization consent."""

    name: str
    entity: Literal["user", "item"]
    key: str
    path: str | None = None
    sql: str | None = None
    url: str | None = None
    timestamp: str | None = None
    personal: bool = True
    owner: str = ""
    description: str = ""
