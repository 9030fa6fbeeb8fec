"""Several items files as one catalogue: metadata split over files keyed by the same items (HetRec's
``movies.dat`` beside its long-format ``movie_genres.dat``, Music4All-Onion's ``id_information.csv``,
``id_genres.csv`` and ``id_metadata.csv``), joined on their ids, so a user need not join them first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ingest.import_files import ImportFormatError, Table, TextLayout, read_table
from ingest.import_items import load_items
from setlist.contract import UNKNOWN

#: each field of a catalogue row, with the columns taken together when a file gives it (a genre with
#: its list), in the order a joined row is filled
_FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "artist": ("artist",),
    "genre": ("genre", "genres"),
    "duration": ("duration_s",),
    "release": ("release_date",),
}
#: the notes a file gives when it lacks a field another file may give: said only when no file gives it
_MISSING_NOTES = {"genre": "no genre column recognized", "title": "no title column recognized"}


def items_label(paths: Sequence[Path]) -> str:
    """The items files as named in messages: ``movies.dat``, or ``movies.dat + movie_genres.dat``."""
    return " + ".join(Path(p).name for p in paths)


def load_item_files(
    paths: Sequence[Path],
    item_id_col: str,
    layout: TextLayout | None,
    columns: dict[str, str] | None = None,
    log_item_col: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The catalogue read off one items file or joined from several, and what was read off them.

    One file's notes are as ``load_items`` gives them. Several files' are each prefixed with the file's
    name, and joined on the item id: an item takes each field from the first file (in the order given)
    that knows it, and items where a later file says otherwise are counted. Each file is keyed by
    ``item_id_col`` if it has it, else by a column named as the log's item column (said)."""
    if len(paths) == 1:
        return load_items(Path(paths[0]), item_id_col, layout, columns, log_item_col)
    _refuse_repeats(paths)
    if layout is not None and layout.names is not None:
        raise ImportFormatError(
            f"--items-names describes one headerless items file, and --items was given {len(paths)} "
            f"({items_label(paths)}): give each file its header line, or join them into one first"
        )
    columns = columns or {}
    tables = [(Path(path), read_table(Path(path), "items", layout)) for path in paths]
    _refuse_unknown_columns(tables, columns)
    loaded: list[tuple[Path, pd.DataFrame]] = []
    notes: list[str] = []
    for path, table in tables:
        own = {role: col for role, col in columns.items() if col in table.frame.columns}
        frame, said = load_items(path, item_id_col, layout, own, log_item_col, table)
        loaded.append((path, frame))
        notes += [f"{path.name}: {n}" for n in said]
    catalogue, joint = _joined(loaded)
    notes = [n for n in notes if not _answered_elsewhere(n, catalogue)]
    notes = [n for k, n in enumerate(notes) if not _said_before(n, notes[:k])]
    catalogue.attrs["item_id_col"] = loaded[0][1].attrs.get("item_id_col", item_id_col)
    return catalogue, notes + [f"{items_label(paths)}: {n}" for n in joint]


def _refuse_repeats(paths: Sequence[Path]) -> None:
    seen: set[Path] = set()
    for path in paths:
        resolved = Path(path).resolve()
        if resolved in seen:
            raise ImportFormatError(f"--items names {Path(path).name} twice: give each items file once")
        seen.add(resolved)


def _refuse_unknown_columns(tables: list[tuple[Path, Table]], columns: dict[str, str]) -> None:
    """A column ``--items-cols`` names must be in at least one of the files (each file reads the roles
    whose columns it has)."""
    for role, col in columns.items():
        if not any(col in table.frame.columns for _, table in tables):
            shown = "; ".join(f"{p.name}: {', '.join(map(str, t.frame.columns[:12]))}" for p, t in tables)
            raise ImportFormatError(
                f"--items-cols names column {col!r} for {role}, but no items file has such a column ({shown})"
            )


def _known(frame: pd.DataFrame, field: str) -> pd.Series:
    """Which rows of a file's catalogue give ``field``."""
    first = frame[_FIELDS[field][0]]
    if field in ("artist", "genre"):
        return first.notna() & (first.astype(str) != UNKNOWN)
    if field == "title":
        return first.notna() & (first.astype("string").str.strip() != "")
    return first.notna()


def _joined(loaded: list[tuple[Path, pd.DataFrame]]) -> tuple[pd.DataFrame, list[str]]:
    """One row per item of any file, each field from the first file that gives it, and notes on how
    the files met: how many items each describes, and fields that disagree between files."""
    ids = pd.Index(pd.concat([frame["item_id"] for _, frame in loaded], ignore_index=True).drop_duplicates())
    first = loaded[0][1].set_index("item_id").reindex(ids)
    out = pd.DataFrame({"item_id": ids.to_numpy(dtype=object)})
    for cols in _FIELDS.values():
        for col in cols:
            out[col] = first[col].to_numpy()
    out["artist"] = out["artist"].where(out["artist"].notna(), UNKNOWN)
    out["genre"] = out["genre"].where(out["genre"].notna(), UNKNOWN)
    notes = []
    for path, frame in loaded[1:]:
        other = frame.set_index("item_id").reindex(ids)
        other.index = out.index
        for field, cols in _FIELDS.items():
            have, gives = _known(out, field), _known(other, field)
            taken = ~have & gives
            for col in cols:
                out[col] = out[col].where(~taken, other[col])
            differ = have & gives & (out[cols[0]].astype("string") != other[cols[0]].astype("string"))
            if n := int(differ.sum()):
                notes.append(
                    f"the {field} of {n:,} item{'s' if n != 1 else ''} differ{'s' if n == 1 else ''} in {path.name} "
                    "from an earlier file's: the earlier file's kept (files are read in the order --items names them)"
                )
    described = ", ".join(f"{path.name} {frame['item_id'].nunique():,}" for path, frame in loaded)
    notes.insert(0, f"joined on the item id: {len(out):,} items in all ({described})")
    out["duration_s"] = out["duration_s"].astype("float32")
    out["release_date"] = pd.to_datetime(out["release_date"], utc=True)
    return out, notes


def _said_before(note: str, earlier: list[str]) -> bool:
    """A field no file gives is said once, by the first file, not by each."""
    body = note.split(": ", 1)[-1]
    missing = any(body.startswith(text) for text in _MISSING_NOTES.values())
    return missing and any(e.split(": ", 1)[-1] == body for e in earlier)


def _answered_elsewhere(note: str, catalogue: pd.DataFrame) -> bool:
    """A file's "no genre column recognized" when another file gave the genres."""
    body = note.split(": ", 1)[-1]
    return any(body.startswith(text) and _known(catalogue, field).any() for field, text in _MISSING_NOTES.items())
