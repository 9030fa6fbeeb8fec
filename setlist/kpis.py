"""Product KPI definitions shared by the experiment report, the simulator and the cost report.

A *value* event is one the product counts as the user getting something out of it: by default a
like, or a play of at least ``value_play_fraction`` of the track (settings ``value_types``,
``value_play_fraction``). An *engaged* user has at least ``engaged_min_value_events`` of them.
One definition, so time-to-first-value, engaged users and cost per value event agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from setlist.contract import EVENT_TYPES
from setlist.errors import UsageError
from setlist.settings import Settings


@dataclass(frozen=True)
class ValueRule:
    types: frozenset[str]
    play_fraction: float = 0.8
    engaged_min: int = 3

    @classmethod
    def from_settings(cls, s: Settings) -> ValueRule:
        unknown = sorted(set(s.value_types) - set(EVENT_TYPES))
        if unknown:
            raise UsageError(
                f"SETLIST_VALUE_TYPES names unknown event types {unknown} (known: {', '.join(EVENT_TYPES)})"
            )
        if not s.value_types:
            raise UsageError("SETLIST_VALUE_TYPES is empty: name at least one event type that is value")
        if s.engaged_min_value_events < 1:
            raise UsageError(f"SETLIST_ENGAGED_MIN_VALUE_EVENTS must be 1 or more, got {s.engaged_min_value_events}")
        return cls(frozenset(s.value_types), s.value_play_fraction, s.engaged_min_value_events)

    def is_value(self, types: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Which events are value: ``types`` and ``values`` (listen fraction, NaN when none) per event."""
        t = np.asarray(types, dtype=object)
        v = np.asarray(values, dtype=np.float64)
        hit = np.isin(t, [x for x in self.types if x != "play"])
        if "play" in self.types:
            hit |= (t == "play") & (np.nan_to_num(v, nan=0.0) >= self.play_fraction)
        return hit

    def describe(self) -> str:
        parts = sorted(x for x in self.types if x != "play")
        if "play" in self.types:
            parts.insert(0, f"a play of ≥{self.play_fraction:.0%}")
        return " or ".join(parts)
