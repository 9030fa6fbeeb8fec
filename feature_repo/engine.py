"""Runs the declarations: per-user and per-item batch features from the event log and the user's
tables, as daily snapshots.

Each snapshot row is stamped at the *end* of its day and summarises events up to then, so a
point-in-time join at a label's timestamp only ever sees days that were already over. Rows exist
for (entity, day) pairs with events, and every aggregation runs over those rows only
(``windows_agg``), so cost grows with events, not with the span of the log; an entity's values
depend on its own events (and its table rows) only, so a few entities can be recomputed alone.

Feast's own ``BatchFeatureView`` aggregations were measured against this engine before it was
written (NOTES.md, "Features"): this file is the piece Feast did not cover.
"""

from __future__ import annotations

import logging
import lzma
import zipfile
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from feature_repo.windows_agg import DAY_NS, MAX_WIDTH, DayRows, cumulative, day_rows, distinct, trailing
from setlist.compressed import compression_of, open_compressed
from setlist.feature_sources import CONTEXT_COLUMNS, Column, Events, Table
from setlist.featureset import DeclarationError, Feature, FeatureSet
from setlist.numbers import to_numbers

log = logging.getLogger("setlist.features")

DAY = pd.Timedelta(days=1)


class ContextNotRead(DeclarationError):
    """A ``where`` filter asked for a context column this build did not read (``context_read_by``). No
    ``AttributeError``: ``getattr(c, "device", None)`` or ``hasattr`` would take it for "no such column" when
    the probe runs, and the build would then never read the column."""

    def __init__(self, column: str) -> None:
        super().__init__(
            f"a where= filter reads the events' {column!r}, which this build did not read from the log: it "
            "finds what a filter reads by running it on no events, and this one did not ask for it then (read "
            f"c.{column} on every call, not only on some events)"
        )
        self.column = column


@dataclass(frozen=True)
class EventColumns:
    """What a declaration's ``where`` filter sees: one NumPy array per event column, and ``device``,
    ``locale`` (a missing one "unknown") and ``weight`` (a missing one 1) when the filter reads them:
    taken from ``events`` on first use (``_context_column``), so a build that reads them for a ``column=``
    alone converts nothing for the filters."""

    type: np.ndarray
    value: np.ndarray
    item_id: np.ndarray
    user_id: np.ndarray
    timestamp: np.ndarray  # ns since the epoch
    events: pd.DataFrame | None = field(default=None, repr=False)
    context: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> np.ndarray:
        # reached only for names the fields lack: a context column is read by the build only for a filter that
        # reads it, so one missing here is said as such rather than as a plain AttributeError
        if name in CONTEXT_COLUMNS:
            held = self.__dict__.get("context", {})
            if name not in held:
                events = self.__dict__.get("events")
                if events is None or name not in events.columns:
                    raise ContextNotRead(name)
                held[name] = _context_column(events, name)
            return held[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self)


def context_read_by(where: Callable[[Any], Any]) -> frozenset[str]:
    """The context columns (``device``, ``locale``, ``weight``) a ``where`` filter reads, found by running it
    on no events, each column it asks for added in turn: the build reads those from the log. A filter that
    fails on no events for another reason gets all three, as what it reads cannot be told."""
    given: dict[str, np.ndarray] = {}
    none = np.array([], dtype=object)
    for _ in range(len(CONTEXT_COLUMNS) + 1):
        probe = EventColumns(
            none, np.array([], dtype=np.float64), none, none, np.array([], dtype=np.int64), context=dict(given)
        )
        try:
            where(probe)
        except ContextNotRead as missing:
            given[missing.column] = np.array([], dtype=np.float64) if missing.column == "weight" else none
            continue
        except Exception:  # noqa: BLE001 - any failure: what it reads cannot be told
            return frozenset(CONTEXT_COLUMNS)
        return frozenset(given)
    return frozenset(CONTEXT_COLUMNS)


@dataclass
class Context:
    """One entity's grouped events, and caches shared by the features computed from them."""

    key: str
    ev: pd.DataFrame
    ids: np.ndarray
    rows: DayRows
    cols: EventColumns
    items: pd.DataFrame  # the catalogue (item_id, genre, release_date, …)
    tables: dict[str, pd.DataFrame]
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def snap_ns(self) -> np.ndarray:
        return self.rows.snapshot_ns()


def widest(features: Sequence[Feature]) -> int:
    return max([MAX_WIDTH, *[f.window or 0 for f in features]])


def compute(
    entity: str,
    ev: pd.DataFrame,
    features: Sequence[Feature],
    items: pd.DataFrame,
    tables: dict[str, pd.DataFrame] | None = None,
    quiet: Collection[str] = (),
) -> pd.DataFrame:
    """The batch view of ``entity`` (``user`` or ``item``) from prepared events. ``quiet``: features
    whose having no value anywhere is expected (the built-in pack's, e.g. a catalogue without durations)."""
    key = f"{entity}_id"
    code, ids = pd.factorize(ev[key].to_numpy(), sort=True)
    ts = ev["timestamp"].astype("int64").to_numpy()
    rows = day_rows(code.reshape(-1), ts // DAY_NS, widest(features))
    cols = EventColumns(
        ev["type"].to_numpy(),
        ev["value"].astype("float64").fillna(0).to_numpy(),
        ev["item_id"].to_numpy(),
        ev["user_id"].to_numpy(),
        ts,
        ev,
    )
    ctx = Context(key, ev, np.asarray(ids, dtype=object), rows, cols, items, tables or {})
    snap = pd.DatetimeIndex(pd.to_datetime(ctx.snap_ns, utc=True))
    out: dict[str, Any] = {key: ctx.ids[rows.entity], "event_timestamp": snap}
    for f in features:
        try:
            values = _value(f, ctx)
        except DeclarationError as exc:  # which declaration, when the message cannot know it
            raise DeclarationError(
                str(exc) if str(exc).startswith("feature ") else f"feature {f.name!r}: {exc}"
            ) from exc
        if (
            len(values)
            and f.name not in quiet
            and f.dtype != "float_list"
            and f.missing is not None
            and pd.isna(pd.Series(values)).all()
        ):
            _warn_empty(f, len(values))
        out[f.name] = _finish(f, values)
    frame = pd.DataFrame(out)
    # rows by (snapshot, entity id): entity codes follow the sorted ids, so integer keys do
    return frame.take(np.lexsort((rows.entity, rows.day))).reset_index(drop=True)


_warned: set[str] = set()


def _warn_empty(f: Feature, rows: int) -> None:
    """A feature with no value anywhere is published as its missing value in every row: a constant the
    gates cannot tell from data (an empty catalogue column, a type the log never has). Said once a
    process; ``missing=None`` makes the not-null gate refuse it instead."""
    if f.name in _warned:
        return
    _warned.add(f.name)
    log.warning(
        "feature %r has no value in any of %d rows (%s): every row gets its missing value %r; "
        "declare missing=None to have the gate refuse it",
        f.name,
        rows,
        f.describe_source(),
        f.missing,
    )


def _finish(f: Feature, values: Any) -> Any:
    """The declared dtype, with the declared missing value where nothing is known."""
    if f.dtype == "float_list":
        return values
    if f.dtype == "string":
        s = pd.Series(values, dtype=object)
        return s.where(s.notna(), f.missing).astype(object).to_numpy()
    v = np.asarray(values, dtype=np.float64)
    if f.missing is not None:
        v = np.where(np.isnan(v), float(f.missing), v)
    if f.dtype == "int64":
        return np.rint(v).astype(np.int64) if not np.isnan(v).any() else pd.array(np.rint(v), dtype="Int64")
    if f.dtype == "bool":
        return v > 0
    return v


def _value(f: Feature, ctx: Context) -> Any:
    if isinstance(f.source, Events):
        values = _events(f.source, f.window, ctx)
        if f.source.function == "share" and f.dtype != "float_list":  # one category: its share, a number
            return np.array([v[0] for v in values], dtype=np.float64) if len(values) else np.zeros(0)
        return values
    if isinstance(f.source, Column):
        return _column(f, f.source, ctx)
    raise DeclarationError(f"feature {f.name!r} is not a batch feature (source {type(f.source).__name__})")


# --- aggregations over events ------------------------------------------------------------------
def _mask(ctx: Context, types: tuple[str, ...] | None, where: Any = None) -> np.ndarray:
    k = ("mask", types, where)
    if k not in ctx.cache:
        m = np.ones(len(ctx.cols.type), dtype=bool) if types is None else np.isin(ctx.cols.type, list(types))
        if where is not None:
            m = m & np.asarray(where(ctx.cols), dtype=bool)
        ctx.cache[k] = m
    return ctx.cache[k]


def _agg(ctx: Context, daily: np.ndarray, window: int | None) -> np.ndarray:
    return trailing(ctx.rows, daily, window) if window else cumulative(ctx.rows, daily)


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def _context_column(ev: pd.DataFrame, name: str) -> np.ndarray:
    """A context column this build read, as a ``where`` filter sees it (as ``_event_column`` reads it)."""
    if name == "weight":
        return ev[name].astype("float64").fillna(1.0).to_numpy()
    return ev[name].fillna("unknown").astype(str).to_numpy()


def _event_column(ctx: Context, column: str) -> np.ndarray:
    """An event column, or a catalogue column joined by the event's item. A ``weight`` not stored is 1."""
    if column == "weight" and column in ctx.ev.columns:
        return ctx.ev[column].astype("float64").fillna(1.0).to_numpy()
    if column in ctx.ev.columns:
        return ctx.ev[column].to_numpy()
    if column in ctx.items.columns:
        k = ("catalog", column)
        if k not in ctx.cache:
            mapping = ctx.items.set_index("item_id")[column]
            if mapping.dtype == object:
                mapping = mapping.fillna("unknown").astype(str)
            ctx.cache[k] = ctx.ev["item_id"].map(mapping).to_numpy()
        return ctx.cache[k]
    raise DeclarationError(
        f"no event or catalogue column {column!r} (events: {', '.join(ctx.ev.columns)}; "
        f"catalogue: {', '.join(ctx.items.columns)})"
    )


def _vocabulary(ctx: Context, column: str) -> list[str]:
    """Categories of a share/top column: the catalogue's values, so every batch agrees."""
    if column in ctx.items.columns:
        return sorted(set(ctx.items[column].fillna("unknown").astype(str)) | {"unknown"})
    if column not in ctx.ev.columns:
        _event_column(ctx, column)  # neither: its one-line error, which names the columns that exist
    return sorted(set(pd.Series(ctx.ev[column]).fillna("unknown").astype(str)))


def _per_row_last(ctx: Context, mask: np.ndarray, values: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's latest masked event time (ns, as int64; -1 where the entity had none yet) and
    that event's ``values`` entry, carried forward over the entity's rows without one."""
    rows = ctx.rows
    ts = ctx.cols.timestamp
    none = np.iinfo(np.int64).min
    last = np.full(len(rows), none, dtype=np.int64)
    np.maximum.at(last, rows.of_event[mask], ts[mask])
    # the most recent row (of the same entity) that had a masked event: integers stay exact,
    # where a float forward-fill would round nanosecond timestamps
    src = pd.Series(np.where(last != none, np.arange(len(rows)), -1))
    src = src.groupby(rows.entity, sort=False).cummax().to_numpy()
    filled = np.where(src >= 0, last[np.maximum(src, 0)], -1)
    if values is None:
        return filled, np.array([])
    pick = np.full(len(rows), -1, dtype=np.int64)
    idx = np.flatnonzero(mask)
    at_last = ts[idx] == last[rows.of_event[idx]]
    pick[rows.of_event[idx[at_last]]] = idx[at_last]  # ties: the last in event order
    chosen = np.where(src >= 0, pick[np.maximum(src, 0)], -1)
    out = np.full(len(rows), None, dtype=object)
    has = chosen >= 0
    out[has] = np.asarray(values, dtype=object)[chosen[has]]
    return filled, out


def _events(s: Events, window: int | None, ctx: Context) -> Any:
    mask = _mask(ctx, s.types, s.where)
    rows = ctx.rows
    fn = s.function
    if fn == "count":
        return _agg(ctx, rows.sum(mask), window)
    if fn in ("sum", "mean"):
        col = to_numbers(pd.Series(_event_column(ctx, s.column or ""))).fillna(0).to_numpy()
        total = _agg(ctx, rows.sum(np.where(mask, col, 0.0)), window)
        return total if fn == "sum" else _rate(total, _agg(ctx, rows.sum(mask), window))
    if fn == "rate":
        num = _agg(ctx, rows.sum(mask), window)
        den = _agg(ctx, rows.sum(_mask(ctx, s.over)), window)
        # a rate above 1 (e.g. likes without a logged play) means nothing: capped
        return np.minimum(_rate(num, den), 1.0)
    if fn == "distinct":
        values = rows.day[rows.of_event] if s.column == "day" else _event_column(ctx, s.column or "")
        return distinct(rows, values, mask, window)
    if fn == "days_since_last":
        last, _ = _per_row_last(ctx, mask, None)
        out = np.maximum((ctx.snap_ns - last) / DAY.value, 0.0)
        out = np.where(last >= 0, out, np.nan)
        return out if not window else np.where(out <= window, out, np.nan)
    if fn == "days_since_first":
        first = np.full(len(rows), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, rows.of_event[mask], ctx.cols.timestamp[mask])
        f = pd.Series(np.where(first == np.iinfo(np.int64).max, np.nan, first))
        f = f.groupby(rows.entity, sort=False).cummin().to_numpy(np.float64)
        return np.maximum((ctx.snap_ns - f) / DAY.value, 0.0)
    if fn == "last":
        last, v = _per_row_last(ctx, mask, _event_column(ctx, s.column or ""))
        if window:
            v = v.copy()
            v[(last < 0) | ((ctx.snap_ns - last) > window * DAY_NS)] = None
        return v
    if fn in ("share", "top"):
        # declared categories, in their order; else the catalogue's values, or the events' own (sorted)
        vocab = list(s.categories) if s.categories else _vocabulary(ctx, s.column or "")
        key = ("share", s.column, s.types, s.where, s.categories, window)
        if key not in ctx.cache:
            codes = pd.Categorical(
                pd.Series(_event_column(ctx, s.column or "")).fillna("unknown").astype(str), categories=vocab
            ).codes.astype(np.int64)
            ok = mask & (codes >= 0)
            ctx.cache[key] = _agg(ctx, rows.sum_by(ok, codes, len(vocab)), window)
        a = ctx.cache[key]
        listed = a.sum(axis=1, keepdims=True)
        if fn == "top":
            return np.where(listed[:, 0] > 0, np.array(vocab, dtype=object)[a.argmax(axis=1)], None)
        # with declared categories, a share is of every counted event, those of other values included
        total = _agg(ctx, rows.sum(mask), window)[:, None].astype(a.dtype) if s.categories else listed
        norm = np.divide(a, total, out=np.zeros_like(a), where=total > 0).astype(np.float32)
        return list(norm)
    raise DeclarationError(f"unknown aggregation {fn!r}")


# --- columns of the user's tables ----------------------------------------------------------------
def _column(f: Feature, s: Column, ctx: Context) -> Any:
    if s.table == "items":
        table, key, stamp = ctx.items, "item_id", None
    else:
        if s.table not in ctx.tables:
            raise DeclarationError(f"feature {f.name!r}: table {s.table!r} was not loaded")
        table = ctx.tables[s.table]
        key, stamp = table.attrs["key"], table.attrs.get("timestamp")
    if s.column not in table.columns:
        raise DeclarationError(
            f"feature {f.name!r}: table {s.table!r} has no column {s.column!r} "
            f"(columns: {', '.join(map(str, table.columns))})"
        )
    entity_ids = ctx.ids[ctx.rows.entity]
    if stamp is None:
        indexed = table.drop_duplicates(key, keep="last").set_index(key)[s.column]
        raw = indexed.reindex(pd.Index(ctx.ids)).to_numpy()[ctx.rows.entity]
    else:
        raw = _as_of(table, key, stamp, s.column, entity_ids, ctx.snap_ns)
    values = _transform(f, s, pd.Series(raw, dtype=object), ctx)
    if s.fallback is not None:
        missing = pd.isna(values)
        if missing.any():
            values = np.where(missing, _events(s.fallback, None, ctx), values)
    return values


def _as_of(table: pd.DataFrame, key: str, stamp: str, column: str, ids: np.ndarray, snap_ns: np.ndarray) -> np.ndarray:
    """The table's latest row per key at or before each snapshot (a point-in-time join)."""
    right = pd.DataFrame(
        {
            "k": table[key].astype(str).to_numpy(),
            "t": pd.to_datetime(table[stamp], utc=True).dt.as_unit("ns").astype("int64").to_numpy(),
            "v": table[column].to_numpy(),
        }
    ).sort_values("t", kind="mergesort")
    left = pd.DataFrame({"k": ids.astype(str), "t": snap_ns.astype(np.int64), "i": np.arange(len(ids))}).sort_values(
        "t", kind="mergesort"
    )
    joined = pd.merge_asof(left, right, on="t", by="k", direction="backward")
    out = np.empty(len(ids), dtype=object)
    out[joined["i"].to_numpy()] = joined["v"].to_numpy()
    return out


def _transform(f: Feature, s: Column, raw: pd.Series, ctx: Context) -> np.ndarray:
    if s.transform == "value":
        if f.dtype == "string":
            return raw.where(raw.notna(), None).map(lambda v: v if v is None else str(v)).to_numpy()
        return to_numbers(raw).to_numpy(np.float64)
    if s.transform == "contains":
        wanted = str(s.argument).strip().lower()
        return raw.map(
            lambda v: float(isinstance(v, str) and wanted in {p.strip().lower() for p in v.split("|")})
        ).to_numpy(np.float64)
    when = pd.to_datetime(raw, utc=True, errors="coerce")
    if s.transform == "year":
        return when.dt.year.to_numpy(np.float64)
    ns = when.dt.as_unit("ns").astype("int64").to_numpy(np.float64)
    out = np.maximum((ctx.snap_ns - ns) / DAY.value, 0.0)
    return np.where(when.isna().to_numpy(), np.nan, out)


# --- registered tables -------------------------------------------------------------------------
def load_tables(fs: FeatureSet, entity: str, pseudonym: Callable[[str], str] | None = None) -> dict[str, pd.DataFrame]:
    """The registered tables of one entity, read once per build. User tables are keyed by the
    user's own id; ``pseudonym`` turns it into the event log's pseudonym before any join."""
    out = {}
    for t in fs.tables.values():
        if t.entity == entity:
            frame = read_table(t)
            if entity == "user":
                if pseudonym is None:
                    raise DeclarationError(f"table {t.name!r} holds user ids, and no pseudonymization key was given")
                frame[t.key] = frame[t.key].map(pseudonym)
            out[t.name] = frame
    return out


#: how a registered table's file is read, by its extension (before a compression suffix)
_TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None, ".dat": None}
_JSON_EXTENSIONS = (".json", ".jsonl", ".ndjson")


def _extension(path: Path) -> str:
    """The extension that says how a table's file reads, a compression suffix left aside."""
    suffixes = [x.lower() for x in path.suffixes]
    if compression_of(path):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


#: a table file that does not parse; EOFError: a compressed one cut short (left alone, Click prints only "Aborted.")
_UNPARSED = (ValueError, OSError, pd.errors.ParserError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def _read_file(name: str, path: Path) -> pd.DataFrame:
    """A table's file: parquet, JSON (lines or an array), or delimited text (a comma for .csv, a tab
    for .tsv, and read off the file for .txt and .dat), any of them compressed but parquet."""
    ext = _extension(path)
    try:
        if ext in (".parquet", ".pq") or path.is_dir():
            return pd.read_parquet(path)
        if ext in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if ext == ".json":
            # an array, or one object per line: told by its first character, read through its compression
            with open_compressed(path, "rb") as f:
                lines = not f.read(64).lstrip().startswith(b"[")
            return pd.read_json(path, lines=lines)
        if ext in _TEXT_SEPARATORS:
            sep = _TEXT_SEPARATORS[ext]
            # read off the file when the extension does not say (Python's sniffer: tab, comma, …)
            return pd.read_csv(path, sep=sep, engine="python" if sep is None else "c")
        return pd.read_parquet(path)  # no extension, or one of its own: parquet, as a table's file most often is
    except _UNPARSED as exc:
        raise DeclarationError(
            f"table {name!r}: cannot read {path.name} ({exc}); a table's file is parquet, .csv, .tsv, .txt, .dat, "
            ".json or .jsonl (text compressed as .gz, .bz2, .xz or .zip)"
        ) from exc


def _read_raw(t: Table) -> pd.DataFrame:
    """A registered table as its file or query gives it, before any check of its columns."""
    if t.sql:
        if not t.url:
            raise DeclarationError(f"table {t.name!r} has a SQL query but no url (a SQLAlchemy URL)")
        import sqlalchemy

        with sqlalchemy.create_engine(t.url).connect() as conn:
            return pd.read_sql(sqlalchemy.text(t.sql), conn)
    if t.path:
        path = Path(t.path)
        if not path.exists():
            raise DeclarationError(f"table {t.name!r}: {path} does not exist")
        return _read_file(t.name, path)
    raise DeclarationError(f"table {t.name!r} needs a path (parquet or CSV) or a sql query")


def _sql_columns(t: Table) -> list[str]:
    """A SQL table's column names, as ``pd.read_sql`` names them (the result's keys), no row fetched: the query
    runs on a server-side cursor where the driver has one, and is closed before its first fetch. An unreachable
    database or a query that does not run fails as it does in ``_read_raw``."""
    if not t.url:
        raise DeclarationError(f"table {t.name!r} has a SQL query but no url (a SQLAlchemy URL)")
    import sqlalchemy

    with sqlalchemy.create_engine(t.url).connect() as conn:
        result = conn.execution_options(stream_results=True).execute(sqlalchemy.text(t.sql or ""))
        try:
            return [str(c) for c in result.keys()]
        finally:
            result.close()


def table_columns(t: Table) -> list[str]:
    """A registered table's column names, as ``read_table`` would give them, without reading its rows: a
    parquet file's schema, a delimited file's header, a SQL query's result columns (``plan``, ``apply`` and
    ``materialize`` check declarations against them). A JSON file has no header, so it is read whole."""
    if t.sql:
        return _sql_columns(t)
    path = Path(t.path) if t.path else None
    if path is not None and path.exists():
        ext = _extension(path)
        try:
            if path.is_dir():
                # as pandas reads it: an index pandas wrote is restored as the index, not a column
                schema = ds.dataset(str(path), format="parquet", partitioning="hive").schema
                return [str(c) for c in schema.empty_table().to_pandas().columns]
            if ext in (".parquet", ".pq") or (ext not in _TEXT_SEPARATORS and ext not in _JSON_EXTENSIONS):
                return [str(c) for c in pq.read_schema(path).empty_table().to_pandas().columns]
            if ext in _TEXT_SEPARATORS:
                sep = _TEXT_SEPARATORS[ext]
                return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0, engine="python" if sep is None else "c")]
        except (*_UNPARSED, pa.ArrowException) as exc:
            raise DeclarationError(f"table {t.name!r}: cannot read the columns of {path.name} ({exc})") from exc
    return [str(c) for c in _read_raw(t).columns]


def read_table(t: Table) -> pd.DataFrame:
    frame = _read_raw(t)
    for col in (t.key, *([t.timestamp] if t.timestamp else [])):
        if col not in frame.columns:
            raise DeclarationError(
                f"table {t.name!r} has no column {col!r} (columns: {', '.join(map(str, frame.columns))})"
            )
    frame[t.key] = frame[t.key].astype(str)
    frame.attrs["key"] = t.key
    frame.attrs["timestamp"] = t.timestamp
    return frame
