"""A time written over several columns (HetRec's ``date_day``, ``date_month``, ``date_year``,
``date_hour``, …): ``--time-col date_year,date_month,date_day,date_hour`` names them, and the import
reads one column of times made of them, as if the file had written it so."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ingest.import_files import ImportFormatError, name_words
from setlist.numbers import to_numbers

#: the words of a column name that say which part of a time it holds
_UNITS = {
    "year": "year",
    "years": "year",
    "yr": "year",
    "month": "month",
    "mon": "month",
    "day": "day",
    "hour": "hour",
    "hr": "hour",
    "minute": "minute",
    "min": "minute",
    "second": "second",
    "sec": "second",
}
ORDER = ("year", "month", "day", "hour", "minute", "second")
#: the parts a time over several columns needs at least
_NEEDED = ORDER[:3]


def part_of(name: str) -> str | None:
    """The part of a time a column's name says it holds (``date_month`` is the month), or None."""
    found = {_UNITS[w] for w in name_words(name) if w in _UNITS}
    return found.pop() if len(found) == 1 else None


def part_units(parts: Sequence[str]) -> dict[str, str]:
    """Each column of ``--time-col``'s parts and the part of the time it holds; refused, in words,
    where a name says no part or two say the same, or the year, month or day is missing."""
    units: dict[str, str] = {}
    for col in parts:
        unit = part_of(col)
        if unit is None:
            raise ImportFormatError(
                f"--time-col names {col!r} as a part of the time, but its name says no one part (year, month, day, "
                "hour, minute or second): rename it so, or join the parts into one column of dates first"
            )
        if unit in units.values():
            raise ImportFormatError(f"--time-col names two columns for the {unit}: {col!r} and another")
        units[col] = unit
    if missing := [u for u in _NEEDED if u not in units.values()]:
        raise ImportFormatError(
            f"--time-col {','.join(parts)} has no {' or '.join(missing)}: a time over several columns needs the "
            "year, month and day at least"
        )
    return units


def with_time(frame: pd.DataFrame, units: dict[str, str], col: str) -> pd.DataFrame:
    """``frame`` with ``col``, the time its part columns make, written as a date and time of day
    (read as any written time is: in UTC or ``--time-zone``). A row with a part missing or out of
    range keeps its parts as written there, so that its time is unreadable and the import
    quarantines it with them shown."""
    # as floats: a parquet file's nullable integers (Int64 with <NA>) make no dates otherwise
    numbers = pd.DataFrame(
        {unit: to_numbers(frame[part]).astype("float64") for part, unit in units.items()}, index=frame.index
    )
    whole = numbers.notna().all(axis=1) & (numbers % 1 == 0).all(axis=1)
    stamps = pd.to_datetime(numbers.where(whole), errors="coerce")
    text = stamps.dt.strftime("%Y-%m-%d %H:%M:%S").astype(object)
    if (bad := stamps.isna()).any():
        ordered = [part for unit in ORDER for part, u in units.items() if u == unit]
        written = frame.loc[bad, ordered].astype("string").fillna("").agg("-".join, axis=1)
        text[bad] = written.where(written.str.strip("-") != "", None)
    return frame.assign(**{col: text})


def split_time_columns(names: Sequence[str], frame: pd.DataFrame | None = None) -> list[str] | None:
    """Columns that together write a time (a year, a month and a day at least, each of whole
    numbers where read), in the order year … second; None when the file has no such set."""
    found: dict[str, str] = {}
    for name in names:
        unit = part_of(name)
        if unit is None or unit in found:
            continue
        if frame is not None and name in frame.columns:
            cells = to_numbers(frame[name].dropna().head(50))
            if cells.empty or cells.isna().any() or (cells % 1 != 0).any():
                continue
        found[unit] = name
    if not all(u in found for u in _NEEDED):
        return None
    return [found[u] for u in ORDER if u in found]
