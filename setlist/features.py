"""The session state and the candidate stage's contract, which training and serving share exactly.

The ranker's inputs are declared in ``feature_repo/declarations`` (``setlist.featureset``); the
session-state update lives here once, so an offline training row and an online Rank request are
built by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SESSION_LAST_N = 10
SESSION_BLOCKED_N = 50
SESSION_GAP_S = 30 * 60
#: event types that do not count as session activity
LIGHT_SESSION_TYPES = frozenset({"impression", "view", "heartbeat"})

#: what the candidate stage reads from the user profile (declared in the built-in pack)
USER_VECTOR = "user_genre_affinity"
USER_TOP_GENRE = "user_top_genre"

SESSION_FIELDS = (
    "session_id",
    "session_last_items",
    "session_blocked_items",
    "session_skip_rate",
    "session_genre",
    "session_length",
    "session_updated_ms",
)

#: the user×item block the candidate stage computes (``CandidateIndex.cross_features``), in order
CROSS_NAMES = (
    "x_embedding_score",
    "x_genre_affinity",
    "x_is_top_genre",
    "x_session_genre_match",
    "x_covisit_score",
    "x_in_session_last",
    "x_candidate_sources",
    "x_popularity_rank",
    "x_neighbour_score",
    "x_neighbour_rank",
    "x_embedding_rank",
)


@dataclass
class SessionState:
    session_id: str = ""
    last_items: list[str] = field(default_factory=list)
    blocked_items: list[str] = field(default_factory=list)
    plays: int = 0
    skips: int = 0
    genre: str = ""
    length: int = 0
    updated_ms: int = 0

    @property
    def skip_rate(self) -> float:
        n = self.plays + self.skips
        return self.skips / n if n else 0.0

    def as_features(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "session_last_items": list(self.last_items),
            "session_blocked_items": list(self.blocked_items),
            "session_skip_rate": float(self.skip_rate),
            "session_genre": self.genre,
            "session_length": int(self.length),
            "session_updated_ms": int(self.updated_ms),
        }

    @classmethod
    def from_features(cls, f: dict[str, Any] | None) -> SessionState:
        """Rebuild the state from a stored row (the inverse of ``as_features``)."""
        if not f:
            return cls()
        length = int(f.get("session_length") or 0)
        rate = float(f.get("session_skip_rate") or 0.0)
        skips = round(rate * length)
        return cls(
            session_id=str(f.get("session_id") or ""),
            last_items=_strings(f.get("session_last_items")),
            blocked_items=_strings(f.get("session_blocked_items")),
            plays=length - skips,
            skips=skips,
            genre=str(f.get("session_genre") or ""),
            length=length,
            updated_ms=int(f.get("session_updated_ms") or 0),
        )


def _strings(v: Any) -> list[str]:
    """A stored list (list, numpy array, or a missing value) as a list of strings."""
    if v is None or isinstance(v, (float, str)):
        return []
    return [str(i) for i in v]


def effective_session(f: dict[str, Any] | None, now_ms: int) -> dict[str, Any]:
    """What a stored session row means at ``now_ms``: after the session gap the session-scoped
    fields are over, while recent and blocked items still count. Training and serving both read
    session rows through this, so an old row never poses as the current session."""
    state = SessionState.from_features(f)
    if now_ms - state.updated_ms > SESSION_GAP_S * 1000:
        state = SessionState(
            last_items=state.last_items, blocked_items=state.blocked_items, updated_ms=state.updated_ms
        )
    return state.as_features()


def update_session(
    state: SessionState, session_id: str, item_id: str, etype: str, ts_ms: int, genre: str
) -> SessionState:
    """Fold one event into the session state. Used by the offline builder and by Track."""
    if session_id != state.session_id or ts_ms - state.updated_ms > SESSION_GAP_S * 1000:
        # a new session starts from scratch, except the recent items, which seed co-visitation
        state = SessionState(session_id=session_id, last_items=state.last_items, blocked_items=state.blocked_items)
    if etype in LIGHT_SESSION_TYPES:  # shown or glanced at, not something the user did
        state.updated_ms = max(state.updated_ms, ts_ms)
        return state
    state.length += 1
    if etype in ("search", "feature_use"):
        # a search the text index matched to a genre steers the session (serving.tracking); no item
        if genre:
            state.genre = genre
    elif etype in ("play", "like", "add_to_playlist"):
        state.plays += etype == "play"
        state.last_items = ([item_id] + [i for i in state.last_items if i != item_id])[:SESSION_LAST_N]
        if genre:
            state.genre = genre
    elif etype in ("skip", "not_interested"):
        state.skips += 1
        # a skipped or rejected item is not offered again soon
        state.blocked_items = ([item_id] + [i for i in state.blocked_items if i != item_id])[:SESSION_BLOCKED_N]
        state.last_items = [i for i in state.last_items if i != item_id]
    state.updated_ms = max(state.updated_ms, ts_ms)
    return state
