"""The transport-free ranking service: Rank (the hot path) and Track (feedback).

No pandas, DataFrames, DMatrix or registry lookups on Rank: user rows come from the online store
through views resolved at start-up, item rows from the in-process table, the matrix is built in
NumPy and scored with ``inplace_predict``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from setlist.candidates import GLOBAL_COHORT, CandidateIndex, cohort_key
from setlist.contract import EVENT_TYPES
from setlist.features import SESSION_NUMERIC, USER_NUMERIC, USER_TOP_GENRE, USER_VECTOR, assemble, context_vector, \
    effective_session
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings

from . import explain as explain_mod
from .cache import Cache, cache_key
from .errors import InvalidArgument, NotReady
from .item_table import ItemTable
from .models import ModelBundle
from .tracking import Tracker
from .types import RankedItem, RankQuery, RankResult, TrackEvent, TrackResult
from .user_features import UserFeatureReader, UserRows

log = logging.getLogger("setlist.serving")


@dataclass(frozen=True)
class Live:
    """Everything a request needs that changes together: models and the aligned item table."""

    bundle: ModelBundle
    items: ItemTable


@dataclass
class Hooks:
    """Optional observers (metrics); the service works without them."""

    on_cache: Callable[[bool, float], None] = lambda hit, seconds: None
    on_candidates: Callable[[int], None] = lambda n: None
    on_degraded: Callable[[], None] = lambda: None


def _floats(row: dict | None, names: tuple[str, ...]) -> np.ndarray:
    if not row:
        return np.full(len(names), np.nan, np.float32)
    return np.array([np.nan if row.get(n) is None else float(row[n]) for n in names], np.float32)


class RankingService:
    def __init__(self, settings: Settings, reader: UserFeatureReader, cache: Cache, tracker: Tracker,
                 hooks: Hooks | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.reader, self.cache, self.tracker = reader, cache, tracker
        self.hooks = hooks or Hooks()
        self.live: Live | None = None
        self._key = settings.secret_hmac_key()
        self._clock = clock

    # --- lifecycle ----------------------------------------------------------------------------
    def ready(self) -> bool:
        return self.live is not None

    def close(self) -> None:
        self.tracker.close()

    def pseudonym(self, user_id: str) -> str:
        return pseudonymize(user_id, self._key)

    # --- Rank ---------------------------------------------------------------------------------
    def check_rank(self, q: RankQuery) -> None:
        s = self.settings
        if not q.user_id or not q.user_id.strip():
            raise InvalidArgument("user_id is empty")
        if len(q.user_id) > s.max_user_id_len:
            raise InvalidArgument(f"user_id is {len(q.user_id)} characters; at most {s.max_user_id_len} allowed")
        if q.k <= 0 or q.k > s.max_k:
            raise InvalidArgument(f"k must be between 1 and {s.max_k}, got {q.k}")
        if len(q.exclude_item_ids) > s.max_exclusions:
            raise InvalidArgument(f"{len(q.exclude_item_ids)} exclude_item_ids; at most {s.max_exclusions} allowed")

    def rank(self, q: RankQuery) -> RankResult:
        started = time.perf_counter()
        self.check_rank(q)
        live = self.live
        if live is None:
            raise NotReady("models and features are still loading")
        user = self.pseudonym(q.user_id)
        rows = self.reader.read(user)
        now = datetime.fromtimestamp(self._clock(), tz=timezone.utc)
        device, locale = q.context.get("device", "unknown"), q.context.get("locale", "unknown")
        bucket = f"{device}|{locale}|{now.hour}|{int(now.weekday() >= 5)}"
        key = cache_key(user, bucket, q.k, q.exclude_item_ids, f"{live.bundle.version}@{live.items.publish_version}",
                        f"{rows.version}|{int(q.explain)}")
        if not rows.degraded:
            hit = self.cache.get(key)
            if hit is not None:
                self.hooks.on_cache(True, time.perf_counter() - started)
                return RankResult(tuple(RankedItem(i, s, tuple(r)) for i, s, r in hit["items"]),
                                  hit["model_version"], cache_hit=True, degraded=False, arm=hit["arm"])
        result = self._rank_fresh(q, live, user, rows, now, device, locale)
        if not rows.degraded:
            self.cache.put(key, {"items": [(i.item_id, i.score, list(i.reasons)) for i in result.items],
                                 "model_version": result.model_version, "arm": result.arm})
        else:
            self.hooks.on_degraded()
        self.hooks.on_cache(False, time.perf_counter() - started)
        return result

    def _rank_fresh(self, q: RankQuery, live: Live, user: str, rows: UserRows, now: datetime, device: str,
                    locale: str) -> RankResult:
        index = live.bundle.index
        session = effective_session(rows.session, int(now.timestamp() * 1000))
        last = list(session["session_last_items"])  # type: ignore[arg-type]
        blocked = list(session["session_blocked_items"])  # type: ignore[arg-type]
        exclude = {index.item_index[i] for i in (*last, *blocked, *q.exclude_item_ids) if i in index.item_index}
        cohort = cohort_key(locale, device)
        consent = rows.consent is None or bool(rows.consent.get("consent_personalization", True))
        profile = rows.profile or {}
        genres = (str(session["session_genre"] or ""), str(profile.get(USER_TOP_GENRE) or ""))
        c = index.generate(user, last, cohort, exclude, self.settings.candidate_pool, personalized=consent,
                           genres=genres if consent else ())
        self.hooks.on_candidates(len(c.idx))
        if not c.personalized:
            return self._popularity(q, index, c.idx, cohort, live, rows.degraded)
        aff = profile.get(USER_VECTOR)
        cross = index.cross_features(c, None if aff is None else np.asarray(aff, np.float32),
                                     genres[1], genres[0], last)
        X = assemble(_floats(profile, USER_NUMERIC), _floats(session, SESSION_NUMERIC),
                     context_vector(device, now.hour, now.weekday()), live.items.matrix[c.idx], cross)
        scores = live.bundle.score(X)
        k = min(q.k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        ids = index.item_ids[c.idx[top]]
        why: list[tuple[str, ...]] = [()] * len(top)
        if q.explain:
            why = explain_mod.reasons(live.bundle.booster, X[top], [str(live.items.genres[i]) for i in c.idx[top]])
        items = tuple(RankedItem(str(i), float(s), w) for i, s, w in zip(ids, scores[top], why))
        return RankResult(items, live.bundle.version, degraded=rows.degraded, arm="champion")

    def _popularity(self, q: RankQuery, index: CandidateIndex, idx: np.ndarray, cohort: str, live: Live,
                    degraded: bool) -> RankResult:
        """Cold-start users and users without personalization consent: cohort popularity."""
        top = idx[: q.k]
        which = "everyone" if cohort not in index.cohorts or cohort == GLOBAL_COHORT else "your region and device"
        items = tuple(RankedItem(str(index.item_ids[i]), float(1.0 / (1 + n)),
                                 (f"popular with {which}",) if q.explain else ())
                      for n, i in enumerate(top))
        return RankResult(items, live.bundle.version, degraded=degraded, arm="popularity")

    # --- Track --------------------------------------------------------------------------------
    def track(self, events: list[TrackEvent]) -> TrackResult:
        if not events:
            raise InvalidArgument("events is empty")
        if len(events) > self.settings.max_track_batch:
            raise InvalidArgument(f"{len(events)} events in one request; at most {self.settings.max_track_batch}")
        live = self.live
        result = self.tracker.track(events, live.bundle.index if live else None, self.pseudonym)
        for user in {self.pseudonym(e.user_id) for e in events if e.user_id}:
            self.cache.invalidate_user(user)
        if result.accepted == 0:
            reasons = "; ".join(f"{r.event_id or '<no id>'}: {r.reason}" for r in result.rejected[:5])
            raise InvalidArgument(f"no event accepted ({len(result.rejected)} rejected): {reasons}. "
                                  f"Known types: {', '.join(EVENT_TYPES)}")
        return result

