"""Import someone's own interaction log (CSV, TSV, JSON lines or parquet) as raw events.

The result has the same columns as generated events, with raw user ids (ingestion pseudonymizes
them). Rows are never dropped here: a row with an unparseable time or an empty id keeps that field
null so that ingestion quarantines it with a reason the user can read.

Reading the files is in ``import_files``, the time, rating and type columns in ``import_values``,
the items file in ``import_items``; here the rows become events, with their ids and sessions.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ingest.import_context import CONTEXT_NAMES, ContextReading, context_values, countries_note
from ingest.import_files import (
    CLICK_NAME,
    NON_CLICK_NAME,
    ImportFormatError,
    TableStream,
    TextLayout,
    clean_ids,
    is_present,
    missing_token_counts,
    missing_tokens_note,
    name_words,
    option_value,
    read_table,
    require_columns,
    streams,
    time_columns,
    tokens_note,
    with_unread_sample,
)
from ingest.import_items import item_frame_for, name_columns
from ingest.import_lists import (
    BEFORE_COL,
    CLICK_TYPE_COL,
    CLICKED_UNSHOWN_COL,
    Reshape,
    clicked_unshown_note,
    empty_lists,
    empty_lists_warning,
    expansion,
    history_note,
    require_lists,
    unmarked_note,
)
from ingest.import_played import Lengths, PlayedReading, played_values, read_amounts, shown_cells
from ingest.import_users import UserContext, UsersFile, load_user_context
from ingest.import_values import (
    EPOCH_UNITS,
    IGNORED,
    SHOWN_TYPES,
    TimeReading,
    common_start_note,
    counted_plays,
    dates_only_note,
    likely_unit,
    list_cells_note,
    listed_times_note,
    offset_times,
    one_time_note,
    parse_time,
    shared_times_note,
    tied_times_note,
    time_unit_ns,
    types_and_values,
    wall_clock,
)
from ingest.intake import OTHER_ID, READ_NOTE, hex_ids
from ingest.item_key import KEY_JOIN, key_column, key_parts, with_key
from ingest.items_files import items_label, load_item_files
from ingest.time_parts import part_units, split_time_columns, with_time
from setlist.compressed import COMPRESSIONS, ArchiveError
from setlist.consent import FLAGS, flag_reason
from setlist.contract import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    HISTORY_SESSION_PREFIX,
    NO_ITEM_TYPES,
    SCHEMA_VERSION,
    UNKNOWN,
)
from setlist.numbers import to_numbers

__all__ = [
    "ImportFormatError",
    "ImportOptions",
    "ImportSummary",
    "InteractionStream",
    "TextLayout",
    "load_interactions",
]

SESSION_GAP_MS = 30 * 60 * 1000
EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass
class ImportSummary:
    source: str
    rows: int
    users: int
    items: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    type_counts: dict[str, int] = field(default_factory=dict)
    #: rows that ingestion will quarantine, by cause
    problems: dict[str, int] = field(default_factory=dict)
    catalog_rows: int | None = None  # rows in the items file, if one was given
    catalog_files: int = 1  # items files joined into those rows
    items_without_metadata: int = 0
    #: where the rows' consent comes from, in words (recorded in the import's lineage)
    consent: str = ""
    #: item ids the items file described (the rest of the item frame are placeholders)
    described_items: frozenset[str] = frozenset()
    #: what was read off the files rather than told (separator, encoding)
    read_notes: list[str] = field(default_factory=list)
    #: lines of the interactions file with the wrong number of fields: not read, not imported
    malformed_lines: list[int] = field(default_factory=list)
    #: rows left out as asked (``--type-map NAME=ignore``), by the type column's name
    ignored: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"read {self.source}: {self.rows:,} rows, {self.users:,} users, {self.items:,} items"]
        if self.start is not None and self.end is not None:
            lines.append(f"  time range: {self.start.isoformat()} … {self.end.isoformat()}")
        lines.extend(f"  read: {note}" for note in self.read_notes)
        kinds = sorted(self.type_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        types = " · ".join(f"{k} {v:,}" for k, v in kinds[:SHOWN_TYPES])
        if len(kinds) > SHOWN_TYPES:  # a column of times read as types would list every one
            types += f" · and {len(kinds) - SHOWN_TYPES:,} more kinds"
        lines.append(f"  types: {types or 'none'}")
        if self.catalog_rows is not None:
            missing = self.items_without_metadata
            found = (
                f"every interacted item is in {'them' if self.catalog_files > 1 else 'it'}"
                if not missing
                else f"{missing:,} interacted item{'s are' if missing != 1 else ' is'} not in "
                f"{'them' if self.catalog_files > 1 else 'it'} (unknown metadata)"
            )
            files = "items files" if self.catalog_files > 1 else "items file"
            lines.append(
                f"  {files}: {self.catalog_rows:,} item{'s' if self.catalog_rows != 1 else ''} described; {found}"
            )
        if self.ignored:
            n = sum(self.ignored.values())
            names = " · ".join(f"{k!r} {v:,}" for k, v in sorted(self.ignored.items(), key=lambda kv: -kv[1])[:6])
            lines.append(f"  left out as --type-map asks (=ignore): {n:,} row{'s' if n != 1 else ''} ({names})")
        if self.consent:
            lines.append(f"  consent: {self.consent}")
        for cause, n in self.problems.items():
            if n:
                lines.append(f"  will be quarantined: {n:,} row{'s' if n != 1 else ''} with {cause}")
        if self.malformed_lines:
            n = len(self.malformed_lines)
            lines.append(
                f"  not imported: {n:,} malformed line{'s' if n != 1 else ''} of {self.source} (numbers above and in "
                "the import's lineage record); fix them and import just those lines to add them"
            )
        return "\n".join(lines)


def _now() -> pd.Timestamp:
    """When an untimed file's stamps end (a function, so a test can pin the time of day)."""
    return pd.Timestamp.now(tz="UTC")


def _hash_hex(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    """``prefix`` + 16 hex digits per row (``hex_ids``). pandas' hash is vectorized and uses a fixed key,
    so ids are stable across runs."""
    return hex_ids(pd.util.hash_pandas_object(frame, index=False).to_numpy(), prefix)


def _epoch_ms(ts: pd.Series) -> np.ndarray:
    return ts.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)


def _session_ordinals(codes: np.ndarray, cells: pd.Series) -> np.ndarray:
    """Each row's session as its place among its user's sessions, by first appearance in the file;
    a row without a session cell is a session of its own."""
    keys = cells.astype("string").to_numpy(dtype=object)
    blank = pd.isna(keys)
    keys[blank] = [f"\x00row{i}" for i in np.flatnonzero(blank)]  # no real cell starts with NUL
    pair = pd.DataFrame({"c": codes, "k": keys}).groupby(["c", "k"], sort=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(pair))).groupby(pair).transform("min").to_numpy()
    return pd.Series(first).groupby(codes).rank(method="dense").to_numpy(np.int64) - 1


def _named_sessions(users: pd.Series, cells: pd.Series, ts: pd.Series) -> np.ndarray:
    """Sessions from a column (``--session-col``); rows without a cell are cut at gaps as usual, and
    so are rows whose cell is -1 (Amplitude's ``session_id`` for no session, which would otherwise
    join each user's sessionless rows of months into one; other negative numbers are ids, as signed
    hashes are). The id hashes (user, session cell), so it reveals neither."""
    out = _sessions(users, ts)
    unset = to_numbers(cells.astype("string")).eq(-1).fillna(False).to_numpy(dtype=bool)
    named = (users.notna() & is_present(cells)).to_numpy() & ~unset
    if named.any():
        out[named] = _hash_hex(
            pd.DataFrame({"u": users[named].astype(str).to_numpy(), "s": cells[named].astype(str).to_numpy()}), "s_"
        )
    return out


def _sessions(users: pd.Series, ts: pd.Series) -> np.ndarray:
    """Per-user sessions split at 30-minute gaps; the id hashes (user, session start) so it
    reveals nothing about the raw user id."""
    out = np.full(len(users), None, dtype=object)
    ok = users.notna().to_numpy() & ts.notna().to_numpy()
    if not ok.any():
        return out
    codes, _ = pd.factorize(users[ok])  # sorting integer codes is much faster than strings
    pos, t = np.flatnonzero(ok), _epoch_ms(ts[ok])
    order = np.lexsort((pos, t, codes))
    sub = pd.DataFrame({"u": users.to_numpy()[pos][order], "c": codes[order], "t": t[order], "pos": pos[order]})
    new = ((sub["c"] != sub["c"].shift()) | (sub["t"] - sub["t"].shift() > SESSION_GAP_MS)).to_numpy()
    # one id per session, shared by its rows (a str per row would cost ~70 B each)
    firsts = np.flatnonzero(new)
    ids = _hash_hex(pd.DataFrame({"u": sub["u"].to_numpy()[firsts], "s": sub["t"].to_numpy()[firsts]}), "s_")
    out[sub["pos"].to_numpy()] = ids[np.cumsum(new) - 1]
    return out


def _has_text(query: pd.Series | None, n: int) -> np.ndarray:
    if query is None:
        return np.zeros(n, dtype=bool)
    return (query.notna() & (query.astype("string").str.strip() != "")).to_numpy(dtype=bool)


def _events(
    raw_time: pd.Series,
    users: pd.Series,
    item_ids: pd.Series,
    ts: pd.Series,
    types: np.ndarray,
    value: np.ndarray,
    consent: tuple[object, object],
    query: pd.Series | None = None,
    weight: np.ndarray | None = None,
    sessions: np.ndarray | None = None,
    copies: np.ndarray | None = None,
    context: tuple[np.ndarray | str, np.ndarray | str] = (UNKNOWN, UNKNOWN),
    unread: np.ndarray | None = None,
    key_items: pd.Series | None = None,
    kind: str | None = None,
    other_copies: np.ndarray | None = None,
) -> pd.DataFrame:
    """The rows as contract events in time order; an event's id hashes its user, item cell, raw time
    and its ordinal among the file's rows of those three (``copies``, by default 0: ``copy_ordinals``).
    ``key_items`` is the item cell as the file has it, where ``item_ids`` says "no item" ("") for a
    search.
    ``kind``: the one type ``--type`` gives a file of one kind of event. It is part of each id, so a
    like from such a file at the time of a play from another one (Yambda's flat files, stamped to 5
    s) is another event. Column ``OTHER_ID`` holds the hash of the id the same event has when read the
    other way (``intake.OTHER_ID``): without the type for a ``--type`` file (as a file read by a type
    column or a rating, and releases before this one, made it), with the row's type for any other,
    its ordinal among the rows of that type (``other_copies``, ``other_ordinals``) and, for a search, no
    item cell: as a file of that one kind gives it.
    ``context`` is each row's (device, locale), or one for every row. ``unread`` says, for a row
    whose time, rating or count could not be read, which cell it was (column ``READ_NOTE``)."""
    n = len(users)
    key = pd.DataFrame(
        {
            "u": users.astype("string"),
            "i": (item_ids if key_items is None else key_items).astype("string"),
            "t": raw_time.astype("string"),
            "copy": np.zeros(n, dtype=np.int64) if copies is None else copies,
        }
    )
    if kind is not None:  # the other way: without the type
        other_id = pd.util.hash_pandas_object(key, index=False).to_numpy()
        key["kind"] = pd.array([kind] * n, dtype="string")  # as a row's type is, below: the same hash
        event_id = _hash_hex(key, "i_") if n else np.array([], dtype=object)
    else:  # the other way: as a file of the row's one kind gives it
        event_id = _hash_hex(key, "i_") if n else np.array([], dtype=object)
        no_item = np.isin(np.asarray(types, dtype=object), list(NO_ITEM_TYPES))
        key["i"] = key["i"].where(~no_item, pd.NA)
        if other_copies is not None:
            key["copy"] = other_copies
        key["kind"] = pd.array(np.asarray(types, dtype=object), dtype="string").fillna("")
        other_id = pd.util.hash_pandas_object(key, index=False).to_numpy()
    del key
    # time order (ties and missing times as the file has them, missing last), taken column by
    # column: building the frame and then sorting it held two copies of every event
    ns = ts.to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
    ns[ts.isna().to_numpy()] = np.iinfo(np.int64).max
    order = np.argsort(ns, kind="stable")

    def take(v: object) -> object:
        if isinstance(v, pd.Series):
            return v.iloc[order].reset_index(drop=True)
        if isinstance(v, np.ndarray):
            return v[order]
        return v  # a scalar, the same for every row

    columns: dict[str, object] = {
        "event_id": event_id,
        "schema_version": np.full(n, SCHEMA_VERSION, np.int32),
        "user_id": users,
        "session_id": _sessions(users, ts) if sessions is None else sessions,
        "item_id": item_ids,
        "type": types,
        "timestamp": ts,
        "value": value,
        "device": context[0],
        "locale": context[1],
        # as given (checked by ingestion: a value that is neither yes nor no is quarantined)
        "consent_personalization": consent[0],
        "consent_analytics": consent[1],
        "arm": np.full(n, None, dtype=object),
        # as given: ingestion normalizes it, and hashes it without analytics consent (setlist.querytext)
        "query": query.to_numpy(dtype=object) if query is not None else np.full(n, None, dtype=object),
        "weight": weight if weight is not None else np.full(n, np.nan, dtype=np.float32),
    }
    out = pd.DataFrame({c: take(columns.pop(c)) for c in EVENT_COLUMNS}, index=pd.RangeIndex(n))
    out[OTHER_ID] = take(other_id)  # first: a chunk without unread cells has the same columns, less the last
    if unread is not None:
        out[READ_NOTE] = take(unread)
    return out


#: a quarantine reason quotes at most this many characters of the cell it could not read
_CELL_SHOWN = 60


def _other_unit(cell: Any, unit: str | None) -> str:
    """Why an epoch number was not read, when its size names another unit (milliseconds among a file's
    seconds: two exports appended)."""
    if unit not in EPOCH_UNITS:
        return ""
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(value) or value <= 0 or (likely := likely_unit(value)) == unit:
        return ""
    return f" as --time-unit {unit}: it looks like {EPOCH_UNITS[likely][0]}"


def _shown(cell: object) -> str:
    text = str(cell)
    return repr(text if len(text) <= _CELL_SHOWN else text[:_CELL_SHOWN] + "…")


def _unread_cells(
    raw: pd.DataFrame,
    o: ImportOptions,
    ts: pd.Series,
    types: np.ndarray,
    played_unread: np.ndarray | None = None,
    missing_id: np.ndarray | None = None,
) -> np.ndarray | None:
    """For each row left without a time or a type because a cell could not be read, that cell in
    words; None when every row was read. The contract's own reason would name only the empty field
    the import left ("None is not a timestamp"), not what the file held. ``missing_id`` marks the
    rows without a user or an item: the contract quarantines them for that first, so their note is
    the empty part of an item named by several columns, or none."""
    n = len(raw)
    out = np.full(n, None, dtype=object)
    done = np.zeros(n, dtype=bool) if missing_id is None else missing_id.copy()
    has_user = is_present(raw[o.user_col]).to_numpy(dtype=bool) if done.any() else done
    for parts, rows, what in [
        (o.user_parts, done & ~has_user, "the user's key"),  # the contract names the user first
        (o.item_parts, done & has_user, "the item's name"),
    ]:
        if not parts:
            continue
        rows = np.flatnonzero(rows)
        present = {p: is_present(raw[p].iloc[rows]).to_numpy(dtype=bool) for p in parts}
        for k, i in enumerate(rows.tolist()):
            empty = " and ".join(repr(p) for p in parts if not present[p][k])
            out[i] = f"{empty} empty (a part of {what})" if empty else None
    if o.time_col is not None:
        cells = raw[o.time_col]
        present = is_present(cells).to_numpy(dtype=bool)
        for i in np.flatnonzero(ts.isna().to_numpy(dtype=bool) & ~done).tolist():
            out[i] = (
                f"{_shown(cells.iloc[i])} in column {o.time_col!r} is no time this import reads"
                f"{_other_unit(cells.iloc[i], o.time_unit)}"
                if present[i]
                else f"column {o.time_col!r} is empty"
            )
    if o.type_col is None and (col := o.rating_col or o.count_col) is not None:
        what = "rating" if o.rating_col is not None else "play count above 0"
        cells = raw[col]
        for i in np.flatnonzero(pd.isna(types) & ~done).tolist():
            if out[i] is None:  # a row without a time is quarantined for its time first
                out[i] = f"{_shown(cells.iloc[i])} in column {col!r} is no {what}"
    if o.type_col is not None and o.impressions_col is None:
        kinds = raw[o.type_col]
        named = is_present(kinds).to_numpy(dtype=bool)
        for i in np.flatnonzero(pd.isna(types) & ~done).tolist():
            if out[i] is not None:
                continue
            if not named[i]:
                out[i] = f"column {o.type_col!r} is empty"
            elif o.rating_col is not None:  # a row typed as a rating (``import_values.RATED``) takes its type from it
                out[i] = f"{_shown(raw[o.rating_col].iloc[i])} in column {o.rating_col!r} is no rating"
            else:
                out[i] = f"{_shown(kinds.iloc[i])} in column {o.type_col!r} is a rating, and no --rating-col gives it"
    if played_unread is not None and o.played is not None:
        cells = raw[o.played.col]
        for i in np.flatnonzero(played_unread & ~done).tolist():
            if out[i] is None:
                out[i] = f"{_shown(cells.iloc[i])} in column {o.played.col!r} is no {o.played.what} (a number)"
    return out if pd.notna(out).any() else None


#: a file without a time column spans this many seconds per row (``file_order_times``), ...
UNTIMED_STEP_S = 1.0
#: ... and at least this many days: features are daily snapshots, each visible from the day after it,
#: so a span within one day (a file of fewer than 86,400 rows) left every training query before the
#: first snapshot, its user and item statistics empty, while Rank reads them filled
UNTIMED_MIN_SPAN_DAYS = 30
#: ... and its rows are grouped into visits of at most this many rows of one user, each visit a session
UNTIMED_VISIT_ROWS = 10


def file_order_times(
    users: pd.Series, end: pd.Timestamp, items: pd.Series | None = None, visits_of: pd.Series | None = None
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Times and sessions for rows that have none, the last before ``end``; and the raw time the
    event ids hash (empty, so a re-import gets the same ids).

    With ``items``, each user's rows are put in a stable pseudo-random order (a hash of user and
    item) first: an untimed file is mostly sorted within a user by item id or by count, and the
    hold-out would then be the user's highest ids or least-played items, with the neighbouring ids
    of the same sort predicting them. Without, the file's order is taken as each user's time order.

    Each user's rows, in that order, are cut into visits of up to ``UNTIMED_VISIT_ROWS`` rows (a
    second apart, one session each) spread evenly over the whole span (``UNTIMED_STEP_S`` per row
    of the file, at least ``UNTIMED_MIN_SPAN_DAYS``) from a phase of their own, so users are
    interleaved. Stamping the file's order as it is would put the last users of a file sorted by
    user (most public sets are) alone in every trailing window: the hold-out would hold only users
    no model has seen, and "recent popularity" would be the few users before each one. Fixed-size
    visits keep session features alike in every window (one session per user would grow through the
    span and read as drift).

    With ``visits_of`` (``--session-col``: Instacart's ``order_id``) a user's visits are its
    sessions instead, in the order they first appear, each row's place within its session kept."""
    n = len(users)
    if not n:
        return pd.Series([], dtype="datetime64[ns, UTC]"), pd.Series([], dtype=object), np.array([], dtype=object)
    known = users.notna().to_numpy()
    sessions = np.full(n, None, dtype=object)
    visit_rows = UNTIMED_VISIT_ROWS
    at = np.arange(n, dtype=np.float64) / n - 1.0  # rows without a user stay where the file has them
    span_ms = max(n * UNTIMED_STEP_S, UNTIMED_MIN_SPAN_DAYS * 86_400) * 1000
    if known.any():
        who = users[known].astype(str)
        codes, _ = pd.factorize(who)
        rank = pd.Series(codes).groupby(codes).cumcount().to_numpy()
        if items is not None:
            pairs = pd.DataFrame({"u": who.to_numpy(), "i": items[known].astype(str).to_numpy()})
            # a user's rows of one item (Frappe's app in each context) are spread too, not kept side by side
            pairs["n"] = pairs.groupby(["u", "i"], sort=False).cumcount()
            shuffle = pd.util.hash_pandas_object(pairs, index=False).to_numpy()
            # each row's place within its user in hash order; the file's order breaks ties
            rank = pd.Series(shuffle).groupby(codes).rank(method="first").to_numpy(np.int64) - 1
        rows = np.bincount(codes)
        phase = pd.util.hash_pandas_object(who, index=False).to_numpy() / 2.0**64  # stable per user
        visit_rows = UNTIMED_VISIT_ROWS
        if visits_of is not None:
            visit = _session_ordinals(codes, visits_of[known])
            visits = np.zeros(int(codes.max()) + 1, dtype=np.int64)
            np.maximum.at(visits, codes, visit + 1)
            within = pd.Series(np.arange(len(codes))).groupby([codes, visit]).cumcount().to_numpy()
            visit_rows = int(within.max()) + 1
        else:
            visits = (rows + UNTIMED_VISIT_ROWS - 1) // UNTIMED_VISIT_ROWS
            # visits of one user differ by one row at most, and which of them are the longer ones turns
            # with the user's phase: were it always the first, the span's end would hold shorter
            # sessions than the rest (drift that is not in the data)
            turn = np.floor(phase * visits[codes]).astype(np.int64)
            visit = (rank * visits[codes] + turn) // rows[codes]
            # a visit is a run of the user's ranks: each row's place in it by rank, not by the file's order
            within = rank - pd.Series(rank).groupby([codes, visit]).transform("min").to_numpy()
        # a user's visits at least a visit's length apart, so that their rows keep their order
        span_ms = max(span_ms, float(visits.max()) * visit_rows * 1000)
        at[known] = (visit + phase) / visits[codes] - 1.0
    at *= span_ms
    if known.any():
        at[known] += within * 1000.0
        sessions[known] = _hash_hex(pd.DataFrame({"u": who.to_numpy(), "v": visit}), "s_")
    ms = np.floor(at).astype(np.int64) - visit_rows * 1000  # the last visit ends before ``end``
    ts = pd.Series(end.floor("ms") + pd.to_timedelta(ms, unit="ms")).dt.tz_convert("UTC")
    return ts, pd.Series([""] * n, dtype=object), sessions


def row_order_times(n: int, end: pd.Timestamp) -> pd.Series:
    """Times for ``n`` rows whose file order is their time order across users (KKBox's ``train.csv``): one
    step apart, the last a step before ``end``, over ``UNTIMED_STEP_S`` per row and at least
    ``UNTIMED_MIN_SPAN_DAYS`` (so that daily snapshots cover more than one day, as for ``file_order_times``)."""
    step_ms = max(UNTIMED_STEP_S * 1000, UNTIMED_MIN_SPAN_DAYS * 86_400_000 / max(n, 1))
    ms = np.floor((np.arange(n, dtype=np.float64) - n) * step_ms).astype(np.int64)
    return pd.Series(end.floor("ms") + pd.to_timedelta(ms, unit="ms")).dt.tz_convert("UTC")


def grouped_users_note(users: pd.Series) -> str | None:
    """A warning when ``--rows-in-time-order`` is given a file whose rows come user by user, every user's rows
    together (most public sets are sorted so): that is seldom time's order, and the last users of the file
    would be alone in the hold-out. Users of one row each say nothing either way."""
    known = users.dropna()
    people = int(known.nunique())
    if people < 2 or len(known) == people:
        return None
    runs = int((known != known.shift()).sum())
    if runs > people:  # some user's rows are apart: users interleave somewhere
        return None
    return (
        f"the rows come user by user, each user's rows together ({people:,} users): a file sorted by user is not "
        "in time order, and --rows-in-time-order puts its last users alone in the hold-out, where no model has "
        "seen them. Unless the users really came one after another, leave it out: each user's rows are then "
        "spread over the span, users interleaved (--file-order keeps each user's own order)"
    )


@dataclass(frozen=True)
class ImportOptions:
    """What an import was told about the file (``load_interactions`` documents each)."""

    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str | None = "timestamp"
    time_unit: str | None = None
    #: a column of times within the day or session, added to the time column's (``time_offset_unit``)
    time_offset_col: str | None = None
    time_offset_unit: str | None = None
    #: dates such as 11/1/2000 put the day first (None: read off the column, month first if it cannot tell)
    dayfirst: bool | None = None
    #: a strptime format for the time column, and the year of a format without one
    time_format: str | None = None
    time_year: int | None = None
    #: numbers counting ``time_unit`` from this date (ticks since a crawl began)
    time_origin: str | None = None
    #: the zone of times written without one (None: UTC, said)
    time_zone: str | None = None
    #: a column naming each row's session (an order, a visit): sessions from it, not from time gaps
    session_col: str | None = None
    #: columns of each event's device and locale (the request context cohorts are kept by)
    device_col: str | None = None
    locale_col: str | None = None
    rating_col: str | None = None
    type_col: str | None = None
    #: one event type for every row, for a file of one kind of event (a log of purchases, of stars)
    event_type: str | None = None
    #: the items file, or several joined on their ids (``items_files``)
    items: Path | Sequence[Path] | None = None
    item_id_col: str = "item_id"
    consent_col: str | None = None
    analytics_consent_col: str | None = None
    assume_consent: bool = False
    query_col: str | None = None
    layout: TextLayout | None = None
    items_layout: TextLayout | None = None
    now: pd.Timestamp | None = None
    rating_max: float | None = None
    keep_file_order: bool = False
    #: the file's rows are in time order across users (``row_order_times``), not only within each user
    rows_in_time_order: bool = False
    type_map: dict[str, str] | None = None
    count_col: str | None = None
    unrated: float | None = None
    item_columns: dict[str, str] | None = None
    #: a column of items shown, each with a click mark (``import_lists``): it is the item column,
    #: and the marks are the types
    impressions_col: str | None = None
    #: the item column's cells list several items (``import_lists``)
    item_lists: bool = False
    #: with ``impressions_col``: each user's earlier clicks, without times (``import_lists.Reshape``)
    history_col: str | None = None
    #: with ``impressions_col`` of ids without marks: the column listing each row's clicked items
    clicked_col: str | None = None
    #: a column of how much of the item each play took (``import_played``): plays' values, and skips
    played: PlayedReading | None = None
    #: the device and locale columns' own codes as devices and locales (``--device-map 1=desktop,2=mobile``)
    device_map: dict[str, str] | None = None
    locale_map: dict[str, str] | None = None
    #: user ids that stand for "unknown" (an anonymous visitor's 0): read as missing, quarantined
    missing_users: tuple[str, ...] = ()
    #: the columns that together name an item, when ``item_col`` names several (``artist,track``);
    #: ``item_col`` is then the key column made of them (``item_key``)
    item_parts: tuple[str, ...] = ()
    #: the columns that together name a user, when ``user_col`` names several (an account's
    #: ``account,Profile Name``: two accounts' "Kids" are two people); ``user_col`` is then their key column
    user_parts: tuple[str, ...] = ()
    #: a file of one row per user, whose device and locale each event of the user takes where the
    #: log gives none (``import_users``)
    users: UsersFile | None = None
    #: the columns that together write the time (``date_year,date_month,date_day``), when ``time_col``
    #: names several; ``time_col`` is then the column of times made of them (``time_parts``)
    time_parts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.time_col is not None and "," in self.time_col:
            parts = key_parts(self.time_col, "--time-col")
            part_units(parts)  # refused here, in words, before the file is read
            object.__setattr__(self, "time_parts", parts)  # frozen: set once, here
            object.__setattr__(self, "time_col", key_column(parts))
        users = key_parts(self.user_col, "--user-col")
        if len(users) > 1:
            object.__setattr__(self, "user_parts", users)  # frozen: set once, here
            object.__setattr__(self, "user_col", key_column(users))
        parts = key_parts(self.item_col)
        if len(parts) > 1:
            if self.impressions_col is not None or self.item_lists:
                raise ImportFormatError(
                    f"--item-col {self.item_col!r} names an item by several columns: it does not combine with "
                    "--impressions-col or --item-lists, whose cells list items by their ids"
                )
            object.__setattr__(self, "item_parts", parts)  # frozen: set once, here
            object.__setattr__(self, "item_col", key_column(parts))
        if self.impressions_col is not None:
            if self.rating_col is not None or self.type_col not in (None, CLICK_TYPE_COL) or self.count_col:
                raise ImportFormatError(
                    "an impressions column's click marks are the events' types: it does not combine with a "
                    "rating, type or count column"
                )
            object.__setattr__(self, "item_col", self.impressions_col)  # frozen: set once, here
            object.__setattr__(self, "type_col", CLICK_TYPE_COL)
        elif self.history_col is not None:
            raise ImportFormatError("a history column lists earlier clicks beside an impressions column: it needs one")
        elif self.clicked_col is not None:
            raise ImportFormatError(
                "a clicked column lists the clicked ones of the items an impressions column shows: it needs one"
            )

    def check(self) -> None:
        if self.event_type is not None:
            self._check_event_type()
        if self.rows_in_time_order and (self.time_col is not None or self.keep_file_order):
            raise ImportFormatError(
                "rows_in_time_order stamps a file without times, in its order across users: it takes no time "
                "column, and keep_file_order is part of it"
            )
        # an offset applies to the time the parts make (a position within a session, added to a date and an hour)
        if self.time_parts and (self.time_unit or self.time_format or self.time_origin):
            raise ImportFormatError(
                f"--time-col {','.join(self.time_parts)} writes a date by its parts: --time-unit, --time-format and "
                "--time-origin read one column of times, and do not apply"
            )
        if self.users is not None and self.user_parts:
            raise ImportFormatError(
                f"--users joins its file on one user id: --user-col names a user by {len(self.user_parts)} columns "
                f"({', '.join(self.user_parts)}); write their key into the users file as one column first"
            )
        if shared := [c for c in self.user_parts or (self.user_col,) if c in self.item_parts]:
            raise ImportFormatError(
                f"--user-col and --item-col both name {shared[0]!r}: a row's user and its item are different columns"
            )
        if self.item_col in self.user_parts:
            raise ImportFormatError(
                f"--item-col {self.item_col!r} is also a part of --user-col: a row's user and its item are "
                "different columns"
            )
        if self.user_col == self.item_col:
            raise ImportFormatError(
                f"--user-col and --item-col both name {self.user_col!r}: a row's user and its item are two columns "
                "(cells holding both, as JSON records, are flattened to columns first: README, 'A list of records')"
            )
        if self.count_col is not None and (self.rating_col is not None or self.type_col is not None):
            raise ImportFormatError(
                "a count column makes every row a play: it does not combine with a rating or type column"
            )
        if self.played is not None:
            if self.count_col is not None or self.impressions_col is not None:
                raise ImportFormatError(
                    "a time-played column gives a play its value: it does not combine with a count or impressions "
                    "column, which give it theirs"
                )
            if self.item_lists:
                raise ImportFormatError(
                    "a time played is one item's: a row listing several items has no time of each (--item-lists)"
                )
            self.played.check()

    def _check_event_type(self) -> None:
        if self.event_type not in EVENT_TYPES:
            raise ImportFormatError(
                f"--type {self.event_type!r} is not an event type (types: {', '.join(EVENT_TYPES)})"
            )
        given = {
            "--type-col": self.type_col,
            "--rating-col": self.rating_col,
            "--count-col": self.count_col,
            "--impressions-col": self.impressions_col,
            "--played-col": self.played.col if self.played else None,
        }
        if self.event_type in NO_ITEM_TYPES:
            if self.query_col is None:
                raise ImportFormatError(
                    f"--type {self.event_type} rows carry text, not an item: --query-col names the column that holds it"
                )
            if self.item_parts or self.item_lists:
                raise ImportFormatError(
                    f"--type {self.event_type} rows name no item: leave out --item-col and --item-lists"
                )
        if clash := [name for name, col in given.items() if col is not None]:
            raise ImportFormatError(
                f"--type gives every row one type: it does not combine with {', '.join(clash)}, which "
                f"give{'s' if len(clash) == 1 else ''} each row its own"
            )

    @property
    def itemless(self) -> bool:
        """Every row is a search or a feature use (``--type search``): the file need have no item column."""
        return self.event_type in NO_ITEM_TYPES

    @property
    def list_col(self) -> str | None:
        """The column whose cells are exploded into one row per item, if any."""
        return self.impressions_col or (self.item_col if self.item_lists else None)

    def reshaper(self) -> Callable[[pd.DataFrame], pd.DataFrame]:
        """For one pass over the file, chunk by chunk: its rows as the import reads them, one per
        item when cells list several (``import_lists.Reshape``), with the key column of an item
        named by several columns (``item_key``), and ``missing_users`` blanked."""
        shape = self._shaper()
        if not self.missing_users:
            return shape
        col, missing = self.user_col, list(self.missing_users)

        def blanked(frame: pd.DataFrame) -> pd.DataFrame:
            frame = shape(frame)
            cells = frame[col].astype(object)  # an int column masked would turn float: 123 → 123.0
            # compared as ids are read (a float column's 0.0 is the id 0)
            return frame.assign(**{col: cells.mask(clean_ids(frame[col]).isin(missing).to_numpy(dtype=bool))})

        return blanked

    def _shaper(self) -> Callable[[pd.DataFrame], pd.DataFrame]:
        shape = self._item_shaper()
        if self.time_parts:  # first, as the user's key: a list reshape repeats the row's time
            units, col, inner = part_units(self.time_parts), self.time_col, shape

            def shape(frame: pd.DataFrame) -> pd.DataFrame:
                return inner(with_time(frame, units, col))

        if not self.user_parts:
            return shape
        users = self.user_parts
        return lambda frame: shape(with_key(frame, users))  # first: a list reshape repeats the user's key

    def _item_shaper(self) -> Callable[[pd.DataFrame], pd.DataFrame]:
        if self.itemless:  # the contract's "no item": a column of its own, whatever the file holds
            col = self.item_col
            return lambda frame: frame.assign(**{col: pd.Series(pd.NA, index=frame.index, dtype="string")})
        if self.item_parts:
            parts = self.item_parts
            return lambda frame: with_key(frame, parts)
        if self.list_col is None:
            return lambda frame: frame
        return Reshape(
            self.list_col, self.impressions_col is not None, self.user_col, self.history_col, self.clicked_col
        )

    def reshape_notes(self, lines: int, rows: int) -> list[str]:
        """What the summary says of the reshape: how many rows the file's rows became, and the
        keys made of several columns."""
        notes = []
        if self.user_parts:
            named = " and ".join(map(repr, self.user_parts))
            notes.append(
                f"users named by {named} together, as {KEY_JOIN.join(self.user_parts)!r} (the id "
                "make erase USER_ID= names)"
            )
        if self.item_parts:
            named = " and ".join(map(repr, self.item_parts))
            notes.append(f"items named by {named} together, as {KEY_JOIN.join(self.item_parts)!r}")
        elif self.list_col is not None:
            notes.append(f"{self.list_col!r} lists several items per row: {lines:,} rows became {rows:,}, one per item")
        return notes

    def wanted(self) -> dict[str, str | None]:
        """The file's columns the import reads, by role."""
        users = {f"user ({n} of {len(self.user_parts)})": p for n, p in enumerate(self.user_parts, 1)}
        items = {f"item ({n} of {len(self.item_parts)})": p for n, p in enumerate(self.item_parts, 1)}
        times = {f"time ({n} of {len(self.time_parts)})": p for n, p in enumerate(self.time_parts, 1)}
        return {
            **(users or {"user": self.user_col}),
            **(items or {"item": None if self.itemless else self.item_col}),
            **(times or {"time": self.time_col}),
            "time offset": self.time_offset_col,
            "rating": self.rating_col,
            "type": None if self.impressions_col else self.type_col,  # made from the click marks
            "consent": self.consent_col,
            "analytics consent": self.analytics_consent_col,
            "query": self.query_col,
            "count": self.count_col,
            "history": self.history_col,
            "clicked": self.clicked_col,
            "time played": self.played.col if self.played else None,
            "item length": self.played.length_col if self.played else None,
            "device": self.device_col,
            "locale": self.locale_col,
            "session": self.session_col,
        }

    @property
    def item_files(self) -> tuple[Path, ...]:
        """The items files given, none, one or several."""
        if self.items is None:
            return ()
        return (Path(self.items),) if isinstance(self.items, str | Path) else tuple(Path(p) for p in self.items)

    @property
    def items_key_fallback(self) -> str | None:
        """The items file's key when it has no ``item_id_col``: a column named as the log's item column
        (none for a key of several columns or an impression list, named otherwise in the items file)."""
        return None if self.item_parts or self.list_col is not None else self.item_col

    def keep(self) -> set[str]:
        return {c for c in self.wanted().values() if c is not None}

    def whole_file_columns(self) -> list[str]:
        """The columns ``_whole_file`` reads: a user's sessions, a play count's meaning, the rating
        scale and an untimed file's stamps each depend on rows anywhere in the file."""
        cols = [self.user_col, self.time_col, self.time_offset_col, self.rating_col, self.type_col, self.count_col]
        cols.append(self.session_col)
        if self.played is not None:
            cols += [self.played.col, self.played.length_col]
            if self.played.needs_catalogue:
                cols.append(self.item_col)  # each play is measured against its item's duration
        if self.history_col is not None:
            cols.append(BEFORE_COL)  # history rows are stamped from their user's first item
        if self.clicked_col is not None:
            cols.append(CLICKED_UNSHOWN_COL)
        if self.time_col is None:  # shuffled by item, and repeats told by it (``untimed_repeats_note``)
            cols.append(self.item_col)
        return list(dict.fromkeys(c for c in cols if c is not None))


@dataclass
class _WholeFile:
    """Per-row values that depend on other rows of the file, computed over all of its rows before
    any event is built, so that an import in chunks gives the events an import at once gives."""

    ts: pd.Series
    sessions: np.ndarray
    types: np.ndarray
    value: np.ndarray
    weight: np.ndarray | None
    notes: list[str]
    #: rows whose time played is no number (``import_played``), None without such a column
    played_unread: np.ndarray | None = None
    #: the items file, when reading the plays needed its durations first (read once)
    catalogue: tuple[pd.DataFrame, list[str]] | None = None
    #: how many earlier rows of the file have each row's user, item cell and raw time (``copy_ordinals``)
    copies: np.ndarray | None = None
    #: the same among the rows of the row's own type, a search's item cell left out (``other_ordinals``)
    other_copies: np.ndarray | None = None
    #: the file's name, for the identity of untimed rows (``untimed_key``)
    source: str = ""
    #: each user's device and locale from the users file, None without one
    users: UserContext | None = None


def row_keys(frame: pd.DataFrame, o: ImportOptions, source: str, item_cell: bool = True) -> np.ndarray:
    """A hash of each row's user, item cell and raw time (``untimed_key`` without times): the
    identity its event id is made of. ``item_cell=False``: with no item cell, as a file of searches
    read with ``--type search`` has none (``other_ordinals``)."""
    n = len(frame)
    raw_time = frame[o.time_col] if o.time_col is not None else pd.Series([untimed_key(source)] * n, dtype=object)
    users = clean_ids(frame[o.user_col]).astype("string").to_numpy()
    key = pd.DataFrame(
        {
            "u": users,
            "i": clean_ids(frame[o.item_col]).astype("string").to_numpy() if item_cell else np.full(n, pd.NA, object),
            "t": raw_time.astype("string").to_numpy(),
        }
    )
    return pd.util.hash_pandas_object(key, index=False).to_numpy()


def other_ordinals(keys: np.ndarray, itemless: np.ndarray | None, types: np.ndarray) -> np.ndarray:
    """Each row's ``copy_ordinals`` as a file of its type alone would give it (``--type``): counted among the
    rows of its own type, and for a search or a feature use without the item cell (``itemless`` keys). A
    like after a play at one stamp is the second row of that user, item and time here, and the first of a
    file of likes: the ordinal of the id it has read the other way (``intake.OTHER_ID``)."""
    kinds = pd.array(np.asarray(types, dtype=object), dtype="string").fillna("")
    no_item = np.isin(np.asarray(types, dtype=object), list(NO_ITEM_TYPES))
    base = np.where(no_item, itemless, keys) if itemless is not None else keys
    return copy_ordinals(pd.util.hash_pandas_object(pd.DataFrame({"k": base, "t": kinds}), index=False).to_numpy())


def untimed_key(source: str) -> str:
    """What stands for the time in an untimed row's identity: its file's name, without a compression
    suffix (``r.csv.gz`` is ``r.csv``). Two files rating the same user and item (Yahoo! R3's train
    and test) hold two events; the same file imported again holds the same ones. A renamed copy is
    another file: its rows are imported again."""
    name = Path(source)
    return "untimed:" + (name.stem if name.suffix.lower() in COMPRESSIONS else name.name)


def copy_ordinals(keys: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows of the file share its key (``row_keys``): 0 for the first
    row of a user, item and time, 1 for its first copy, and so on. An event id made of the key and
    this ordinal is the same whatever else the file holds, so a file imported again with other rows
    before its own (a longer export, a shifted one) adds only its new rows."""
    return pd.Series(keys).groupby(keys, sort=False).cumcount().to_numpy(dtype=np.int64)


def _whole_file(raw: pd.DataFrame, o: ImportOptions, now: pd.Timestamp, source: Path) -> _WholeFile:
    if raw.empty:  # said plainly: every check below would find "no values" in its own words
        raise ImportFormatError(f"{source.name} holds no rows to import (only a header line, or nothing)")
    users = clean_ids(raw[o.user_col])
    per_user = users.value_counts()  # one count for the three notes on the user column
    notes: list[str] = [
        note
        for note in (
            missing_tokens_note(raw[o.user_col], o.user_col, USER_STAND_IN),
            _busiest_note(per_user),
            _named_users_note(per_user, o.user_col),
            _few_users_note(per_user, len(users), o.user_col),
        )
        if note
    ]
    if o.time_col is None and o.rows_in_time_order:
        ts = row_order_times(len(users), now)
        if o.session_col is not None:
            sessions = _named_sessions(users, raw[o.session_col], ts)
        else:
            sessions = _sessions(users, ts)
        step = (ts.iloc[-1] - ts.iloc[0]).total_seconds() / max(len(ts) - 1, 1)
        span = f"{ts.iloc[0].isoformat()} … {ts.iloc[-1].isoformat()}"
        notes.append(
            f"no time column: the rows stamped in the file's order across users (--rows-in-time-order), "
            f"{step:,.1f} s apart, over {span}; "
            + (f"sessions from {o.session_col!r}" if o.session_col else "sessions cut at 30-minute gaps")
            + "; the hold-out and time windows then follow the file's order"
        )
        if note := grouped_users_note(users):
            notes.append(note)
        if note := untimed_repeats_note(raw, o):
            notes.append(note)
    elif o.time_col is None:
        items = None if o.keep_file_order else clean_ids(raw[o.item_col])
        visits_of = raw[o.session_col] if o.session_col is not None else None
        ts, _, sessions = file_order_times(users, now, None if visits_of is not None else items, visits_of)
        del items
        span = f"{ts.min().isoformat()} … {ts.max().isoformat()}" if len(ts) else "-"
        order = (
            "in their file order (--file-order)"
            if o.keep_file_order or visits_of is not None
            else "in a stable shuffled order (--file-order keeps the file's)"
        )
        visits = (
            f"in visits that are the sessions of {o.session_col!r} (in the order each first appears)"
            if visits_of is not None
            else f"in visits of up to {UNTIMED_VISIT_ROWS} rows (one session each)"
        )
        notes.append(
            f"no time column: each user's rows stamped {order}, {visits} spread over {span} with the users "
            "interleaved (each user's visits spread over the span from a phase of the user's own; a user of one visit "
            "is in one window only); the hold-out and time windows then follow that order"
        )
        if note := untimed_repeats_note(raw, o):
            notes.append(note)
        if o.keep_file_order and o.list_col is None and (note := sorted_ids_note(users, raw[o.item_col], o.item_col)):
            notes.append(note)
    else:
        reading = TimeReading(o.dayfirst, o.time_format, o.time_year, o.time_origin, o.time_zone)
        ts = parse_time(raw[o.time_col], o.time_unit, o.time_col, notes, reading=reading)
        if note := listed_times_note(raw[o.time_col], ts, o.time_col):
            notes.append(note)
        if note := common_start_note(users, ts, o.time_col):
            notes.append(note)
        if note := one_time_note(ts, o.time_col):
            notes.append(note)
        lists = o.list_col is not None
        if o.time_offset_col is not None:
            unit = o.time_offset_unit or "s"
            ts = offset_times(ts, raw[o.time_offset_col], unit, o.time_col, o.time_offset_col, notes)
        # with an offset too, an hour of day still ties a session's rows; a list's items share a time by nature
        if note := (
            tied_times_note(users, ts, lists)
            or (None if o.time_offset_col else dates_only_note(ts, o.time_col, o.time_zone, o.session_col))
            or (None if lists else shared_times_note(users, ts, o.time_offset_col))
        ):
            notes.append(note)
        if o.history_col is not None:
            ts = _history_times(ts, users, raw[BEFORE_COL])
            if note := history_note(raw[BEFORE_COL], o.history_col):
                notes.append(note)
        if o.session_col is not None:
            sessions = _named_sessions(users, raw[o.session_col], ts)
            notes.append(f"sessions from {o.session_col!r}, not from 30-minute gaps")
        else:
            sessions = _sessions(users, ts)
        if o.history_col is not None:
            _history_sessions(sessions, users, raw[BEFORE_COL])
    if o.impressions_col is not None and (note := unmarked_note(raw[CLICK_TYPE_COL], o.impressions_col)):
        notes.append(note)
    if o.clicked_col is not None and o.impressions_col is not None:
        if note := clicked_unshown_note(raw[CLICKED_UNSHOWN_COL], o.clicked_col, o.impressions_col):
            notes.append(note)
    weight = None
    if o.count_col is not None:
        types, value, weight = counted_plays(raw[o.count_col], users, o.count_col, notes)
    else:
        types, value = types_and_values(
            raw, o.rating_col, o.type_col, o.rating_max, notes, o.type_map, o.unrated, o.event_type
        )
    whole = _WholeFile(ts.reset_index(drop=True), sessions, types, value, weight, notes)
    if o.users is not None:
        maps = {"device": o.device_map, "locale": o.locale_map}
        whole.users = load_user_context(o.users, o.user_col, per_user.index, maps)
    if o.played is not None:
        lengths, whole.catalogue = _play_lengths(raw, o)
        rated = None
        if o.rating_col is not None:  # a row without a rating has no value; a skip by its rating has none either
            rated = ~np.isnan(value) | ((types == "skip") if o.type_col is None else False)
        played = played_values(
            raw[o.played.col], types, value, o.played, lengths, notes, rated, typed=o.type_col is not None
        )
        whole.types, whole.value, whole.played_unread = played.types, played.value, played.unread
    return whole


def _play_lengths(raw: pd.DataFrame, o: ImportOptions) -> tuple[Lengths | None, tuple[pd.DataFrame, list[str]] | None]:
    """Each row's item length, when a time played is measured against it: from the length column,
    or from the items file (returned too, so that it is read once)."""
    reading = o.played
    if reading is None or not reading.is_time:
        return None, None
    if reading.length_col is not None:
        cells = raw[reading.length_col]
        read = read_amounts(cells, reading.unit, reading.length_col)
        unread = read.unread()
        hint = f" (its cells read e.g. {shown_cells(cells, unread)})" if unread.any() else ""
        # scaled as the time played is (one factor), so that a whole play is exactly 1 of its item
        seconds = read.number.to_numpy(dtype="float64") * (time_unit_ns(reading.unit, "--played-unit") / 1e9)
        return Lengths(seconds, repr(reading.length_col), hint), None
    if not (files := o.item_files):
        return None, None
    catalogue = load_item_files(files, o.item_id_col, o.items_layout, o.item_columns, o.items_key_fallback)
    durations = catalogue[0].drop_duplicates("item_id").set_index("item_id")["duration_s"]
    label = items_label(files)
    if not durations.notna().any():
        hint = f"; {label} gives no item a duration (--items-cols duration=… or duration_ms=… names it)"
        return Lengths(None, label, hint), catalogue
    source = f"{label}'s durations"
    ids = clean_ids(raw[o.item_col])
    found = ids.isin(durations.index)
    hint = ""
    if ids.notna().any() and found.sum() * 2 < ids.notna().sum():
        hint = (
            f" (only {int(found.sum()):,} of the {int(ids.notna().sum()):,} plays' items are in it: the log's ids "
            f"look like {str(ids.dropna().iloc[0])!r}, the file's like {str(durations.index[0])!r})"
        )
    return Lengths(ids.map(durations).to_numpy(dtype="float64"), source, hint), catalogue


#: users with at least this many rows are looked at to tell a file sorted by item id
SORTED_MIN_ROWS = 3
#: … and this share of them in ascending id order says the file was sorted so
SORTED_SHARE = 0.9


def sorted_ids_note(users: pd.Series, items: pd.Series, item_col: str) -> str | None:
    """A warning when ``--file-order`` keeps an order that is the item ids', not time's: kosarak's
    and many preprocessed files list each user's items by number, so each user's last rows, the
    hold-out, would be their highest ids (a model that learns "later ids" then scores far too well)."""
    numbers = to_numbers(items.astype("string"))
    frame = pd.DataFrame({"u": users.to_numpy(), "n": numbers.to_numpy()}).dropna()
    if frame.empty:
        return None
    sizes = frame.groupby("u", sort=False)["n"].transform("size")
    frame = frame[sizes >= SORTED_MIN_ROWS]
    if frame["u"].nunique() < SORTED_MIN_ROWS:
        return None
    falls = frame["n"].diff().lt(0) & frame["u"].eq(frame["u"].shift())  # a step down within a user's run
    rising = ~falls.groupby(frame["u"], sort=False).any()
    if float(rising.mean()) < SORTED_SHARE:
        return None
    return (
        f"{rising.mean():.0%} of the users with {SORTED_MIN_ROWS} rows or more list their items in rising order of "
        f"{item_col!r}: that is the ids' order, not the order they happened, and --file-order makes each user's "
        "highest ids their hold-out. Without --file-order each user's rows are shuffled stably instead"
    )


def untimed_repeats_note(raw: pd.DataFrame, o: ImportOptions) -> str | None:
    """Rows of a file without times that repeat an earlier row's user, item and value exactly (Ciao's
    rating.txt holds such copies): with no time to tell a repeat from a copy, said, as
    ``_repeat_notes`` says it of timed rows."""
    cols = [c for c in (o.user_col, o.item_col, o.rating_col, o.type_col, o.count_col) if c is not None]
    n = int(raw[cols].duplicated().sum())
    if not n:
        return None
    return (
        f"{n:,} row{'s' if n != 1 else ''} repeat{'s' if n == 1 else ''} an earlier row's "
        f"{'user, item and value' if len(cols) > 2 else 'user and item'} exactly (no times to tell a second play "
        "from a copy): "
        "each is imported as an event of its own (if the file wrote some rows twice, drop the copies first; rows "
        "that differ in a column the import does not read, such as a context, are no copies)"
    )


USER_STAND_IN = "a session or visitor column can stand in as the user (--user-col)"
#: one user id holding more than this share of the rows, among at least BUSIEST_MIN_USERS, is said
BUSIEST_SHARE = 0.2
BUSIEST_MIN_USERS = 20
#: … or this share, when it is also this many times the next busiest id's
BUSIEST_APART_SHARE = 0.05
BUSIEST_APART_RATIO = 10
#: … or as many as this many ids together, the least of them this many times the next busiest's
BUSIEST_GROUP = 5


def _busiest_note(counts: pd.Series) -> str | None:
    """A word when one id holds a large share of the rows (``counts``: rows per user id, most
    first): usually a placeholder (an anonymous visitor, "0", "-1", "guest") that would train as one
    enormous user. The id itself is not named, since notes are kept in the import's lineage record
    and raw ids are never stored."""
    if len(counts) < BUSIEST_MIN_USERS:
        return None
    top, share = int(counts.iloc[0]), counts.iloc[0] / counts.sum()
    # Plista's anonymous reader "0": 15% of the rows, forty times the next busiest
    apart = share >= BUSIEST_APART_SHARE and top >= BUSIEST_APART_RATIO * int(counts.iloc[1])
    if share > BUSIEST_SHARE or apart:
        return (
            f"one user id holds {share:.0%} of the rows ({top:,}; the next busiest {int(counts.iloc[1]):,}): if it "
            "stands for 'unknown' (an anonymous visitor, a missing id), --missing-user ID reads it as missing "
            "(quarantined), or they train as one user"
        )
    # a placeholder spelled as one (Coursera's reviewer "By Deleted A": 3.5% of rows, 7× the next)
    if (
        share >= BUSIEST_APART_SHARE / 2
        and top >= 2 * int(counts.iloc[1])
        and re.search(_STAND_IN_WORD, str(counts.index[0]))
    ):
        return (
            f"the busiest user id, on {share:.1%} of the rows ({top:,}; the next busiest {int(counts.iloc[1]):,}), "
            "reads as a stand-in (deleted, anonymous, guest, unknown): --missing-user ID reads it as missing "
            "(quarantined), or its rows train as one user"
        )
    # an id that is nothing but a stand-in word (Reddit's "[deleted]"), among the busiest, whoever is busier
    for rank, name in enumerate(counts.index[:BUSIEST_GROUP]):
        rows = int(counts.iloc[rank])
        if re.fullmatch(_STAND_IN_ID, str(name)) and rows / counts.sum() >= BUSIEST_APART_SHARE / 2:
            return (
                f"the {_ORDINALS[rank]}busiest user id, on {rows / counts.sum():.1%} of the rows ({rows:,}), is a "
                "stand-in word (deleted, anonymous, guest, unknown): --missing-user ID reads it as missing "
                "(quarantined), or its rows train as one user"
            )
    # a few stand-ins of like size hide one another from that test (Wikipedia's clickstream: its
    # 'other-search', 'other-empty', … sources, 15% of the rows, against 18 for the busiest page)
    for k in range(2, BUSIEST_GROUP + 1):
        group, below = counts.iloc[:k], int(counts.iloc[k])
        if group.sum() / counts.sum() >= BUSIEST_APART_SHARE and int(group.iloc[-1]) >= BUSIEST_APART_RATIO * below:
            return (
                f"{k} user ids hold {group.sum() / counts.sum():.0%} of the rows ({int(group.iloc[-1]):,} to "
                f"{top:,} each; the next busiest {below:,}): if they stand for 'unknown' (anonymous visitors, "
                "missing ids, sources that are no user), --missing-user ID,ID reads them as missing (quarantined), "
                "or they train as users"
            )
    return None


#: a user id that is only a stand-in word, maybe bracketed (Reddit's ``[deleted]``)
_STAND_IN_ID = re.compile(r"(?i)[\[(<]?\s*(?:deleted|removed|anonymous|anon|guest|unknown|nobody)\s*[\])>]?")
_ORDINALS = ("", "second ", "third ", "fourth ", "fifth ")
#: a word in a user id that makes it a placeholder rather than a person
_STAND_IN_WORD = re.compile(r"(?i)\b(?:deleted|anonymous|anon|guest|unknown|visitor|removed|nobody|ghost)\b")
#: user ids written as names (two words or more), as a share of the distinct ids, from which it is said
NAMED_USERS_SHARE = 0.5


#: fewer distinct users than this over at least FEW_USERS_ROWS rows are said
FEW_USERS = 20
FEW_USERS_ROWS = 1_000


def _few_users_note(counts: pd.Series, rows: int, col: str) -> str | None:
    """A word when a large file has a handful of users (Booking.com's reviews have no reviewer id,
    and a nationality named as the user made 13 "users" of 12,000 reviews)."""
    distinct = len(counts)
    if not 0 < distinct < FEW_USERS or rows < FEW_USERS_ROWS:
        return None
    return (
        f"warning: {col!r} holds only {distinct:,} distinct user{'s' if distinct != 1 else ''} over {rows:,} "
        "rows: if it is a country, a segment or a device rather than a person's id, each of its values trains as "
        "one user; a file with no user id has no personal history to learn from"
    )


def _named_users_note(counts: pd.Series, col: str) -> str | None:
    """A word when most user ids (``counts``' index) are names of several words (Coursera's
    reviewers, "By Robert S"): a display name is no id, so people who share one become one user."""
    distinct = pd.Series(counts.index[:5_000]).astype(str)
    if len(distinct) < BUSIEST_MIN_USERS:
        return None
    named = distinct.str.fullmatch(r"[^\W\d_][\w.'-]*(?: [^\W\d_][\w.'-]*)+").mean()
    if named < NAMED_USERS_SHARE:
        return None
    return (
        f"{named:.0%} of the ids in {col!r} are written as names of several words: if they are display names, "
        "people sharing one become one user (an id column, if the file has one, is the better --user-col)"
    )


#: an item column with at most this many distinct ids, each on many rows, is said to be small
FEW_ITEMS = 20  # Airbnb's 15 actions said; Santander's 24 products, a bank's real catalogue, not


def _item_column_notes(o: ImportOptions, tally: _Tally) -> list[str]:
    """What the item column held that the import reads otherwise than the file may mean: cells
    spelled as missing ("NaN", "None": a real title so spelled needs another spelling first), and a
    handful of values over many rows: an action, a flag or a category named as the item (Airbnb's
    ``action``, Santander's 0/1 product flags) imports without error and trains a model over a few
    "items" that every model finds."""
    if o.item_parts or o.item_col is None:
        return []
    notes = [n for n in [tokens_note(dict(tally.item_tokens), o.item_col, tally.rows)] if n]
    items = len(tally.items)
    if 0 < items <= FEW_ITEMS and tally.rows >= FEW_ITEMS * items and o.list_col is None:
        shown = ", ".join(repr(v) for v in sorted(tally.items)[:5]) + (", …" if items > 5 else "")
        notes.append(
            f"column {o.item_col!r} holds only {items:,} distinct item{'s' if items != 1 else ''} over "
            f"{tally.rows:,} rows ({shown}): a catalogue that small leaves little to rank, and every model finds "
            "all of it. If the column names a kind of event or a flag, it is --type-col's, and the item is another "
            "column (a file of one column per item is turned into rows first: README, a table of flags)"
        )
    if tally.rows >= ONCE_ROWS and items >= ONCE_SHARE * tally.rows:
        # Ali-CCP's feature lists named as the item: exit 0, and training later found no positive to learn from
        notes.append(
            f"warning: column {o.item_col!r} names {items:,} distinct items over {tally.rows:,} rows, nearly each "
            "on a row of its own: no item is shared between users, so nothing can be learned from it. Is it a row, "
            "order or feature-list column rather than the item id? --item-col names the item"
        )
    if o.list_col is None and (note := _worded_items_note(o.item_col, tally.item_rows)):
        notes.append(note)
    return notes


#: rows of an id column of numbers whose cells hold words instead, as a share of its rows, from which on
#: they are said (Trivago's ``reference``: a hotel's number, or a destination, a sort order or a filter)
WORDED_SHARE = 0.01


def _worded_items_note(column: str, rows: Counter[str]) -> str | None:
    """A word when an item column of numbers holds phrases on a share of its rows: such cells are what
    another kind of row names (a search's text, a setting), which imported as items train and are ranked."""
    if not rows:
        return None
    counts = pd.Series(rows, dtype="int64")
    ids = counts.index.to_series().astype(str)
    numbers = int(counts[ids.str.fullmatch(r"\d+").to_numpy()].sum())
    worded = counts[(ids.str.contains(r"\s") & ids.str.contains(r"[^\W\d_]")).to_numpy()]
    total, n = int(counts.sum()), int(worded.sum())
    if numbers * 2 < total or n < max(5, WORDED_SHARE * total):
        return None
    shown = ", ".join(repr(k) for k in worded.sort_values(ascending=False, kind="stable").index[:3])
    return (
        f"warning: {n:,} rows ({n / total:.0%}) of {column!r} hold words where the others hold numbers ({shown}"
        f"{', …' if len(worded) > 3 else ''}): if such cells name no item (a search's text, a sort order, a "
        "destination), they were imported as items, to be trained on and ranked; import again into an empty data "
        "directory, the rows' kinds given with --type-col (a search's text read with --query-col "
        f"{option_value(column)}, other kinds mapped to ignore), or drop those rows first"
    )


#: an item column whose distinct values are nearly as many as its rows, over at least this many rows, is said
ONCE_ROWS = 1_000
ONCE_SHARE = 0.95


def _history_sessions(sessions: np.ndarray, users: pd.Series, before: pd.Series) -> None:
    """History rows in a session of their own per user, apart from the first visit they were stamped
    just before: a list of earlier clicks is no visit, and in the first one it made that visit dozens of
    events long, read by the drift gate as the older sessions' lengths drifting (MIND: PSI 0.29)."""
    hist = (before > 0).to_numpy() & users.notna().to_numpy()
    if hist.any():
        frame = pd.DataFrame({"u": users[hist].astype(str).to_numpy(), "s": "history"})
        sessions[hist] = _hash_hex(frame, HISTORY_SESSION_PREFIX)


def _history_times(ts: pd.Series, users: pd.Series, before: pd.Series) -> pd.Series:
    """History rows (``before`` > 0) stamped ``before`` seconds ahead of their user's first listed
    item anywhere in the file; a user without a readable time leaves them without one."""
    hist = (before > 0).to_numpy()
    if not hist.any():
        return ts
    first = ts[~hist].groupby(users[~hist].to_numpy()).min()
    out = ts.copy()
    start = pd.Series(users[hist].map(first).to_numpy(), dtype=ts.dtype)
    out.iloc[np.flatnonzero(hist)] = (start - pd.to_timedelta(before[hist].to_numpy(), unit="s")).array
    return out


@dataclass
class _Tally:
    """What the summary says, added up chunk by chunk."""

    rows: int = 0
    users: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    types: Counter[str] = field(default_factory=Counter)
    problems: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: device and locale values read as "other" (outside the serving vocabulary), and countries by name
    context: ContextReading = field(default_factory=ContextReading)
    #: search and feature_use rows whose item cell held something (left out: those types name no item)
    itemless_named: int = 0
    #: rows the same as an earlier one in user, item, time and type (``_count_repeats``)
    repeated: int = 0
    #: rows repeating an earlier row's user, item, type and date, stamped with a date alone
    repeated_dated: int = 0
    #: rows per item id that reads as a placeholder (``PLACEHOLDER_ID``)
    placeholder_items: Counter[str] = field(default_factory=Counter)
    #: rows per item id among the rows that will be events (``_placeholder_notes``)
    item_rows: Counter[str] = field(default_factory=Counter)
    #: rows left out as asked (``--type-map NAME=ignore``), by name
    ignored: Counter[str] = field(default_factory=Counter)
    #: item cells read as missing beyond empty ones ("NaN", "None"), as written
    item_tokens: Counter[str] = field(default_factory=Counter)
    #: rows that will be events, by the year of their time (``_stray_years_note``)
    years: Counter[int] = field(default_factory=Counter)

    def problem(self, cause: str, n: int) -> None:
        self.problems[cause] = self.problems.get(cause, 0) + n


#: id cells looked at for records where ids should be
_ID_PEEK = 50


def _json_object(v: object) -> bool:
    """A cell that is an object written out: as JSON, or as Python writes a dict (``{'title': …}``:
    pandas' ``to_csv`` of a column of dicts, as a JSON export read whole leaves Trakt's ``movie``); a
    braced GUID (``{0F8FAD5B-…}``) is an id."""
    if not isinstance(v, str) or not (text := v.strip()).startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        pass
    try:
        return isinstance(ast.literal_eval(text), dict)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def _nested(v: object) -> bool:
    return isinstance(v, (list, tuple, dict, np.ndarray))


def require_plain_ids(frame: pd.DataFrame, o: ImportOptions) -> None:
    """The user and item columns hold ids, not records: a cell that is a JSON object (30Music's
    idomaar lines keep user and track in one ``{"subjects": …, "objects": …}``) would become an
    id of its own, each unique, silently."""
    items = [] if o.itemless else (o.item_parts or [o.list_col or o.item_col])
    users = o.user_parts or (o.user_col,)
    for option, col in [*(("--user-col", c) for c in users), *(("--item-col", c) for c in items)]:
        cells = frame[col].dropna().head(_ID_PEEK).tolist()
        arrays = [v for v in cells if isinstance(v, (list, tuple, np.ndarray))]
        listed = [e for a in arrays[:1] for e in list(a)[:1] if isinstance(e, dict)]
        if cells and len(arrays) * 2 > len(cells) and listed and set(listed[0]) == {"key", "value"}:
            # GA4's and Firebase's event_params: each record a field of its row, which exploding would make rows
            fields = ", ".join(str(e.get("key")) for e in list(arrays[0])[:5] if isinstance(e, dict))
            raise ImportFormatError(
                f"{option} {col!r} holds lists of key/value records ({fields}, …: GA4's and Firebase's "
                "event_params), each a field of its row: pivot them into a column per key first (README, 'Product "
                "analytics exports'), then name the key that holds the user or the item"
            )
        if option == "--user-col" and cells and len(arrays) * 2 > len(cells):
            raise ImportFormatError(
                f"--user-col {col!r} holds lists ({str(list(arrays[0])[:2])[:60]}, …), not one id per row: name the "
                "column that identifies the row's user"
            )
        if option == "--item-col" and cells and len(arrays) * 2 > len(cells) and listed:
            # Steam's lists of {'item_id': …, 'playtime_forever': …}: --item-lists would refuse them next
            keys = ", ".join(map(str, list(listed[0])[:4]))
            meta = [str(c) for c in frame.columns if c != col and not frame[c].head(5).map(_nested).any()][:4]
            raise ImportFormatError(
                f"--item-col {col!r} holds lists of records ({keys}, …), not ids: flatten the file to one row per "
                f"record first, e.g. pandas' json_normalize(rows, record_path={col!r}, meta={meta!r}) written to a "
                ".csv, then name the record's id with --item-col (README, 'A list of records')"
            )
        if option == "--item-col" and o.list_col is None and cells and len(arrays) * 2 > len(cells):
            # a parquet or JSON list column: each list would become one id of its own ("[10 12]")
            shown = "[" + ", ".join(map(str, list(arrays[0])[:4])) + (", …]" if len(arrays[0]) > 4 else "]")
            raise ImportFormatError(
                f"--item-col {col!r} holds lists of ids ({shown}, …), not one id per row: --item-lists makes one "
                "event per listed item; a column of the items shown, beside one of those clicked, imports with "
                "--impressions-col SHOWN --clicked-col CLICKED"
            )
        records = [v for v in cells if isinstance(v, dict) or _json_object(v)]
        if cells and len(records) * 2 > len(cells):
            first = records[0]
            shown = (json.dumps(first, default=str) if isinstance(first, dict) else str(first).strip())[:60]
            written = (
                ""
                if isinstance(first, dict) or first.strip().startswith('{"')
                else " (Python's text of a dict: a column of records written by to_csv as it was read; flatten "
                "it with pandas' json_normalize before writing)"
            )
            raise ImportFormatError(
                f"{option} {col!r} holds records, not ids ({shown!r}, …){written}: flatten the file to a column "
                "per field first (README, 'A list of records')"
            )


#: column names that hold either: an app's platform is its device, trivago's is a country
_EITHER_NAMES = ("platform",)


#: a column name that holds an outcome of the row (a click, a like, a count of them, a score)
_OUTCOME_NAME = (
    r"(?:is_?|has_?|explicit_?|implicit_?|my_?)?(?:click|clicked|clk|non_?clk|non_?click|like|liked|follow|followed"
    r"|share|shared|skip|skipped|skip_?[1-9]|not_?skipped|purchase|purchased|buy|bought|cart|carted|rating|rated"
    r"|score|stars?|watch_ratio"
    r"|recommend|recommended|voted_?up|correct|answered_?correctly|favou?rite|favou?rited|fav|collect|collected"
    r"|play|stay"  # WeChat Channels' play and stay: milliseconds of each view, outcomes too
    r"|play_ratio|played_?ratio_?pct|retweet|retweeted|install|installed|bookmark|bookmarked|read|comment|commented|forward"
    r"|forwarded|hate|hated|dislike|disliked|long_?view|plays|play_?count|listens|listen_?count|weight|booking"
    r"|booked|conversion|converted|overall|result|label"
    # how long each play lasted (Jellyfin's PlayDuration, Spotify's ms_played): --played-col reads it
    r"|play_?duration|ms_?played|played_?(?:ms|s|sec|secs|seconds|time|duration)"
    r"|(?:listen|watch)(?:ed)?_?(?:duration|ms|seconds|secs))"
    r"(?:_?(?:cnt|count|num|flag|flg|bool|s|timestamp|time))?"
    r"|target"  # KKBox's target (replayed within a month), alone: a target_time or target_count is no outcome
)


#: a column name of how much of the item each play took, which --played-col reads
_PLAYED_NAME = (
    r"(?:play|played|watch|listen)_?ratio(?:_?pct)?|play_?duration|ms_?played"
    r"|played_?(?:ms|s|sec|secs|seconds|time|duration)|(?:listen|watch)(?:ed)?_?(?:duration|ms|seconds|secs)"
)


#: a column name that says what kind of event a row is, in words (Meetup's response, a log's event_type)
_TYPE_NAME = (
    r"(?:event|interaction|action|behaviou?r|activity|my)?_?(?:type|kind|action|behaviou?r|response|rsvp|interaction"
    r"|activity|verb|event|event_name|status)"
)
#: distinct values in a type-named column's first rows, at most, for it to read as a column of type names
_TYPE_WORDS = 30


#: a nested field's last name that says what each row was (a topic's value.event); a nested ``type`` is
#: as often a device's or a page's
_NESTED_TYPE_NAMES = frozenset({"event", "event_name", "event_type", "action"})


def _unread_type_note(columns: list[str], o: ImportOptions, frame: pd.DataFrame | None) -> list[str]:
    """A word for a column named like a type column, of a few words, that was not read while every
    row is imported as a whole play: Meetup's declined RSVPs (``response`` ``no``) would train as
    plays."""
    if frame is None:
        return []
    # a nested field answers to its own name (a topic's value.event); one named for events before a bare
    # "type" (Segment's type says track, page or identify, its event what was done)
    named = [
        c for c in columns if re.fullmatch(_TYPE_NAME, c.lower()) or c.lower().rsplit(".", 1)[-1] in _NESTED_TYPE_NAMES
    ]
    named.sort(key=lambda c: not re.search("event|action", c.lower().rsplit(".", 1)[-1]))
    for col in named:
        if col in o.keep() or col not in frame:
            continue
        words = _filled_cells(frame[col], 2_000).unique()
        if not 2 <= len(words) <= _TYPE_WORDS:
            continue
        shown = ", ".join(repr(w) for w in sorted(words)[:6]) + (", …" if len(words) > 6 else "")
        if all(w.lstrip("-").replace(".", "", 1).isdigit() for w in words):
            # codes (ContentWise's interaction_type 0-3): a map says which kind each is
            pairs = ",".join(f"{w}=TYPE" for w in sorted(words)[:4])
            return [
                f"column {col!r} ({shown}) not read: every row is imported as a whole play; if its codes say what "
                f"each row was, --type-col {col} --type-map {pairs} reads it (TYPE: play, like, skip, view, …)"
            ]
        return [
            f"column {col!r} ({shown}) not read: every row is imported as a whole play; if it says what each row "
            f"was, --type-col {col} reads it (with --type-map for words that are no event type)"
        ]
    return []


#: a column name of a quantity bought or returned (Online Retail's Quantity)
_AMOUNT_NAME = r"(?:quantity|qty|units|amount|item_?count|order_?quantity)"


#: words before a last ``id`` that name a visit, an order or a trip (Booking's ``utrip_id``, Instacart's
#: ``order_id``): each value one session
_SESSION_WORDS = frozenset({"session", "visit", "trip", "utrip", "order", "basket", "journey", "srch", "search"})


def unread_session_note(columns: list[str], o: ImportOptions) -> list[str]:
    """A word for a column naming each row's visit, order or trip that the import was not told to
    read as sessions: they are then cut at 30-minute gaps, which split a trip of days and join two
    orders placed minutes apart."""
    if o.session_col is not None:
        return []
    used = o.keep()
    for col in columns:
        words = name_words(col)
        if col in used or not words:
            continue
        # the word before the id says what it names: an order's status (order_status_id) or a search's
        # destination (Expedia's srch_destination_id) is none
        if words == ["session"] or (len(words) >= 2 and words[-1] in ("id", "ids") and words[-2] in _SESSION_WORDS):
            cut = "at 30-minute gaps" if o.time_col is not None else f"into visits of up to {UNTIMED_VISIT_ROWS} rows"
            return [
                f"column {col!r} is not read: sessions are cut {cut}; if it names each row's visit, order or trip, "
                f"--session-col {option_value(col)} makes each value one session"
            ]
    return []


def unread_time_note(
    columns: list[str], o: ImportOptions, frame: pd.DataFrame | None, unread: Sequence[str] = ()
) -> list[str]:
    """A warning when --no-time leaves a column of times unread (Yelp's tips have a ``date``): their
    rows are then stamped in a shuffled order, and the hold-out and windows follow that order."""
    if o.time_col is not None:
        return []
    if split := split_time_columns([c for c in columns if c not in o.keep()], frame):
        shown = ", ".join(map(repr, split))
        return [
            f"warning: --no-time leaves the date written over {shown} unread: each user's rows are stamped in a "
            f"shuffled order instead; --time-col {option_value(','.join(split))} reads them as one time"
        ]
    timed = time_columns(frame, unread, exclude=o.keep())
    if not timed:
        return []
    shown = ", ".join(map(repr, timed[:3]))
    return [
        f"warning: --no-time leaves {shown} unread, though {'it holds' if len(timed) == 1 else 'they hold'} times: "
        f"each user's rows are stamped in a shuffled order instead; --time-col {option_value(timed[0])} reads them"
    ]


def negative_amount_note(columns: list[str], o: ImportOptions, frame: pd.DataFrame | None) -> list[str]:
    """A word for an unread quantity column with negative numbers: returns or cancellations (Online
    Retail's ``C`` invoices) that the import reads as events like the rest, purchases included."""
    if frame is None:
        return []
    for col in columns:
        if not re.fullmatch(_AMOUNT_NAME, col.lower().replace(" ", "_")) or col in o.keep() or col not in frame:
            continue
        numbers = to_numbers(frame[col]).dropna()
        if len(numbers) and (numbers < 0).any() and (numbers > 0).mean() >= 0.5:
            return [
                f"column {col!r} holds negative numbers (e.g. {numbers[numbers < 0].iloc[0]:g}): returns or "
                "cancellations, imported as events like the rest; leave those rows out first if they are no "
                "interest in the item"
            ]
    return []


def _filled_cells(column: pd.Series, n: int = 200) -> pd.Series:
    """The first ``n`` cells of a column that are not missing, as stripped text, empty ones dropped."""
    cells = column.dropna().astype(str).str.strip().head(n)
    return cells[cells != ""]


def _text_cells(frame: pd.DataFrame | None, col: str) -> bool:
    """Whether most of a column's first filled cells are text rather than numbers or flags: a
    ``comment`` column of reviews (BoardGameGeek's) is no count of comments."""
    if frame is None or col not in frame:
        return False
    cells = _filled_cells(frame[col])
    if cells.empty:
        return False
    flags = cells.str.lower().isin(("true", "false", "yes", "no"))
    return bool((to_numbers(cells).isna() & ~flags).mean() > 0.5)


def unread_outcome_note(columns: list[str], o: ImportOptions, frame: pd.DataFrame | None = None) -> list[str]:
    """A word when every row is read as a whole play (no rating, type, count or time played was
    named) though the file has columns of outcomes (KuaiSAR's click_cnt, like_cnt): rows shown and
    not clicked would train as plays; or a column of type names (``_unread_type_note``)."""
    # the type column first: beside a rating, it is what gives each row its type
    told = (o.type_col, o.rating_col, o.count_col, o.impressions_col, o.played.col if o.played else None, o.event_type)
    found = [
        c for c in columns if re.fullmatch(_OUTCOME_NAME, c.lower()) and c not in o.keep() and not _text_cells(frame, c)
    ]
    if o.event_type is not None:
        return []
    if not found:
        if any(c is not None for c in told):
            return []
        return _unread_type_note(columns, o, frame) or _unread_tag_note(columns, o, frame)
    shown = ", ".join(map(repr, found[:4])) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    read = [c for c in told if c is not None and c in columns]
    if o.type_col is not None and _text_cells(frame, o.type_col):
        # a column of type names: the outcome columns were made into it (the README's way); but a share or
        # time played (Yambda's played_ratio_pct beside its event_type) is read beside it only by --played-col
        played = [c for c in found if re.fullmatch(_PLAYED_NAME, c.lower())]
        if played and o.played is None:
            return [
                f"column {played[0]!r} not read: every play row is imported as a whole play, a positive however "
                f"little of the item it took; --played-col {played[0]} (with --played-unit) reads it, and short "
                "plays become skips"
            ]
        return []
    if read:  # one outcome read, others beside it not (NCM's isClick beside isLike, isShare)
        return [
            f"column{'s' if len(found) > 1 else ''} {shown} not read beside {read[0]!r}, which alone gives each "
            "row's type; several 0/1 or count columns become one type column first, the strongest outcome last "
            "(README, 'A row with several 0/1 outcome columns')"
        ]
    if any(c is not None for c in told):
        return []
    return [
        f"column{'s' if len(found) > 1 else ''} {shown} not read: every row is imported as a whole play; "
        f"{_click_reading(found, frame)}--rating-col, --count-col or --played-col reads one, and several 0/1 or "
        "count columns become one type column first (README, 'A row with several 0/1 outcome columns')"
    ] + _unread_type_note(columns, o, frame)


#: a column of words a user attached to an item (MovieLens' tags.csv, Last.fm's user_taggedartists)
_TAG_NAME = r"(?:user_?)?tags?(?:_?(?:name|value|text))?"


def _unread_tag_note(columns: list[str], o: ImportOptions, frame: pd.DataFrame | None) -> list[str]:
    """A word for a column of free-text tags while every row is imported as a whole play: MovieLens'
    ``boring`` would train as a positive as strong as a five-star rating."""
    if frame is None:
        return []
    for col in columns:
        if (
            not re.fullmatch(_TAG_NAME, col.lower())
            or col in o.keep()
            or col not in frame
            or not _text_cells(frame, col)
        ):
            continue
        words = _filled_cells(frame[col], 2_000).unique()
        shown = ", ".join(repr(w) for w in words[:3]) + (", …" if len(words) > 3 else "")
        return [
            f"column {col!r} ({shown}) not read: every row is imported as a whole play, a positive whatever the tag "
            "says; beside a ratings file of the same users, leave the tags out, or say what a tag means with --type "
            "(README, 'Bring your own data')"
        ]
    return []


#: a column name of a verdict on the item, yes or no (Steam's recommended, a review's voted_up)
#: (a 0/1 ``like`` is no verdict: its 0 is "did not like", not a thumbs-down)
_VERDICT_NAME = r"(?:is_?)?(?:recommend|recommended|voted_?up|thumbs_?up)"
#: a flag of a skip, or of its absence (Spotify's sequential-skip log: skip_1 … skip_3, not_skipped)
_SKIP_FLAG_NAME = r"(?:is_?)?(?:skip|skipped)(?:_?[1-9])?(?:_?(?:flag|bool))?"
_NOT_SKIPPED_NAME = r"(?:is_?)?(?:not|non)_?skip(?:ped)?(?:_?(?:flag|bool))?"


def _click_reading(found: list[str], frame: pd.DataFrame | None) -> str:
    """How a 0/1 click column reads, when the outcomes include one: a row shown and not clicked is an
    impression, not a rating of 0 (``--rating-col`` would make it a skip, an explicit dislike); and a
    yes/no verdict (Steam's ``recommended``) is a like or a skip."""
    for pattern, mapping in ((CLICK_NAME, "1=play,0=impression"), (NON_CLICK_NAME, "0=play,1=impression")):
        col = next((c for c in found if re.fullmatch(pattern, c.lower())), None)
        if col is None or frame is None or col not in frame:
            continue
        cells = _filled_cells(frame[col])
        if len(cells) and bool(to_numbers(cells).isin([0, 1]).all()):
            return (
                f"--type-col {col} --type-map {mapping} reads each row shown and not clicked as an impression "
                "(the other outcome columns unread); "
            )
    for pattern, yes, no, what in (
        (_VERDICT_NAME, "like", "skip", "verdict"),
        # a skip flag's "no" is a play whose value nothing else gives: a positive, as any play of a log of plays
        (_SKIP_FLAG_NAME, "skip", "play", "skip"),
        (_NOT_SKIPPED_NAME, "play", "skip", "skip"),
    ):
        if frame is None:
            break
        # the flags the sample fills; of graded skip flags (Spotify's skip_1 … skip_3, from played very briefly
        # to most of it) the middle one, the challenge's own target; one flag alone is itself
        matched = [c for c in found if re.fullmatch(pattern, c.lower()) and c in frame and len(_filled_cells(frame[c]))]
        if not matched:
            continue
        col = matched[len(matched) // 2] if pattern == _SKIP_FLAG_NAME else matched[0]
        cells = _filled_cells(frame[col])
        if bool(cells.str.lower().isin(("true", "false")).all()):
            return f"--type-col {option_value(col)} --type-map true={yes},false={no} reads each {what}; "
        if bool(to_numbers(cells).isin([0, 1]).all()):
            return f"--type-col {option_value(col)} --type-map 1={yes},0={no} reads each {what}; "
    return ""


#: a context cell written as a hash or a long code (Twitter's hashed languages): no device or locale as such
_CODED_CONTEXT = re.compile(r"[0-9A-Fa-f]{16,}|\d+")


def _coded(frame: pd.DataFrame | None, col: str) -> str | None:
    """The first cell of ``col``, when its cells are codes or hashes rather than names."""
    if frame is None or col not in frame:
        return None
    cells = _filled_cells(frame[col])
    if cells.empty or not cells.str.fullmatch(_CODED_CONTEXT).all():
        return None
    return str(cells.iloc[0])


def unread_context_notes(columns: list[str], o: ImportOptions, frame: pd.DataFrame | None = None) -> list[str]:
    """A word for a device or locale column the import was not told to read: every event then
    carries ``unknown``, and cohort popularity has one cohort."""
    given = {"device": o.device_col, "locale": o.locale_col}
    notes = []
    found: dict[str, str] = {}
    for kind, names in CONTEXT_NAMES.items():
        if given[kind] is None and (col := next((c for c in columns if c.lower() in names), None)):
            found[kind] = col
            if (code := _coded(frame, col)) is not None:  # read as it stands, each code would be "other"
                notes.append(
                    f"column {col!r} is not read: every event's {kind} is unknown; its cells are codes "
                    f"({code[:20]!r}, …), so --{kind}-col {col} needs --{kind}-map CODE={kind.upper()},… to name them"
                )
                continue
            notes.append(f"column {col!r} is not read: every event's {kind} is unknown; --{kind}-col {col} reads it")
    open_kinds = [k for k in given if given[k] is None and k not in found]
    either = next((c for c in columns if c.lower() in _EITHER_NAMES and c not in given.values()), None)
    if open_kinds and either is not None:
        options = " or ".join(
            f"--{k}-col {either} if it names {'devices' if k == 'device' else 'countries or languages'}"
            for k in open_kinds
        )
        verb = "is" if len(open_kinds) == 1 else "are"
        notes.append(
            f"column {either!r} is not read: every event's {' and '.join(open_kinds)} {verb} unknown; {options}"
        )
    return notes


def _count_repeats(events: pd.DataFrame, o: ImportOptions, tally: _Tally) -> None:
    """Adds to ``tally`` the rows of ``events`` that repeat an earlier one's user, item, time and
    type. ``events`` is the whole file, or one stretch of time of it: a repeat shares its time, so
    never crosses stretches, and both ways count alike."""
    if o.time_col is None or events.empty:  # without times every row gets its own stamp: no repeat to tell
        return
    ts = events["timestamp"]
    wall = wall_clock(ts, o.time_zone)
    # where every time is a midnight of the file's clock, the times are dates alone: two events of a day are
    # no copies. A file with times of day (or a time offset added) has real midnights too (Dunnhumby's 0000)
    present = ts.notna().to_numpy()
    # rows without a user or an item are quarantined, not imported twice (Avazu's placeholder device read as
    # missing: thousands of rows alike once the id is gone)
    present &= (events["user_id"].notna() & events["item_id"].notna()).to_numpy()
    timed = present & (wall != wall.dt.normalize()).to_numpy()
    if o.time_offset_col is not None or timed.any():
        timed = present
    repeats = events[["user_id", "item_id", "timestamp", "type"]].duplicated().to_numpy()
    tally.repeated += int((repeats & timed).sum())
    tally.repeated_dated += int((repeats & present & ~timed).sum())


def _repeat_notes(tally: _Tally) -> list[str]:
    said = (
        (
            tally.repeated,
            "user, item, time and type exactly: each is imported as an event of its own (if the log wrote some "
            "events twice, drop the copies first; rows that differ in a column the import does not read, a tag "
            "or a context, are no copies)",
        ),
        (
            tally.repeated_dated,
            "user, item, type and date (a time of midnight, read as a date alone): each is imported as an event of "
            "its own, as a basket's lines or a day's plays are (if the log wrote some rows twice, drop the copies "
            "first)",
        ),
    )
    return [
        f"{n:,} row{'s' if n != 1 else ''} repeat{'s' if n == 1 else ''} an earlier row's {what}"
        for n, what in said
        if n
    ]


#: an id of two zeros or more alone (Brightkite's check-ins at location 00000000000000000000000000000000,
#: a nil UUID) or a small negative number (-1; Yahoo!'s artists -99 "Unknown" and -100 "Not Applicable"):
#: most often "no item", which would train as the most popular one. A lone "0" is the first id of many a
#: catalogue numbered from zero; a long negative one is a signed hash
PLACEHOLDER_ID = r"^(?:-?0(?:-?0)+-?|-[1-9]\d{0,3})$"
#: … said when it holds at least this share of the rows
PLACEHOLDER_SHARE = 0.005


#: one item id holding more than this share of the rows, among at least BUSIEST_MIN_ITEMS, is said: Avazu's
#: site_id 85f751fd stands for "an app, no site" on a third of its rows
BUSIEST_ITEM_SHARE = 0.3
BUSIEST_MIN_ITEMS = 20
#: … or this share, when it is also BUSIEST_APART_RATIO times the next busiest item's (popularity falls
#: off gradually, a placeholder stands apart)
BUSIEST_ITEM_APART_SHARE = 0.1


def _placeholder_notes(o: ImportOptions, tally: _Tally) -> list[str]:
    notes = []
    top = tally.item_rows.most_common(2)
    if len(tally.item_rows) >= BUSIEST_MIN_ITEMS and tally.rows and top[0][0] not in tally.placeholder_items:
        (item, n), (_, second) = top
        share = n / sum(tally.item_rows.values())
        if share > BUSIEST_ITEM_SHARE or (share >= BUSIEST_ITEM_APART_SHARE and n >= BUSIEST_APART_RATIO * second):
            notes.append(
                f"item id {item!r} holds {n:,} rows ({share:.0%}; the next busiest {second:,}): if it stands for "
                "'no item' (a placeholder site or app, a missing id), blank it or drop those rows before importing, "
                f"or it trains as the most popular item and is ranked for everyone; {o.item_col!r} is imported as it "
                "stands"
            )
    for item, n in tally.placeholder_items.most_common(3):
        if tally.rows and n >= PLACEHOLDER_SHARE * tally.rows:
            notes.append(
                f"item id {item!r} holds {n:,} rows ({n / tally.rows:.1%}): if it stands for 'no item' (a place "
                "or track not known), blank it or drop those rows before importing, or it trains as a popular "
                f"item and is ranked for everyone; {o.item_col!r} is imported as it stands"
            )
    return notes


def _itemless_notes(o: ImportOptions, tally: _Tally) -> list[str]:
    if not (n := tally.itemless_named):
        return []
    where = f"; its text is read from {o.query_col!r}" if o.query_col else ""
    return [
        f"{n:,} search or feature_use row{'s' if n != 1 else ''} had a value in {o.item_col!r}: not read as an item "
        f"(a search or a feature use names no item{where})"
    ]


#: a column's last name that says it holds a search's text (GA4's search_term, Segment's properties.query)
_QUERY_NAMES = frozenset({"query", "search_term", "search_query", "searchterm", "q", "keyword", "keywords", "term"})


def require_search_text(o: ImportOptions, whole: _WholeFile, names: pd.Series | None, columns: list[str]) -> None:
    """Refuse, before anything is written, rows read as searches or feature uses when no --query-col
    names their text: the contract needs it, so every one of them would be quarantined, and a second
    import of the same file with the option added is refused as one with other options."""
    if o.query_col is not None or o.event_type is not None:
        return  # ``--type search`` without a --query-col is refused by ``ImportOptions.check``
    textless = np.isin(np.asarray(whole.types, dtype=object), list(NO_ITEM_TYPES))
    if not textless.any():
        return
    kinds = pd.Series(np.asarray(whole.types, dtype=object)[textless]).value_counts()
    counted = ", ".join(f"{n:,} {kind}" for kind, n in kinds.items())
    named = ""
    if names is not None and o.type_col is not None:
        shown = names[textless].astype("string").fillna("(empty)").value_counts().head(4)
        named = " (" + ", ".join(repr(str(k)) for k in shown.index) + ")"
    col = next((c for c in columns if c.lower().rsplit(".", 1)[-1] in _QUERY_NAMES and c not in o.keep()), None)
    reads = (
        f"{col!r} looks like their text: --query-col {option_value(col)} reads it"
        if col is not None
        else "--query-col names the column that holds their text (the item column itself where the log keeps "
        f"it there, as Trivago's reference does: --query-col {option_value(o.item_col)})"
    )
    ignore = (
        f"; or leave them out with --type-map NAME=ignore for each of their names{named}"
        if o.type_col is not None and o.type_col != CLICK_TYPE_COL
        else ""
    )
    raise ImportFormatError(
        f"{counted} row{'s' if int(kinds.sum()) != 1 else ''}, and no --query-col: a search needs its text and a "
        f"feature use its name, so each would be quarantined (missing_query); {reads}{ignore}"
    )


def _context_notes(o: ImportOptions, tally: _Tally) -> list[str]:
    notes = []
    for kind, col, setting, mapping in (
        ("device", o.device_col, "SETLIST_CONTEXT_DEVICES", "--device-map 1=desktop,2=mobile"),
        ("locale", o.locale_col, "SETLIST_CONTEXT_LOCALE_PATTERN", "--locale-map 1=br,Catalonia=es_ES"),
    ):
        if col is None:
            continue
        notes.append(f"{kind} from {col!r} (lower-cased where only that fits what a request may name)")
        if others := sorted(tally.context.other[kind]):
            shown = ", ".join(map(repr, others[:5])) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            notes.append(
                f"{kind} values outside what a request may name read as 'other': {shown} ({mapping} names them as "
                f"a request would, or {setting} widens what it may name, for serving and imports alike)"
            )
    if o.locale_col is not None and (note := countries_note(tally.context)):
        notes.append(note)
    return notes


def _chunk_events(
    cells: list[pd.DataFrame], rows: np.ndarray, whole: _WholeFile, o: ImportOptions, tally: _Tally
) -> pd.DataFrame:
    """The events of the file's rows at places ``rows``, added to ``tally``. ``cells`` holds the rows'
    frame, which is taken out of it and freed once its columns are read, before the events are built."""
    raw = cells.pop()
    ignored = whole.types[rows] == IGNORED
    if ignored.any():  # rows of a kind the user left out: counted by name, never built into events
        assert o.type_col is not None  # only a type column's names map to it
        names = raw[o.type_col][ignored].astype("string").fillna("(empty)")
        tally.ignored.update({str(k): int(v) for k, v in names.value_counts().items()})
        raw, rows = raw[~ignored].reset_index(drop=True), rows[~ignored]
    n = len(raw)
    users, item_ids = clean_ids(raw[o.user_col]), clean_ids(raw[o.item_col])
    if item_ids.isna().any():  # which of them were spelled out: said once for the file
        tally.item_tokens.update(missing_token_counts(raw[o.item_col][item_ids.isna().to_numpy()]))
    ts = whole.ts.iloc[rows].reset_index(drop=True)
    # the raw time is a column of its own: the frame's cells are freed before the events are built
    raw_time = (
        raw[o.time_col].copy() if o.time_col is not None else pd.Series([untimed_key(whole.source)] * n, dtype=object)
    )
    types = whole.types[rows]
    consent = tuple(_consent_values(raw, col, o.assume_consent) for col in (o.consent_col, o.analytics_consent_col))
    no_item = np.isin(types.astype(object), list(NO_ITEM_TYPES))
    key_items = item_ids  # the cell as the file has it, for the event's identity
    if no_item.any():  # a search or a feature use names no item: "" is the contract's "none"
        # whatever the item cell holds there (often the search text again) is no item of the catalogue
        tally.itemless_named += int((no_item & item_ids.fillna("").str.strip().ne("").to_numpy()).sum())
        item_ids = item_ids.where(~no_item, "")
    query = (
        raw[o.query_col].astype("string").astype(object).where(raw[o.query_col].notna(), None) if o.query_col else None
    )
    context = (
        context_values(raw, o.device_col, "device", tally.context, o.device_map) if o.device_col else UNKNOWN,
        context_values(raw, o.locale_col, "locale", tally.context, o.locale_map) if o.locale_col else UNKNOWN,
    )
    if whole.users is not None:  # the users file's, where the row gives none
        context = (whole.users.fill("device", users, context[0]), whole.users.fill("locale", users, context[1]))
    played_unread = None if whole.played_unread is None else whole.played_unread[rows]
    missing_id = (users.isna() | (item_ids.isna() & ~no_item)).to_numpy(dtype=bool)
    unread = _unread_cells(raw, o, ts, types, played_unread, missing_id)
    del raw  # the file's cells: every column the events need is its own now
    # a key made of names (``item_key``) is no list, whatever brackets a name has
    if not tally.rows and o.list_col is None and not o.item_parts and (note := list_cells_note(item_ids, o.item_col)):
        tally.notes.append(note)
    events = _events(
        raw_time,
        users,
        item_ids,
        ts,
        types,
        whole.value[rows],
        (consent[0], consent[1]),
        query,
        None if whole.weight is None else whole.weight[rows],
        whole.sessions[rows],
        copies=None if whole.copies is None else whole.copies[rows],
        context=context,
        unread=unread,
        key_items=key_items,
        kind=o.event_type,
        other_copies=None if whole.other_copies is None else whole.other_copies[rows],
    )
    tally.rows += n
    tally.users.update(users.dropna().unique().tolist())
    tally.items.update(i for i in item_ids.dropna().unique().tolist() if i)
    if not o.item_parts:
        zeros = item_ids.dropna()
        zeros = zeros[zeros.str.fullmatch(PLACEHOLDER_ID)]
        tally.placeholder_items.update(zeros.value_counts().to_dict())
    # among the rows that will be events: a placeholder device's rows, quarantined, hold no popular item
    named = item_ids[~missing_id & (item_ids != "").to_numpy()]
    tally.item_rows.update(named.value_counts().to_dict())
    # the range of the rows that will be events: not of rows quarantined for a missing id or type
    valid = ts[~missing_id & pd.notna(types)].dropna()
    valid = valid[valid > EPOCH]  # the contract refuses epoch zero and earlier (HetRec's stray 0 and 1956 stamps)
    if len(valid):
        lo, hi = valid.min(), valid.max()
        tally.start = lo if tally.start is None else min(tally.start, lo)
        tally.end = hi if tally.end is None else max(tally.end, hi)
        tally.years.update({int(y): int(n) for y, n in valid.dt.year.value_counts().items()})
    # the types of the rows that will be events: rows quarantined for a missing id or time are said apart
    # (the events are in time order, the masks in the file's)
    kept_types = pd.Series(np.asarray(types, dtype=object))[~missing_id & ts.notna().to_numpy(dtype=bool)]
    tally.types.update({str(k): int(v) for k, v in kept_types.value_counts().items()})
    tally.problem("missing or unparseable timestamp", int(ts.isna().sum()))
    # ids blanked by --missing-user are counted here too: said so, since the file held them
    user_cause = (
        f"empty {' or '.join(map(repr, o.user_parts))} (a part of the user's key)" if o.user_parts else "empty user id"
    )
    if o.missing_users:
        user_cause += ", or one --missing-user names"
    tally.problem(user_cause, int(users.isna().sum()))
    item_cause = f"empty {' or '.join(map(repr, o.item_parts))} (the item's name)" if o.item_parts else "empty item id"
    tally.problem(item_cause, int(item_ids.isna().sum()))
    if no_item.any():
        tally.problem("search or feature_use without text", int((no_item & ~_has_text(query, n)).sum()))
    if o.consent_col or o.analytics_consent_col:
        tally.problem("bad consent value", int(sum(_bad_flags(events[f]) for f in FLAGS)))
    if o.rating_col is not None and o.type_col is None:
        tally.problem("unparseable rating", int(pd.isna(types).sum()))
    elif o.count_col is not None:
        tally.problem("a play count that is not a number above 0", int(pd.isna(types).sum()))
    elif o.type_col is not None:
        bad_played = 0 if played_unread is None else int(played_unread.sum())
        tally.problem("empty or unknown type", int((~events["type"].isin(EVENT_TYPES)).sum()) - bad_played)
    if played_unread is not None:
        tally.problem("a time played that is not a number", int(played_unread.sum()))
    return events


def _named_items_note(o: ImportOptions, tally: _Tally, columns: list[str]) -> list[str]:
    """A word when many rows lack an item id and the log names its items by artist and title too
    (Last.fm's track ids are empty on a tenth of its rows): they can be the key instead."""
    empty = tally.problems.get("empty item id", 0)
    if o.item_parts or o.list_col is not None or not tally.rows or empty < EMPTY_IDS_NAMED * tally.rows:
        return []
    names = name_columns(columns, o.item_col)
    if names is None:
        return []
    return [
        f"{empty:,} rows ({empty / tally.rows:.0%}) have no {o.item_col!r}: --item-col {','.join(names)} names "
        "each item by its artist and title together instead, and keeps them (README, 'A log with no item id')"
    ]


#: a field's last name that lists the items of one event (Segment's properties.products on an order,
#: GA4's items, a shop's line_items)
_LISTED_ITEMS = frozenset({"products", "items", "line_items", "lineitems", "order_items", "cart_items"})


def _listed_items_note(o: ImportOptions, tally: _Tally, columns: list[str]) -> list[str]:
    """A word when rows lack an item id and a column beside it lists items: an order's products, each
    of which is an item of its own, are quarantined with the order otherwise."""
    empty = tally.problems.get("empty item id", 0)
    if not empty or o.list_col is not None:
        return []
    listed = [c for c in columns if c.lower().rsplit(".", 1)[-1] in _LISTED_ITEMS and c not in o.keep()]
    if not listed:
        return []
    return [
        f"{empty:,} rows have no {o.item_col!r} (quarantined); if {listed[0]!r} lists their items (an order's "
        "products), give each entry a row of its own first, its item id beside the event's fields (README, "
        "'Product analytics exports')"
    ]


#: the share of a log's rows whose years, together, are its bulk; rows of years this many years or more away
#: from any year of the bulk or reached from it are stray (Taobao's stamps of 1970, 2008 and 2020 in a log of
#: nine days of 2017)
BULK_SHARE = 0.99
STRAY_YEARS = 3


def _stray_years_note(tally: _Tally) -> list[str]:
    """A word for the few rows dated years away from the rest of a log: a time of 0 or a few seconds
    stands for "unknown" in many exports, a wrong clock for a stray year. They are imported as dated,
    and every span and window measured over the log stretches to them."""
    total = sum(tally.years.values())
    if not total:
        return []
    years = sorted(tally.years)
    best: tuple[int, int] = (years[0], years[-1])
    for i, first in enumerate(years):  # the narrowest run of years holding the bulk
        held = 0
        for last in years[i:]:
            held += tally.years[last]
            if held >= BULK_SHARE * total:
                if last - first < best[1] - best[0]:
                    best = (first, last)
                break
    this_year = _now().year  # rows of later years are quarantined as future times, and said so
    # the bulk reaches out year by year: a log growing from a thin start (Amazon's early reviews) is all bulk,
    # and only years past a gap of STRAY_YEARS - 1 empty years or more are stray
    first, last = best
    while any(first - k in tally.years for k in range(1, STRAY_YEARS)):
        first = max(first - k for k in range(1, STRAY_YEARS) if first - k in tally.years)
    while any(last + k in tally.years for k in range(1, STRAY_YEARS)):
        last = min(last + k for k in range(1, STRAY_YEARS) if last + k in tally.years)
    stray = {y: n for y, n in tally.years.items() if (y < first or y > last) and y <= this_year}
    if not stray:
        return []
    n = sum(stray.values())
    shown = ", ".join(f"{y} {c:,}" for y, c in sorted(stray.items())[:6]) + (", …" if len(stray) > 6 else "")
    bulk = f"{best[0]}" if best[0] == best[1] else f"{best[0]}–{best[1]}"
    return [
        f"{n:,} row{'s are' if n != 1 else ' is'} dated years away from the rest ({shown}; {BULK_SHARE:.0%} of the "
        f"rows fall in {bulk}): a time of 0 or a few seconds stands for 'unknown' in many exports. They are imported "
        "as dated, and the validation's and training's spans stretch to them: drop them first if they are no real "
        "times"
    ]


#: rows without an item id, as a share of the file, above which a log that names its items is told so
EMPTY_IDS_NAMED = 0.01


def _summary(
    source: Path,
    o: ImportOptions,
    tally: _Tally,
    whole: _WholeFile,
    file_notes: list[str],
    malformed: list[int],
    columns: list[str],
) -> tuple[pd.DataFrame | None, ImportSummary]:
    seen = pd.Series(sorted(tally.items), dtype=object)
    files = o.item_files
    loaded = whole.catalogue
    if loaded is None and files:
        loaded = load_item_files(files, o.item_id_col, o.items_layout, o.item_columns, o.items_key_fallback)
    several = items_label(files) if len(files) > 1 else None  # then each note names its file
    item_frame, catalog_rows, missing, item_notes = item_frame_for(seen, loaded, o.item_id_col, several)
    # ids the items file describes (its metadata wins); the rest are placeholders for seen items
    described = frozenset(item_frame["item_id"].iloc[: catalog_rows or 0]) if files else frozenset()
    summary = ImportSummary(
        source=source.name,
        rows=tally.rows,
        users=len(tally.users),
        items=len(tally.items),
        start=tally.start,
        end=tally.end,
        type_counts=dict(tally.types),
        problems=tally.problems,
        ignored=dict(tally.ignored),
        catalog_rows=catalog_rows,
        catalog_files=max(len(files), 1),
        items_without_metadata=missing,
        consent=consent_basis(o.consent_col, o.analytics_consent_col, o.assume_consent),
        described_items=described,
        read_notes=[
            f"{source.name}: {n}"
            for n in [
                *file_notes,
                *whole.notes,
                *tally.notes,
                *_repeat_notes(tally),
                *_stray_years_note(tally),
                *_itemless_notes(o, tally),
                *_context_notes(o, tally),
                *_named_items_note(o, tally, columns),
                *_listed_items_note(o, tally, columns),
                *_item_column_notes(o, tally),
                *_placeholder_notes(o, tally),
            ]
        ]
        + [n if several else f"{items_label(files)}: {n}" for n in item_notes]
        + [f"{o.users.path.name}: {n}" for n in (whole.users.notes if whole.users else []) if o.users is not None],
        malformed_lines=malformed,
    )
    return item_frame, summary


def load_interactions(source: Path, **options: Any) -> tuple[pd.DataFrame, pd.DataFrame | None, ImportSummary]:
    """Read interactions and (optionally) item metadata into raw events and an item frame.
    ``options`` are the fields of ``ImportOptions``:

    ``time_unit`` is ``"s"``, ``"ms"``, ``"us"`` or ``"ns"`` for epoch numbers, ``None`` for datetime strings
    (and dates written as YYYYMMDD numbers).
    Without ``type_col`` a rating becomes like (≥ 0.8 of the top rating), skip (≤ 0.4) or play;
    without either every row is a full play. ``type_map`` maps the type column's own names onto
    event types (``import_values.parse_type_map``). ``count_col`` names play counts (a log with one
    row per user and item): each row is one play standing for its count (``counted_plays``).
    ``unrated`` is the rating value that means "not rated" (a play of unknown value).

    Consent: ``consent_col`` (personalization) and ``analytics_consent_col`` name columns of flags;
    ``assume_consent`` grants both where no column says otherwise, for data collected under another
    legal basis. Without any of them the rows carry no flag, and ``SETLIST_CONSENT_DEFAULT`` decides.

    ``query_col`` names the text of ``search`` rows (and the feature name of ``feature_use`` rows,
    which, like searches, need no item id).

    ``item_columns`` names the items file's columns by role (``import_items.parse_item_columns``).

    ``layout`` and ``items_layout`` say how delimited text is laid out (separator, header names,
    encoding); whatever they leave open is read off the file and reported in the summary.

    ``time_col=None``: the file has no times (many public ratings sets); each user's rows are
    stamped in a stable shuffled order (in file order with ``keep_file_order``), users interleaved,
    ending at ``now`` (``file_order_times``), and the summary says so. With ``rows_in_time_order`` the
    file's order across users is its time order instead: each row a step after the one before
    (``row_order_times``).
    A file too big to hold whole is read in chunks by ``InteractionStream`` instead, with the same
    options and the same events.
    """
    o = ImportOptions(**options)
    o.check()
    source = Path(source)
    table = read_table(source, "interactions", o.layout, keep=o.keep())
    require_columns(table.frame, o.wanted(), source, "--names", table.dropped)
    require_plain_ids(table.frame, o)
    if o.impressions_col is not None:
        require_lists(empty_lists(table.frame[o.impressions_col]), len(table.frame), o.impressions_col)
    columns = [*map(str, table.frame.columns), *table.dropped]
    probe = with_unread_sample(table.frame, source, table.dropped)
    table.notes += (
        unread_context_notes(columns, o, probe)
        + unread_outcome_note(columns, o, probe)
        + negative_amount_note(columns, o, probe)
        + unread_time_note(columns, o, probe, table.dropped)
        + unread_session_note(columns, o)
    )
    del probe
    lines = len(table.frame)
    raw = o.reshaper()(table.frame.reset_index(drop=True))
    table.frame = pd.DataFrame()  # one copy of the file's cells alive, not two
    whole = _whole_file(raw[o.whole_file_columns()], o, o.now or _now(), source)
    require_search_text(o, whole, raw[o.type_col] if o.type_col is not None else None, columns)
    keys = row_keys(raw, o, source.name)
    whole.copies, whole.source = copy_ordinals(keys), source.name
    if o.event_type is None:  # the ordinals of the ids read the other way (a --type file's own have no other)
        whole.other_copies = other_ordinals(keys, row_keys(raw, o, source.name, item_cell=False), whole.types)
    del keys
    whole.notes += o.reshape_notes(lines, len(raw))
    tally = _Tally()
    cells = [raw]
    del raw
    events = _chunk_events(cells, np.arange(len(whole.ts)), whole, o, tally)
    _count_repeats(events, o, tally)
    item_frame, summary = _summary(source, o, tally, whole, table.notes, table.malformed, columns)
    return events, item_frame, summary


#: rows parsed at a time while an import in chunks reads its file (each pass reads it all)
SCAN_ROWS = 1_000_000


def rows_per_line(source: Path, o: ImportOptions, sample: int = 2_000) -> float:
    """How many rows the import makes of each of the file's rows, from its first ``sample``: 1,
    unless its cells list several items (an impression log's line is dozens of events)."""
    if o.list_col is None or not streams(source):
        return 1.0
    try:
        head = next(iter(TableStream(source, "interactions", o.layout, o.keep(), sample)), None)
    except (ImportFormatError, ArchiveError):
        return 1.0  # said by the import itself, with its context
    if head is None:
        return 1.0
    if o.user_parts and set(o.user_parts) <= set(head.columns):  # the reshape repeats the user's key
        head = with_key(head, o.user_parts)
    return expansion(head, Reshape(o.list_col, False, o.user_col, o.history_col))


def time_buckets(ts: pd.Series, size: int) -> tuple[np.ndarray, int]:
    """Each row's bucket (0, 1, …) by time, buckets of about ``size`` rows (rows of one instant share
    one), rows without a time in the last; and how many buckets there are."""
    n = len(ts)
    count = max(1, -(-n // max(size, 1)))
    ns = ts.to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
    missing = ts.isna().to_numpy()
    ns[missing] = np.iinfo(np.int64).max
    if count == 1:
        return np.zeros(n, dtype=np.int32), 1
    ordered = np.sort(ns)
    bounds = ordered[np.arange(1, count) * n // count]
    return np.searchsorted(bounds, ns, side="right").astype(np.int32), count


class InteractionStream:
    """``load_interactions`` for a file too big to hold whole: iterating yields the events about
    ``chunk_rows`` at a time, each chunk one stretch of time in time order; ``item_frame`` and
    ``summary`` are set once it is exhausted. The events are those of an import at once.

    The first pass keeps only the columns whose meaning depends on other rows
    (``ImportOptions.whole_file_columns``: users and times for sessions, the rating scale, play
    counts, an untimed file's stamps), compactly, and computes those values and each row's time for
    every row. Then each stretch of time is one more pass over the file, building the events of its
    rows only. Chunks cut by place in the file would each span the whole history of a file sorted by
    user (most public logs are), and each would add a file to every day of the event log; by time,
    each day is written about as often as by an import at once, at the price of a read of the file
    per chunk."""

    def __init__(
        self,
        source: Path,
        options: ImportOptions,
        chunk_rows: int,
        progress: Callable[[str], None] | None = None,
        *,
        per_line: float = 1.0,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        options.check()
        self.source = Path(source)
        self.options = options
        self.chunk_rows = max(int(chunk_rows), 1)
        # chunk_rows counts the rows the import makes; a line of listed items makes ``per_line``
        scan = max(1, int(min(self.chunk_rows, SCAN_ROWS) / max(per_line, 1.0)))
        self.stream = TableStream(self.source, "interactions", options.layout, options.keep(), scan)
        self.progress = progress or (lambda _message: None)
        #: what the user should see while the pass goes on, not as the next progress line replaces it
        self.warn = warn or self.progress
        self._unread: list[str] = []  # device or locale columns left unread, said as an import at once says them
        self._columns: list[str] = []  # the file's columns, read or not
        self.chunks = 0  # known after the first pass
        self.item_frame: pd.DataFrame | None = None
        self.summary: ImportSummary | None = None

    def _first_pass(self) -> _WholeFile:
        o = self.options
        cols = o.whole_file_columns()
        parts: list[pd.DataFrame] = []
        keys: list[np.ndarray] = []
        itemless: list[np.ndarray] = []
        rows = lines = empty = 0
        warned = False
        reshape = o.reshaper()
        for chunk in self.stream:
            if not parts:
                require_columns(chunk, o.wanted(), self.source, "--names", self.stream.dropped)
                require_plain_ids(chunk, o)
                # a JSON stream knows the columns it left out only at its end: the sample finds them
                probe = with_unread_sample(chunk, self.source, self.stream.dropped or None)
                unread = self.stream.dropped or [str(c) for c in probe.columns if c not in chunk.columns]
                self._columns = [*map(str, chunk.columns), *unread]
                self._unread = (
                    unread_context_notes(self._columns, o, probe)
                    + unread_outcome_note(self._columns, o, probe)
                    + negative_amount_note(self._columns, o, probe)
                    + unread_time_note(self._columns, o, probe, unread)
                    + unread_session_note(self._columns, o)
                )
                del probe
            lines += len(chunk)
            if o.impressions_col is not None:
                before = empty
                empty += empty_lists(chunk[o.impressions_col])
                # judged on the whole file at the end of this pass (a file's head may differ from the rest),
                # but a long pass heading for that refusal says so at once, so the user can stop it early
                said = empty_lists_warning(before, empty, lines - len(chunk), lines, o.impressions_col)
                if said and not warned:  # once: a share hovering about the bound would say it at every crossing
                    self.warn(said)
                    warned = True
            shaped = reshape(chunk)
            keys.append(row_keys(shaped, o, self.source.name))  # 8 bytes a row: each event's ordinal among its copies
            if o.event_type is None:  # and 8 more for its ordinal read the other way (``other_ordinals``)
                itemless.append(row_keys(shaped, o, self.source.name, item_cell=False))
            narrow = shaped[cols]
            del shaped
            # text cells as Arrow strings: a fraction of the memory of Python strings
            narrow = narrow.astype({c: "string[pyarrow]" for c in cols if narrow[c].dtype == object})
            parts.append(narrow)
            rows += len(narrow)
            self.progress(f"first pass: {rows:,} rows read")
        if o.impressions_col is not None:  # the whole file's, as an import at once counts them
            require_lists(empty, lines, o.impressions_col)
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
        del parts
        self.progress(f"first pass: sessions and values of {rows:,} rows")
        whole = _whole_file(frame, o, o.now or _now(), self.source)
        require_search_text(o, whole, frame[o.type_col] if o.type_col is not None else None, self._columns)
        whole.notes += o.reshape_notes(lines, rows)
        every = np.concatenate(keys) if keys else np.array([], dtype=np.uint64)
        whole.copies = copy_ordinals(every)
        if o.event_type is None:
            whole.other_copies = other_ordinals(every, np.concatenate(itemless) if itemless else every, whole.types)
        del every
        whole.source = self.source.name
        return whole

    def __iter__(self) -> Iterator[pd.DataFrame]:
        o = self.options
        whole = self._first_pass()
        bucket, self.chunks = time_buckets(whole.ts, self.chunk_rows)
        tally = _Tally()
        for b in range(self.chunks):
            parts: list[pd.DataFrame] = []
            first_row = 0
            # a key of several columns is one per row: made for this stretch's rows only, after they are picked
            row_wise = bool(o.item_parts or o.user_parts or (o.time_parts and o.list_col is None))
            reshape = o.reshaper()
            for chunk in self.stream if row_wise else map(reshape, self.stream):  # the first pass's rows, again
                n = len(chunk)
                mine = np.flatnonzero(bucket[first_row : first_row + n] == b)
                if first_row + n > len(bucket):  # the file changed between the passes
                    break
                if len(mine):
                    picked = chunk.iloc[mine].reset_index(drop=True) if len(mine) < n else chunk
                    cells = [reshape(picked) if row_wise else picked]
                    del chunk, picked
                    parts.append(_chunk_events(cells, first_row + mine, whole, o, tally))
                first_row += n
                self.progress(f"chunk {b + 1} of {self.chunks}: {first_row:,} rows read")
            if first_row != len(bucket):
                raise ImportFormatError(
                    f"{self.source.name} gave {len(bucket):,} rows on the first pass and a different number on "
                    "a later one: was it changed during the import? Import it again once it is complete"
                )
            if not parts:  # rows of one instant share a stretch: a stretch may be left with none
                continue
            events = pd.concat(parts, ignore_index=True)
            del parts
            # each part is in time order; together in the order of an import at once (ties in file order)
            events = events.sort_values("timestamp", kind="stable", na_position="last", ignore_index=True)
            _count_repeats(events, o, tally)
            yield events
        self.item_frame, self.summary = _summary(
            self.source, o, tally, whole, [*self.stream.notes, *self._unread], self.stream.malformed, self._columns
        )


def _consent_values(raw: pd.DataFrame, column: str | None, assume: bool) -> object:
    """One consent flag for every row: the column's values (an empty cell granted with ``assume``),
    True for all with ``assume``, else None (no flag)."""
    if column is None:
        return True if assume else None
    values = raw[column].astype(object).where(raw[column].notna(), None)
    if assume:
        values = values.map(lambda v: True if v is None or (isinstance(v, str) and not v.strip()) else v)
    return values.to_numpy()


def _bad_flags(values: pd.Series) -> int:
    return int(sum(flag_reason("consent", v) is not None for v in values.tolist()))


def consent_basis(consent_col: str | None, analytics_consent_col: str | None, assume: bool) -> str:
    """The consent choice of an import, in words."""
    parts = []
    if consent_col:
        parts.append(f"personalization from column {consent_col!r}")
    if analytics_consent_col:
        parts.append(f"analytics from column {analytics_consent_col!r}")
    if assume:
        parts.append("assumed granted where the data says nothing (--assume-consent: another legal basis)")
    if not parts:
        return "none in the data: SETLIST_CONSENT_DEFAULT decides for these users"
    return "; ".join(parts)
