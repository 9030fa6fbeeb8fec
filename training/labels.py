"""Labels from the event log: what counts as a positive and a negative interaction.

positive — a play with high completion, a like, an add to a playlist (an imported rating in the top
fifth of its scale arrives as a like);
negative — a skip, an impression that was not played, ``not_interested``.
Plays with middling completion are neither, and are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from setlist.contract import NEGATIVE_TYPES, POSITIVE_PLAY_FRACTION, POSITIVE_TYPES


def label(events: pd.DataFrame) -> pd.Series:
    """1 positive, 0 negative, -1 neither, per event."""
    t = events["type"]
    value = events["value"].astype("float64")
    positive = t.isin(POSITIVE_TYPES) | ((t == "play") & (value >= POSITIVE_PLAY_FRACTION))
    negative = t.isin(NEGATIVE_TYPES) | (t == "impression")
    return pd.Series(np.where(positive, 1, np.where(negative, 0, -1)), index=events.index)
