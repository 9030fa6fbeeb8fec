"""The item catalog (track metadata). Holds no user data, so it is simply replaced on import."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from setlist.contract import ITEM_SCHEMA, UNKNOWN
from setlist.eventlog import write_atomic


def save_items(items: pd.DataFrame, path: Path) -> int:
    frame = items.copy()
    for name in ITEM_SCHEMA.names:
        if name not in frame.columns:
            frame[name] = None
    frame["release_date"] = pd.to_datetime(frame["release_date"], utc=True, errors="coerce")
    frame = frame.drop_duplicates("item_id", keep="last").sort_values("item_id")
    write_atomic(
        pa.Table.from_pandas(frame[list(ITEM_SCHEMA.names)], schema=ITEM_SCHEMA, preserve_index=False), Path(path)
    )
    return len(frame)


def load_items(path: Path) -> pd.DataFrame:
    if not Path(path).exists():
        return ITEM_SCHEMA.empty_table().to_pandas()
    return pd.read_parquet(path)


def merge_items(existing: pd.DataFrame, incoming: pd.DataFrame, described: set[str]) -> pd.DataFrame:
    """The catalogue after an import: ``incoming`` rows whose ids are in ``described`` (they came
    from an items file) replace what was known; the others are placeholders for items the import
    saw without metadata, added only when the catalogue does not know them. A second import never
    erases the catalogue a first one built."""
    keep = existing[~existing["item_id"].isin(described)]
    new = incoming[incoming["item_id"].isin(described) | ~incoming["item_id"].isin(existing["item_id"])]
    parts = [f for f in (keep, new) if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else incoming


def item_labels(path: Path, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(title, genre) for the ``ids`` the catalogue at ``path`` describes, for people reading a
    ranking: an item id alone ("108775015", an ISBN, a hash) says nothing. The title falls back to
    the artist; ids it knows nothing about are left out."""
    if not Path(path).exists():
        return {}
    wanted = set(ids)
    frame = pd.read_parquet(path, columns=["item_id", "title", "artist", "genre"])
    frame = frame[frame["item_id"].isin(wanted)]
    out: dict[str, tuple[str, str]] = {}
    for item, title, artist, genre in frame.itertuples(index=False):
        name = title if isinstance(title, str) and title else (artist if artist and artist != UNKNOWN else "")
        kind = genre if genre and genre != UNKNOWN else ""
        if name or kind:
            out[str(item)] = (str(name), str(kind))
    return out
