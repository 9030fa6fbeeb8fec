"""Rows whose item cell lists several items, reshaped to one row per item before anything else
reads them.

Two shapes of public logs keep a list in one cell:
- an impression log (MIND's ``behaviors.tsv``): the items shown at one moment, each marked with
  whether it was clicked (``N55689-1 N35729-0``). Each becomes a row of its own: a click a
  ``play``, an item shown and not clicked an ``impression`` (a negative in training);
- a basket or a playlist: items taken together (``A12 B34``), each row then standing for every
  item of its cell with the row's own rating, type or count.

The reshape is a pure function of one frame, so a file read in chunks gives, chunk by chunk, the
rows of the whole file read at once; a row keeps its place through ``repeat``, in the cell's order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: how the ids of one cell are separated: spaces, commas or semicolons (several in a row are one)
SEPARATORS = r"[\s,;]+"
#: the type column an impression log's click marks become (not a column of the file)
CLICK_TYPE_COL = "__clicked"
#: a click mark, the id's last ``-`` part, as an event type
CLICK_TYPES = {"1": "play", "0": "impression"}


def split_cells(cells: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The ids of every cell in order, and how many each cell holds (an empty cell holds one
    missing id, so its row is still seen, and quarantined for its empty item id)."""
    text = cells.astype("string").str.strip()
    tokens = text.str.split(SEPARATORS, regex=True)
    lists = [t if isinstance(t, list) and t != [""] else [None] for t in tokens.tolist()]
    counts = np.fromiter((len(t) for t in lists), dtype=np.int64, count=len(lists))
    ids = np.array([i for t in lists for i in t], dtype=object)
    return ids, counts


def explode(frame: pd.DataFrame, column: str, *, clicks: bool) -> pd.DataFrame:
    """One row per id of ``column``'s cells, the other columns repeated. ``clicks``: each id ends in
    a click mark (``-1`` clicked, ``-0`` shown only) that is cut off into ``CLICK_TYPE_COL`` as an
    event type; an id without one gets no type (quarantined as "empty or unknown type")."""
    ids, counts = split_cells(frame[column])
    out = frame.drop(columns=[column]).iloc[np.repeat(np.arange(len(frame)), counts)].reset_index(drop=True)
    if clicks:
        parts = pd.Series(ids, dtype="string").str.rsplit("-", n=1, expand=True)
        marked = parts[1].isin(list(CLICK_TYPES)).fillna(False).to_numpy(dtype=bool) if parts.shape[1] > 1 else None
        if marked is None:
            marked = np.zeros(len(ids), dtype=bool)
        bare = parts[0].astype(object).to_numpy()
        out[column] = np.where(marked, bare, ids)
        out[CLICK_TYPE_COL] = np.where(marked, parts[1].map(CLICK_TYPES).astype(object).to_numpy(), None)
    else:
        out[column] = ids
    return out[[*frame.columns, *([CLICK_TYPE_COL] if clicks else [])]]


def expansion(frame: pd.DataFrame, column: str) -> float:
    """Rows per row of ``frame`` once ``column`` is exploded (at least 1): a file's memory estimate
    counts lines, and an impression log's line becomes dozens of events."""
    if frame.empty or column not in frame.columns:
        return 1.0
    _, counts = split_cells(frame[column])
    return max(1.0, float(counts.mean()))


def unmarked_note(types: pd.Series, column: str) -> str | None:
    """What the summary says of ids that carried no click mark (MIND's test split has none)."""
    n = int(types.isna().sum())
    if not n:
        return None
    return (
        f"{n:,} ids in {column!r} carry no click mark (-1 or -0): whether they were clicked is unknown, so "
        "they are quarantined (a log without marks, such as MIND's test split, cannot be trained on)"
    )
