"""Training–serving parity: do online feature values equal the offline (training) values?

``parity_report`` is pure: two frames in, per-feature numbers out. Fetching the frames is someone
else's job (Feast lives in the feature repository); the gate only takes ``ParityInput`` objects, from
a list or from a ``ParityAdapter`` callable that returns them (the one ``settings.parity_adapter`` names,
bound to the settings by the CLI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_TOLERANCE = 1e-4
DEFAULT_MIN_MATCH = 0.99
TIMESTAMP = "event_timestamp"
MATCH_PREFIX = "match__"
FRESH_COLUMN = "online_fresh"


@dataclass
class ParityInput:
    """One feature view's online and offline values for the same entities.

    ``online`` and ``offline`` hold ``entity_col`` and the features; ``online`` may also hold
    ``event_timestamp`` (when the online value was written) for the freshness check.
    """

    view: str
    online: pd.DataFrame
    offline: pd.DataFrame
    entity_col: str
    features: Sequence[str]
    ttl: timedelta
    as_of: datetime


#: what the feature repository provides: a callable returning the inputs to compare
ParityAdapter = Callable[[], Iterable[ParityInput]]


@dataclass(frozen=True)
class FeatureParity:
    feature: str
    compared: int  # entities in either frame
    matched: int
    missing_online: int  # offline has a value, online has none
    missing_offline: int  # online has a value, offline has none

    @property
    def match_rate(self) -> float:
        return self.matched / self.compared if self.compared else 1.0


@dataclass
class ParityReport:
    entity_col: str
    features: list[FeatureParity]
    stale_online: int | None  # entities whose online value is older than the TTL (None: unknown)
    entities: int
    comparison: pd.DataFrame = field(repr=False)  # entity, match__<feature>..., online_fresh

    def by_feature(self) -> dict[str, FeatureParity]:
        return {f.feature: f for f in self.features}

    def failing(self, min_match: float = DEFAULT_MIN_MATCH) -> list[str]:
        return [f.feature for f in self.features if f.match_rate < min_match]


def values_match(online: pd.Series, offline: pd.Series, tolerance: float) -> np.ndarray:
    """Elementwise equality: numbers within tolerance (absolute and relative), lists elementwise
    with equal lengths, anything else exactly; two missing values match."""
    return np.fromiter((_same(a, b, tolerance) for a, b in zip(online, offline)), dtype=bool, count=len(online))


def _missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (list, tuple, np.ndarray)):
        return False
    return bool(pd.isna(v))


def _same(a: Any, b: Any, tol: float) -> bool:
    ma, mb = _missing(a), _missing(b)
    if ma or mb:
        return ma and mb
    if isinstance(a, (list, tuple, np.ndarray)) or isinstance(b, (list, tuple, np.ndarray)):
        if not isinstance(a, (list, tuple, np.ndarray)) or not isinstance(b, (list, tuple, np.ndarray)):
            return False
        if len(a) != len(b):
            return False
        return all(_same(x, y, tol) for x, y in zip(a, b))
    if (
        isinstance(a, (int, float, np.number))
        and isinstance(b, (int, float, np.number))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return bool(np.isclose(float(a), float(b), rtol=tol, atol=tol))
    return a == b


def parity_report(
    online: pd.DataFrame,
    offline: pd.DataFrame,
    entity_col: str,
    features: Sequence[str],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    ttl: timedelta,
    as_of: datetime,
) -> ParityReport:
    """Compare online and offline values per feature over the union of entities.

    An entity absent from one side counts as missing there. ``match_rate`` is matches over all
    compared entities, so missing values lower it.
    """
    # a side with no rows may come without its columns (an online store a killed publish left empty): every
    # entity is then missing there, which the match rate says, rather than a KeyError
    online, offline = (f if entity_col in f.columns else pd.DataFrame({entity_col: []}) for f in (online, offline))
    on = online.drop_duplicates(entity_col, keep="last").set_index(entity_col)
    off = offline.drop_duplicates(entity_col, keep="last").set_index(entity_col)
    keys = on.index.union(off.index)
    on, off = on.reindex(keys), off.reindex(keys)
    comparison = pd.DataFrame({entity_col: keys.to_numpy()})
    stats = []
    for feat in features:
        a = on[feat] if feat in on else pd.Series([None] * len(keys), index=keys)
        b = off[feat] if feat in off else pd.Series([None] * len(keys), index=keys)
        match = values_match(a, b, tolerance)
        a_missing = np.array([_missing(v) for v in a], dtype=bool)
        b_missing = np.array([_missing(v) for v in b], dtype=bool)
        comparison[MATCH_PREFIX + feat] = match
        stats.append(
            FeatureParity(
                feat,
                len(keys),
                int(match.sum()),
                int((a_missing & ~b_missing).sum()),
                int((b_missing & ~a_missing).sum()),
            )
        )
    stale = None
    if TIMESTAMP in on:
        ts = pd.to_datetime(on[TIMESTAMP], utc=True)
        as_of_ts = (
            pd.Timestamp(as_of).tz_convert("UTC") if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of, tz="UTC")
        )
        fresh = (ts.notna() & (as_of_ts - ts <= ttl)).to_numpy()
        in_online = keys.isin(online[entity_col])
        comparison[FRESH_COLUMN] = fresh | ~in_online  # absent entities are "missing", not "stale"
        stale = int((~fresh & in_online).sum())
    return ParityReport(entity_col, stats, stale, len(keys), comparison)
