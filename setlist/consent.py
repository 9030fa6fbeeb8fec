"""The consent rule, in one place: a user's latest ``consent_personalization`` decides, and a missing
value counts as consent (events from before the flag existed).

The feature builder and training enforce it (``personalizable``); the training-set gate checks it
(``opted_out_users``). Both read the same latest flag, so they cannot disagree.
"""

from __future__ import annotations

import pandas as pd


def _latest_consent(events: pd.DataFrame) -> pd.Series:
    """Each user's latest personalization flag, True where it was never set. A stable sort, so of
    two events at the same instant the later-logged one wins, on every run."""
    latest = events.sort_values("timestamp", kind="mergesort").groupby("user_id")["consent_personalization"].last()
    return latest.astype("boolean").fillna(True).astype(bool)  # nullable first: object columns hold None


def personalizable(events: pd.DataFrame) -> pd.DataFrame:
    """Events of users whose latest personalization consent is on. Consent is enforced here,
    at the only door to personalization features and training sets."""
    if events.empty:
        return events
    allowed = _latest_consent(events)
    return events[events["user_id"].isin(allowed[allowed].index)]


def opted_out_users(events: pd.DataFrame) -> set[str]:
    """Pseudonyms whose latest personalization consent is off."""
    if events.empty:
        return set()
    allowed = _latest_consent(events)
    return set(allowed[~allowed].index)
