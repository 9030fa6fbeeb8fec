"""What the transport needs from the ranking service (the real one and test fakes alike)."""

from __future__ import annotations

from typing import Protocol

from serving.types import RankQuery, RankResult, TrackEvent, TrackResult


class Ranking(Protocol):
    def rank(self, query: RankQuery) -> RankResult: ...

    def track(self, events: list[TrackEvent]) -> TrackResult: ...

    def ready(self) -> bool: ...

    def close(self) -> None: ...
