"""An item named by several columns together: a log without item ids (Apple Music's play activity,
Spotify's basic streaming history, Last.fm scrobbles whose track id is often empty) names each track
by its artist and title, and ``--item-col artist,track`` keys the item by both."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ingest.import_files import ImportFormatError, clean_ids

#: between the parts of a key: reads as "Artist – Title" where the key is shown, and is rarer inside
#: a name than a plain hyphen
KEY_JOIN = " – "


def key_parts(spec: str, option: str = "--item-col") -> tuple[str, ...]:
    """The columns ``spec`` names: one, or several separated by commas (``artist,track``)."""
    parts = tuple(p.strip() for p in spec.split(","))
    if len(parts) > 1 and not all(parts):
        raise ImportFormatError(f"{option} {spec!r} names an empty column: name the columns as artist,track")
    if len(set(parts)) != len(parts):
        raise ImportFormatError(f"{option} {spec!r} names a column twice")
    return parts


def key_column(parts: Sequence[str]) -> str:
    """The name of the column a key of several parts is made into."""
    return " + ".join(parts)


def with_key(frame: pd.DataFrame, parts: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the key column of ``parts`` added: each part's text, stripped, joined by
    ``KEY_JOIN``; a row missing any part has no key, so the import quarantines it as missing its
    item, as it would a row with an empty id. The parts are names, so only an empty cell is
    missing: "None", "N/A" and "Null" are songs' titles (an id column reads them as missing)."""
    cleaned = [clean_ids(frame[p], names=True) for p in parts]
    key = cleaned[0].astype(object).str.cat([c.astype(object) for c in cleaned[1:]], sep=KEY_JOIN)
    return frame.assign(**{key_column(parts): key.astype(object).where(key.notna(), None)})
