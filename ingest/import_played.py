"""How much of each item a play took: its listen fraction, and a skip for a play stopped early.

A listening or viewing log often says how long each play lasted (KuaiRec's ``play_duration``,
30Music's ``playtime``) or what share of the item it covered (KuaiRec's ``watch_ratio``, Yambda's
``played_ratio_pct``). That is the contract's play value: a play of most of the item is a positive,
one stopped almost at once a skip (a negative), the rest neither. Without it every play reads as a
whole one, and the skip features of a log full of skips stay at zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingest.import_files import MISSING_TOKENS, ImportFormatError, is_present
from ingest.import_values import HMS, time_unit_ns
from setlist.contract import POSITIVE_PLAY_FRACTION, SKIP_PLAY_FRACTION
from setlist.numbers import to_numbers

#: ``--played-unit`` values that are shares of the item; any other is a unit of time (``time_unit_ns``)
SHARE_UNITS = {"fraction": 1.0, "percent": 100.0}
#: a median listen fraction outside this range means the unit (or the length column) is not what was said:
#: a podcast's half minute of an hour is 0.008; seconds read as milliseconds are a thousandth of the truth
PLAUSIBLE_MEDIAN = (0.002, 10.0)
#: without lengths, a median time played outside this range (seconds) is in another unit than said
PLAUSIBLE_SECONDS = (1.0, 24 * 3600.0)
#: zero plays beyond this share of the plays are said: likely items shown and not played
ZEROS_SAID = 0.3
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h)\s*$")


@dataclass(frozen=True)
class SkipBelow:
    """``--skip-below``: a play shorter than this is a skip, as a share of the item or in seconds."""

    fraction: float = SKIP_PLAY_FRACTION
    seconds: float | None = None

    @classmethod
    def parse(cls, spec: str | None) -> SkipBelow:
        if spec is None or not spec.strip():
            return cls()
        if match := _TIME.match(spec):
            return cls(0.0, float(match.group(1)) * time_unit_ns(match.group(2)) / 1e9)
        try:
            share = float(spec)
        except ValueError:
            share = -1.0
        if not 0.0 <= share < 1.0:
            raise ImportFormatError(
                f"--skip-below is a share of the item from 0 up to 1 (0.25) or a time (30s, 2min), not {spec!r}"
            )
        return cls(share)

    def said(self, skips: int) -> str:
        """The skips found, in words for the import's summary."""
        if self.seconds is None and self.fraction == 0:
            return "no play read as a skip (--skip-below 0)"
        below = (
            f"shorter than {self.seconds:g} s" if self.seconds is not None else f"under {self.fraction:g} of the item"
        )
        return f"{skips:,} {below} read as skips (negatives; --skip-below sets it)"


@dataclass(frozen=True)
class PlayedReading:
    """What the time-played column holds and what it is measured against."""

    col: str
    unit: str = "fraction"
    #: a column of each item's length in the same unit (KuaiRec's ``video_duration``); without one,
    #: a time played is measured against the items file's durations
    length_col: str | None = None
    skip_below: SkipBelow = SkipBelow()

    def check(self) -> None:
        if self.unit not in SHARE_UNITS:
            try:
                time_unit_ns(self.unit, "--played-unit")
            except ImportFormatError:
                raise ImportFormatError(
                    f"--played-unit is fraction, percent or a unit of time (s, ms, min), not {self.unit!r}"
                ) from None
        if self.length_col is not None and self.unit in SHARE_UNITS:
            raise ImportFormatError(
                f"--length-col measures a time played: with --played-unit {self.unit} the column is already a share "
                "of the item"
            )
        if self.skip_below.seconds is not None and self.unit in SHARE_UNITS:
            raise ImportFormatError(
                f"--skip-below {self.skip_below.seconds:g}s needs the time played: --played-unit {self.unit} gives a "
                "share of the item only (--skip-below 0.25 is a share)"
            )

    @property
    def what(self) -> str:
        return "time played" if self.is_time else "share played"

    @property
    def is_time(self) -> bool:
        return self.unit not in SHARE_UNITS

    @property
    def needs_catalogue(self) -> bool:
        """Whether the items file's durations are the lengths plays are measured against."""
        return self.is_time and self.length_col is None


@dataclass
class Played:
    """The plays' new types and values, and the rows whose time played could not be read."""

    types: np.ndarray
    value: np.ndarray
    unread: np.ndarray  # bool per row: a play whose cell is no number (quarantined)


@dataclass
class Lengths:
    """Each row's item length in seconds, and where the lengths came from, for a time played."""

    seconds: np.ndarray | None  # None: no lengths at all (plays can then be told apart by time only)
    source: str  # where they come from, as the notes name it: 'video_duration', tracks.csv's durations
    #: why so few plays found a length, when the reason is known (ids of two forms)
    hint: str = ""


@dataclass
class Amounts:
    """A time-played or length column as read (``read_amounts``)."""

    number: pd.Series  # in the unit said (a share, a percent, or --played-unit)
    blank: np.ndarray
    notes: list[str]

    def unread(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Present cells (of ``rows``, by default all) that read as no number."""
        present = ~self.blank if rows is None else rows & ~self.blank
        return present & self.number.isna().to_numpy(dtype=bool)


def shown_cells(cells: pd.Series, which: np.ndarray) -> str:
    """A few of the cells ``which`` picks, quoted, for a message that says what it saw."""
    return ", ".join(map(repr, pd.unique(cells[which].astype(str).str.strip().to_numpy())[:3]))


def read_amounts(cells: pd.Series, unit: str, col: str) -> Amounts:
    """The cells of a time-played or length column as numbers in ``unit``: plain numbers (a decimal
    comma too), durations written m:ss or h:mm:ss, a duration column (parquet's timedelta) and, for
    a share, percents written with their sign. Blank cells are flagged, not read."""
    said: list[str] = []
    share = unit in SHARE_UNITS
    per_s = 0.0 if share else time_unit_ns(unit, "--played-unit") / 1e9
    text = cells.astype("string").str.strip()
    blank = (~is_present(cells) | text.str.lower().isin(MISSING_TOKENS)).to_numpy(dtype=bool)
    if pd.api.types.is_timedelta64_dtype(cells):
        if share:
            raise ImportFormatError(f"{col!r} holds durations: --played-unit s (or ms, min) reads them as times")
        said.append(f"{col!r} holds durations: read as such, whatever --played-unit says")
        return Amounts(cells.dt.total_seconds() / per_s, blank, said)
    if not (cells.dtype == object or pd.api.types.is_string_dtype(cells)):
        number = to_numbers(cells).astype("float64")
        return Amounts(number.where(np.isfinite(number)), blank, said)
    text = text.str.replace(r"^(-?\d+),(\d+)$", r"\1.\2", regex=True)  # a decimal comma
    number = to_numbers(text).astype("float64")
    if share:
        signed = text.str.fullmatch(r"-?\d+(?:\.\d+)?\s*%", na=False)
        if signed.any():  # "85%": a percent, whatever the unit of the rest
            pct = to_numbers(text.where(signed).str.rstrip("% "))
            number = number.where(~signed, pct * SHARE_UNITS[unit] / 100.0)
            said.append(f"{int(signed.sum()):,} cells of {col!r} written as percents (e.g. {text[signed].iloc[0]!r})")
    else:
        clock = text.str.fullmatch(HMS, na=False)
        if clock.any():  # a play's 3:25 is minutes and seconds: two parts are never hours here
            hms = text.where(clock)
            hms = hms.where(hms.str.count(":") != 1, "0:" + hms)
            spans = pd.to_timedelta(hms, errors="coerce").dt.total_seconds()
            number = number.where(~clock, spans / per_s)
            said.append(
                f"{int(clock.sum()):,} cells of {col!r} written as durations (e.g. {text[clock].iloc[0]!r}: "
                "minutes:seconds, or hours:minutes:seconds)"
            )
    return Amounts(number.where(np.isfinite(number)), blank, said)


def _refuse_unreadable(cells: pd.Series, read: Amounts, rows: np.ndarray, col: str, what: str) -> None:
    """An import stops before writing anything when most of a column is unreadable: each row
    quarantined one by one would be the whole log, with no word on how to read it."""
    present = rows & ~read.blank
    unread = read.unread(rows)
    if not unread.any() or unread.sum() * 2 <= present.sum():
        return
    raise ImportFormatError(
        f"{int(unread.sum()):,} of the {int(present.sum()):,} {what} in {col!r} are no numbers (e.g. "
        f"{shown_cells(cells, unread)}): it is read as plain numbers, durations written m:ss or h:mm:ss, and "
        "percents written with their sign (85%)"
    )


def played_values(
    cells: pd.Series,
    types: np.ndarray,
    value: np.ndarray,
    reading: PlayedReading,
    lengths: Lengths | None,
    notes: list[str],
    rated: np.ndarray | None = None,
    *,
    typed: bool = False,
) -> Played:
    """The listen fraction of each ``play`` row (the other types keep theirs), from ``cells``.
    Rows in ``rated`` (a rating column gave them a value) keep the rating's reading: a log may rate
    some rows and time the others (ContentWise's ratings beside its views).

    A share is taken as it is (a percent over 100); a time played is divided by the item's length
    (``lengths``, from the length column or the items file). A play past the item's end (a replay, a
    looped video) counts as a whole one; a play stopped early (``skip_below``) becomes a ``skip``. A
    blank cell, a number below 0 (a marker) or an item of unknown length leaves a play of unknown
    value (neither positive nor negative); a cell that is no number leaves the row without a type,
    to be quarantined with the cell quoted. Without any lengths (``lengths.seconds`` None), a time
    played tells only skips, by ``skip_below.seconds``: the other plays keep the value they had."""
    col = reading.col
    plays = np.asarray(types == "play", dtype=bool)
    if rated is not None and rated.any():
        plays &= ~rated
        # with a type column the types are its own, and a rating gives a row its value only
        kept = "their rating as their value (the type column gives their types)" if typed else "the rating's reading"
        notes.append(
            f"{int(rated.sum()):,} rows with a rating keep {kept}; {col!r} reads the "
            f"{_plays(int(plays.sum()))} without one"
        )
    read = read_amounts(cells, reading.unit, col)
    _refuse_unreadable(cells, read, plays, col, "times played" if reading.is_time else "shares played")
    notes += read.notes
    number = read.number.to_numpy(dtype="float64")
    readable = ~np.isnan(number)
    # a negative time is no time: most likely a marker for "unknown" (30Music writes -1 so)
    negative = plays & readable & (number < 0)
    unread = plays & ~read.blank & ~readable
    known = plays & readable & ~negative
    no_length = np.zeros(len(cells), dtype=bool)
    seconds = number * (time_unit_ns(reading.unit, "--played-unit") / 1e9 if reading.is_time else np.nan)
    out_value = value.astype(np.float32, copy=True)
    if reading.is_time and (lengths is None or lengths.seconds is None):
        unknown = plays & (read.blank | negative)
        _unknown_notes(plays & read.blank, negative, number, reading, notes, typed)
        return _by_time_only(seconds, types, out_value, plays, known, unknown, unread, reading, lengths, notes)
    if reading.is_time and lengths is not None and lengths.seconds is not None:
        length = lengths.seconds
        has_length = np.isfinite(length) & (length > 0)
        no_length = known & ~has_length
        if no_length.any() and not (known & has_length).any():
            raise ImportFormatError(
                f"no play could be measured: none of the {int(known.sum()):,} plays has its item's length in "
                f"{lengths.source}{lengths.hint}"
            )
        known &= has_length
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(known, seconds / np.where(has_length, length, 1.0), np.nan)
    else:
        share = np.where(known, number / SHARE_UNITS[reading.unit], np.nan)
    zeros = known & (share == 0)
    _check_plausible(share[known & ~zeros], reading)
    past = known & (share > 1.0 + 1e-9)  # beyond rounding: the two columns may be scaled apart
    out_value[plays] = np.nan
    out_value[known] = np.clip(share[known], 0.0, 1.0)
    skip_at = reading.skip_below
    if skip_at.seconds is not None:  # a short item played through is no skip, however short
        early = known & (seconds < skip_at.seconds) & (share < POSITIVE_PLAY_FRACTION)
    else:
        early = known & (share < skip_at.fraction)
    out_types = types.copy()
    out_types[early] = "skip"
    out_value[early] = np.nan  # a skip carries no value in the contract
    out_types[unread] = None
    whole = known & ~early & (out_value >= POSITIVE_PLAY_FRACTION)
    what = (
        f"times played in {col!r} ({reading.unit}) over {lengths.source}"
        if reading.is_time and lengths is not None
        else f"listen shares in {col!r} ({reading.unit})"
    )
    notes.append(
        f"{what}: {_plays(int(plays.sum()))}, {int(whole.sum()):,} of at least {POSITIVE_PLAY_FRACTION:g} of the "
        f"item (positives), {skip_at.said(int(early.sum()))}"
    )
    if zeros.sum() > ZEROS_SAID * max(int(known.sum()), 1):
        notes.append(
            f"{int(zeros.sum()):,} of the {int(known.sum()):,} plays in {col!r} are 0: if they are items shown and "
            "not played, a column that tells clicks apart reads them as impressions (--type-col is_click "
            "--type-map 1=play,0=impression)"
        )
    if past.any():
        notes.append(
            f"{_plays(int(past.sum()))} ran past the item's length ({col!r} above the whole: a replay or a loop), "
            "counted as whole"
        )
    _unknown_notes(plays & read.blank, negative, number, reading, notes, typed)
    if (unsized := int(no_length.sum())) > 0:
        where, hint = (lengths.source, lengths.hint) if lengths is not None else ("no length", "")
        warn = "warning: " if unsized * 2 > int(plays.sum()) else ""
        their = "its" if unsized == 1 else "their"
        notes.append(
            f"{warn}{_plays(unsized)} without {their} item's length in {where} (empty, 0 or less, or no such item) "
            f"{_are(unsized)} of unknown value{hint}"
        )
    return Played(out_types, out_value, unread)


def _by_time_only(
    seconds: np.ndarray,
    types: np.ndarray,
    value: np.ndarray,
    plays: np.ndarray,
    known: np.ndarray,
    unknown: np.ndarray,
    unread: np.ndarray,
    reading: PlayedReading,
    lengths: Lengths | None,
    notes: list[str],
) -> Played:
    """A time played without any item's length (Spotify's ``ms_played``): plays shorter than
    ``--skip-below`` seconds are skips, the rest keep their value (a whole play); a play without a
    time (``unknown``: blank, or a marker below 0) is a play of unknown value."""
    threshold = reading.skip_below.seconds
    if threshold is None:
        raise ImportFormatError(
            f"--played-unit {reading.unit} is a time played, measured against each item's length: name the length "
            "column (--length-col) or an items file with durations (--items), or tell skips by time alone "
            "(--skip-below 30s)" + (lengths.hint if lengths is not None else "")
        )
    timed = seconds[known & (seconds > 0)]
    if len(timed):
        median, (low, high) = float(np.median(timed)), PLAUSIBLE_SECONDS
        if not low <= median <= high:
            raise ImportFormatError(
                f"a median play of {median:.3g} s read from {reading.col!r} in {reading.unit}: is it in another "
                "unit? (--played-unit s, ms or min)"
            )
    early = known & (seconds < threshold)
    out_types = types.copy()
    out_types[early] = "skip"
    value[early | unknown] = np.nan
    out_types[unread] = None
    without = f"{lengths.source} gives no item a length" if lengths is not None else "no item lengths"
    whole = int((known & ~early).sum())
    notes.append(
        f"times played in {reading.col!r} ({reading.unit}), {without}: {_plays(int(plays.sum()))}, "
        f"{reading.skip_below.said(int(early.sum()))}, {whole:,} more as whole plays "
        "(--length-col or an items file with durations measures each against its item)"
    )
    return Played(out_types, value, unread)


def _unknown_notes(
    blank: np.ndarray,
    negative: np.ndarray,
    number: np.ndarray,
    reading: PlayedReading,
    notes: list[str],
    typed: bool = False,
) -> None:
    col, what = reading.col, reading.what
    if (unknown := int(blank.sum())) > 0:
        # NCM's mlogViewTime is empty where the item was shown and never opened: a click column tells them apart
        hint = (
            "; if an empty cell means shown and not played, a column that tells clicks apart reads those as "
            "impressions (--type-col isClick --type-map 1=play,0=impression)"
            if not typed and unknown >= BLANKS_HINTED * len(blank)
            else ""
        )
        notes.append(
            f"{_plays(unknown)} without a {what} in {col!r} {_are(unknown)} of unknown value (neither positive nor "
            f"negative){hint}"
        )
    if (marked := int(negative.sum())) > 0:
        notes.append(
            f"{_plays(marked)} with a {what} below 0 in {col!r} (e.g. {number[negative][0]:g}: a marker for "
            f"'unknown'?) {_are(marked)} of unknown value"
        )


#: a share of plays without a time played this large hints that blanks may be items shown and not played
BLANKS_HINTED = 0.2


def _plays(n: int) -> str:
    return f"{n:,} play" if n == 1 else f"{n:,} plays"


def _are(n: int) -> str:
    return "is a play" if n == 1 else "are plays"


def _check_plausible(share: np.ndarray, reading: PlayedReading) -> None:
    """Refuse a listen fraction whose median no log has: the unit, or the length's, is not the one
    said. Plays of 0 are left out of the median: a log of items shown and not played is no wrong unit."""
    if len(share) == 0:
        return
    median = float(np.median(share))
    low, high = PLAUSIBLE_MEDIAN
    # percents that never pass 1 are shares of 1: no listener stops every play within the first percent
    shares_of_one = reading.unit == "percent" and float(np.max(share)) <= 0.01
    if low <= median <= high and not shares_of_one:
        return
    if reading.is_time and reading.length_col:
        hint = (
            f"a median play of {median:.3g} of the item: is {reading.col!r} in {reading.unit}, and "
            f"--length-col {reading.length_col!r} in the same unit? (--played-unit s, ms or min)"
        )
    elif reading.is_time:
        hint = (
            f"a median play of {median:.3g} of the item: is {reading.col!r} in {reading.unit} (--played-unit s, ms "
            "or min)? The items file's durations are read as seconds (--items-cols duration_ms=… for milliseconds)"
        )
    elif reading.unit == "fraction":
        hint = (
            f"a median of {median:.3g} in {reading.col!r} is no share of the item: --played-unit percent for "
            "percentages, or a unit of time (s, ms) for a time played"
        )
    else:
        hint = (
            f"a median of {median * 100:.3g} in {reading.col!r} as a percent is {median:.3g} of the item: "
            "--played-unit fraction for shares of 1, or a unit of time (s, ms) for a time played"
        )
    raise ImportFormatError(hint)
