"""The consent rules, in one place, and they fail closed.

Consent is a user's state, carried by their events: the latest *explicit* flag decides, and an event
that carries no flag changes nothing (a later event without context must not turn personalization
back on). A user who never gave a flag gets the default of the data, ``SETLIST_CONSENT_DEFAULT``:
``deny`` in the production profile. A value that is neither yes nor no is not guessed at: the event is
rejected with a reason.

The feature builder and training enforce it (``personalizable``, ``analytics_events``); the
training-set gate checks it (``opted_out_users``); Track folds the same rule into the online consent
row (``effective``). All of them read the same latest flag, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

FLAGS = ("consent_personalization", "consent_analytics")
GRANTED = frozenset({"true", "1", "yes", "granted"})
DENIED = frozenset({"false", "0", "no", "denied"})
SPELLINGS = "true/false, 1/0, yes/no or granted/denied"


class BadConsent(ValueError):
    """A consent value that is neither a grant nor a denial."""


def parse_flag(value: object) -> bool | None:
    """True or False for an explicit flag, None when there is none (missing, null, empty); raises
    :class:`BadConsent` for anything else, such as ``"n"``."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value != value:  # NaN: a missing cell
        return None
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if not text:
        return None
    if text in GRANTED:
        return True
    if text in DENIED:
        return False
    raise BadConsent(f"{value!r:.40} is not a consent value (use {SPELLINGS})")


def flag_reason(name: str, value: object) -> str | None:
    """The rejection reason for a bad consent value, or None."""
    try:
        parse_flag(value)
    except BadConsent as exc:
        return f"bad_consent: {name} {exc}"
    return None


def latest(events: pd.DataFrame, column: str, default: bool) -> pd.Series:
    """Each user's latest explicit ``column`` flag, ``default`` where they never gave one. A stable
    sort, so of two events at the same instant the later-logged one wins, on every run."""
    ordered = (
        events if events["timestamp"].is_monotonic_increasing else events.sort_values("timestamp", kind="mergesort")
    )
    # groupby().last() skips nulls: an event without a flag does not undo an earlier choice
    flags = ordered[column].astype("boolean").groupby(ordered["user_id"], sort=True).last()
    return flags.fillna(default).astype(bool)


def effective(flags: Iterable[bool | None], current: bool | None, default: bool) -> bool:
    """A user's flag after new events: the last explicit one, else what was known, else the default."""
    for flag in flags:
        if flag is not None:
            current = flag
    return default if current is None else current


def personalizable(events: pd.DataFrame, default: bool) -> pd.DataFrame:
    """Events of users whose personalization consent is on. Consent is enforced here, at the only
    door to personalization features and training sets."""
    if events.empty:
        return events
    allowed = latest(events, "consent_personalization", default)
    return events[events["user_id"].isin(allowed[allowed].index)]


def analytics_events(events: pd.DataFrame, default: bool) -> pd.DataFrame:
    """Events of users whose analytics consent is on: the only events aggregate statistics count."""
    if events.empty:
        return events
    allowed = latest(events, "consent_analytics", default)
    return events[events["user_id"].isin(allowed[allowed].index)]


def newest_usable(events: pd.DataFrame, default: bool) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The newest event a user's own features may use (their personalization consent is on), and
    the newest that item statistics may count (an item event of a user whose analytics consent is
    on). Features are as fresh as these, not as the log's newest event: a day of events from users
    without consent adds nothing either may use."""
    from setlist.contract import ITEM_TYPES  # the contract imports this module

    def newest(frame: pd.DataFrame) -> pd.Timestamp | None:
        return pd.Timestamp(frame["timestamp"].max()) if len(frame) else None

    counted = analytics_events(events, default)
    return newest(personalizable(events, default)), newest(counted[counted["type"].isin(ITEM_TYPES)])


def opted_out_users(events: pd.DataFrame, default: bool) -> set[str]:
    """Pseudonyms whose personalization consent is off (by choice, or by a ``deny`` default)."""
    if events.empty:
        return set()
    allowed = latest(events, "consent_personalization", default)
    return set(allowed[~allowed].index)
