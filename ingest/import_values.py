"""The user's time, rating and type columns as the contract's timestamps, event types and values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingest.import_files import ImportFormatError, is_present

LIKE_FROM, SKIP_UP_TO = 0.8, 0.4  # normalized-rating thresholds
_EPS = 1e-9  # 4/5 must count as 0.8 whatever the float rounding
#: common names for our event types, after lower-casing and spaces/hyphens → "_"
TYPE_SYNONYMS = {
    "listen": "play",
    "listened": "play",
    "played": "play",
    "stream": "play",
    "streamed": "play",
    "click": "play",
    "clicked": "play",
    "view": "impression",
    "viewed": "impression",
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
}


def parse_time(raw: pd.Series, unit: str | None, col: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw):  # parquet timestamps need no unit
        return pd.to_datetime(raw, utc=True)
    present = is_present(raw)
    num = pd.to_numeric(raw, errors="coerce")
    if unit in ("s", "ms"):
        if present.any() and num.notna().sum() == 0:
            raise ImportFormatError(
                f"time column {col!r} holds no numbers (e.g. {raw[present].iloc[0]!r}); "
                f"omit time_unit to parse ISO datetimes"
            )
        median = num.median()
        # a wrong unit would put every event in 1970 or the far future: say so instead
        if unit == "s" and median > 1e11:
            raise ImportFormatError(
                f"time column {col!r} looks like milliseconds (median {median:.0f}); use time_unit='ms'"
            )
        if unit == "ms" and median < 1e11:
            raise ImportFormatError(f"time column {col!r} looks like seconds (median {median:.0f}); use time_unit='s'")
        num = num.where(num.abs() < 1e17)  # out of datetime range → unparseable, not an exception
        return pd.to_datetime(num, unit=unit, utc=True, errors="coerce")
    if unit is not None:
        raise ImportFormatError(f"time_unit must be 's', 'ms' or None (ISO datetimes), not {unit!r}")
    if present.any() and num[present].notna().all():
        raise ImportFormatError(
            f"time column {col!r} holds numbers (e.g. {raw[present].iloc[0]!r}); "
            f"pass time_unit='s' or 'ms' for epoch times"
        )
    ts = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")  # naive times are UTC
    retry = ts.isna() & present
    if retry.any():
        ts[retry] = pd.to_datetime(raw[retry], utc=True, errors="coerce", format="mixed")
    if present.any() and ts.notna().sum() == 0:
        raise ImportFormatError(f"no value of time column {col!r} parses as a datetime (e.g. {raw[present].iloc[0]!r})")
    return ts


def types_and_values(
    raw: pd.DataFrame,
    rating_col: str | None,
    type_col: str | None,
    rating_max: float | None = None,
    notes: list[str] | None = None,
):
    """Event types and values from a rating (scaled by the top rating: the file's highest, or
    ``rating_max``, which keeps the parts of a log imported in parts on one scale) or a type column.
    What the scale was, and ratings above ``rating_max``, are said in ``notes``."""
    n = len(raw)
    norm = None
    if rating_col is not None:
        rating = pd.to_numeric(raw[rating_col], errors="coerce")
        if rating_max is not None and not rating_max > 0:
            raise ImportFormatError(f"--rating-max must be positive, got {rating_max:g}")
        top = rating.max() if rating_max is None else rating_max
        if not top > 0:
            raise ImportFormatError(f"rating column {rating_col!r} holds no positive numbers")
        said = notes if notes is not None else []
        if rating_max is None:
            said.append(f"ratings scaled by the top rating {top:g} (the file's highest; --rating-max sets it)")
        else:
            said.append(f"ratings scaled by the top rating {top:g} (--rating-max)")
            above = int((rating > top).sum())
            if above:
                said.append(f"{above:,} ratings above --rating-max {top:g} counted as the top rating")
        norm = (rating / top).clip(0.0, 1.0).to_numpy()
    if type_col is not None:
        t = raw[type_col].astype("string").str.strip().str.lower().str.replace(r"[\s\-]+", "_", regex=True)
        types = t.replace(TYPE_SYNONYMS).astype(object).where(t.notna(), None).to_numpy()
    elif norm is not None:
        types = np.select([norm >= LIKE_FROM - _EPS, norm <= SKIP_UP_TO + _EPS], ["like", "skip"], "play")
        types = types.astype(object)
        types[np.isnan(norm)] = None  # an unreadable rating → quarantined
    else:
        types = np.full(n, "play", dtype=object)
    carries = np.isin(types, ["play", "like"])  # only these have a value in the contract
    value = np.where(carries, norm if norm is not None else 1.0, np.nan).astype(np.float32)
    return types, value
