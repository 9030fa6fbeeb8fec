"""Track: validate, journal durably, then push session state so the next Rank sees it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd

from feature_repo.online import OnlineFeatures
from serving.journal import Journal
from serving.types import Rejection, TrackEvent, TrackResult
from setlist.candidates import CandidateIndex
from setlist.contract import SCHEMA_VERSION, reject_reason
from setlist.eventlog import Quarantine
from setlist.features import SessionState, update_session
from setlist.pseudonym import IdentityMap

log = logging.getLogger("setlist.serving.track")
FALSE = {"false", "0", "no", "off"}


class Durable(Protocol):
    """Where accepted events go before Track answers (serving.journal.Journal, or a test fake)."""

    def append(self, rows: list[dict[str, Any]]) -> None: ...  # returns once the rows are durable

    def close(self) -> None: ...


def _flag(ctx: dict[str, str], name: str) -> bool:
    return ctx.get(name, "true").strip().lower() not in FALSE


class Tracker:
    def __init__(
        self,
        journal: Journal | Durable,
        online: OnlineFeatures | None,
        quarantine: Quarantine,
        identities: IdentityMap | None,
        max_future_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal, self.online, self.quarantine = journal, online, quarantine
        self._clock = clock  # Unix seconds: "now" for the future-timestamp check
        self.identities = identities
        self.max_future_s = max_future_s
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self.push_failures = 0

    def row(self, e: TrackEvent, user: str) -> dict[str, Any]:
        ctx = e.context
        return {
            "event_id": e.event_id,
            "schema_version": SCHEMA_VERSION,
            "user_id": user,
            "session_id": e.session_id,
            "item_id": e.item_id,
            "type": e.type,
            "timestamp": datetime.fromtimestamp(e.timestamp_ms / 1000, tz=UTC)
            if e.timestamp_ms > 0
            else datetime.fromtimestamp(0, tz=UTC),
            "value": e.value,
            "device": ctx.get("device", "unknown"),
            "locale": ctx.get("locale", "unknown"),
            "consent_personalization": _flag(ctx, "consent_personalization"),
            "consent_analytics": _flag(ctx, "consent_analytics"),
            "arm": ctx.get("arm") or None,
        }

    def track(
        self, events: list[TrackEvent], index: CandidateIndex | None, pseudonym: Callable[[str], str]
    ) -> TrackResult:
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        accepted: list[dict[str, Any]] = []
        rejected: list[Rejection] = []
        bad: list[dict[str, Any]] = []
        seen: set[str] = set()
        raw_ids: dict[str, str] = {}
        for e in events:
            user = pseudonym(e.user_id) if e.user_id else ""
            row = self.row(e, user)
            reason = reject_reason(row, now, self.max_future_s)
            if reason is None and e.event_id in seen:
                reason = f"duplicate_event_id: {e.event_id} appears twice in this request"
            if reason is not None:
                rejected.append(Rejection(e.event_id, reason))
                bad.append({**row, "reason": reason})
                continue
            seen.add(e.event_id)
            raw_ids[user] = e.user_id
            accepted.append(row)
        if bad:
            frame = pd.DataFrame(bad)
            self.quarantine.put(frame.drop(columns="reason"), list(frame["reason"]), "track")
        if accepted:
            self.journal.append([{**r, "timestamp": int(r["timestamp"].timestamp() * 1000)} for r in accepted])
            self._remember(raw_ids)
            self._push(accepted, index)
        return TrackResult(len(accepted), tuple(rejected))

    def _remember(self, raw_ids: dict[str, str]) -> None:
        with self._lock:
            fresh = {p: r for p, r in raw_ids.items() if p not in self._known}
            self._known.update(fresh)
        if fresh and self.identities is not None:
            try:
                self.identities.remember(fresh.items())
            except Exception:
                with self._lock:
                    self._known.difference_update(fresh)
                log.warning("could not record %d identities", len(fresh))

    def _push(self, rows: list[dict[str, Any]], index: CandidateIndex | None) -> None:
        """Fold the events into each user's session row (and consent) in the online store."""
        if self.online is None:
            return
        by_user: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(rows, key=lambda r: r["timestamp"]):
            by_user.setdefault(r["user_id"], []).append(r)
        try:
            users = list(by_user)
            current = self.online.read("session", users)
            consent = self.online.read("user_consent", users)
            sessions, consents = [], []
            for user, (_, stored), (_, flags) in zip(users, current, consent):
                state = SessionState.from_features(stored)
                evs = by_user[user]
                for r in evs:
                    genre = ""
                    if index is not None and r["item_id"] in index.item_index:
                        genre = index.genres[index.item_genre[index.item_index[r["item_id"]]]]
                    state = update_session(
                        state, r["session_id"], r["item_id"], r["type"], int(r["timestamp"].timestamp() * 1000), genre
                    )
                last = evs[-1]
                if not last["consent_personalization"]:
                    state = SessionState(updated_ms=state.updated_ms)  # nothing personal is kept
                sessions.append((user, state.as_features(), last["timestamp"]))
                new_flags = {
                    "consent_personalization": last["consent_personalization"],
                    "consent_analytics": last["consent_analytics"],
                }
                if flags is None or any(flags.get(k) != v for k, v in new_flags.items()):
                    consents.append((user, new_flags, last["timestamp"]))
            self.online.write("session", sessions)
            if consents:
                self.online.write("user_consent", consents)
        except Exception as exc:
            self.push_failures += 1
            log.warning("session push failed for %d users: %s", len(by_user), type(exc).__name__)

    def close(self) -> None:
        self.journal.close()
        if self.identities is not None:
            self.identities.dispose()
