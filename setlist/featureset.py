"""Feature declarations: one ``Feature`` per feature, and what is derived from them.

A declaration states the feature's name, entity, source, dtype, missing value, owner, description,
optional expectations and the first ranker feature service that uses it (``since``). From the set of
declarations come the Feast views and services (``feature_repo``), the offline computation
(``feature_repo.engine``), the Great Expectations checks (``validation``) and each service's ranker
input order, which training records on the model and serving reads back.

Declaration files import their vocabulary from here: the sources (``setlist.feature_sources``) and
the shared filters and request transforms (``setlist.feature_transforms``) are re-exported.
A model's inputs laid out over the blocks are ``setlist.feature_layout.Layout``.

Pure Python on purpose (no Feast, no pandas): serving, training and the feature repository all
read it, and the hot path must not pay for an import it does not use.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from setlist.contract import EVENT_TYPES, ITEM_TYPES
from setlist.errors import SetlistError
from setlist.feature_sources import (
    FUNCTIONS,
    INTERACTIONS,
    NEGATIVE_TYPES,
    OPEN_VOCABULARY,
    POSITIVES,
    READS_COLUMN,
    TRANSFORMS,
    Candidate,
    Column,
    Events,
    Request,
    Session,
    Source,
    Table,
)
from setlist.feature_transforms import DeviceIs, engaged, hour_cos, hour_sin, is_weekend

__all__ = [
    # the declaration types, and what is derived from a set of declarations
    "Entity",
    "DType",
    "NUMERIC",
    "VIEW_OF",
    "BLOCKS",
    "SERVICE_PREFIX",
    "MODEL_SERVICE_ATTR",
    "DEFAULT_SERVICE",
    "Expect",
    "Feature",
    "DeclarationError",
    "Service",
    "FeatureSet",
    "service_name",
    "parse_service",
    # re-exported for declaration files: the sources (setlist.feature_sources)
    "Events",
    "Column",
    "Session",
    "Request",
    "Candidate",
    "Table",
    "INTERACTIONS",
    "NEGATIVE_TYPES",
    "POSITIVES",
    # re-exported for declaration files: filters and request transforms (setlist.feature_transforms)
    "engaged",
    "hour_sin",
    "hour_cos",
    "is_weekend",
    "DeviceIs",
]

Entity = Literal["user", "item", "session", "request", "user_item"]
DType = Literal["int64", "float64", "float_list", "string", "bool"]
NUMERIC: frozenset[str] = frozenset({"int64", "float64", "bool"})

#: the Feast view that holds each stored entity's features
VIEW_OF: dict[str, str] = {"user": "user_profile", "item": "item_stats", "session": "session", "request": "context"}
#: the ranker's input blocks, in order: each model's inputs are grouped this way
BLOCKS: tuple[str, ...] = ("user", "session", "request", "item", "user_item")
SERVICE_PREFIX = "ranker_v"
#: the ranker model's attribute (saved in its file, and a registry tag) naming its feature service
MODEL_SERVICE_ATTR = "feature_service"
#: what a model without that attribute was trained on (models from before services had versions)
DEFAULT_SERVICE = "ranker_v1"


@dataclass(frozen=True)
class Expect:
    """Expectations that become Great Expectations checks on every published batch."""

    min: float | None = None
    max: float | None = None
    max_null_share: float = 0.0


@dataclass(frozen=True)
class Feature:
    name: str
    entity: Entity
    source: Source
    dtype: DType = "float64"
    missing: float | str | None = 0.0
    owner: str = ""
    description: str = ""
    expect: Expect | None = None
    since: int = 1
    until: int | None = None
    ranker_input: bool | None = None  # default: numeric features are ranker inputs
    window: int | None = None  # set on the expanded columns of a windowed aggregation
    #: ``name_7d``-style names for windowed aggregations; False keeps the name (one window only)
    window_suffix: bool = True

    @property
    def is_input(self) -> bool:
        return self.dtype in NUMERIC if self.ranker_input is None else self.ranker_input

    @property
    def view(self) -> str | None:
        return VIEW_OF.get(self.entity)

    def in_version(self, version: int) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)

    def columns(self) -> list[Feature]:
        """One feature per window (``name_7d``, ``name_30d``); the declaration itself otherwise."""
        if isinstance(self.source, Events) and self.source.windows:
            if not self.window_suffix:
                if len(self.source.windows) != 1:
                    raise DeclarationError(f"feature {self.name!r}: window_suffix=False needs exactly one window")
                return [replace(self, window=self.source.windows[0])]
            return [replace(self, name=f"{self.name}_{w}d", window=w) for w in self.source.windows]
        return [self]

    def describe_source(self) -> str:
        s = self.source
        if isinstance(s, Events):
            listed = f": {'/'.join(s.categories)}" if s.categories else ""
            what = s.function + (f"({s.column}{listed})" if s.column else "")
            types = "" if s.types is None else f" of {'/'.join(s.types)}"
            over = "" if s.over is None else f" over {'/'.join(s.over)}"
            where = f" where {getattr(s.where, '__name__', 'filter')}" if s.where else ""
            window = f", {self.window}d" if self.window else (", all history" if not s.windows else "")
            return f"events: {what}{types}{over}{where}{window}"
        if isinstance(s, Column):
            extra = f" {s.transform}" + (f" {s.argument!r}" if s.argument else "") if s.transform != "value" else ""
            return f"table {s.table}.{s.column}{extra}"
        if isinstance(s, Session):
            return f"session state: {s.field}"
        if isinstance(s, Request):
            return f"request: {getattr(s.fn, '__name__', 'transform')}"
        return "candidate stage"


class DeclarationError(SetlistError, ValueError):
    """A declaration that cannot work, with the reason in one sentence (exit 1)."""


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Service:
    """A versioned feature service: the ranker inputs in order, and every feature it reads."""

    name: str
    version: int
    inputs: tuple[str, ...]
    features: tuple[Feature, ...]

    def block(self, name: str) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.entity == name and f.is_input)

    def view_features(self, view: str) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.view == view)

    def request_values(self, device: str, hour: int, weekday: int) -> list[float]:
        """This service's request inputs for one request, in block order."""
        return [
            float(f.source.fn(device, hour, weekday))
            for f in self.features
            if f.entity == "request" and f.is_input and isinstance(f.source, Request)
        ]


@dataclass(frozen=True)
class FeatureSet:
    """The expanded declarations (one per stored column), the registered tables, and where each
    declaration came from."""

    features: tuple[Feature, ...]
    tables: dict[str, Table] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, declarations: Sequence[Feature], tables: Sequence[Table] = (), origin: dict[str, str] | None = None
    ) -> FeatureSet:
        origin = dict(origin or {})
        for d in declarations:
            where = origin.get(d.name, "")
            _check_shapes(d, f" (declared in {where})" if where else "")
        expanded = [c for d in declarations for c in d.columns()]
        table_map = {t.name: t for t in tables}
        fs = cls(tuple(expanded), table_map, origin)
        fs.check()
        return fs

    # --- lookups ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.features)

    def entity(self, entity: str) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.entity == entity)

    def view(self, view: str) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.view == view)

    def inputs(self, entity: str) -> tuple[str, ...]:
        """Every declared ranker input of one block, all versions, in declaration order."""
        return tuple(f.name for f in self.features if f.entity == entity and f.is_input)

    @property
    def versions(self) -> tuple[int, ...]:
        top = max((f.since for f in self.features), default=1)
        return tuple(range(1, top + 1))

    @property
    def newest(self) -> str:
        return service_name(self.versions[-1])

    def service(self, name_or_version: str | int) -> Service:
        version = name_or_version if isinstance(name_or_version, int) else parse_service(name_or_version)
        if version not in self.versions:
            known = ", ".join(service_name(v) for v in self.versions)
            raise DeclarationError(f"feature service {service_name(version)} is not declared (known: {known})")
        feats = tuple(f for f in self.features if f.in_version(version))
        inputs = tuple(f.name for b in BLOCKS for f in feats if f.entity == b and f.is_input)
        return Service(service_name(version), version, inputs, feats)

    def request_values(self, device: str, hour: int, weekday: int) -> list[float]:
        return [
            float(f.source.fn(device, hour, weekday)) for f in self.entity("request") if isinstance(f.source, Request)
        ]

    def fingerprint(self) -> str:
        """Changes whenever a stored feature's computation may change (a rebuild is then due)."""
        parts = [_describe(f) for f in self.features if f.view in ("user_profile", "item_stats")]
        parts += [json.dumps(asdict(t), sort_keys=True) for t in self.tables.values()]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def built_in(self) -> frozenset[str]:
        """The names (windowed ones expanded) of the features the built-in pack declares."""
        return frozenset(f.name for f in self.features if self.origin_of(f.name) == "built-in")

    def event_columns(self) -> frozenset[str]:
        """The columns the event aggregations read (a table column's fallback among them): an event column or
        a catalogue one; ``where`` filters are code, and see the columns every build reads (``filters``)."""
        return frozenset(s.column for s in self._event_sources() if s.column and s.function in READS_COLUMN)

    def filters(self) -> list[Callable[[Any], Any]]:
        """The declarations' ``where=`` filters, each once: code, whose columns are found by running it."""
        out: list[Callable[[Any], Any]] = []
        for s in self._event_sources():
            if s.where is not None and all(s.where is not w for w in out):
                out.append(s.where)
        return out

    def _event_sources(self) -> list[Events]:
        """Each declaration's event aggregation: its own, or a table column's fallback."""
        sources = [f.source.fallback if isinstance(f.source, Column) else f.source for f in self.features]
        return [s for s in sources if isinstance(s, Events)]

    def origin_of(self, name: str) -> str:
        """Where a feature was declared ("" when unknown); a windowed column (``x_7d``) by its declaration's."""
        return self.origin.get(name, "") or self.origin.get(name.rsplit("_", 1)[0], "")

    # --- checks -------------------------------------------------------------------------------
    def check(self) -> None:
        seen: dict[str, str] = {}
        for f in self.features:
            where = self.origin_of(f.name)
            at = f" (declared in {where})" if where else ""
            if not _NAME.match(f.name):
                raise DeclarationError(f"feature name {f.name!r}{at} must be lower_snake_case")
            if f.name in seen:
                raise DeclarationError(f"feature {f.name!r} is declared twice{at}")
            seen[f.name] = where
            _check_one(f, self.tables, at)


def _check_shapes(f: Feature, at: str) -> None:
    """The arguments' types, before anything iterates over them: ``windows=7`` or ``types="skip"`` would
    otherwise fail as a TypeError deep in the expansion, or as an "unknown event type 's'"."""
    s = f.source
    if not isinstance(s, Events):
        return
    if isinstance(s.windows, (str, bytes)) or not isinstance(s.windows, (tuple, list)):
        raise DeclarationError(
            f"feature {f.name!r}{at}: windows must be a tuple of whole days, e.g. windows=(7, 30), got {s.windows!r}"
        )
    if not all(isinstance(w, int) and not isinstance(w, bool) for w in s.windows):
        raise DeclarationError(
            f"feature {f.name!r}{at}: windows are whole days (numbers, not text), e.g. (7, 30), got {s.windows!r}"
        )
    for arg in ("types", "over"):
        value = getattr(s, arg)
        if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list))):
            raise DeclarationError(
                f"feature {f.name!r}{at}: {arg} must be a tuple of event types, e.g. {arg}=({value!r},), got {value!r}"
            )
    c = s.categories
    if c is not None and (
        isinstance(c, (str, bytes)) or not isinstance(c, (tuple, list)) or not all(isinstance(v, str) for v in c)
    ):
        raise DeclarationError(
            f"feature {f.name!r}{at}: categories must be a tuple of values, e.g. categories=({c!r},), got {c!r}"
        )


def _check_one(f: Feature, tables: dict[str, Table], at: str) -> None:
    s = f.source
    if f.entity not in BLOCKS:
        raise DeclarationError(f"feature {f.name!r}{at}: entity must be one of {', '.join(BLOCKS)}, got {f.entity!r}")
    if f.since < 1 or (f.until is not None and f.until < f.since):
        raise DeclarationError(f"feature {f.name!r}{at}: since={f.since}, until={f.until} is not a version range")
    if f.is_input and f.dtype not in NUMERIC:
        raise DeclarationError(f"feature {f.name!r}{at}: a ranker input must be numeric, not {f.dtype}")
    if isinstance(s, Events):
        _check_events(f, s, at)
    elif isinstance(s, Column):
        if f.entity not in ("user", "item"):
            raise DeclarationError(f"feature {f.name!r}{at}: table columns are per user or per item")
        if s.table != "items" and s.table not in tables:
            raise DeclarationError(
                f"feature {f.name!r}{at}: table {s.table!r} is not registered "
                f"(registered: {', '.join(['items', *tables])})"
            )
        if s.table == "items" and f.entity != "item":
            raise DeclarationError(f"feature {f.name!r}{at}: the items table feeds item features only")
        if s.table in tables and tables[s.table].entity != f.entity:
            raise DeclarationError(f"feature {f.name!r}{at}: table {s.table!r} is keyed by {tables[s.table].entity}")
        if s.transform not in TRANSFORMS:
            raise DeclarationError(f"feature {f.name!r}{at}: unknown transform {s.transform!r}")
        if s.transform == "contains" and not s.argument:
            raise DeclarationError(f"feature {f.name!r}{at}: contains needs an argument (the value to look for)")
        if s.fallback is not None:  # built where the table has no row: the same rules as a declared one
            _check_events(f, s.fallback, at)
    elif isinstance(s, Session) and f.entity != "session":
        raise DeclarationError(f"feature {f.name!r}{at}: session state features have entity 'session'")
    elif isinstance(s, Request) and (f.entity != "request" or not f.is_input):
        # only the ranker reads request transforms: the on-demand view and Rank compute them all, in order
        raise DeclarationError(
            f"feature {f.name!r}{at}: request transforms have entity 'request' and are numeric ranker inputs"
        )
    elif isinstance(s, Candidate):
        from setlist.features import CROSS_NAMES

        if f.entity != "user_item":
            raise DeclarationError(f"feature {f.name!r}{at}: candidate scores have entity 'user_item'")
        if f.name not in CROSS_NAMES:
            raise DeclarationError(
                f"feature {f.name!r}{at}: the candidate stage computes only "
                f"{', '.join(CROSS_NAMES)}; a new user×item score needs code there"
            )


def _check_events(f: Feature, s: Events, at: str) -> None:
    """An event aggregation's rules: a feature's own, or a table column's fallback."""
    if f.entity not in ("user", "item"):
        raise DeclarationError(f"feature {f.name!r}{at}: event aggregations are per user or per item")
    if s.function not in FUNCTIONS:
        raise DeclarationError(
            f"feature {f.name!r}{at}: unknown function {s.function!r} (known: {', '.join(FUNCTIONS)})"
        )
    for t in (*(s.types or ()), *(s.over or ())):
        if t not in EVENT_TYPES:
            raise DeclarationError(f"feature {f.name!r}{at}: unknown event type {t!r}")
    if s.function in READS_COLUMN and not s.column:
        raise DeclarationError(f"feature {f.name!r}{at}: {s.function} needs a column")
    if any(w <= 0 or w != int(w) for w in s.windows):
        raise DeclarationError(f"feature {f.name!r}{at}: windows are whole days > 0, got {s.windows}")
    if f.entity == "item" and any(t not in ITEM_TYPES for t in (*(s.types or ()), *(s.over or ()))):
        # counted_events: item statistics read item events only; the sampled light types would need weights
        raise DeclarationError(
            f"feature {f.name!r}{at}: item statistics count the item event types only "
            f"({', '.join(ITEM_TYPES)}); a view or heartbeat count is a user feature (a sum of weight)"
        )
    _check_categories(f, s, at)


def _check_categories(f: Feature, s: Events, at: str) -> None:
    """A share's entries are fixed by ``categories`` or by the catalogue; an open context column needs them."""
    if s.categories is not None:
        if s.function not in ("share", "top"):
            raise DeclarationError(f"feature {f.name!r}{at}: categories are for share and top, not {s.function}")
        if not s.categories or len(set(s.categories)) != len(s.categories):
            raise DeclarationError(
                f"feature {f.name!r}{at}: categories must name one value or more, each once, got {s.categories!r}"
            )
    if s.function != "share":
        return
    if s.column in OPEN_VOCABULARY and not s.categories:
        raise DeclarationError(
            f"feature {f.name!r}{at}: a share over {s.column!r} names its categories, e.g. "
            f"categories=('mobile', 'desktop'): the values seen differ between builds (a shard, an update, a "
            "Spark bucket), so the list's entries would too"
        )
    if f.dtype != "float_list" and len(s.categories or ()) != 1:
        raise DeclarationError(
            f"feature {f.name!r}{at}: a share is a float_list (one entry per category), or a number "
            f"(dtype {f.dtype}) with exactly one category, e.g. categories=('mobile',)"
        )


def _describe(f: Feature) -> str:
    s = f.source
    detail = asdict(s) if not isinstance(s, (Request,)) else {}
    if isinstance(s, Events) and s.categories is None:
        del detail["categories"]  # declarations from before categories keep their fingerprint (no rebuild)
    if isinstance(s, Events) and s.where is not None:
        detail["where"] = getattr(s.where, "__qualname__", repr(s.where))
    if isinstance(s, Column) and s.fallback is not None and s.fallback.where is not None:
        detail["fallback"]["where"] = getattr(s.fallback.where, "__qualname__", "")
    if isinstance(s, Column) and s.fallback is not None and s.fallback.categories is None:
        del detail["fallback"]["categories"]
    return json.dumps(
        {
            "name": f.name,
            "entity": f.entity,
            "dtype": f.dtype,
            "missing": f.missing,
            "window": f.window,
            "source": type(s).__name__,
            **detail,
        },
        sort_keys=True,
        default=str,
    )


def service_name(version: int) -> str:
    return f"{SERVICE_PREFIX}{version}"


def parse_service(name: str) -> int:
    m = re.fullmatch(rf"{SERVICE_PREFIX}(\d+)", name.strip())
    if not m:
        raise DeclarationError(f"a feature service is named {SERVICE_PREFIX}<N>, got {name!r}")
    return int(m.group(1))
