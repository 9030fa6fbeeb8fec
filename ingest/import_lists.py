"""Rows whose item cell lists several items, reshaped to one row per item before anything else
reads them.

Two shapes of public logs keep a list in one cell:
- an impression log (MIND's ``behaviors.tsv``): the items shown at one moment, each marked with
  whether it was clicked (``N55689-1 N35729-0``). Each becomes a row of its own: a click a
  ``play``, an item shown and not clicked an ``impression`` (a negative in training);
- a basket or a playlist: items taken together (``A12 B34``), each row then standing for every
  item of its cell with the row's own rating, type or count.

An impression log may also keep each user's earlier clicks, without times, in a history column
(MIND's second-to-last). Those become plays just before the user's first listed item, the newest
last, from the user's first line only (the public log repeats the same history on every line).

The reshape is a pure function of one frame, so a file read in chunks gives, chunk by chunk, the
rows of the whole file read at once; a row keeps its place through ``repeat``, in the cell's order.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ingest.import_files import ImportFormatError
from ingest.item_key import KEY_JOIN

#: how the ids of one cell are separated: spaces, commas, semicolons or pipes (several in a row are one)
SEPARATORS = r"[\s,;|]+"
#: the type column an impression log's click marks become (not a column of the file)
CLICK_TYPE_COL = "__clicked"
#: a click mark, the id's last ``-`` part, as an event type
CLICK_TYPES = {"1": "play", "0": "impression"}
#: seconds a history row is stamped before its user's first listed item (0: not a history row)
BEFORE_COL = "__before_s"


#: cells looked at to tell a column of written lists (``[1, 2]``, JSON's arrays) from plain ids
_PEEK = 50


def _listed(cells: pd.Series) -> bool:
    """The column holds lists as such (JSON arrays read from a JSON file) or written as lists."""
    for v in cells.dropna().head(_PEEK):
        if isinstance(v, (list, tuple, np.ndarray)) or (isinstance(v, str) and v.lstrip().startswith("[")):
            return True
    return False


#: a list printed by NumPy (Amazon-M2's ``['B09W9FND7K' 'B09JSPLN1M']``, wrapped over lines): quoted
#: strings separated by white space alone
_NUMPY_PRINTED = re.compile(r"\[\s*(?:'[^']*'|\"[^\"]*\")(?:\s+(?:'[^']*'|\"[^\"]*\"))+\s*\]")
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


def _elements(v: object, column: str) -> list[str] | None:
    """One cell's ids: a list's elements, a written list parsed (JSON, or a Python literal, never
    run as code), or the cell's text split on SEPARATORS. None for an empty cell."""
    if isinstance(v, str):
        text = v.strip()
        if not text:
            return None
        if text.startswith("[") and text.endswith("]"):
            if _NUMPY_PRINTED.fullmatch(text):
                # NumPy's printing of an array of strings: no commas, so Python would join its
                # adjacent literals ('A' 'B' is 'AB') into one id
                return [a or b for a, b in _QUOTED.findall(text) if (a or b).strip()] or None
            try:
                v = json.loads(text)
            except ValueError:
                try:
                    v = ast.literal_eval(text)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    v = text.strip("[]")
        if isinstance(v, str):
            return [t for t in re.split(SEPARATORS, v.strip()) if t] or None
    if isinstance(v, (list, tuple, np.ndarray)):
        out = []
        for e in v:
            if isinstance(e, dict):  # Steam's lists of {'item_id': …, 'playtime_forever': …}
                raise ImportFormatError(
                    f"cells of {column!r} list records ({', '.join(map(str, list(e)[:4]))}, …), not ids: "
                    "flatten the file to one row per record first (pandas: json_normalize with record_path)"
                )
            if isinstance(e, (list, tuple, np.ndarray)):  # AOTM's [artist, title] pairs: the key of several parts
                parts = [str(p).strip() for p in e if p is not None and str(p).strip()]
                if parts:
                    out.append(KEY_JOIN.join(parts))
            elif e is not None and str(e).strip():
                out.append(str(e).strip())
        return out or None
    return None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else [str(v)]


def split_cells(cells: pd.Series, *, empty_is_none: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ids of every cell in order, and how many each cell holds. An empty cell holds one
    missing id, so its row is still seen, and quarantined for its empty item id; with
    ``empty_is_none`` false it holds none (an empty history). A cell may be a list, or a list
    written out (``['1000', '1001']``, ``[27, 9]``): its elements are the ids, without brackets
    or quotes."""
    nothing: list[str | None] = [None] if empty_is_none else []
    if _listed(cells):
        column = str(cells.name)
        parsed = [_elements(v, column) for v in cells.tolist()]
        lists = [t if t else nothing for t in parsed]
    else:
        text = cells.astype("string").str.strip()
        tokens = text.str.split(SEPARATORS, regex=True)
        lists = [t if isinstance(t, list) and t != [""] else nothing for t in tokens.tolist()]
    counts = np.fromiter((len(t) for t in lists), dtype=np.int64, count=len(lists))
    ids = np.array([i for t in lists for i in t], dtype=object)
    return ids, counts


def explode(frame: pd.DataFrame, column: str, *, clicks: bool) -> pd.DataFrame:
    """One row per id of ``column``'s cells, the other columns repeated. ``clicks``: each id ends in
    a click mark (``-1`` clicked, ``-0`` shown only) that is cut off into ``CLICK_TYPE_COL`` as an
    event type; an id without one gets no type (quarantined as "empty or unknown type")."""
    return _explode(frame, column, clicks)[0]


def _explode(
    frame: pd.DataFrame, column: str, clicks: bool, clicked: str | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """``explode``, and how many rows each row of ``frame`` became. With ``clicked``, the column
    listing each row's clicked items, the shown ids carry no marks: an id is clicked when its row's
    clicked cell lists it (EB-NeRD's ``article_ids_inview`` and ``article_ids_clicked``)."""
    if clicked is not None:
        return _explode_with_clicked(frame, column, clicked)
    ids, counts = split_cells(frame[column])
    out = frame.drop(columns=[column]).iloc[np.repeat(np.arange(len(frame)), counts)].reset_index(drop=True)
    if clicks:
        parts = pd.Series(ids, dtype="string").str.rsplit("-", n=1, expand=True)
        mark = parts[1] if parts.shape[1] > 1 else pd.Series(pd.NA, index=parts.index, dtype="string")
        marked = mark.isin(list(CLICK_TYPES)).to_numpy(dtype=bool)
        out[column] = np.where(marked, parts[0].astype(object).to_numpy(), ids)
        kinds = np.where(marked, mark.map(CLICK_TYPES).astype(object).to_numpy(), None)
        # an empty cell's row is quarantined for its empty item id alone, not also for a mark it cannot carry
        kinds[pd.isna(ids)] = CLICK_TYPES["0"]
        out[CLICK_TYPE_COL] = kinds
    else:
        out[column] = ids
    return out[[*frame.columns, *([CLICK_TYPE_COL] if clicks else [])]], counts


#: the column ``_explode_with_clicked`` counts clicked ids that were not among their row's shown ones in
CLICKED_UNSHOWN_COL = "__clicked_unshown"


def _explode_with_clicked(frame: pd.DataFrame, column: str, clicked: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The shown ids, one row each, a play where the row's clicked cell lists the id and an
    impression elsewhere; a clicked id that was not shown is a play too, after the row's shown ones
    (nothing clicked is lost), marked in ``CLICKED_UNSHOWN_COL``."""
    rows = np.arange(len(frame))
    ids, counts = split_cells(frame[column])
    clicked_ids, clicked_counts = split_cells(frame[clicked], empty_is_none=False)
    shown_row = np.repeat(rows, counts)
    clicked_row = np.repeat(rows, clicked_counts)
    shown_pairs = set(zip(shown_row.tolist(), ids.tolist(), strict=True))
    clicked_pairs = set(zip(clicked_row.tolist(), clicked_ids.tolist(), strict=True))
    hit = np.fromiter((p in clicked_pairs for p in zip(shown_row.tolist(), ids.tolist(), strict=True)), bool, len(ids))
    unshown = np.fromiter(
        (p not in shown_pairs for p in zip(clicked_row.tolist(), clicked_ids.tolist(), strict=True)),
        bool,
        len(clicked_ids),
    )
    extra_row = clicked_row[unshown]
    all_rows = np.concatenate([shown_row, extra_row])
    rest = frame.drop(columns=[column, clicked])
    out = rest.iloc[all_rows].reset_index(drop=True)
    out[column] = np.concatenate([ids, clicked_ids[unshown]]).astype(object)
    kinds = np.where(hit, CLICK_TYPES["1"], CLICK_TYPES["0"]).astype(object)
    kinds[pd.isna(ids)] = CLICK_TYPES["0"]  # an empty shown cell: quarantined for its empty item id alone
    out[CLICK_TYPE_COL] = np.concatenate([kinds, np.full(int(unshown.sum()), CLICK_TYPES["1"], dtype=object)])
    out[CLICKED_UNSHOWN_COL] = np.r_[np.zeros(len(ids), bool), np.ones(int(unshown.sum()), bool)]
    # each row's shown ids in their order, then its clicked ones that were not shown
    order = np.lexsort((np.arange(len(out)), out[CLICKED_UNSHOWN_COL].to_numpy(), all_rows))
    out = out.take(order).reset_index(drop=True)
    per_row = np.bincount(all_rows, minlength=len(frame)).astype(np.int64)
    return out[[*rest.columns, column, CLICK_TYPE_COL, CLICKED_UNSHOWN_COL]], per_row


def clicked_unshown_note(unshown: pd.Series, clicked: str, column: str) -> str | None:
    """What the summary says of clicked ids their row did not list as shown."""
    n = int(unshown.sum())
    if not n:
        return None
    ids = f"{n:,} ids of {clicked!r} are" if n != 1 else f"1 id of {clicked!r} is"
    return f"{ids} not among their row's {column!r}: imported as plays all the same"


@dataclass
class Reshape:
    """``explode`` for one pass over a file, chunk by chunk; with a ``history`` column, each user's
    first line (in file order, over the whole pass) also gives its history ids as plays, placed
    before the line's own items and marked with their ``BEFORE_COL`` offset (the newest 1 s)."""

    column: str
    clicks: bool
    user_col: str
    history: str | None = None
    #: with ``clicks``: the column listing each row's clicked items, when the shown ids carry no marks
    clicked: str | None = None
    seen: set[object] = field(default_factory=set)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        own = frame.drop(columns=[self.history]) if self.history else frame
        out, shown = _explode(own, self.column, self.clicks, self.clicked)
        if self.history is None:
            return out
        users = frame[self.user_col]
        first = (~users.duplicated() & ~users.isin(self.seen)).to_numpy()
        self.seen.update(users.dropna().unique().tolist())
        ids, counts = split_cells(frame[self.history].where(first, None), empty_is_none=False)
        line = np.repeat(np.arange(len(frame)), counts)
        hist = frame.drop(columns=[self.history]).iloc[line].reset_index(drop=True)
        hist = hist.drop(columns=[self.clicked]) if self.clicked else hist
        hist[self.column] = ids
        if self.clicks:
            hist[CLICK_TYPE_COL] = "play"
        if self.clicked:
            hist[CLICKED_UNSHOWN_COL] = False
        # within a line the newest history id is the last: 1 s before the first item, the one before it 2 s
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        hist[BEFORE_COL] = (np.repeat(counts, counts) - (np.arange(len(ids)) - starts)).astype(np.int64)
        out[BEFORE_COL] = np.zeros(len(out), dtype=np.int64)
        both = pd.concat([hist, out[hist.columns]], ignore_index=True)
        # each line's history, then its own items, every part in its own order
        at = np.concatenate([line, np.repeat(np.arange(len(frame)), shown)])
        part = np.r_[np.zeros(len(hist), np.int8), np.ones(len(out), np.int8)]
        return both.take(np.lexsort((np.arange(len(both)), part, at))).reset_index(drop=True)


def history_note(before: pd.Series, column: str) -> str | None:
    """What the summary says of the history rows."""
    n = int((before > 0).sum())
    if not n:
        return None
    return (
        f"{n:,} ids of {column!r} (clicks before the log, without times) imported as plays, each user's "
        "stamped just before their first listed item, from their first line"
    )


def expansion(frame: pd.DataFrame, reshape: Reshape) -> float:
    """Rows per row of ``frame`` once reshaped (at least 1): a file's memory estimate counts lines,
    and an impression log's line becomes dozens of events."""
    needed = {reshape.column, reshape.user_col, *(c for c in (reshape.history, reshape.clicked) if c)}
    if frame.empty or not needed <= set(frame.columns):
        return 1.0  # a missing column is said by the import itself, with the columns the file has
    return max(1.0, len(reshape(frame)) / len(frame))


#: the share of an impression log's rows whose list may be empty before the file is taken for a log of
#: other rows too (Trivago's interactions beside its clickouts), and refused
EMPTY_LISTS_SHARE = 0.5


def empty_lists(cells: pd.Series) -> int:
    """How many of an impressions column's cells list nothing: empty, missing, or an empty list."""
    text = cells.astype("string").str.strip()
    return int((cells.isna() | text.isin(["", "[]"]).fillna(True)).sum())


def require_lists(empty: int, rows: int, column: str) -> None:
    """Refuse an impressions column empty on most of a file's ``rows``, before any event is built: such
    rows are other kinds of event, each of which would be quarantined for an empty item id."""
    if not rows or empty <= EMPTY_LISTS_SHARE * rows:
        return
    raise ImportFormatError(
        f"--impressions-col {column!r} is empty on {empty:,} of {rows:,} rows ({empty / rows:.0%}): each row of an "
        "impression log lists what was shown, so these are rows of other kinds (Trivago's interactions beside its "
        "clickouts), each of which would be quarantined for an empty item id; import the rows with a list on their "
        f"own (pandas: df[df[{column!r}].astype(str).str.strip().ne('[]') & df[{column!r}].notna()]"
        ".to_csv('shown.csv', index=False)) and the others with --type-col into the same data directory "
        "(README, 'Impressions on some rows')"
    )


def empty_lists_warning(empty_before: int, empty: int, rows_before: int, rows: int, column: str) -> str | None:
    """What a long first pass says as its count of empty lists crosses ``require_lists``' share (None
    otherwise): the refusal waits for the whole file, and on a large one that is minutes away."""
    over = rows and empty > EMPTY_LISTS_SHARE * rows
    was_over = rows_before and empty_before > EMPTY_LISTS_SHARE * rows_before
    if not over or was_over:
        return None
    return (
        f"--impressions-col {column!r} is empty on {empty:,} of the first {rows:,} rows ({empty / rows:.0%}): if the "
        "rest of the file is alike, the import refuses it when this pass ends, and says how to split it (README, "
        "'Impressions on some rows'); stop it now to split the file first"
    )


def unmarked_note(types: pd.Series, column: str) -> str | None:
    """What the summary says of ids that carried no click mark (MIND's test split has none)."""
    n = int(types.isna().sum())
    if not n:
        return None
    return (
        f"{n:,} ids in {column!r} carry no click mark (-1 or -0): whether they were clicked is unknown, so "
        "they are quarantined (a log without marks, such as MIND's test split, cannot be trained on; a column "
        "listing each row's clicked items beside it, as EB-NeRD's, is read with --clicked-col)"
    )
