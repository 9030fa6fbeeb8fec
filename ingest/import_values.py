"""The user's time, rating and type columns as the contract's timestamps, event types and values."""

from __future__ import annotations

import calendar
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingest.import_files import MISSING_TOKENS, ImportFormatError, is_present, option_pairs, reads_as_dates
from ingest.import_lists import CLICK_TYPE_COL, SEPARATORS
from setlist.contract import EVENT_TYPES, POSITIVE_PLAY_FRACTION
from setlist.numbers import to_numbers

LIKE_FROM, SKIP_UP_TO = 0.8, 0.4  # normalized-rating thresholds
_EPS = 1e-9  # 4/5 must count as 0.8 whatever the float rounding
#: a type name (``--type-map NAME=rating``) for rows whose rating column says what they were: a like,
#: a skip or a play by the rating, as in a file without a type column (a log of views and ratings)
RATED = "rating"
#: ``--type-map NAME=ignore``: rows of a kind the import leaves out, counted (GH Archive's PushEvent)
IGNORED = "ignore"
#: common names for our event types, after lower-casing and spaces/hyphens → "_"
TYPE_SYNONYMS = {
    "listen": "play",
    "listened": "play",
    "played": "play",
    "stream": "play",
    "streamed": "play",
    "click": "play",
    "clicked": "play",
    "viewed": "view",  # an item page seen: a light type of its own, not an impression (not a negative)
    "page_view": "view",
    "shown": "impression",
    "show": "impression",
    "exposure": "impression",
    "impressed": "impression",
    "skipped": "skip",
    "love": "like",
    "loved": "like",
    "liked": "like",
    "favorite": "like",
    "favourite": "like",
    "heart": "like",
    "thumbs_up": "like",
    "add": "add_to_playlist",
    "playlist_add": "add_to_playlist",
    "added_to_playlist": "add_to_playlist",
    "save": "add_to_playlist",
    "dislike": "not_interested",
    "thumbs_down": "not_interested",
    "ban": "not_interested",
    "hide": "not_interested",
    "hidden": "not_interested",
    "rate": RATED,
    "rated": RATED,
    "review": RATED,
    "reviewed": RATED,
}


def _type_names(values: pd.Series) -> pd.Series:
    """A type column's names as compared: lower-case, spaces and hyphens → ``_``; type codes read as
    floats (a parquet column of numbers with gaps: ``2.0``) as the whole numbers they are (``2``),
    and so codes written so (pandas writes a 0/1 column with gaps as ``1.0``, Avito's ``IsClick``)."""
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")
    names = values.astype("string").str.strip().str.lower().str.replace(r"[\s\-]+", "_", regex=True)
    return names.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)


def _with_plurals(names: pd.Series, lookup: dict[str, str]) -> dict[str, str]:
    """``lookup`` plus the plurals the file uses of its names and of the event types (OTTO's
    ``clicks``, ``plays``, ``likes``): a plural is read as its singular unless it is a name itself."""
    known = {**{t: t for t in EVENT_TYPES}, **lookup}
    out = dict(lookup)
    for name in names.dropna().unique().tolist():
        if name in known or not name.endswith("s"):
            continue
        for singular in (name[:-1], name[:-2] if name.endswith("es") else None):
            if singular and singular in known:
                out[name] = known[singular]
                break
    return out


#: ``--type-map``'s key for an empty type cell (``=play``): no name a file's cell can be once stripped
EMPTY_TYPE = ""


def parse_type_map(spec: str | None) -> dict[str, str]:
    """``--type-map``: the file's own type names onto the contract's, e.g.
    ``addtocart=add_to_playlist,transaction=like,pv=view``. Names are compared as the type column
    is (case, spaces and hyphens do not matter); a map entry wins over the built-in synonyms. An
    entry with no name (``=play``) types the rows whose type cell is empty (``EMPTY_TYPE``)."""
    mapping: dict[str, str] = {}
    for name, given in option_pairs(spec, "--type-map", "NAME=TYPE", empty_name=True):
        target = given.lower()
        if target not in EVENT_TYPES and target not in (RATED, IGNORED):
            raise ImportFormatError(
                f"--type-map maps {name!r} to {target!r}, which is not an event type (types: {', '.join(EVENT_TYPES)}; "
                f"or {RATED}: the row's rating says which; or {IGNORED}: such rows are left out, counted)"
            )
        key = str(_type_names(pd.Series([name])).iloc[0]) if name else EMPTY_TYPE
        if mapping.get(key, target) != target:
            shown = repr(name) if name else "the empty cell"
            raise ImportFormatError(f"--type-map maps {shown} twice, to {mapping[key]!r} and {target!r}")
        mapping[key] = target
    return mapping


#: words that turn an event's name into its opposite or its undoing: no type is guessed from such a name
_UNDOING = frozenset(
    {"not", "no", "non", "never", "undo", "undone", "remove", "removed", "delete", "deleted", "cancel", "cancelled",
     "canceled", "revoke", "revoked", "clear", "cleared", "stop", "stopped", "fail", "failed", "error", "abandon",
     "abandoned", "reset"}
)  # fmt: skip


def guessed_type(name: str) -> str | None:
    """The one event type a name of several words names by one of them (Segment's ``Song Played``,
    a game's ``skip_song``, a shop's ``product_added``), as the import reads single names: an event
    type, a built-in synonym, or a plural or past tense of either; None where the words name none, or
    several, or where a word undoes or negates (``not_liked``, ``undo_like``, ``unfavorite``)."""
    words = [w for w in re.split(r"_+", name) if w]
    known: dict[str, str] = {**{t: t for t in EVENT_TYPES}, **TYPE_SYNONYMS}
    undone = any(w in _UNDOING or (w.startswith(("un", "dis")) and w not in known) for w in words)
    if len(words) < 2 or undone:
        return None  # "Song Not Liked", "Undo Like", "Remove Favorite" say the opposite of their type
    found = set()
    for k, word in enumerate(words):
        pair = f"{word}_{words[k + 1]}" if k + 1 < len(words) else ""
        past = word.endswith("ed")  # added → add, saved → save
        stems = (word[:-1] if word.endswith("s") or past else "", word[:-2] if past else "")
        for candidate in (pair, word, *stems):
            if candidate in known:
                found.add(known[candidate])
                break
    found.discard(RATED)  # a rating's word says nothing without the rating
    sought = [b for a, b in zip(words, words[1:], strict=False) if a == "for"]
    if found == {"search"} and _SOUGHT_THINGS & set(sought):
        return None  # trivago's "search for item" names the item it found; Segment's "Products Searched" is text
    return found.pop() if len(found) == 1 else None


#: what a search may be for when its row names the thing found rather than the words typed
_SOUGHT_THINGS = frozenset(
    {"item", "items", "product", "products", "song", "songs", "track", "tracks", "video", "videos", "movie", "movies",
     "book", "books", "article", "articles", "hotel", "hotels", "artist", "artists", "album", "albums"}
)  # fmt: skip


#: up to this many unknown type names, the --type-map example names every one of them (XuetangX's
#: seventeen actions: its strongest signals are among its rarest names)
MAP_EVERY_NAME = 40
#: kinds of event the import's types line shows at most (a column of times read as types would list
#: every time)
SHOWN_TYPES = 100


def unknown_type_note(names: pd.Series, types: np.ndarray, mapped: dict[str, str], top: int = 5) -> str | None:
    """Which of the file's type names are not event types, and how to map them: said at the import,
    before ingestion quarantines their rows."""
    named = (pd.notna(names) & (names != EMPTY_TYPE)).to_numpy(dtype=bool)  # empty cells are said on their own
    unknown = names[named & ~np.isin(types.astype(object), [*EVENT_TYPES, IGNORED])]
    if unknown.empty:
        return None
    counts = unknown.value_counts()
    shown = " · ".join(f"{k!r} {v:,}" for k, v in counts.head(top).items())
    more = f" and {len(counts) - top} more" if len(counts) > top else ""
    # every name when they are few, so that the map to fill in leaves none out (Sobazaar's nine
    # actions: the fifth-commonest left out was the purchase)
    every = len(counts) <= MAP_EVERY_NAME
    listed = counts.index[: len(counts) if every else top]
    guesses = {k: guessed_type(str(k)) for k in listed}
    example = ",".join(f"{k}={guesses[k] or 'TYPE'}" for k in listed)
    filled = (
        "filled in where a name's words hold one event type or a synonym the import reads: check them; "
        if any(guesses.values())
        else ""
    )
    where = "are on the types: line" if len(counts) <= SHOWN_TYPES else "are in the quarantine, with their rows"
    rest = "" if every else f",… (the {len(counts):,} names {where})"
    # hundreds of numbers are no kinds of event: ZhihuRec's read_time, a time or 0 for "not read"
    numeric = not every and bool(counts.index.to_series().astype(str).str.fullmatch(r"-?\d+(?:\.\d+)?").mean() > 0.9)
    what = (
        f"; {len(counts):,} distinct numbers are no kinds of event: the column may hold times, counts or ids, which "
        "become a type column first (a time read, or 0 for shown and not read: README, 'A row with several 0/1 "
        "outcome columns')"
        if numeric
        else ""
    )
    return (
        f"type names that are no event type, quarantined unless mapped: {shown}{more}; "
        f"map them with --type-map {example}{rest} ({filled}types: {', '.join(EVENT_TYPES)}; {IGNORED} leaves "
        "such rows out)"
        + (f"; mapped already: {', '.join(f'{k}={v}' for k, v in mapped.items())}" if mapped else "")
        + what
    )


def synonyms_note(names: pd.Series, read: dict[str, str], mapped: dict[str, str], top: int = 6) -> str | None:
    """Which of the file's type names were read as an event type by the built-in synonyms or as a
    plural (not by ``--type-map``): a click read as a play is a choice the log's owner may not share."""
    used = {n: read[n] for n in names.dropna().unique().tolist() if n in read and n not in mapped}
    if not used:
        return None
    shown = ", ".join(f"{k!r} → {v}" for k, v in list(used.items())[:top])
    more = f" and {len(used) - top} more" if len(used) > top else ""
    return f"type names read as event types: {shown}{more}; --type-map NAME=TYPE reads one otherwise"


#: epoch units an import reads: their names and nanoseconds per unit
EPOCH_UNITS = {
    "s": ("seconds", 1e9),
    "ms": ("milliseconds", 1e6),
    "us": ("microseconds", 1e3),
    "ns": ("nanoseconds", 1.0),
}
#: longer units, for counters from a ``--time-origin`` (Twitch's 10-minute ticks: ``10min``)
_LONG_UNITS = {"min": ("minutes", 60e9), "h": ("hours", 3600e9), "d": ("days", 86400e9)}
_UNIT = re.compile(r"^\s*(\d+)?\s*(ns|us|ms|s|min|h|d)\s*$")


def time_unit_ns(spec: str, option: str = "--time-unit") -> float:
    """Nanoseconds per unit of ``spec``: ``s``, ``ms``, ``us``, ``ns``, ``min``, ``h`` or ``d``,
    optionally a whole multiple of one (``10min``, ``600s``)."""
    match = _UNIT.match(spec or "")
    if match is None or (match.group(1) is not None and int(match.group(1)) == 0):
        clock = f", or {CLOCK_UNIT} for clock times written as one number" if option == "--time-offset-unit" else ""
        raise ImportFormatError(
            f"{option} must be s, ms, us, ns, min, h or d, optionally a multiple (10min, 600s){clock}, not {spec!r}"
        )
    per = {**EPOCH_UNITS, **_LONG_UNITS}[match.group(2)][1]
    return per * int(match.group(1) or 1)


def parse_origin(spec: str, zone: str | None, unit: str | None = None) -> pd.Timestamp:
    """``--time-origin``: the date counters count from; a date without a zone is in ``zone`` (UTC
    without one). An epoch number in ``unit`` is one too (Outbrain publishes its start as
    ``1465876799998``, in the milliseconds its counter counts)."""
    if unit in EPOCH_UNITS and re.fullmatch(r"\d{8,}(?:\.\d+)?", spec.strip()):
        whole, _, part = spec.strip().partition(".")
        per = int(EPOCH_UNITS[unit][1])
        return pd.Timestamp(int(whole) * per + round(float(f"0.{part or 0}") * per), unit="ns", tz="UTC")
    try:
        origin = pd.Timestamp(spec)
    except (ValueError, TypeError) as exc:
        raise ImportFormatError(
            f"--time-origin {spec!r} is not a date (e.g. 2019-10-01 or 2019-10-01T00:00:00Z)"
        ) from exc
    if origin is pd.NaT:
        raise ImportFormatError(f"--time-origin {spec!r} is not a date")
    if origin.tzinfo is None:
        origin = origin.tz_localize(zone or "UTC")
    return origin.tz_convert("UTC")


def check_zone(zone: str) -> str:
    """``--time-zone``: an IANA zone name (``Asia/Shanghai``) or a fixed offset (``+08:00``)."""
    try:
        pd.Timestamp("2000-01-01").tz_localize(zone)
    except Exception as exc:  # pytz, zoneinfo and dateutil each raise their own kind
        raise ImportFormatError(
            f"--time-zone {zone!r} is not a time zone: give an IANA name (Asia/Shanghai, Europe/Paris) or an offset "
            "(+08:00)"
        ) from exc
    return zone


def likely_unit(median: float) -> str:
    """The unit that puts ``median`` between 1973 and 2286: epoch times of real logs differ by a
    factor of 1000 per unit, so their magnitude names the unit."""
    for unit, bound in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if abs(median) < bound:
            return unit
    return "ns"


#: epoch seconds before this (March 1973) are no log's times: counters or offsets
EPOCH_FLOOR_S = 1e8


#: a spreadsheet's serial dates: days since 1899-12-30 (Excel's and LibreOffice's), from 1954 to 2064
SERIAL_DAYS = (20_000, 60_000)
SERIAL_ORIGIN = "1899-12-30"


def _counters(median: float, col: str) -> str | None:
    """What to say of numbers too small to be epoch times in any unit (Diginetica's ``timeframe``,
    milliseconds since the session began): read as seconds they put the log in 1970."""
    if abs(median) >= EPOCH_FLOOR_S:
        return None
    if SERIAL_DAYS[0] <= median < SERIAL_DAYS[1]:
        # a date a spreadsheet kept as its number (a time of day as the fraction): 45691 is 2025-02-03
        day = pd.Timestamp(SERIAL_ORIGIN) + pd.Timedelta(days=float(median))
        return (
            f"time column {col!r} holds numbers too small to be epoch times (median {median:.0f}); they read as a "
            f"spreadsheet's serial dates, days since {SERIAL_ORIGIN} (the median as {day.date()}): import them with "
            f"--time-unit d --time-origin {SERIAL_ORIGIN}; if they are counters instead, --time-unit and "
            "--time-origin read them from their own start"
        )
    return (
        f"time column {col!r} holds numbers too small to be epoch times (median {median:.0f}: as seconds, "
        f"{pd.Timestamp(median, unit='s').date()}); they look like offsets or counters (time within a "
        "session, ticks since a start?). Counters from a known start import with --time-unit and --time-origin "
        "(10-minute ticks from 2019-10-01: --time-unit 10min --time-origin 2019-10-01); otherwise name a "
        "column of dates or epoch times, or import with --no-time (--file-order keeps the file's order)"
    )


def _month_day_hint(values: pd.Series, col: str) -> str | None:
    """What to say of numbers that are all a month and a day (Tmall's ``time_stamp``: 511 … 1111, for
    2015-05-11 … 2015-11-11): read as counters or epoch times they would be nonsense."""
    if values.empty or values.isna().any() or (values % 1 != 0).any():
        return None
    whole = values.astype("int64")
    month, day = whole // 100, whole % 100
    if not ((month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)).all() or month.nunique() < 2:
        return None
    return (
        f"time column {col!r} holds numbers that read as a month and a day without a year (MMDD: "
        f"{int(whole.min())} … {int(whole.max())}, the first as {calendar.month_name[int(whole.min()) // 100]} "
        f"{int(whole.min()) % 100}): import them with --time-format %m%d and --year YEAR (the year the log was "
        "written in); if they are counters instead, --time-unit and --time-origin read them"
    )


#: dates written as digits without the century, widest first: (digits, format, what its parts are)
_SHORT_DATES = ((8, "%y%m%d%H", "year, month, day and hour"), (6, "%y%m%d", "year, month and day"))


#: cells looked at to tell dates written as long numbers
_DATE_PEEK = 2_000
#: numbers of digits that read as a date and a time of day (iPinYou's 17: yyyyMMddHHmmssSSS), which as
#: epoch numbers would be micro- or nanoseconds of another century
_LONG_DATES = (
    (17, "%Y%m%d%H%M%S%f", "date and time to the millisecond"),
    (14, "%Y%m%d%H%M%S", "date and time to the second"),
    (12, "%Y%m%d%H%M", "date and time to the minute"),
)


def _long_date_hint(cells: pd.Series, col: str) -> str | None:
    """What to say of a time column whose cells are digits of a date and time written out, read as
    text (17 digits are past a float's exact range)."""
    text = cells.dropna().astype(str).str.strip()
    if text.empty or not bool(text.str.fullmatch(r"\d+").all()):
        return None
    for digits, fmt, parts in _LONG_DATES:
        if (text.str.len() != digits).any():
            continue
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if parsed.notna().all() and 1900 <= parsed.min().year and parsed.max().year <= 2100:
            return (
                f"time column {col!r} holds numbers that read as a {parts} ({fmt}: {text.min()} … {text.max()}, "
                f"the first as {parsed.min():%Y-%m-%d %H:%M:%S}): import them with --time-format {fmt} (and "
                "--time-zone if they are not UTC)"
            )
    return None


def _short_date_hint(values: pd.Series, col: str) -> str | None:
    """What to say of numbers whose digits are all a two-digit year, a month, a day (and an hour):
    Avazu's ``hour``, 14102100 for 2014-10-21 00:00. Read as counters they would be years away."""
    if values.empty or values.isna().any() or (values % 1 != 0).any() or (values < 0).any():
        return None
    whole = values.astype("int64")
    for digits, fmt, parts in _SHORT_DATES:
        # every digit written: a year 2009 read as a number (9102100) has lost one, and so many small
        # counters would pass once padded that such a column gets the counters' word instead
        text = whole.astype(str)
        if (text.str.len() != digits).any() or text.nunique() < 2:
            continue
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if parsed.notna().all():
            return (
                f"time column {col!r} holds numbers that read as a {parts} ({fmt}: {text.min()} … {text.max()}, "
                f"the first as {parsed.min():%Y-%m-%d %H:%M}): import them with --time-format {fmt}"
            )
    return None


#: said of counters from a start: one per user is no timeline, whatever its origin
PER_USER_COUNTER = (
    "A counter from each user's own start (Riiid's, 0 on every user's first row) is no timeline at all: "
    "--no-time --file-order keeps each user's rows in the file's order"
)
#: epoch times start far from zero: a twentieth of a column below this share of its median counts from a start
_FROM_ZERO = 0.2


def _counting_from_zero(num: pd.Series, unit: str, col: str) -> str | None:
    """What to say of numbers that count from a start near zero (Outbrain's milliseconds since
    2016-06-14), large enough to pass for epoch times in some unit: their low end sits near 0, in
    1970 read in any unit, where a real log's earliest times are within years of its median."""
    values = num.dropna()
    if values.empty:
        return None
    low, median = float(values.quantile(0.05)), float(values.median())
    if not (median > 0 and low < _FROM_ZERO * median and low * EPOCH_UNITS[unit][1] / 1e9 < EPOCH_FLOOR_S):
        return None
    return (
        f"time column {col!r} counts from near zero ({low:.0f} … {values.max():.0f}, median {median:.0f}): no epoch "
        f"times in any unit, a counter from a start. If the start is known, --time-origin DATE places it (in the "
        f"units of --time-unit {unit}; a start written as an epoch number, 1465876799998, is read in the same "
        f"unit); otherwise import with --no-time. {PER_USER_COUNTER}"
    )


def _as_yyyymmdd(num: pd.Series, present: pd.Series) -> pd.Series | None:
    """Dates written as numbers, ``20200705`` (KuaiRec's ``date``, many retail logs), parsed; None
    when the column is not that. As epoch seconds they would all fall in August 1970."""
    values = num[present]
    if values.empty or values.isna().any():
        return None
    whole = values.where((values % 1 == 0) & (values >= 1900_01_01) & (values <= 2100_12_31))
    if whole.isna().any():
        return None
    parsed = pd.to_datetime(whole.astype("int64").astype(str), format="%Y%m%d", utc=True, errors="coerce")
    if parsed.isna().any():
        return None
    out = pd.Series(pd.NaT, index=num.index, dtype="datetime64[ns, UTC]")
    out[present] = parsed
    return out


@dataclass(frozen=True)
class TimeReading:
    """How the time column is read, beyond its unit: ``time_format`` (strptime, with ``year`` for a
    format without one), ``origin`` (numbers count ``unit`` from it), ``zone`` (the zone of times
    written without one; UTC when not given, and said)."""

    dayfirst: bool | None = None
    time_format: str | None = None
    year: int | None = None
    origin: str | None = None
    zone: str | None = None


def parse_time(
    raw: pd.Series,
    unit: str | None,
    col: str,
    notes: list[str] | None = None,
    dayfirst: bool | None = None,
    reading: TimeReading | None = None,
) -> pd.Series:
    """Epoch numbers in ``unit``, dates and datetimes as written. Numbers too small to be epoch
    times are refused with a unit or without (a log in 1970 is a mistake: counters or offsets),
    unless ``reading`` gives the origin they count from. ``reading`` adds a format, an origin or a
    zone."""
    r = reading or TimeReading(dayfirst=dayfirst)
    said = notes if notes is not None else []
    zone = check_zone(r.zone) if r.zone else None
    if pd.api.types.is_datetime64_any_dtype(raw):  # parquet timestamps need no unit
        if getattr(raw.dtype, "tz", None) is None:
            return _in_zone(pd.Series(raw), zone, col, said, raw.notna().to_numpy())
        _zone_unused(zone, col, said, "every time carries its zone")
        return pd.to_datetime(raw, utc=True)
    present = is_present(raw)
    if r.time_format:
        return _formatted(raw, present, r.time_format, r.year, zone, col, said)
    num = to_numbers(raw)
    if r.origin is not None:
        return _counted(num, present, raw, unit, r.origin, zone, col, said)
    if unit is not None and unit not in EPOCH_UNITS:
        time_unit_ns(unit)  # refused in its own words when it is no unit at all
        raise ImportFormatError(
            f"--time-unit {unit} counts from a start: give it with --time-origin (epoch numbers are s, ms, us or ns)"
        )
    dates = _as_yyyymmdd(num, present) if present.any() else None
    if dates is not None:
        if unit is not None:
            raise ImportFormatError(
                f"time column {col!r} holds dates written as YYYYMMDD (e.g. {str(raw[present].iloc[0])!r}), not epoch "
                f"times; omit --time-unit"
            )
        return _in_zone(dates.dt.tz_localize(None), zone, col, said, present.to_numpy())
    if unit in EPOCH_UNITS:
        if not present.any():
            return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")  # quarantined, row by row
        if (long_dates := _long_date_hint(raw[present].head(_DATE_PEEK), col)) is not None:
            raise ImportFormatError(long_dates)
        if num.notna().sum() == 0:
            raise ImportFormatError(
                f"time column {col!r} holds no numbers (e.g. {str(raw[present].iloc[0])!r}); "
                f"omit --time-unit to parse ISO datetimes"
            )
        median = num.median()
        small = _counters(median, col)
        if small is not None and (dates := _month_day_hint(num[present], col) or _short_date_hint(num[present], col)):
            raise ImportFormatError(dates)
        if small is not None and SERIAL_DAYS[0] <= median < SERIAL_DAYS[1]:
            raise ImportFormatError(small)  # a spreadsheet's days, whatever unit was asked for
        if small is not None:
            raise ImportFormatError(
                f"time column {col!r} holds numbers too small to be epoch times (median {median:.0f}): read as "
                f"--time-unit {unit} they would fall in 1970. Counters from a known start import with --time-origin "
                "DATE as well (10-minute ticks from 2019-10-01: --time-unit 10min --time-origin 2019-10-01); "
                f"--time-origin 1970-01-01 reads them from 1970 if that is meant. {PER_USER_COUNTER}"
            )
        if (counting := _counting_from_zero(num, unit, col)) is not None:
            raise ImportFormatError(counting)
        # a wrong unit would put every event in 1970 or the far future: say so instead
        likely = likely_unit(median)
        if likely != unit and small is None:
            raise ImportFormatError(
                f"time column {col!r} looks like {EPOCH_UNITS[likely][0]} (median {median:.0f}); "
                f"use --time-unit {likely}"
            )
        _refuse_mixed(raw, present, num, col)
        _zone_unused(zone, col, said, "epoch numbers are UTC")
        # out of datetime's range (±292 years around 1970 in ns) → unparseable, not an exception
        num = num.where(num.abs() < 9.2e18 / EPOCH_UNITS[unit][1])
        if unit != "ns" and bool((num.dropna() % 1 != 0).any()):
            # fractions of a unit (GRU4Rec's 1396310460.897 s) in binary floats read .896999931: to the
            # nearest microsecond, or the stored milliseconds would be cut to .896
            micros = (num * (EPOCH_UNITS[unit][1] / 1e3)).round()
            return pd.to_datetime(micros, unit="us", utc=True, errors="coerce")
        return pd.to_datetime(num, unit=unit, utc=True, errors="coerce")
    if present.any() and num[present].notna().all():
        if (long_dates := _long_date_hint(raw[present].head(_DATE_PEEK), col)) is not None:
            raise ImportFormatError(long_dates)
        if (small := _counters(num[present].median(), col)) is not None:
            raise ImportFormatError(_month_day_hint(num[present], col) or _short_date_hint(num[present], col) or small)
        # said at once, not after the unit asked for is given (Riiid's counters look like seconds by their median)
        if (counting := _counting_from_zero(num[present], likely_unit(num[present].median()), col)) is not None:
            raise ImportFormatError(counting)
        raise ImportFormatError(
            f"time column {col!r} holds numbers (e.g. {str(raw[present].iloc[0])!r}); "
            f"pass --time-unit s or ms (or us, ns) for epoch times: these look like "
            f"{EPOCH_UNITS[likely_unit(num[present].median())][0]}"
        )
    _refuse_mixed(raw, present, num, col)
    if (clock := _clock_only_hint(raw[present], col)) is not None:
        raise ImportFormatError(clock)
    zoned = pd.Series(_zoned(raw, present), index=raw.index)
    # the times that name their zone and those that do not are parsed apart: in one call, pandas 2.x gives
    # a zone-less time the offset of the zoned one before it (pandas-dev/pandas#61389)
    ts = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    for part in (zoned, ~zoned):
        if part.any():  # naive times read as UTC first
            ts[part] = pd.to_datetime(raw[part], utc=True, errors="coerce", format="ISO8601")
    retry = ts.isna() & present
    if retry.any():
        dayfirst = _day_first(raw[retry], col, notes, r.dayfirst)
        for part in (retry & zoned, retry & ~zoned):
            if part.any():
                ts[part] = pd.to_datetime(raw[part], utc=True, errors="coerce", format="mixed", dayfirst=dayfirst)
    if present.any() and ts.notna().sum() == 0:
        raise ImportFormatError(
            f"no value of time column {col!r} parses as a datetime (e.g. {str(raw[present].iloc[0])!r})"
        )
    naive = present.to_numpy() & ts.notna().to_numpy() & ~zoned.to_numpy()
    if not naive.any():
        _zone_unused(zone, col, said, "every time carries its zone")
        return ts
    wall = ts.dt.tz_localize(None)
    local = _in_zone(wall, zone, col, said, naive)
    return ts.where(~naive, local)


#: a time of day with no date: 22:47, 22:47:33, 10:47:33.250 PM
_CLOCK_ONLY = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp]\.?[Mm]\.?)?"


def _clock_only_hint(cells: pd.Series, col: str) -> str | None:
    """What to say of a column of times of day with no date (an export's ``Time`` beside its ``Date``):
    parsed alone, each would be dated today, and most would lie in the future."""
    text = cells.head(_DATE_PEEK).astype(str).str.strip()
    if text.empty or float(text.str.fullmatch(_CLOCK_ONLY).mean()) < 0.9:
        return None
    return (
        f"time column {col!r} holds times of day without a date (e.g. {text.iloc[0]!r}): name the column of dates "
        f"beside it too, e.g. --time-col Date,{col} (a date and a time of day are read as one time)"
    )


#: both numbers and written dates in at least this share of a time column's cells: two exports mixed
MIXED_TIMES_SHARE = 0.05


#: unread time cells looked at for lists of times
_LISTED_PEEK = 200


def listed_times_note(raw: pd.Series, ts: pd.Series, col: str) -> str | None:
    """A word when the time cells left unread list several times each (Yelp's check-ins: one
    business's visits in one ``date`` cell, comma-separated): their rows are quarantined as
    ``bad_timestamp``, and one row per time is the way in."""
    unread = raw[is_present(raw).to_numpy() & ts.isna().to_numpy()]
    if unread.empty:
        return None
    cells = unread.astype("string").head(_LISTED_PEEK)
    parts = cells.str.split(",").explode().str.strip()
    parts = parts[parts != ""]
    if parts.empty or cells.str.count(",").lt(1).mean() > 0.5:
        return None
    if reads_as_dates(parts).mean() < 0.9:
        return None
    return (
        f"{len(unread):,} cells of {col!r} list several times (e.g. {str(cells.iloc[0])[:50]!r}…): each such row "
        f"is quarantined (bad_timestamp); make it one row per time first, e.g. pandas' "
        f"df.assign({col}=df[{col!r}].str.split(', ')).explode({col!r})"
    )


def _refuse_mixed(raw: pd.Series, present: pd.Series, num: pd.Series, col: str) -> None:
    """A time column of epoch numbers and written dates both (two exports appended): whichever way
    it is read, the other kind would be quarantined, half a file with no word on why."""
    numbers = present & num.notna()
    written = present & num.isna()
    n = int(present.sum())
    if not n or numbers.sum() < MIXED_TIMES_SHARE * n or written.sum() < MIXED_TIMES_SHARE * n:
        return
    sample = raw[written].head(50)
    if pd.to_datetime(sample, errors="coerce", utc=True, format="mixed").notna().mean() < 0.5:
        return  # text that is no date: unreadable rows, quarantined one by one
    raise ImportFormatError(
        f"time column {col!r} mixes numbers ({int(numbers.sum()):,}, e.g. {str(raw[numbers].iloc[0])!r}) and written "
        f"dates ({int(written.sum()):,}, e.g. {str(sample.iloc[0])!r}): write them one way, e.g. the numbers as "
        "dates with pandas' to_datetime(unit='s'), then import again"
    )


#: a time that names its zone, at its end: ``…10:00:00Z``, ``…10:00+08:00``, ``…10:00:00-0500``,
#: ``… UTC``, Twitter's ``… +0000 2012``; a date's own dashes (``13-11-2000``) are no offset
_ZONED = re.compile(
    r"(?:\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)|\b(?:UTC|GMT)|[+-]\d{4}\s+\d{4})\s*$"
)
#: a zone is looked for in this many trailing characters (a bounded scan per distinct value)
_ZONE_TAIL = 40


def _zoned(raw: pd.Series, present: pd.Series) -> np.ndarray:
    """Which present cells name their zone, tested once per distinct value."""
    values = raw[present]
    if values.empty:
        return np.zeros(len(raw), dtype=bool)
    codes, uniques = pd.factorize(values)
    tails = pd.Series(uniques, dtype="string").str.slice(-_ZONE_TAIL)
    hit = tails.str.contains(_ZONED, na=False).to_numpy(dtype=bool)
    out = np.zeros(len(raw), dtype=bool)
    out[present.to_numpy()] = hit[codes]
    return out


def _in_zone(wall: pd.Series, zone: str | None, col: str, said: list[str], naive: np.ndarray) -> pd.Series:
    """Wall-clock times without a zone as UTC instants: in ``zone``, or read as UTC and said. A
    wall time that a clock change skips moves forward, and one it repeats is read as standard time:
    an hour's doubt, not a row lost."""
    n = int(naive.sum())
    times = "time" if n == 1 else "times"
    if zone is None:
        if n:
            said.append(
                f"{n:,} {times} in {col!r} without a time zone read as UTC; --time-zone names theirs (an IANA name "
                "such as Asia/Shanghai, or +08:00)"
            )
        return wall.dt.tz_localize("UTC")
    said.append(f"{n:,} {times} in {col!r} without a zone read in {zone} (--time-zone)")
    local = wall.dt.tz_localize(zone, ambiguous=np.zeros(len(wall), dtype=bool), nonexistent="shift_forward")
    return local.dt.tz_convert("UTC")


def _zone_unused(zone: str | None, col: str, said: list[str], why: str) -> None:
    if zone is not None:
        said.append(f"--time-zone {zone} not applied to {col!r}: {why}")


#: strptime directives of a fixed number of digits, and how many
_FIXED_WIDTH = {"%Y": 4, "%y": 2, "%m": 2, "%d": 2, "%H": 2, "%M": 2, "%S": 2, "%j": 3}
_YEARS = ("%Y", "%y", "%G")


def _formatted(
    raw: pd.Series, present: pd.Series, fmt: str, year: int | None, zone: str | None, col: str, said: list[str]
) -> pd.Series:
    """``--time-format``: times written by a strptime format (Tmall's ``829`` for August 29th is
    ``%m%d``, with ``--year``). Numbers read from a text file lose their leading zeros, so a format
    of digits alone pads them back to its width."""
    directives = re.findall(r"%.", fmt)
    if not any(d in fmt for d in _YEARS) and year is None:
        raise ImportFormatError(f"--time-format {fmt!r} has no year (%Y): give the year the times fall in with --year")
    if any(d in fmt for d in _YEARS) and year is not None:
        raise ImportFormatError(f"--year completes a --time-format without a year; {fmt!r} has one")
    zoned = "%z" in fmt or "%Z" in fmt
    # each distinct value parsed once (Tmall's 55M rows hold ~190 dates), then spread back
    codes, uniques = pd.factorize(raw.where(present.to_numpy(), None))
    text = pd.Series(uniques, dtype="string").str.strip().str.replace(r"\.0+$", "", regex=True)
    if directives and all(d in _FIXED_WIDTH for d in directives) and re.sub(r"%.", "", fmt) == "":
        width = sum(_FIXED_WIDTH[d] for d in directives)
        digits = text.str.fullmatch(r"\d+", na=False)
        text = text.where(~digits, text.str.zfill(width))
    full = fmt
    if year is not None:
        text, full = str(year) + "\x1f" + text, "%Y\x1f" + fmt
    try:
        parsed_uniques = pd.to_datetime(text, format=full, errors="coerce", utc=zoned)
    except ValueError as exc:
        raise ImportFormatError(f"--time-format {fmt!r} is not a format pandas reads: {exc}") from exc
    parsed = pd.Series(parsed_uniques.to_numpy()[codes], index=raw.index)
    parsed[codes < 0] = pd.NaT
    parsed = pd.to_datetime(parsed, utc=zoned)
    if present.any() and parsed.notna().sum() == 0:
        raise ImportFormatError(
            f"no value of time column {col!r} matches --time-format {fmt!r} (e.g. {str(raw[present].iloc[0])!r})"
        )
    if zoned:  # the format read each time's zone (%z)
        _zone_unused(zone, col, said, "its format reads each time's zone")
        return parsed
    return _in_zone(parsed, zone, col, said, (present & parsed.notna()).to_numpy())


def _counted(
    num: pd.Series,
    present: pd.Series,
    raw: pd.Series,
    unit: str | None,
    origin: str,
    zone: str | None,
    col: str,
    said: list[str],
) -> pd.Series:
    """``--time-origin``: numbers that count ``unit`` from a start (Twitch's 10-minute ticks)."""
    if unit is None:
        raise ImportFormatError("--time-origin counts the time column's numbers from a date: it needs --time-unit")
    if present.any() and num[present].isna().all():
        raise ImportFormatError(
            f"time column {col!r} holds no numbers (e.g. {str(raw[present].iloc[0])!r}) to count from --time-origin"
        )
    start = parse_origin(origin, zone, unit)
    said.append(f"times: {col!r} counted in units of {unit} from {start.isoformat()} (--time-origin)")
    offset = num.astype("float64") * time_unit_ns(unit)
    # out of datetime's range (before 1677 or after 2262) → unparseable (quarantined), not an exception
    room_after = float(pd.Timestamp.max.tz_localize("UTC").value - start.value)
    room_before = float(pd.Timestamp.min.tz_localize("UTC").value - start.value)
    inside = (offset < room_after * 0.999) & (offset > room_before * 0.999)
    if present.any() and not inside[present].any():
        # every time years past what a calendar holds: no counter in this unit (Avazu's 14102100 hours)
        first = str(raw[present].iloc[0])
        raise ImportFormatError(
            _short_date_hint(num[present], col)
            or f"time column {col!r} counted in units of {unit} from {start.date()} falls outside the years 1677-2262 "
            f"on every row (e.g. {first!r}): no counter in that unit"
        )
    return start + pd.to_timedelta(offset.where(inside), unit="ns")


#: a date written with its day and month as numbers first: 11/1/2000, 13.11.2000 08:15
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}\b")


def _day_first(raw: pd.Series, col: str, notes: list[str] | None, told: bool | None) -> bool:
    """Whether dates such as ``11/1/2000`` put the day first, for the whole column at once: parsed
    one by one, ``13/11/2000`` would be read day first and ``1/11/2000`` month first in the same
    file. A first field above 12 says day first, a second above 12 month first; neither leaves it
    to ``told`` (``--dayfirst``), month first by default, and is said."""
    parts = raw.astype("string").str.extract(_NUMERIC_DATE).dropna().astype(int)
    if parts.empty:
        return bool(told)
    first, second = bool((parts[0] > 12).any()), bool((parts[1] > 12).any())
    if first and second:
        raise ImportFormatError(
            f"time column {col!r} holds dates with the day first (e.g. a first number above 12) and others with the "
            "month first: write them one way (ISO 8601, 2000-11-13, is read without doubt)"
        )
    said = notes if notes is not None else []
    if told is not None:
        if (told and second) or (not told and first):
            raise ImportFormatError(
                f"time column {col!r}: --{'' if told else 'no-'}dayfirst contradicts its dates "
                f"(a {'second' if told else 'first'} number above 12)"
            )
        return told
    if first or second:
        said.append(f"dates in {col!r} read {'day' if first else 'month'} first (a number above 12 says so)")
        return first
    said.append(
        f"dates in {col!r} read month first (e.g. 11/1/2000 as November 1st): no number above 12 tells; "
        "--dayfirst reads them day first"
    )
    return False


def offset_times(ts: pd.Series, offsets: pd.Series, unit: str, time_col: str, col: str, notes: list[str]) -> pd.Series:
    """``ts`` plus each row's offset (Diginetica's ``timeframe``: milliseconds since the session
    began, beside a date). A row whose offset is missing or not a number keeps its time alone,
    and the import says how many did. Under ``hhmm`` the offset is a clock time written as one
    number (Ta-Feng's and Dunnhumby's ``1435``, ``905``)."""
    if re.search(r"(?i)zone|tz|utc_?offset|gmt", col):
        # Foursquare's TIST2015 times are UTC with the venue's offset beside them: adding it moves each instant
        notes.append(
            f"warning: {col!r} looks like a time zone offset: --time-offset-col adds it to each time, which moves "
            "the event's moment; times that carry their zone (+0000) are right as they are, and a file of local "
            "times without one takes --time-zone"
        )
    if unit.strip().lower() == CLOCK_UNIT:
        return ts + _hhmm_spans(offsets, time_col, col, notes).to_numpy()
    per_ns = time_unit_ns(unit, "--time-offset-unit")
    present = is_present(offsets)
    text = offsets.astype("string").str.strip()
    clock = text.str.fullmatch(HMS, na=False)
    if present.any() and clock.sum() * 2 > present.sum():
        # a time of day written out (Yahoo! Music's 23:41:00): a duration, whatever the unit says
        hms = text.where(clock)
        # two parts are minutes:seconds under a unit of seconds or less (a track's 4:30), else hours:minutes
        short = per_ns <= 1e9
        pairs = hms.str.count(":") == 1
        hms = hms.where(~pairs, ("0:" + hms) if short else (hms + ":00"))
        spans = pd.to_timedelta(hms, errors="coerce")
        unread = int((spans.isna() & present).sum())
        two = " (two parts: minutes:seconds, as --time-offset-unit is seconds or less)" if short else ""
        notes.append(f"times: {time_col!r} plus {col!r} read as hours:minutes:seconds{two}")
        if unread:
            notes.append(
                f"{unread:,} row{'s' if unread != 1 else ''} with an offset in {col!r} that is no "
                "hh:mm:ss: their time alone is kept"
            )
        return ts + spans.fillna(pd.Timedelta(0)).to_numpy()
    num = to_numbers(offsets)
    unread = int((num.isna() & present).sum())
    if unread * 2 > int(present.sum()):
        example = text[num.isna() & present].iloc[0]
        raise ImportFormatError(
            f"{unread:,} of the {int(present.sum()):,} offsets in {col!r} are not numbers (e.g. {example!r}): "
            "--time-offset-col reads a count of --time-offset-unit, or a time written hh:mm:ss"
        )
    if unread:
        rows = "row" if unread == 1 else "rows"
        notes.append(f"{unread:,} {rows} with an offset in {col!r} that is not a number: their time alone is kept")
    named = {**EPOCH_UNITS, **_LONG_UNITS}.get(unit.strip(), (unit.strip(),))[0]
    notes.append(f"times: {time_col!r} plus {col!r} in {named}")
    if _clock_times(num):
        notes.append(
            f"warning: the offsets in {col!r} look like clock times written as hhmm (none ends above 59, up to "
            f"{int(num.max())}): read as {named} they are off; --time-offset-unit {CLOCK_UNIT} reads them as "
            "clock times"
        )
    # whole nanoseconds: a float count of a long unit (1.5 min) is no fraction of a nanosecond off
    return ts + pd.to_timedelta(np.round(num.fillna(0).to_numpy(dtype=np.float64) * per_ns), unit="ns")


#: the --time-offset-unit of clock times written as one number: 1435 is 14:35, 905 is 09:05
CLOCK_UNIT = "hhmm"


def _hhmm_spans(offsets: pd.Series, time_col: str, col: str, notes: list[str]) -> pd.Series:
    """Each row's clock time as the span since midnight. A cell that is no clock time (not a
    whole number, minutes above 59, hours above 23) keeps its row's time alone, and is counted;
    a column where most are refuses the unit."""
    present = is_present(offsets)
    num = to_numbers(offsets)
    hours, minutes = num // 100, num % 100
    clock = (num == num.round()) & (num >= 0) & (hours <= 23) & (minutes <= 59)
    unread = present & ~clock.fillna(False).astype(bool)
    if int(unread.sum()) * 2 > int(present.sum()):
        example = offsets[unread].astype("string").iloc[0]
        raise ImportFormatError(
            f"{int(unread.sum()):,} of the {int(present.sum()):,} offsets in {col!r} are no clock time written as "
            f"hhmm (e.g. {example!r}; 1435 is 14:35): give --time-offset-unit the unit they count"
        )
    notes.append(f"times: {time_col!r} plus {col!r} read as clock times written hhmm (1435 = 14:35)")
    if unread.any():
        count = int(unread.sum())
        notes.append(
            f"{count:,} row{'s' if count != 1 else ''} with an offset in {col!r} that is no hhmm clock time: "
            "their time alone is kept"
        )
    spans = pd.to_timedelta((hours * 60 + minutes).where(~unread & present, 0).fillna(0), unit="min")
    return spans


#: an offset written as a time of day or a duration: 23:41:00, 7:05, 1:02:03.5
HMS = r"\d{1,3}:[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
#: offsets looked at before they are said to look like hhmm clock times (fewer tell nothing)
_CLOCK_SAMPLE = 20


def _clock_times(num: pd.Series) -> bool:
    """Whole numbers up to 2359 whose last two digits never pass 59 (Ta-Feng's and many a retail
    log's ``1435``): a count of minutes or seconds would pass 59 in four of ten rows."""
    whole = num.dropna()
    if (
        len(whole) < _CLOCK_SAMPLE
        or (whole != whole.round()).any()
        or whole.min() < 0
        or not 100 <= whole.max() <= 2359
    ):
        return False
    return bool((whole % 100 < 60).all())


#: at least this share of users with two or more rows having them all at one time is said
TIED_USERS_SHARE = 0.5


#: what adds an order to tied times: an offset column; for list cells, flattening with positions
_OFFSET_WAY = (
    "a column of times within the day or session, or of places in it (Expedia's position, as seconds), adds to it "
    "with --time-offset-col and --time-offset-unit; without one, a held-out question sees none of the rows tied "
    "with it, so the session features learn nothing from them"
)
_LIST_WAY = (
    "the items of one list cell share its row's time: to keep a list's order, flatten it to rows with each "
    "item's position first and give that as --time-offset-col (README, the Million Playlist recipe)"
)


def tied_times_note(users: pd.Series, ts: pd.Series, lists: bool = False) -> str | None:
    """A word when most users' rows all share one time (dates without hours, one time per session):
    their order is then unknown to every step that follows time, the hold-out included. ``lists``:
    the rows come from list cells, whose items share their row's time by nature."""
    way = _LIST_WAY if lists else _OFFSET_WAY
    span = (
        pd.DataFrame({"u": users.to_numpy(), "t": ts.to_numpy()}).dropna().groupby("u")["t"].agg(["min", "max", "size"])
    )
    several = span[span["size"] > 1]
    if several.empty:
        return None
    tied = int((several["min"] == several["max"]).sum())
    if tied < TIED_USERS_SHARE * len(several):
        return None
    return (
        f"{tied:,} of the {len(several):,} users with several rows have them all at one time (dates without "
        "times of day, or one time per session): their order within it is unknown, and each user's hold-out "
        f"takes an arbitrary part of it; {way}"
    )


#: at least this share of rows sharing their user's time with another row is said
SHARED_ROWS_SHARE = 0.75


def shared_times_note(users: pd.Series, ts: pd.Series, offset_col: str | None = None) -> str | None:
    """A word when most rows share their user's time with another row although the users' times
    differ (Spotify's sessions: a date and an hour of day), which ``tied_times_note`` does not see.
    With an offset column given already, the ties are the file's own (a basket's lines share its
    checkout time), and no option is suggested."""
    frame = pd.DataFrame({"u": users.to_numpy(), "t": ts.to_numpy()}).dropna()
    shared = int(frame.duplicated(keep=False).sum())
    if not len(frame) or shared < SHARED_ROWS_SHARE * len(frame):
        return None
    way = (
        f"even with {offset_col!r} added (a basket's lines share its checkout time; a finer time or a position "
        "in its place would order them)"
        if offset_col
        else "if the file has a position or a finer time, --time-offset-col adds it"
    )
    return (
        f"{shared:,} of the {len(frame):,} rows share their user's time with another row: their order within it "
        f"is unknown, and the hold-out takes an arbitrary part of it; {way}"
    )


#: users a log needs before their shared first time is judged, and the share of them that must share it
COMMON_START_USERS = 20
COMMON_START_SHARE = 0.5


def common_start_note(users: pd.Series, ts: pd.Series, col: str) -> str | None:
    """A warning when most users' first event falls on one instant finer than a day, the file's
    earliest (Riiid's ``timestamp``: milliseconds since each user's own first event, 0 for everyone):
    counted per user, the times are no timeline, and time windows, drift and the hold-out would set
    users side by side at unrelated moments. Dates alone are left out: a short log's first day is
    many users' first (WeChat's 14 days)."""
    frame = pd.DataFrame({"u": users.reset_index(drop=True), "t": ts.reset_index(drop=True)}).dropna()
    if frame["u"].nunique() < COMMON_START_USERS:
        return None
    firsts = frame.groupby("u", sort=False)["t"].min()
    start = firsts.min()
    share = float((firsts == start).mean())
    if share < COMMON_START_SHARE or (start == start.normalize() and (frame["t"] == frame["t"].dt.normalize()).all()):
        return None
    return (
        f"warning: {share:.0%} of the users' first rows are at {start.isoformat()}, the file's earliest time: "
        f"{col!r} counts from each user's own start (Riiid's milliseconds since the user's first event), so its "
        "times are no shared timeline, and time windows, drift and the hold-out would compare users at unrelated "
        "moments. Import with --no-time --file-order instead (each user's rows kept in the file's order, which "
        "must then be their time order), or add each user's real start first"
    )


def one_time_note(ts: pd.Series, col: str) -> str | None:
    """A warning when every row read has the same time (DMSC's ``Crawl_Date``, the day the reviews were
    collected): that dates the file, not its events, and the hold-out, sessions and drift need when each
    happened."""
    times = ts.dropna()
    if len(times) < 2 or times.nunique() != 1:
        return None
    return (
        f"warning: every row's time in {col!r} is {times.iloc[0].isoformat()}: that dates the file, not its "
        "events, so the hold-out, sessions and drift have no order to go by. If another column holds when each "
        "event happened, name it with --time-col; if none does, --no-time --file-order keeps the file's order"
    )


def wall_clock(ts: pd.Series, zone: str | None) -> pd.Series:
    """UTC times as the file's clock read them (``zone``; UTC without one), with no zone attached:
    a zone's midnight may not exist (Brazil's clocks skipped it on the day summer time began), so
    normalizing zoned times to their day would fail where the wall-clock times do not."""
    return (ts.dt.tz_convert(zone) if zone else ts).dt.tz_localize(None)


def dates_only_note(ts: pd.Series, col: str, zone: str | None = None, sessions: str | None = None) -> str | None:
    """A word when every time is a midnight (dates without times of day, Tmall's and H&M's logs):
    the order of a user's events within a day is then unknown, and each day reads as one session."""
    present = ts.dropna()
    if present.empty or present.dt.normalize().nunique() < 2:
        return None
    wall = wall_clock(present, zone)
    if not (wall == wall.dt.normalize()).all():
        return None
    # with a session column the sessions are the file's own, not the day's
    cut = f"sessions come from {sessions!r}" if sessions else "one day reads as one session"
    if (wall.dt.day == 1).all() and len(present) >= _MONTHS_SEEN:
        # TripAdvisor's "December 2012": read as its first day, which is no day anybody chose
        return (
            f"every time in {col!r} is the first of a month: months without a day (December 2012), read as their "
            f"first day; a user's events within a month are in no known order and {cut}"
        )
    return (
        f"every time in {col!r} is a date without a time of day: a user's events within a day are in no known "
        f"order and {cut}; a column of times within the day adds to it with --time-offset-col and "
        "--time-offset-unit"
    )


#: times all on the first of a month, at least this many, read as months without a day
_MONTHS_SEEN = 20


#: a number written with a decimal comma (a European spreadsheet's "4,5")
_DECIMAL_COMMA = r"^\s*-?\d+,\d+\s*$"


def _decimal_commas(cells: pd.Series, col: str, said: list[str]) -> pd.Series:
    """Ratings written with a decimal comma read as numbers, and said: left to the number parser,
    "4,5" would be unreadable, its row quarantined, and every half star of the file lost."""
    if cells.dtype != object and not pd.api.types.is_string_dtype(cells):
        return cells
    text = cells.astype("string")
    comma = text.str.fullmatch(_DECIMAL_COMMA, na=False)
    if not comma.any():
        return cells
    said.append(
        f"{int(comma.sum()):,} ratings in {col!r} written with a decimal comma (e.g. {text[comma].iloc[0].strip()!r}) "
        "read as decimals"
    )
    return text.where(~comma, text.str.replace(",", ".", regex=False)).astype(object)


#: a rating written as a fraction of its scale (a beer review's "13/20", "4.5/5")
_FRACTION = r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$"


def _fractions(cells: pd.Series, col: str, said: list[str]) -> tuple[pd.Series, bool]:
    """Ratings written as fractions ("13/20") read as their share of the scale (0.65), and said;
    whether any were. A zero denominator is no fraction: that cell stays unreadable."""
    if cells.dtype != object and not pd.api.types.is_string_dtype(cells):
        return cells, False
    text = cells.astype("string")
    parts = text.str.extract(_FRACTION)
    num, den = to_numbers(parts[0]), to_numbers(parts[1])
    fraction = (den > 0).fillna(False).to_numpy(dtype=bool)
    if not fraction.any():
        return cells, False
    example = text[fraction].iloc[0].strip()
    above = (to_numbers(text.where(~fraction)) > 1).fillna(False).to_numpy(dtype=bool)
    if above.any():
        raise ImportFormatError(
            f"rating column {col!r} mixes fractions (e.g. {example!r}) with plain numbers (e.g. "
            f"{text[above].iloc[0].strip()!r}) on no stated scale: write them one way"
        )
    said.append(
        f"{int(fraction.sum()):,} ratings in {col!r} written as fractions (e.g. {example!r}) read as their share "
        "of their scale, from 0 to 1"
    )
    out = cells.astype(object).copy()
    out[fraction] = (num / den)[fraction].to_numpy()
    return out, True


def _unread_examples(cells: pd.Series, rating: pd.Series) -> str:
    """A few of the cells no number was read from, quoted, for an error that says what it saw."""
    unread = cells[rating.isna() & is_present(cells)].astype(str).str.strip()
    shown = pd.unique(unread[unread != ""].to_numpy())[:3]
    return f" (its cells read e.g. {', '.join(map(repr, shown))})" if len(shown) else ""


#: a top rating more than this many times the next highest, on at most CODE_SHARE of the rated rows,
#: is a code beside the scale (Yahoo!'s 255, "never play again", above its 0-100)
CODE_GAP = 2.0
CODE_SHARE = 0.1


def _code_above_scale(rating: pd.Series, col: str) -> str | None:
    """A word when the file's highest rating stands apart from the rest: scaled by it, every real
    rating would read low (Yahoo! R1's 100 of 100 as 0.39, a skip)."""
    values = rating.dropna()
    distinct = np.sort(values.unique())
    if len(distinct) < 3:
        return None
    top, below = float(distinct[-1]), float(distinct[-2])
    n = int((values == top).sum())
    if not (below > 0 and top > CODE_GAP * below and n <= CODE_SHARE * len(values)):
        return None
    return (
        f"warning: the top rating {top:g} in {col!r} ({n:,} rows) stands apart from the rest (next highest "
        f"{below:g}): a code rather than a rating (Yahoo!'s 255, 'never play again')? Scaled by it, the ratings "
        f"read low ({below:g} as {below / top:.2f}): --rating-max {below:g} --unrated {top:g} reads the rest on "
        f"their scale and the code as an unrated play; a code that means a dislike is replaced by the lowest "
        "rating before importing"
    )


def types_and_values(
    raw: pd.DataFrame,
    rating_col: str | None,
    type_col: str | None,
    rating_max: float | None = None,
    notes: list[str] | None = None,
    type_map: dict[str, str] | None = None,
    unrated: float | None = None,
    event_type: str | None = None,
):
    """Event types and values from a rating (scaled by the top rating: the file's highest, or
    ``rating_max``, which keeps the parts of a log imported in parts on one scale) or a type column
    (its names through ``type_map``, then the built-in synonyms). What the scale was, ratings above
    ``rating_max`` and type names that are no event type are said in ``notes``.

    ``unrated`` is the rating that means "no rating given" (Book-Crossing's and Goodreads' 0, an
    anime list's -1): such a row is a play of unknown value, neither positive nor negative, and
    stays out of the scale. Read as a rating it would be the lowest: a skip."""
    said = notes if notes is not None else []
    n = len(raw)
    norm = None
    no_rating = np.zeros(n, dtype=bool)
    if unrated is not None and rating_col is None:
        raise ImportFormatError("--unrated names a value of the rating column: it needs --rating-col")
    if rating_col is not None:
        cells, fractions = _fractions(_decimal_commas(raw[rating_col], rating_col, said), rating_col, said)
        rating = to_numbers(cells)
        # an empty rating (a parquet NaN, an empty cell, "NA") is an interaction without a rating:
        # a play of unknown value, as --unrated makes of a marker value, not an unreadable row
        blank = (~is_present(cells) | cells.astype("string").str.strip().str.lower().isin(MISSING_TOKENS)).to_numpy()
        no_rating = no_rating | blank
        if blank.any() and type_col is None:  # beside a type column a row keeps its type (``_rated_note``)
            said.append(
                f"{int(blank.sum()):,} {'row' if int(blank.sum()) == 1 else 'rows'} without a rating read as plays "
                "of unknown value (neither positive nor "
                "negative)"
            )
        if unrated is not None:
            no_rating = no_rating | (rating == unrated).to_numpy()
            rating = rating.mask(no_rating)
            if type_col is None:  # beside a type column, only the rows typed as rated are read by it (``_rated_note``)
                said.append(
                    f"{int((no_rating & ~blank).sum()):,} rows rated {unrated:g} read as unrated plays (--unrated: "
                    "neither positive nor negative, left out of the scale)"
                )
        if rating_max is not None and not rating_max > 0:
            raise ImportFormatError(f"--rating-max must be positive, got {rating_max:g}")
        top = (1.0 if fractions else rating.max()) if rating_max is None else rating_max
        if not top > 0:
            words = set(cells.dropna().astype(str).str.strip().str.lower().unique().tolist()[:10])
            flags = (
                f"; a column of {'/'.join(sorted(words))} flags is no rating: --type-col {rating_col} --type-map "
                "true=TYPE,false=TYPE reads it (e.g. true=skip,false=play for a skip flag)"
                if words and words <= {"true", "false", "yes", "no", "t", "f"}
                else ""
            )
            raise ImportFormatError(
                f"rating column {rating_col!r} holds no positive numbers{_unread_examples(cells, rating)}{flags}"
            )
        source = "(the file's highest; --rating-max sets it)" if rating_max is None else "(--rating-max)"
        if fractions and rating_max is None:
            source = "(a whole fraction; --rating-max sets it)"
        scale_note = len(said)
        said.append(f"ratings scaled by the top rating {top:g} {source}")
        if type_col is None and top == 1 and set(rating.dropna().unique().tolist()) == {0.0, 1.0}:
            # a 0/1 target (KKBox's "replayed within a month") is often "not positive", not "disliked"
            said.append(
                f"{rating_col!r} holds 0 and 1 only: 1 is a like, 0 a skip (a negative); if 0 means only 'not "
                "positive', --unrated 0 reads it as a play of unknown value"
            )
        if unrated is None and (zero_note := _zero_below_scale(rating, rating_col)):
            said.append(zero_note)
        if rating_max is None and unrated is None and (code := _code_above_scale(rating, rating_col)):
            said.append(code)
        if rating_max is not None:
            above = int((rating > top).sum())
            if above:
                said.append(f"{above:,} ratings above --rating-max {top:g} counted as the top rating")
        norm = (rating / top).clip(0.0, 1.0).to_numpy()
        below = rating[rating < 0]
        if len(below):
            lo = _through_zero_from(rating, below, top, said)
            if lo is not None:  # one scale note, not a top-only one followed by its correction
                said[scale_note] = f"ratings run below zero: scaled from the lowest {lo:g} to the top {top:g} {source}"
                norm = ((rating - lo) / (top - lo)).clip(0.0, 1.0).to_numpy()
    if type_col is not None:
        t = _type_names(raw[type_col])
        mapped = type_map or {}
        # one dict, so a name is translated once: a map entry is never re-read as a synonym
        names = _with_plurals(t, {**TYPE_SYNONYMS, **mapped})
        types = t.replace(names).astype(object).where(t.notna(), None).to_numpy()
        blank = (t.isna() | (t == EMPTY_TYPE)).to_numpy(dtype=bool)
        if blank.any() and type_col != CLICK_TYPE_COL:  # an id without a click mark is said by its own note
            if EMPTY_TYPE in mapped:
                types[blank] = mapped[EMPTY_TYPE]
            else:
                types[blank] = None  # quarantined: an empty name is no type, not even a mapped one's
                said.append(_empty_types_note(int(blank.sum()), type_col))
        if synonyms := synonyms_note(t, names, mapped):
            said.append(synonyms)
        marked = type_col == CLICK_TYPE_COL  # an impression list's unclicked items are impressions by their marks
        if not marked and (shown := int((t == "impression").sum())) and "impression" not in mapped:
            # the word means a page seen in some logs (Plista's: an article read), an item shown here
            said.append(
                f"{shown:,} row{'s' if shown != 1 else ''} typed 'impression' read as the contract's: an item shown "
                "and not chosen, a negative in training; where it means the item was seen or read, "
                "--type-map impression=view (or =play) reads it so"
            )
        rated = types == RATED
        if rated.any():
            types[rated] = None if norm is None else _by_rating(norm[rated], no_rating[rated])
            said.append(_rated_note(t[rated], rating_col, types[rated], int(no_rating[rated].sum())))
        unknown = unknown_type_note(t[~rated], types[~rated], mapped)  # rated rows were said just above
        if unknown:
            said.append(unknown)
    elif norm is not None:
        types = _by_rating(norm, no_rating)
    else:  # every row of one kind: plays unless ``event_type`` (``--type``) names another
        types = np.full(n, event_type or "play", dtype=object)
    carries = np.isin(types, ["play", "like"])  # only these have a value in the contract
    value = np.where(carries, norm if norm is not None else 1.0, np.nan).astype(np.float32)
    value[no_rating] = np.nan
    return types, value


def _empty_types_note(blank: int, col: str) -> str:
    rows = f"{blank:,} row{'s' if blank != 1 else ''}"
    return (
        f"{rows} with an empty {col!r}: no type, quarantined; where an empty cell means one kind of event, "
        "--type-map =TYPE gives it that type (=play, =view)"
    )


def _by_rating(norm: np.ndarray, no_rating: np.ndarray) -> np.ndarray:
    """Like, skip or play by a scaled rating; an unreadable rating has none (quarantined), and a row
    without a rating is a play (of unknown value)."""
    # taken from one array of three names: a str object per row would cost ~50 B each
    names = np.array(["like", "skip", "play"], dtype=object)
    types = names[np.select([norm >= LIKE_FROM - _EPS, norm <= SKIP_UP_TO + _EPS], [0, 1], 2)]
    types[np.isnan(norm)] = None
    types[no_rating] = "play"
    return types


def _rated_note(names: pd.Series, rating_col: str | None, types: np.ndarray, blank: int) -> str:
    """What became of the rows whose type names a rating (``RATED``); ``blank`` of them had none."""
    shown = ", ".join(repr(v) for v in names.dropna().unique().tolist()[:3])
    rows = f"{len(types):,} row{'s' if len(types) != 1 else ''} typed {shown}"
    if rating_col is None:
        return (
            f"{rows}: a rating with no rating column, so no type (quarantined); --rating-col names the "
            f"column of their ratings"
        )
    read = Counter(t for t in types.tolist() if t is not None)
    got = ", ".join(f"{k} {v:,}" for k, v in sorted(read.items(), key=lambda kv: -kv[1]))
    unrated = f" ({blank:,} without a rating: plays of unknown value)" if blank else ""
    return f"{rows} read by their rating in {rating_col!r}, as a file without a type column reads it: {got}{unrated}"


def _zero_below_scale(rating: pd.Series, col: str) -> str | None:
    """A word when 0 sits apart below a scale of whole stars that starts at 1 (Food.com's reviews
    without stars, Book-Crossing's implicit rows): read as the lowest rating, each is a skip."""
    present = rating.dropna()
    zeros = int((present == 0).sum())
    rest = present[present != 0]
    # a scale that starts at 1 exactly: 0, 10, … 100 is a scale of its own that starts at 0
    if not zeros or rest.empty or rest.min() != 1 or rest.max() < 3 or (rest != rest.round()).any():
        return None
    return (
        f"{zeros:,} row{'s' if zeros != 1 else ''} rated 0 in {col!r}, whose other ratings run from 1 to "
        f"{rest.max():g}: read "
        "as the lowest (skips, negatives); if 0 means 'not rated', --unrated 0 reads them as plays of unknown value"
    )


def _through_zero_from(rating: pd.Series, below: pd.Series, top: float, said: list[str]) -> float | None:
    """The lowest rating when the scale runs through zero (Jester's -10 … 10), to be scaled from it
    to the top so that its middle is a middle and not a skip; None for one value set apart from a
    scale that starts above zero (an anime list's -1 for "watched, not rated"), which is most likely
    a marker: said, and left the lowest rating (a skip)."""
    rest = rating[rating >= 0]
    if below.nunique() == 1 and len(rest) and rest.min() > 0:
        mark = float(below.iloc[0])
        said.append(
            f"{len(below):,} rows rated {mark:g}, apart from the rest of the scale ({rest.min():g} … {top:g}): "
            f"read as the lowest rating (a skip); if {mark:g} means 'not rated', pass --unrated {mark:g}"
        )
        return None
    return float(below.min())


def counted_plays(
    counts: pd.Series, users: pd.Series, col: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Types, values and weights for a log of play counts (one row per user and item, no single
    plays): each row becomes one ``play`` that stands for ``count`` plays (its ``weight``).

    A count means something only next to the user's other counts: 40 plays is a favourite for a
    light listener and a passing try for a heavy one. So a play's value is its count over the
    user's median count, capped at 1: counts from 0.8 of the user's median up are positives
    (``setlist.contract.POSITIVE_PLAY_FRACTION``), lower ones are neither positive nor negative.
    A count may be a measure rather than a number of plays (Steam's hours played, 0.1 and up): any
    number above 0 is one. A count that is not a number above 0 leaves the row without a type
    (quarantined)."""
    count = to_numbers(counts).astype("float64")
    ok = (count > 0.0) & np.isfinite(count)
    present = is_present(counts)
    if present.any() and not ok.any():
        raise ImportFormatError(
            f"count column {col!r} holds no play counts above 0 (e.g. {str(counts[present].iloc[0])!r})"
        )
    typical = count.where(ok).groupby(users.where(ok), sort=False).transform("median")
    value = (count / typical).clip(upper=1.0).where(ok)
    types = np.where(ok.to_numpy(), "play", None).astype(object)
    weight = count.where(ok & (count > 1.0)).to_numpy(dtype=np.float32)  # 1 is the contract's default: null
    positive = int((value >= POSITIVE_PLAY_FRACTION).sum())
    notes.append(
        f"play counts in {col!r}: one play per row standing for its count (its weight); "
        f"{positive:,} of {int(ok.sum()):,} rows count as positives (a count of at least "
        f"{POSITIVE_PLAY_FRACTION:g} of the user's median count)"
    )
    return types, value.to_numpy(dtype=np.float32), weight


#: the share of item cells that look like lists of ids from which the import refuses the file: below it,
#: a log of ids that happen to hold spaces and digits ("A12 B34" as one product's id) imports, warned
LISTED_IDS_REFUSED = 0.9


def list_cells_note(ids: pd.Series, col: str, sample: int = 2_000) -> str | None:
    """A warning when the item column's cells hold several ids each (MIND's impressions
    ``N55689-1 N35729-0``, a basket ``A12 B34``): each cell would be imported as one item that no
    other row names. When nearly every cell does (``LISTED_IDS_REFUSED``), the file is refused
    before anything is stored, as a re-import into the same directory is refused too. A cell counts as
    a list when it splits (on spaces, commas, semicolons or pipes) into two or more tokens that all hold
    a digit, so names such as "Symphony No 5" do not, or when it is a list written out (``[…]``)."""
    cells = ids.dropna()
    cells = cells[cells != ""]
    if cells.empty:
        return None
    if len(cells) > sample:
        cells = cells.sample(sample, random_state=0)
    tokens = cells.astype(str).str.split(SEPARATORS)
    listed = tokens.map(lambda ts: len(ts) >= 2 and all(any(ch.isdigit() for ch in t) for t in ts))
    # a list written out, or read from JSON: "['1000', '1001']", "[]", [27, 9]
    listed |= cells.map(lambda v: isinstance(v, (list, tuple)) or str(v).lstrip().startswith("["))
    share = float(listed.mean())
    if share < 0.5:
        return None
    example = cells[listed].iloc[0]
    marked = tokens[listed].map(lambda ts: all(t[-2:] in ("-0", "-1") for t in ts)).mean() >= 0.5
    option = (
        f"--impressions-col {col} (each id marked -1 clicked or -0 shown, as in MIND) instead of --item-col"
        if marked
        else "--item-lists"
    )
    if share >= LISTED_IDS_REFUSED:
        raise ImportFormatError(
            f"the item column {col!r} looks like lists of ids ({share:.0%} of rows, e.g. {example[:60]!r}), not one "
            f"id per row: import it with {option}, one event per listed item"
        )
    return (
        f"warning: the item column {col!r} looks like lists of ids ({share:.0%} of rows, e.g. {example[:60]!r}); "
        f"each cell is imported as one item. Import it into an empty data directory with {option}: one event "
        "per listed item"
    )
