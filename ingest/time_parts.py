"""A time written over several columns (HetRec's ``date_day``, ``date_month``, ``date_year``,
``date_hour``, …): ``--time-col date_year,date_month,date_day,date_hour`` names them, and the import
reads one column of times made of them, as if the file had written it so."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


#: the two columns of a date and a time of day written apart (an export's ``Date`` and ``Time``,
#: ``order_date`` and ``order_time``): read as one written time, "<date> <time>"
DATE, CLOCK = "date", "clock"
_DATE_WORDS = frozenset({"date", "day", "dt"})
_CLOCK_WORDS = frozenset({"time", "clock", "tm"})


def date_and_clock(parts: Sequence[str]) -> dict[str, str] | None:
    """``{date column: DATE, time column: CLOCK}`` for two columns named as a date and a time of day."""
    if len(parts) != 2:
        return None
    words = [set(name_words(p)) for p in parts]
    for d, c in ((0, 1), (1, 0)):
        if words[d] & _DATE_WORDS and not words[d] & _CLOCK_WORDS and words[c] & _CLOCK_WORDS:
            return {parts[d]: DATE, parts[c]: CLOCK}
    return None


#: a column of dates beside one of the hour of the day, a whole number 0 … 23 (Spotify's sequential-skip log:
#: ``date``, ``hour_of_day``): read as one written time, "<date> <hour>:00:00"
HOUR = "hour_of_day"
_NAMED_DATE_WORDS = frozenset({"date", "dt"})


def _hour_of_day(name: str) -> bool:
    """A name of the hour of the day: its last word ``hour`` (``event_hour``) or ending ``hour of day``;
    not ``hours``, ``hours_played`` or ``hours_watched``, which measure a length of time."""
    words = name_words(name)
    return words[-1:] in (["hour"], ["hr"]) or (
        len(words) >= 3 and words[-3] in ("hour", "hr") and words[-2:] == ["of", "day"]
    )


def date_and_hour(parts: Sequence[str]) -> dict[str, str] | None:
    """``{date column: DATE, hour column: HOUR}`` for two columns named as a date and an hour of the day.
    A name that also says a part (HetRec's ``date_day``, ``date_year``) is that part, no date; nor is a
    column named ``day`` alone, beside an hour a day of the month."""
    if len(parts) != 2:
        return None
    words = [set(name_words(p)) for p in parts]
    for d, h in ((0, 1), (1, 0)):
        dated = words[d] & _NAMED_DATE_WORDS and not words[d] & (_CLOCK_WORDS | set(_UNITS))
        if dated and _hour_of_day(parts[h]):
            return {parts[d]: DATE, parts[h]: HOUR}
    return None


#: a written midnight after a date (a SQL export's ``2018-07-15 00:00:00``, a timestamp with its zone): the date alone
_MIDNIGHT = r"[ T]00:00(?::00(?:\.0+)?)?(?:Z|[+-]\d\d:?\d\d)?$"


def dates_alone(cells: pd.Series) -> tuple[pd.Series, str | None]:
    """A date column's cells as dates alone (a midnight written after a date dropped: a timestamp
    column of dates, as Spark writes them), and the first cell holding another time of day, or None."""
    text = cells.astype("string").str.strip().str.replace(_MIDNIGHT, "", regex=True)
    timed = text.str.contains(r"\d:\d", regex=True).fillna(False)
    return text, (str(text[timed].iloc[0]) if timed.any() else None)


def require_dates_alone(cells: pd.Series, column: str, hour: str) -> pd.Series:
    """A date column's dates alone; refused where one holds a time of day other than midnight, which the
    hour beside it would replace."""
    text, example = dates_alone(cells)
    if example is not None:
        raise ImportFormatError(
            f"--time-col {column},{hour}: {column!r} holds times of day already ({example!r}), which the hour "
            f"column would replace; name {column!r} alone as the time"
        )
    return text


def part_units(parts: Sequence[str]) -> dict[str, str]:
    """Each column of ``--time-col``'s parts and the part of the time it holds; refused, in words,
    where a name says no part or two say the same, or the year, month or day is missing. Two
    columns named as a date and a time of day (``Date,Time``) are the one written time they make,
    and so are a date and an hour of the day (``date,hour_of_day``)."""
    if (pair := date_and_clock(parts) or date_and_hour(parts)) is not None:
        return pair
    units: dict[str, str] = {}
    for col in parts:
        unit = part_of(col)
        if unit is None:
            raise ImportFormatError(
                f"--time-col names {col!r} as a part of the time, but its name says no one part (year, month, day, "
                "hour, minute or second, or a date beside a time of day or an hour: Date,Time or date,hour_of_day): "
                "rename it so, or join the parts into one column of dates first"
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
    if set(units.values()) == {DATE, CLOCK}:  # written, read as any written time is (formats, zones, day first)
        day, clock = (next(p for p, u in units.items() if u == kind) for kind in (DATE, CLOCK))
        days, clocks = frame[day].astype("string").str.strip(), frame[clock].astype("string").str.strip()
        joined = (days + " " + clocks).where(days.fillna("").ne("") & clocks.fillna("").ne(""))
        return frame.assign(**{col: joined.astype(object).where(joined.notna(), None)})
    if set(units.values()) == {DATE, HOUR}:
        day, hour = (next(p for p, u in units.items() if u == kind) for kind in (DATE, HOUR))
        days = require_dates_alone(frame[day], day, hour)
        hours = to_numbers(frame[hour]).astype("float64")
        fits = hours.notna() & (hours % 1 == 0) & hours.between(0, 23)
        # an hour out of range keeps its cell as written, so the time is unreadable and quarantined with it shown
        clocks = hours.where(fits).map(lambda h: f"{int(h):02d}:00:00", na_action="ignore").astype("string")
        clocks = clocks.where(fits, "hour " + frame[hour].astype("string").fillna("(empty)"))
        joined = (days + " " + clocks).where(days.fillna("").ne(""))
        return frame.assign(**{col: joined.astype(object).where(joined.notna(), None)})
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


def _paired_columns(
    names: Sequence[str],
    frame: pd.DataFrame | None,
    pairing: Callable[[Sequence[str]], dict[str, str] | None],
    fits: Callable[[pd.DataFrame, str, str], bool],
) -> list[str] | None:
    """The first date column and its partner among ``names`` that ``pairing`` names so, in that order,
    whose cells (where ``frame`` has them) ``fits``; else None."""
    for a in names:
        for b in names:
            pair = pairing([a, b]) if a != b else None
            if pair is None or pair[a] != DATE:
                continue
            if frame is not None and a in frame.columns and b in frame.columns and not fits(frame, a, b):
                continue
            return [a, b]
    return None


def _hours_fit(frame: pd.DataFrame, day: str, hour: str) -> bool:
    """Whole numbers 0 … 23 beside dates alone (a time of day in the date already: the hour is no part of it)."""
    cells = to_numbers(frame[hour].dropna().head(50))
    if cells.empty or cells.isna().any() or (cells % 1 != 0).any() or not cells.between(0, 23).all():
        return False
    return dates_alone(frame[day].dropna().head(50))[1] is None


def _clocks_fit(frame: pd.DataFrame, _day: str, clock: str) -> bool:
    """Times of day alone."""
    cells = frame[clock].dropna().astype(str).str.strip().head(50)
    return not cells.empty and bool(cells.str.fullmatch(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?.*").all())


def date_hour_columns(names: Sequence[str], frame: pd.DataFrame | None = None) -> list[str] | None:
    """A column of dates and one of hours of the day among ``names`` (``date``, ``hour_of_day``), in that
    order, where the hour column's cells (when read) are whole numbers 0 … 23; else None."""
    return _paired_columns(names, frame, date_and_hour, _hours_fit)


def date_clock_columns(names: Sequence[str], frame: pd.DataFrame | None = None) -> list[str] | None:
    """A column of dates and one of times of day among ``names`` (an export's ``Date`` and ``Time``), in
    that order, where the time column's cells (when read) are times of day alone; else None."""
    return _paired_columns(names, frame, date_and_clock, _clocks_fit)
