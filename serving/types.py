"""Plain request/response objects: what the transport hands to the ranking service and back.

The gRPC servicer converts protos to these and back; nothing below the servicer knows gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RankQuery:
    user_id: str  # the application's id; the service pseudonymizes it
    k: int
    context: dict[str, str] = field(default_factory=dict)
    exclude_item_ids: tuple[str, ...] = ()
    explain: bool = False
    request_id: str = ""
    #: the caller's own slate to order instead of the server's candidates (empty: the server's)
    candidate_item_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RankedItem:
    item_id: str
    score: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class RankResult:
    items: tuple[RankedItem, ...]
    model_version: str
    cache_hit: bool = False
    degraded: bool = False
    arm: str = ""
    #: the request's context keys the server does not read (sorted), told back rather than dropped unseen
    ignored_context_keys: tuple[str, ...] = ()
    #: the request's candidate_item_ids the served models do not know: not ranked, in the order given
    unknown_item_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackEvent:
    event_id: str
    user_id: str  # the application's id
    item_id: str
    type: str
    timestamp_ms: int
    session_id: str = ""
    context: dict[str, str] = field(default_factory=dict)
    value: float | None = None
    query: str = ""  # a search's text, or the product feature a feature_use event used


@dataclass(frozen=True)
class Rejection:
    event_id: str
    reason: str
    #: the event's position in the request (0-based): an event with an empty or repeated id is told apart by it
    index: int = 0


@dataclass(frozen=True)
class TrackResult:
    accepted: int
    rejected: tuple[Rejection, ...] = ()
    # accepted retries of events stored before: acknowledged, but nothing downstream sees them again
    duplicates: frozenset[str] = frozenset()
    # accepted batch-tier events the sample left out of storage (setlist.tiers)
    sampled_out: int = 0
    # accepted events of erased users: journaled (the roll drops them), and nothing else may see them
    erased: frozenset[str] = frozenset()
