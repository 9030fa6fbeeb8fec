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
from ingest.import_values import time_unit_ns
from setlist.contract import POSITIVE_PLAY_FRACTION, SKIP_PLAY_FRACTION

#: ``--played-unit`` values that are shares of the item; any other is a unit of time (``time_unit_ns``)
SHARE_UNITS = {"fraction": 1.0, "percent": 100.0}
#: a median listen fraction outside this range means the unit (or the length column) is not what was said
PLAUSIBLE_MEDIAN = (0.01, 10.0)
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\s*$")


@dataclass(frozen=True)
class SkipBelow:
    """``--skip-below``: a play shorter than this is a skip, as a share of the item or in seconds."""

    fraction: float = SKIP_PLAY_FRACTION
    seconds: float | None = None

    @classmethod
    def parse(cls, spec: str | None) -> SkipBelow:
        if spec is None or not spec.strip():
            return cls()
        if match := _SECONDS.match(spec):
            return cls(0.0, float(match.group(1)))
        try:
            share = float(spec)
        except ValueError:
            share = -1.0
        if not 0.0 <= share < 1.0:
            raise ImportFormatError(
                f"--skip-below is a share of the item from 0 up to 1 (0.25) or a time in seconds (30s), not {spec!r}"
            )
        return cls(share)

    def words(self) -> str:
        if self.seconds is not None:
            return f"shorter than {self.seconds:g} s"
        return f"under {self.fraction:g} of the item"


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


def _numbers(cells: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The cells as numbers, and which are blank (an empty cell or a missing-value token)."""
    text = cells.astype("string").str.strip()
    blank = (~is_present(cells) | text.str.lower().isin(MISSING_TOKENS)).to_numpy(dtype=bool)
    if cells.dtype == object or pd.api.types.is_string_dtype(cells):
        text = text.str.replace(r"^(-?\d+),(\d+)$", r"\1.\2", regex=True)  # a decimal comma
        return pd.to_numeric(text, errors="coerce").astype("float64"), blank
    return pd.to_numeric(cells, errors="coerce").astype("float64"), blank


def played_values(
    cells: pd.Series,
    types: np.ndarray,
    value: np.ndarray,
    reading: PlayedReading,
    lengths_s: pd.Series | None,
    notes: list[str],
) -> Played:
    """The listen fraction of each ``play`` row (the other types keep theirs), from ``cells``.

    A share is taken as it is (a percent over 100); a time played is divided by the item's length
    (``lengths_s``, seconds per row, from the length column or the items file). A play past the
    item's end (a replay, a looped video) counts as a whole one; a play stopped early (``skip_below``)
    becomes a ``skip``. A blank cell, a number below 0 (a marker) or an item of unknown length leaves
    a play of unknown value (neither positive nor negative); a cell that is no number leaves the row
    without a type, to be quarantined with the cell quoted."""
    col = reading.col
    number, blank = _numbers(cells)
    plays = np.asarray(types == "play", dtype=bool)
    readable = number.notna().to_numpy(dtype=bool)
    # a negative time is no time: most likely a marker for "unknown" (30Music writes -1 so)
    negative = plays & readable & (number.to_numpy() < 0)
    unread = plays & ~blank & ~readable
    known = plays & readable & ~negative
    if reading.is_time:
        seconds = number.to_numpy() * time_unit_ns(reading.unit, "--played-unit") / 1e9
        length = lengths_s.to_numpy(dtype="float64") if lengths_s is not None else np.full(len(cells), np.nan)
        has_length = np.isfinite(length) & (length > 0)
        no_length = known & ~has_length
        known &= has_length
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(known, seconds / np.where(has_length, length, 1.0), np.nan)
    else:
        seconds = np.full(len(cells), np.nan)
        no_length = np.zeros(len(cells), dtype=bool)
        share = np.where(known, number.to_numpy() / SHARE_UNITS[reading.unit], np.nan)
    _check_plausible(share[known], reading)
    past = known & (share > 1.0)
    out_value = value.astype(np.float32, copy=True)
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
        f"times played in {col!r} ({reading.unit}) over "
        + (f"the lengths in {reading.length_col!r}" if reading.length_col else "the items file's durations")
        if reading.is_time
        else f"listen shares in {col!r} ({reading.unit})"
    )
    notes.append(
        f"{what}: {_plays(int(plays.sum()))}, {int(whole.sum()):,} of at least {POSITIVE_PLAY_FRACTION:g} of the "
        f"item (positives), {int(early.sum()):,} {skip_at.words()} read as skips (negatives; --skip-below sets it)"
    )
    if past.any():
        notes.append(
            f"{_plays(int(past.sum()))} ran past the item's length ({col!r} above the whole: a replay or a loop), "
            "counted as whole"
        )
    if (unknown := int((plays & blank).sum())) > 0:
        notes.append(
            f"{_plays(unknown)} without a time in {col!r} {_are(unknown)} of unknown value (neither positive nor "
            "negative)"
        )
    if (marked := int(negative.sum())) > 0:
        notes.append(
            f"{_plays(marked)} with a time below 0 in {col!r} (e.g. {number[negative].iloc[0]:g}: a marker for "
            f"'unknown'?) {_are(marked)} of unknown value"
        )
    if (unsized := int(no_length.sum())) > 0:
        where = f"{reading.length_col!r} empty or 0" if reading.length_col else "no duration in the items file"
        notes.append(f"{_plays(unsized)} of items of unknown length ({where}) {_are(unsized)} of unknown value")
    return Played(out_types, out_value, unread)


def _plays(n: int) -> str:
    return f"{n:,} play" if n == 1 else f"{n:,} plays"


def _are(n: int) -> str:
    return "is a play" if n == 1 else "are plays"


def _check_plausible(share: np.ndarray, reading: PlayedReading) -> None:
    """Refuse a listen fraction whose median no log has: the unit, or the length's, is not the one said."""
    if len(share) == 0:
        return
    median = float(np.median(share))
    low, high = PLAUSIBLE_MEDIAN
    if low <= median <= high:
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
