"""Shared pieces for declarations: the ``engaged`` event filter (an ``Events`` ``where``) and the
request transforms (``Request`` functions of device, hour and weekday).

Pure Python, like ``setlist.featureset``, which re-exports these for declaration files; NumPy is
imported where a filter runs, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from setlist.feature_sources import POSITIVES


def engaged(ev: Any) -> Any:
    """Positive engagement: a like or playlist add, or a play of at least half the item."""
    import numpy as np

    return np.isin(ev.type, POSITIVES) | ((ev.type == "play") & (ev.value >= 0.5))


def hour_sin(device: str, hour: int, weekday: int) -> float:
    return math.sin(2 * math.pi * (hour % 24) / 24)


def hour_cos(device: str, hour: int, weekday: int) -> float:
    return math.cos(2 * math.pi * (hour % 24) / 24)


def is_weekend(device: str, hour: int, weekday: int) -> float:
    return 1.0 if weekday >= 5 else 0.0


@dataclass(frozen=True)
class DeviceIs:
    """``1.0`` when the request's device is ``device`` (a picklable callable, unlike a lambda)."""

    device: str

    def __call__(self, device: str, hour: int, weekday: int) -> float:
        return 1.0 if device == self.device else 0.0

    @property
    def __name__(self) -> str:
        return f"device == {self.device!r}"
