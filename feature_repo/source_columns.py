"""The columns each declaration reads, checked against the columns the build will have, before any build.

``engine`` finds a column that does not exist only while it computes the feature, deep in a build;
``plan``, ``apply`` and ``materialize`` (full, incremental or on Spark) run this first and name every such
declaration at once. Nothing here reads rows: the events the build sees are fixed by the contract
(``incremental.BUILD_COLUMNS`` and the context columns a declaration names, on Spark too), the catalogue's
columns are its file's schema, and a registered table's are its schema, header or SQL result columns
(``engine.table_columns``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo import engine
from feature_repo.incremental import BUILD_COLUMNS
from setlist.cli import first_line
from setlist.contract import EVENT_COLUMNS, ITEM_SCHEMA
from setlist.errors import BadInput
from setlist.feature_sources import CONTEXT_COLUMNS, READS_COLUMN, Column, Events
from setlist.featureset import DeclarationError, Feature, FeatureSet
from setlist.settings import Settings

#: the event columns a declaration can read: the builders drop the event id once the log is in order, and read
#: a context column (device, locale, weight) when a declaration names it (``incremental.build_columns``)
BUILT_EVENT_COLUMNS: tuple[str, ...] = (*(c for c in BUILD_COLUMNS if c != "event_id"), *CONTEXT_COLUMNS)


@dataclass(frozen=True)
class Available:
    """The columns the build will have: the events', the catalogue's, and each readable registered table's."""

    events: tuple[str, ...]
    catalogue: tuple[str, ...]
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: registered tables whose columns cannot be known yet (a file not there yet, a database down), and why
    unreadable: dict[str, str] = field(default_factory=dict)
    #: registered tables no build can read as declared (no path nor query, a query without a url, a file
    #: that does not parse), and why: errors now, as they would be at every build
    broken: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ColumnCheck:
    missing: list[str]  # one sentence per declaration that reads a column that does not exist
    unchecked: list[str]  # one sentence per table whose columns could not be read, so were not checked
    broken: list[str] = field(default_factory=list)  # one per table no build can read as declared


def available(settings: Settings, fs: FeatureSet) -> Available:
    tables: dict[str, tuple[str, ...]] = {}
    unreadable: dict[str, str] = {}
    broken: dict[str, str] = {}
    for t in fs.tables.values():
        try:
            tables[t.name] = tuple(engine.table_columns(t))
        except DeclarationError as exc:
            # only a file not there yet may come later (an import writes it); the rest fails every build
            later = t.path is not None and not t.sql and not Path(t.path).exists()
            (unreadable if later else broken)[t.name] = str(exc)
        except Exception as exc:  # a SQL table's database down or refusing: said, not checked, never a traceback
            unreadable[t.name] = f"table {t.name!r}: {type(exc).__name__}: {exc}"
    return Available(BUILT_EVENT_COLUMNS, catalogue_columns(settings.catalog_path), tables, unreadable, broken)


def catalogue_columns(path: Path) -> tuple[str, ...]:
    """What ``catalog.load_items`` will give: the file's columns, or the empty catalogue's before any import."""
    if not path.exists():
        return tuple(ITEM_SCHEMA.names)
    try:
        return tuple(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:  # a file cut short or overwritten: said, never a traceback
        raise BadInput(
            f"cannot read the catalogue's columns from {path} ({type(exc).__name__}: {first_line(exc)}): "
            "import the catalogue again (make import with --items) or restore the file"
        ) from None


def check(settings: Settings, fs: FeatureSet) -> ColumnCheck:
    have = available(settings, fs)
    unchecked = [f"{why}; its columns are checked once it can be read" for why in have.unreadable.values()]
    return ColumnCheck(missing_columns(fs, have), unchecked, list(have.broken.values()))


def refuse_missing(settings: Settings, fs: FeatureSet) -> ColumnCheck:
    """``check``, raising a ``DeclarationError`` (exit 1) that names every declaration reading a missing column."""
    found = check(settings, fs)
    if found.broken:
        n = len(found.broken)
        raise DeclarationError(
            f"{n} registered table{'s' if n > 1 else ''} cannot be read as declared (a feature build would fail on "
            f"{'each' if n > 1 else 'it'}):\n" + "\n".join(f"  {m}" for m in found.broken + found.missing)
        )
    if found.missing:
        n = len(found.missing)
        raise DeclarationError(
            f"the feature declarations read {n} column{'s' if n > 1 else ''} the data does not have "
            f"(a feature build would fail on {'each' if n > 1 else 'it'}):\n"
            + "\n".join(f"  {m}" for m in found.missing)
        )
    return found


def missing_columns(fs: FeatureSet, have: Available) -> list[str]:
    """One sentence per declaration (a windowed one once, not per window) and per table key that does not exist."""
    out = list(_table_keys_missing(fs, have))
    seen: set[str] = set()
    for f in fs.features:
        for problem in _problems(f, have):
            line = f"feature {_declared_name(f)!r} (declared in {fs.origin_of(f.name) or '?'}) {problem}"
            if line not in seen:
                seen.add(line)
                out.append(line)
    return out


def _declared_name(f: Feature) -> str:
    """The name as declared: ``user_plays``, not the ``user_plays_7d`` column one of its windows expands to."""
    if f.window and f.window_suffix:
        return f.name.removesuffix(f"_{f.window}d")
    return f.name


def _problems(f: Feature, have: Available) -> Iterator[str]:
    s = f.source
    if isinstance(s, Events):
        yield from _event_problem(s, have)
    elif isinstance(s, Column):
        yield from _column_problem(s, have)
        if s.fallback is not None:
            yield from _event_problem(s.fallback, have)


def _event_problem(s: Events, have: Available) -> Iterator[str]:
    """The engine's ``_event_column``: an event column, else a catalogue column joined by item; ``day`` counts
    active days for ``distinct`` alone. ``count``, ``rate`` and the ``days_since`` ones read no column."""
    col = s.column
    if s.function not in READS_COLUMN:  # a column given to these is never read by the engine
        return
    if not col or col in have.events or col in have.catalogue or (col == "day" and s.function == "distinct"):
        return
    why = (
        "which the event log stores but the feature build does not read"
        if col in EVENT_COLUMNS
        else "which neither the events nor the catalogue have"
    )
    yield f"reads column {col!r}, {why}; events: {', '.join(have.events)}; catalogue: {', '.join(have.catalogue)}"


def _column_problem(s: Column, have: Available) -> Iterator[str]:
    if s.table == "items":
        cols, what = have.catalogue, "the catalogue (table 'items')"
    elif s.table in have.tables:
        cols, what = have.tables[s.table], f"table {s.table!r}"
    else:
        return  # a table not registered is a declaration error already; one not readable yet is said apart
    if s.column not in cols:
        yield f"reads column {s.column!r} of {what}, which has no such column; its columns: {', '.join(cols)}"


def _table_keys_missing(fs: FeatureSet, have: Available) -> Iterator[str]:
    """A registered table without its key or timestamp column: ``engine.read_table`` refuses it at every build."""
    for t in fs.tables.values():
        cols = have.tables.get(t.name)
        for key in (t.key, *([t.timestamp] if t.timestamp else [])):
            if cols is not None and key not in cols:
                yield f"table {t.name!r} has no column {key!r}, which it is registered to join by; its columns: " + (
                    ", ".join(cols)
                )
