"""Text read as numbers without crashing the process.

pandas 2's number parser crashes the interpreter (a segmentation fault, no traceback) on text whose
exponent lies between 2**31 and 2**32, such as Foursquare's venue id ``77e6725528929c7190e7ca52``
(pandas issue 63650, fixed in pandas 3, which Feast 0.67 does not allow). Every ``to_numeric`` over
cells a user's file supplies goes through :func:`to_numbers`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

#: an exponent of ten digits or more: past any float's range, so no number anyway, and the crash's trigger
_HUGE_EXPONENT = r"[eE][+-]?\d{10}"


def to_numbers(values: pd.Series | Sequence[object]) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")``, with text holding a ten-digit exponent read as no
    number (an id, or a value out of range) instead of handed to the parser."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        huge = series.astype("string").str.contains(_HUGE_EXPONENT, regex=True, na=False).to_numpy(dtype=bool)
        if huge.any():
            series = series.mask(huge)
    return pd.to_numeric(series, errors="coerce")
