"""The user's items file as the catalogue: artist, genre(s), duration and release date from whichever
columns it has; interacted items it lacks get unknown metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ingest.import_files import TextLayout, clean_ids, read_table, require_columns
from setlist.contract import ITEM_SCHEMA, UNKNOWN

# item metadata columns we recognize (lower-cased), in order of preference
_ITEM_ALIASES = {
    "artist": ("artist", "artist_name", "artists", "artist_names"),
    "genre": ("genre", "genres", "genre_name", "category"),
    "duration_s": ("duration_s", "duration", "length_s", "length", "duration_sec"),
    "duration_ms": ("duration_ms", "length_ms"),
    "release_date": ("release_date", "released", "release", "release_year", "year"),
}


def _first_of_list(s: pd.Series) -> pd.Series:
    first = s.astype("string").str.split("|").str[0].str.strip()
    return first.mask(first.isna() | (first == "") | (first == "(no genres listed)"), UNKNOWN)


def _all_of_list(s: pd.Series) -> pd.Series:
    """Every genre of a pipe-separated list, lower case, in the file's order."""

    def clean(v: object) -> str | None:
        if not isinstance(v, str):
            return None
        parts = [p.strip().lower() for p in v.split("|")]
        kept = [p for p in parts if p and p != "(no genres listed)"]
        return "|".join(kept) or None

    return s.map(clean).astype(object)


def _load_items(path: Path, item_id_col: str, layout: TextLayout | None) -> tuple[pd.DataFrame, list[str]]:
    table = read_table(path, "items", layout)
    raw = table.frame
    require_columns(raw, {"item id": item_id_col}, path, "--items-names")
    lower = {str(c).lower(): c for c in raw.columns}
    pick = {k: next((lower[a] for a in names if a in lower), None) for k, names in _ITEM_ALIASES.items()}
    out = pd.DataFrame({"item_id": clean_ids(raw[item_id_col])})
    out["artist"] = _first_of_list(raw[pick["artist"]]) if pick["artist"] else UNKNOWN
    genre_list = raw[pick["genre"]] if pick["genre"] else _flagged_genres(raw, item_id_col)
    out["genre"] = _first_of_list(genre_list).str.lower() if genre_list is not None else UNKNOWN
    out["genres"] = _all_of_list(genre_list) if genre_list is not None else None
    if pick["duration_s"]:
        out["duration_s"] = pd.to_numeric(raw[pick["duration_s"]], errors="coerce")
    elif pick["duration_ms"]:
        out["duration_s"] = pd.to_numeric(raw[pick["duration_ms"]], errors="coerce") / 1000.0
    else:
        out["duration_s"] = np.nan
    title = next((lower[a] for a in ("title", "name", "track_name", "song") if a in lower), None)
    out["title"] = raw[title].astype("string").str.strip().astype(object) if title is not None else None
    if pick["release_date"]:
        out["release_date"] = _release(raw[pick["release_date"]])
    elif title is not None:
        out["release_date"] = _year_in_title(raw[title])
    else:
        out["release_date"] = pd.NaT
    out["duration_s"] = out["duration_s"].astype(np.float32)
    out["artist"] = out["artist"].astype(object)
    out["genre"] = out["genre"].astype(object)
    # a catalogue row without an id cannot be joined to anything; duplicates keep the first row
    return out[out["item_id"].notna()].drop_duplicates("item_id").reset_index(drop=True), table.notes


def _flagged_genres(raw: pd.DataFrame, item_id_col: str) -> pd.Series | None:
    """Catalogues such as MovieLens 100k mark genres with one 0/1 column per genre: the genres of a
    row are the names of its columns set to 1, as a pipe-separated list. Positional names (columns
    the user left unnamed) say nothing, so they are not genres."""
    flags = [
        c
        for c in raw.columns
        if c != item_id_col
        and not str(c).startswith("column_")
        and raw[c].dtype == object
        and raw[c].dropna().isin(["0", "1"]).all()
        and raw[c].notna().any()
    ]
    if len(flags) < 2:
        return None
    on = raw[flags].eq("1").to_numpy()
    names = [str(c) for c in flags]
    return pd.Series(["|".join(n for n, f in zip(names, row, strict=True) if f) or None for row in on], index=raw.index)


def _release(raw: pd.Series) -> pd.Series:
    num = pd.to_numeric(raw, errors="coerce")
    years = num.where((num >= 1000) & (num <= 3000))
    if years.notna().any() and years.notna().sum() >= num.notna().sum():  # a bare year column
        return pd.to_datetime(years.astype("Int64").astype("string") + "-01-01", utc=True, errors="coerce")
    return pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")


def _year_in_title(titles: pd.Series) -> pd.Series:
    """Catalogues such as MovieLens keep the release year only at the end of the title:
    "Heat (1995)". Without it every item's age would be unknown."""
    year = titles.astype("string").str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.to_datetime(year + "-01-01", utc=True, errors="coerce")


def _unknown_items(ids: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ids.astype(object),
            "artist": UNKNOWN,
            "genre": UNKNOWN,
            "duration_s": np.float32(np.nan),
            "release_date": pd.NaT,
            "genres": None,
            "title": None,
        }
    )


def item_frame_for(
    seen: pd.Series, items: Path | None, item_id_col: str, layout: TextLayout | None = None
) -> tuple[pd.DataFrame, int | None, int, list[str]]:
    """The catalogue for the ``seen`` item ids: the items file's rows (if one was given) and unknown
    metadata for the rest. Also returns the file's row count, how many seen items it lacked, and
    what was read off the file rather than told."""
    catalog_rows, missing, notes = None, 0, list[str]()
    if items is not None:
        catalog, notes = _load_items(Path(items), item_id_col, layout)
        catalog_rows = len(catalog)
        extra = seen[~seen.isin(catalog["item_id"])]
        missing = len(extra)
        item_frame = pd.concat([catalog, _unknown_items(extra)], ignore_index=True) if missing else catalog
    else:
        item_frame = _unknown_items(seen)
    item_frame["release_date"] = pd.to_datetime(item_frame["release_date"], utc=True)
    item_frame = item_frame[list(ITEM_SCHEMA.names)]
    return item_frame, catalog_rows, missing, notes
