"""Track: validate and bound each event, drop retries already stored, journal durably, then push
session state so the next Rank sees it."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from feature_repo.online import OnlineFeatures
from serving import deadline
from serving.breaker import Breaker
from serving.dedupe import Claim, Dedupe, MemoryDedupe
from serving.errors import DeadlineExceeded, Unavailable
from serving.journal import Journal
from serving.types import Rejection, TrackEvent, TrackResult
from setlist.candidates import CandidateIndex
from setlist.consent import FLAGS, effective, parse_flag
from setlist.context import Vocabulary
from setlist.contract import SCHEMA_VERSION, reject_reason
from setlist.eventlog import Erased, Quarantine
from setlist.features import SessionState, update_session
from setlist.journal_dirs import HELD_TMP, Held, read_held, write_held
from setlist.pseudonym import IdentityMap, app_id
from setlist.querytext import normalize, stored, terms
from setlist.settings import Settings
from setlist.tiers import Tiers
from setlist.tracing import span

log = logging.getLogger("setlist.serving.track")
#: how much of a client's input an error detail quotes
QUOTE_CHARS = 100
#: quarantined rows keep this much of each text field: enough to diagnose, never megabytes
QUARANTINE_CHARS = 1024
#: pseudonyms whose identity this process recorded already (a bound on memory, not on users)
KNOWN_USERS = 100_000
ID_FIELDS = ("event_id", "item_id", "session_id", "type")
#: why a retry is refused while the journal still writes its first attempt (drills match on it)
STILL_WRITING = "are still being written by an earlier attempt"
#: how often consent withdrawals the online store did not take are tried again (seconds)
WITHDRAWAL_RETRY_S = 1.0


class Durable(Protocol):
    """Where accepted events go before Track answers (serving.journal.Journal, or a test fake)."""

    # returns once the rows are durable; waits at most ``timeout`` seconds (None: its own bound)
    def append(
        self,
        rows: list[dict[str, Any]],
        timeout: float | None = None,
        on_late: Callable[[bool], None] | None = None,
    ) -> None: ...

    def close(self) -> None: ...

    # optional, ``held_path``: where the consent withdrawals the online store did not take are kept
    # (serving.journal.Journal's, beside its segments); without one they are held in memory only


def excerpt(value: object, limit: int = QUOTE_CHARS) -> str:
    """``value`` as text, cut to ``limit`` characters with an ellipsis: error details and logs must
    not echo (or store) a client's megabytes."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class TrackPolicy:
    """Track's bounds (an event outside them is rejected alone, with its reason) and quarantine batching."""

    max_future_s: float = 300.0
    max_age_s: float = 7 * 86_400.0
    max_user_id_len: int = 256
    max_id_len: int = 256
    max_context_keys: int = 32
    max_context_key_len: int = 64
    max_context_value_len: int = 256
    quarantine_batch: int = 1000
    quarantine_flush_s: float = 10.0
    consent_default: bool = False  # a user who never sent a consent flag: fails closed unless told
    retention_s: float | None = None  # the events retention: older events are refused as `retention`
    #: the device and locale stored with an event, bounded as Rank bounds a request's (None: as sent)
    vocabulary: Vocabulary | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> TrackPolicy:
        return cls(
            max_future_s=s.max_future_skew_s,
            max_age_s=s.track_max_age_days * 86_400,
            max_user_id_len=s.max_user_id_len,
            max_id_len=s.track_max_id_len,
            max_context_keys=s.track_max_context_keys,
            max_context_key_len=s.track_max_context_key_len,
            max_context_value_len=s.track_max_context_value_len,
            quarantine_batch=s.track_quarantine_batch,
            quarantine_flush_s=s.track_quarantine_flush_s,
            consent_default=s.consent_granted_by_default,
            retention_s=s.retention_events_days * 86_400 if s.retention_events_days else None,
            vocabulary=Vocabulary.of(s.context_devices, s.context_locale_pattern),
        )

    def bounds_reason(self, e: TrackEvent) -> str | None:
        """Why an event is too large to take, or None."""
        if (n := len(app_id(e.user_id))) > self.max_user_id_len:  # as kept, without its padding
            return f"too_long: user_id is {n} characters; at most {self.max_user_id_len}"
        for name in ID_FIELDS:
            n = len(getattr(e, name))
            if n > self.max_id_len:
                return f"too_long: {name} is {n} characters; at most {self.max_id_len}"
        return self.context_reason(e.context)

    def context_reason(self, ctx: dict[str, str]) -> str | None:
        if len(ctx) > self.max_context_keys:
            return f"bad_context: {len(ctx)} keys; at most {self.max_context_keys}"
        for key, value in ctx.items():
            if len(key) > self.max_context_key_len:
                return f"bad_context: key {excerpt(key)!r} is {len(key)} characters; at most {self.max_context_key_len}"
            if len(value) > self.max_context_value_len:
                limit = self.max_context_value_len
                return f"bad_context: {excerpt(key)!r} is {len(value)} characters; at most {limit}"
        return None


class LruSet:
    """A set that forgets its least recently used members beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, None] = OrderedDict()

    def touch(self, key: str) -> bool:
        """Whether ``key`` is a member; a member counts as just used."""
        if key in self._items:
            self._items.move_to_end(key)
            return True
        return False

    def add(self, key: str) -> None:
        self._items[key] = None
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def discard(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


def _flag(ctx: dict[str, str], name: str) -> str | None:
    """The context's consent value as sent (checked by the contract), None when the key is absent."""
    return ctx.get(name)


def _timestamp(ms: int) -> datetime | None:
    """The event time; None when it is beyond what a datetime holds (``10**15`` ms, year 33658)."""
    if ms <= 0:
        return datetime.fromtimestamp(0, tz=UTC)  # the contract check rejects it with its own reason
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _clipped(row: dict[str, Any], limit: int) -> dict[str, Any]:
    return {k: excerpt(v, limit) if isinstance(v, str) else v for k, v in row.items()}


def _ignore(count: int) -> None:
    return None


def _ignore_reason(reason: str) -> None:
    pass


def _ignore_reasons(reasons: list[str]) -> None:
    return None


class Tracker:
    def __init__(
        self,
        journal: Journal | Durable,
        online: OnlineFeatures | None,
        quarantine: Quarantine,
        identities: IdentityMap | None,
        policy: TrackPolicy | None = None,
        clock: Callable[[], float] = time.time,
        dedupe: Dedupe | None = None,
        on_duplicates: Callable[[int], None] = _ignore,
        on_acknowledged: Callable[[int], None] = _ignore,
        on_quarantined: Callable[[list[str]], None] = _ignore_reasons,
        tiers: Tiers | None = None,
        term_key: bytes | None = None,
        on_sampled_out: Callable[[list[str]], None] = _ignore_reasons,
        on_degraded: Callable[[str], None] = _ignore_reason,
        dedupe_breaker: Breaker | None = None,
        push_breaker: Breaker | None = None,
        erased: Callable[[], Erased] | None = None,
    ) -> None:
        self.journal, self.online = journal, online
        # the users erased so far: their later events are acknowledged and dropped when the journal rolls,
        # so nothing of theirs may reach the identity map or the online store in the meantime either
        self._erased = erased
        self.policy = policy or TrackPolicy()
        # rejected rows are written in batches, not one parquet file (and two fsyncs) per request
        self.quarantine = quarantine.buffered(self.policy.quarantine_batch, self.policy.quarantine_flush_s)
        self._clock = clock  # Unix seconds: "now" for the timestamp checks
        self.identities = identities
        self.dedupe: Dedupe = MemoryDedupe(clock=clock) if dedupe is None else dedupe
        self._on_duplicates = on_duplicates  # the count of retries acknowledged without storing them again
        self._on_acknowledged, self._on_quarantined = on_acknowledged, on_quarantined  # metrics
        self.tiers = tiers or Tiers.default()
        # keyed hashes of search terms stored without analytics consent; without a key, one per
        # process: the stored terms then match nothing, which fails closed
        self._term_key = term_key or secrets.token_bytes(32)
        self._on_sampled_out = on_sampled_out  # types of batch events the sample left out
        # a call acknowledged without one of its checks or writes (dedupe_unavailable, session_push_failed)
        self._on_degraded = on_degraded
        self._known = LruSet(KNOWN_USERS)
        self._lock = threading.Lock()
        self.push_failures = 0
        # users whose consent withdrawal could not be pushed (the store did not answer), with their events
        # that carry a flag: pushed again by ``retry_withdrawals`` until the store takes them, since the
        # events are already journaled and a client's retry of them is a duplicate that pushes nothing.
        # Kept in ``held_path`` too (beside the journal), so that a process that dies holding some leaves
        # them to the next one on this directory or to another server's sweep of it.
        self._held_path: Path | None = getattr(journal, "held_path", None)
        self._withdrawals: Held = {}
        if self._held_path is not None:
            # this process owns the journal directory: a temporary file there is a dead writer's
            (self._held_path.parent / HELD_TMP).unlink(missing_ok=True)
            self._withdrawals = read_held(self._held_path)
        if self._withdrawals:
            log.warning(
                "consent withdrawals held by an earlier process here (%d users): pushing them again",
                len(self._withdrawals),
            )
        self._withdrawals_lock = threading.Lock()
        # The file is written outside ``_withdrawals_lock`` (every Track's push takes that lock, and a
        # write costs fsyncs): each change takes a generation under it, and a write of an older
        # generation than the one on disk is skipped. ``_saving`` orders the writes; none after close.
        self._held_changes = self._held_saved = 0
        self._saving = threading.Lock()
        self._closed = False
        self._flags: tuple[int, dict[str, dict[str, bool]]] = (-1, {})  # held_flags' last answer
        self._next_flush = 0.0  # on self._clock: a failed write is tried again once a WITHDRAWAL_RETRY_S
        self._retrying = threading.Lock()  # one retry at a time, whichever thread asks
        self._next_retry = 0.0  # on self._clock: a Track does not retry more than once a WITHDRAWAL_RETRY_S
        # Without breakers a hung Redis would cost every Track its timeouts (the dedupe claim's, the
        # session read's) and hold a server thread that long; with them, a few calls pay and the rest
        # skip the check or the push for a cool-down, as Rank's user reads do. None: always try.
        self._dedupe_breaker, self._push_breaker = dedupe_breaker, push_breaker

    def row(self, e: TrackEvent, user: str) -> dict[str, Any]:
        ctx, v = e.context, self.policy.vocabulary
        return {
            "event_id": e.event_id,
            "schema_version": SCHEMA_VERSION,
            "user_id": user,
            "session_id": e.session_id,
            "item_id": e.item_id,
            "type": e.type,
            "timestamp": _timestamp(e.timestamp_ms),
            "value": e.value,
            # bounded as Rank's: training's cohorts are then the cohorts requests name
            "device": ctx.get("device", "unknown") if v is None else v.device(ctx.get("device")),
            "locale": ctx.get("locale", "unknown") if v is None else v.locale_of(ctx.get("locale")),
            "consent_personalization": _flag(ctx, "consent_personalization"),
            "consent_analytics": _flag(ctx, "consent_analytics"),
            "arm": ctx.get("arm") or None,
            "query": self._query(e),
            "weight": None,
        }

    def _query(self, e: TrackEvent) -> str | None:
        """What is stored of the event's text: a feature_use's feature name normalized, anything
        else as search text (setlist.querytext: hashed without the event's analytics consent)."""
        if not e.query:
            return None
        if e.type == "feature_use":
            return normalize(e.query) or None
        try:
            analytics = parse_flag(e.context.get("consent_analytics"))
        except ValueError:
            analytics = None  # the event is rejected for it anyway; the quarantine keeps no raw text
        return stored(e.query, analytics, self._term_key)

    def reason(self, e: TrackEvent, row: dict[str, Any], now: datetime) -> str | None:
        """Why one event is rejected, or None; every reason quotes at most ``QUOTE_CHARS`` of the input."""
        bounds = self.policy.bounds_reason(e)
        if bounds is not None:
            return bounds
        ts = row["timestamp"]
        if ts is None:
            return f"bad_timestamp: {e.timestamp_ms} ms is beyond the representable range"
        reason = reject_reason(_clipped(row, QUOTE_CHARS), now, self.policy.max_future_s)
        if (
            reason is None
            and self.policy.retention_s is not None
            and ts < now - timedelta(seconds=self.policy.retention_s)
        ):
            days = self.policy.retention_s / 86_400
            reason = f"retention: {ts.isoformat()} is older than the events retention ({days:g} days)"
        if reason is None and ts < now - timedelta(seconds=self.policy.max_age_s):
            days = self.policy.max_age_s / 86_400
            reason = f"stale_timestamp: {ts.isoformat()} is more than {days:g} days old (live events only)"
        return reason

    def track(
        self, events: list[TrackEvent], index: CandidateIndex | None, pseudonym: Callable[[str], str]
    ) -> TrackResult:
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        accepted: list[dict[str, Any]] = []
        rejected: list[Rejection] = []
        bad: list[dict[str, Any]] = []
        seen: set[str] = set()
        raw_ids: dict[str, str] = {}
        sampled_out: list[str] = []
        # a search's terms in clear, for this user's session only (what is stored may be hashed)
        session_terms: dict[str, list[str]] = {}
        for position, e in enumerate(events):
            raw = app_id(e.user_id)
            oversized = len(raw) > self.policy.max_user_id_len  # not worth a pseudonym
            # a blank id is nobody's: kept as sent (whitespace names no one), so the contract rejects it
            user = pseudonym(raw) if raw and not oversized else ("" if oversized else e.user_id)
            row = self.row(e, user)
            reason = self.reason(e, row, now)
            if reason is None and e.event_id in seen:
                reason = f"duplicate_event_id: {excerpt(e.event_id)} appears twice in this request"
            if reason is not None:
                # an id too long to be anyone's is echoed cut, as any quoted input
                echo = e.event_id if len(e.event_id) <= self.policy.max_id_len else excerpt(e.event_id)
                rejected.append(Rejection(echo, reason, position))
                bad.append({**_clipped(row, QUARANTINE_CHARS), "reason": reason})
                continue
            seen.add(e.event_id)
            if row["timestamp"] > now:
                # within the allowed skew, but nothing happens after it is received: stamped ahead, it
                # would order after every event the user sends in the next minutes, and the session row
                # written from it would refuse their rows until the clock caught up
                row["timestamp"] = now
            if not self.tiers.keep(e.type, e.event_id):
                sampled_out.append(e.type)  # acknowledged: the sample is the policy, not a loss
                continue
            raw_ids[user] = raw
            row["weight"] = self.tiers.weight(e.type)
            if e.type == "search":
                session_terms[e.event_id] = terms(e.query)
            accepted.append({**row, **{f: parse_flag(row[f]) for f in FLAGS}})
        if sampled_out:
            self._on_sampled_out(sampled_out)
        if bad:
            frame = pd.DataFrame(bad)
            self.quarantine.put(frame.drop(columns="reason"), list(frame["reason"]), "track")
            self._on_quarantined(list(frame["reason"]))
        fresh = self._store(accepted)
        known = self._unerased(fresh)
        if known:
            self._remember({r["user_id"]: raw_ids[r["user_id"]] for r in known})
            live = [r for r in known if self.tiers.is_realtime(r["type"])]  # batch types wait for materialize
            if live:
                with span("track.session_push", events=len(live)):
                    self._push(live, index, session_terms)
        # a retry of an event stored before is acknowledged: the client did nothing wrong
        fresh_ids = {r["event_id"] for r in fresh}
        duplicates = frozenset(r["event_id"] for r in accepted if r["event_id"] not in fresh_ids)
        erased = frozenset(fresh_ids - {r["event_id"] for r in known}) if len(known) < len(fresh) else frozenset()
        return TrackResult(len(accepted) + len(sampled_out), tuple(rejected), duplicates, len(sampled_out), erased)

    def _unerased(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not rows or self._erased is None:
            return rows
        gone = self._erased().among({r["user_id"] for r in rows})
        return [r for r in rows if r["user_id"] not in gone] if gone else rows

    def _store(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Journal the rows not stored before (within the dedupe window); returns those."""
        if not rows:
            return []
        ids = [r["event_id"] for r in rows]
        claim, claimed = Claim(ids), False
        if self._dedupe_breaker is not None and not self._dedupe_breaker.allow():
            self._on_degraded("dedupe_unavailable")  # left alone for its cool-down after failing
        else:
            try:
                claim = self.dedupe.claim(ids)
            except Exception as exc:  # Track goes on without the check: at worst a retry is stored twice
                log.warning("dedupe store unavailable (%s); journaling without the retry check", type(exc).__name__)
                self._on_degraded("dedupe_unavailable")
                if self._dedupe_breaker is not None:
                    self._dedupe_breaker.failure()
            else:
                claimed = True
                if self._dedupe_breaker is not None:
                    self._dedupe_breaker.success()
        if claim.stored:
            self._on_duplicates(len(claim.stored))
        if claim.busy:  # an earlier attempt is writing them: wait for its outcome, never write twice
            self._settle(claim.fresh, stored=False)
            raise Unavailable(f"{len(claim.busy)} of these events {STILL_WRITING}; retry shortly")
        fresh_ids = set(claim.fresh)
        fresh = [r for r in rows if r["event_id"] in fresh_ids]
        if not fresh:
            return []
        # the caller's own deadline bounds the wait for durability (its configured bound outside a call)
        rows_out = [{**r, "timestamp": int(r["timestamp"].timestamp() * 1000)} for r in fresh]
        mine = [r["event_id"] for r in fresh] if claimed else []

        def late(stored: bool) -> None:  # the caller gave up; the claims follow the write's outcome
            self._settle(mine, stored)

        try:
            with span("track.journal", events=len(rows_out)):  # until the rows are durable
                self.journal.append(rows_out, timeout=deadline.remaining(), on_late=late)
        except DeadlineExceeded:
            raise  # ``late`` settles the claims
        except BaseException:
            self._settle(mine, stored=False)
            raise
        # Claimed before the write, stored only once the journal holds them: a crash in between
        # leaves a claim that expires (the retry then gets through, and the journal recovery has
        # marked whatever did reach the disk), never a stored mark for an event that is not.
        self._settle(mine, stored=True)
        self._on_acknowledged(len(fresh))
        return fresh

    def _settle(self, ids: list[str], stored: bool) -> None:
        if not ids:
            return
        try:
            (self.dedupe.commit if stored else self.dedupe.release)(ids)
        except Exception as exc:
            log.warning(
                "could not mark %d events as %s (%s)", len(ids), "stored" if stored else "free", type(exc).__name__
            )

    def _remember(self, raw_ids: dict[str, str]) -> None:
        with self._lock:
            fresh = {p: r for p, r in raw_ids.items() if not self._known.touch(p)}
            for p in fresh:
                self._known.add(p)
        if fresh and self.identities is not None:
            try:
                self.identities.remember(fresh.items())
            except Exception:
                self._forget(fresh)
                log.warning("could not record %d identities", len(fresh))

    def _forget(self, pseudonyms: Iterable[str]) -> None:
        with self._lock:
            for p in pseudonyms:
                self._known.discard(p)

    def _push(
        self, rows: list[dict[str, Any]], index: CandidateIndex | None, session_terms: dict[str, list[str]]
    ) -> None:
        """Fold the events into each user's session row (and consent) in the online store."""
        if self.online is None:
            return
        by_user: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(rows, key=lambda r: r["timestamp"]):
            by_user.setdefault(r["user_id"], []).append(r)
        with self._withdrawals_lock:  # a withdrawal still held is folded in with these events
            held = {u: self._withdrawals[u] for u in by_user if u in self._withdrawals}
        # a consent withdrawn (or one of a user whose withdrawal is held) is tried whatever the breaker
        # says: held back, the store would let Rank personalize for that user until the next push or publish
        withdrawn = any(r.get(f) is False for r in rows for f in FLAGS)
        if self._push_breaker is not None and not (withdrawn or held) and not self._push_breaker.allow():
            self.push_failures += 1
            self._on_degraded("session_push_failed")
            return
        try:
            users = list(by_user)
            # both views of every user in one round trip (one HMGET per user on Redis)
            read = self.online.read_views_many(("session", "user_consent"), users)
            sessions, consents = [], []
            session_times, consent_times = [], []
            for user, ((session_time, stored), (consent_time, flags)) in zip(users, read):
                state = SessionState.from_features(stored)
                evs = by_user[user]
                for r in evs:
                    genre = ""
                    # a search's genre is its query's, even when the client also sent an item
                    if index is not None and r["event_id"] in session_terms:
                        genre = index.search_genre(session_terms[r["event_id"]])
                    elif index is not None and r["item_id"] in index.item_index:
                        genre = index.genres[index.item_genre[index.item_index[r["item_id"]]]]
                    state = update_session(
                        state, r["session_id"], r["item_id"], r["type"], int(r["timestamp"].timestamp() * 1000), genre
                    )
                last = evs[-1]
                flagged = sorted(held.get(user, []) + evs, key=lambda r: r["timestamp"])
                new_flags = self._consent(flagged, flags)
                if not new_flags["consent_personalization"]:
                    state = SessionState(updated_ms=state.updated_ms)  # nothing personal is kept
                stamp = last["timestamp"]
                if session_time is not None:
                    was = session_time if session_time.tzinfo else session_time.replace(tzinfo=UTC)
                    if was >= stamp:  # a late event (a device whose clock is behind) belongs in the state
                        stamp = was + timedelta(milliseconds=1)  # built on the stored row: newer than it
                sessions.append((user, state.as_features(), stamp))
                session_times.append(session_time)
                if _changed(flags, new_flags):
                    consents.append((user, new_flags, flagged[-1]["timestamp"]))
                    consent_times.append(consent_time)
            # the rows' stored times were just read: the writes need no second read
            self.online.write("session", sessions, stored=session_times)
            if consents:
                self.online.write("user_consent", consents, stored=consent_times)
        except Exception as exc:
            self.push_failures += 1
            log.warning("session push failed for %d users: %s", len(by_user), type(exc).__name__)
            self._on_degraded("session_push_failed")
            if self._push_breaker is not None:
                self._push_breaker.failure()
            if withdrawn or held:
                self._hold_withdrawals(by_user, set(held))
        else:
            if self._push_breaker is not None:
                self._push_breaker.success()
            self._release(held)

    def _consent(self, rows: list[dict[str, Any]], stored: dict[str, Any] | None) -> dict[str, bool]:
        """A user's flags after ``rows`` (in time order). Consent is state: an event without a flag leaves
        the stored one as it was."""
        known = stored or {}
        return {f: effective((r[f] for r in rows), known.get(f), self.policy.consent_default) for f in FLAGS}

    def _release(self, pushed: dict[str, list[dict[str, Any]]]) -> None:
        """Forget held withdrawals that a push has now written (unless a newer one was held meanwhile)."""
        if not pushed:
            return
        with self._withdrawals_lock:
            released = [u for u, rows in pushed.items() if self._withdrawals.get(u) == rows]
            for user in released:
                del self._withdrawals[user]
            change = self._changed_held() if released else None
        self._save(change)

    def _hold_withdrawals(self, by_user: dict[str, list[dict[str, Any]]], already: set[str]) -> None:
        """Hold the flagged events of users who withdrew a consent in this batch, and of those whose
        withdrawal was held already (a consent given again must not lose to the older withdrawal)."""
        with self._withdrawals_lock:
            for user, evs in by_user.items():
                if user in already or any(r.get(f) is False for r in evs for f in FLAGS):
                    flagged = [r for r in evs if any(r.get(f) is not None for f in FLAGS)]
                    held = self._withdrawals.get(user, []) + flagged
                    self._withdrawals[user] = sorted(held, key=lambda r: r["timestamp"])
            count = len(self._withdrawals)
            change = self._changed_held()
            self._next_retry = self._clock() + WITHDRAWAL_RETRY_S  # not at once: the store just failed
        self._save(change)
        log.warning("consent withdrawals held for a retry: %d users", count)

    def _changed_held(self) -> tuple[int, Held]:
        """A new generation of the held set and a copy to write (the caller holds ``_withdrawals_lock``)."""
        self._held_changes += 1
        return self._snapshot()

    def _snapshot(self) -> tuple[int, Held]:
        """The held set's generation and a copy of it (the caller holds ``_withdrawals_lock``)."""
        return self._held_changes, {user: list(rows) for user, rows in self._withdrawals.items()}

    def _save(self, change: tuple[int, Held] | None) -> None:
        """Write one generation of the held withdrawals to their file, unless a newer one is there already
        or the tracker is closed (the journal directory may have a new owner by then). A failure is
        logged: the withdrawals are still held here, only a crash before the next write would lose them."""
        if change is None or self._held_path is None:
            return
        generation, held = change
        with self._saving:
            if self._closed or generation <= self._held_saved:
                return
            try:
                write_held(self._held_path, held)
            except OSError as exc:
                log.error("could not keep the held consent withdrawals in %s: %s", self._held_path, exc)
                return
            self._held_saved = generation

    def withdrawals_held(self) -> list[str]:
        """The users whose consent withdrawal waits for the online store (pseudonyms)."""
        with self._withdrawals_lock:
            return list(self._withdrawals)

    def held_flags(self) -> tuple[int, dict[str, dict[str, bool]]]:
        """Each held user's consent as their held events leave it (the latest explicit value per flag):
        what Rank must go by while the store still holds the older row. With the held set's generation,
        so that a reader never takes an older answer over a newer one; computed once per generation
        (every Track asks)."""
        cached = self._flags
        if cached[0] == self._held_changes:
            return cached
        with self._withdrawals_lock:
            generation, held = self._snapshot()
        out: dict[str, dict[str, bool]] = {}
        for user, rows in held.items():
            flags: dict[str, bool] = {}
            for r in rows:  # in time order: a later flag overrides an earlier one
                flags.update({f: bool(r[f]) for f in FLAGS if r.get(f) is not None})
            out[user] = flags
        self._flags = (generation, out)
        return self._flags

    def flush_held(self) -> None:
        """Write the held set again when its last write failed (a full disk): no later change may come
        to write it (a quiet server; the last user released or erased), and an erasure waits for the file."""
        if self._held_path is None or self._held_changes <= self._held_saved or self._clock() < self._next_flush:
            return
        self._next_flush = self._clock() + WITHDRAWAL_RETRY_S
        with self._withdrawals_lock:
            change = self._snapshot()
        self._save(change)

    def retry_withdrawals(self) -> set[str]:
        """Push the held consent withdrawals again, at most once per ``WITHDRAWAL_RETRY_S``, one thread at
        a time and as the push breaker allows; returns the users whose consent row is now written (their
        cached rankings must go: a shared cache missed the bump while the store was down). A consent row
        written since with a later time is left as it is; a consent given again through another process
        writes none when the row already says yes, so this withdrawal then wins until the user's next
        flag or the next materialize (fail-closed). Erased users are dropped, never written back: at
        every call, whatever the store does (an erasure waits for this process's file to forget them)."""
        self._drop_erased()
        with self._withdrawals_lock:
            if not self._withdrawals or self.online is None or self._clock() < self._next_retry:
                return set()
            if not self._retrying.acquire(blocking=False):
                return set()
            self._next_retry = self._clock() + WITHDRAWAL_RETRY_S
            held = dict(self._withdrawals)
        try:
            return self._retry(held)
        finally:
            self._retrying.release()

    def _drop_erased(self) -> None:
        if self._erased is None:
            return
        with self._withdrawals_lock:
            users = set(self._withdrawals)
        gone = self._erased().among(users) if users else set()
        if not gone:
            return
        with self._withdrawals_lock:
            for user in gone:
                self._withdrawals.pop(user, None)
            change = self._changed_held()
        self._save(change)

    def _retry(self, held: dict[str, list[dict[str, Any]]]) -> set[str]:
        if self._erased is not None and (gone := self._erased().among(held)):  # erased since the snapshot
            self._drop_erased()
            held = {u: rows for u, rows in held.items() if u not in gone}
            if not held:
                return set()
        if self._push_breaker is not None and not self._push_breaker.allow():
            return set()
        users = list(held)
        try:
            read = self.online.read_views_many(("user_consent",), users)  # type: ignore[union-attr]
            consents, times = [], []
            for user, ((consent_time, flags),) in zip(users, read, strict=True):
                evs = held[user]
                new = self._consent(evs, flags)
                if _changed(flags, new):
                    consents.append((user, new, evs[-1]["timestamp"]))
                    times.append(consent_time)
            if consents:
                self.online.write("user_consent", consents, stored=times)  # type: ignore[union-attr]
        except Exception as exc:
            log.warning("consent withdrawals still held (%d users): %s", len(users), type(exc).__name__)
            if self._push_breaker is not None:
                self._push_breaker.failure()
            return set()
        if self._push_breaker is not None:
            self._push_breaker.success()
        self._release(held)
        log.info("consent withdrawals pushed after a failed push: %d users", len(users))
        return set(users)

    def close(self) -> None:
        self.flush_held()
        with self._saving:  # a write under way ends first; none starts once the journal lets its directory go
            self._closed = True
        try:
            self.journal.close()
        finally:  # the quarantine's pending rows and the dedupe handle are closed whatever the journal did
            self.quarantine.close()
            self.dedupe.close()
            if self.identities is not None:
                self.identities.dispose()


def _changed(stored: dict[str, Any] | None, flags: dict[str, bool]) -> bool:
    """Whether the consent row must be written: none stored yet, or a flag differs."""
    return stored is None or any(stored.get(k) != v for k, v in flags.items())
