"""The transport-free ranking service: Rank (the hot path) and Track (feedback).

Rank orchestrates: validation, routing to a variant, the cache, metrics hooks, the champion
fallback and degraded answers live here; the ranking itself is serving.rank_stages, called in
order. No pandas, DataFrames, DMatrix or registry lookups on Rank: user rows come from the online
store through views resolved at start-up, item rows from the in-process table.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from serving import rank_stages as stages
from serving.cache import Cache, cache_key
from serving.errors import InvalidArgument, NotReady
from serving.live import Hooks, ImpressionSink, Live, NoObserver, Observer, Variant
from serving.rollout.routing import CHAMPION, Route, Router
from serving.tracking import Tracker
from serving.types import RankedItem, RankQuery, RankResult, TrackEvent, TrackResult
from serving.user_features import UserFeatureReader, UserRows
from setlist import tracing
from setlist.context import Vocabulary
from setlist.contract import EVENT_TYPES, blank_or_empty
from setlist.featureset import FeatureSet
from setlist.impressions import Impression
from setlist.pseudonym import app_id, pseudonymize
from setlist.request_time import hour_weekday
from setlist.settings import Settings

log = logging.getLogger("setlist.serving")
__all__ = ["Hooks", "ImpressionSink", "Live", "NoObserver", "Observer", "RankingService", "Variant"]


def _ignore(variant: str, seconds: float, error: bool) -> None:
    return None


def _from_cache(hit: Any) -> tuple[RankResult, str, str, bool] | None:
    """A cached ranking, the ranker that served it, the variant used and the user's analytics
    consent when it was put (absent: none); None (a miss) for an entry of another shape (written by
    an older release, say), never an error on Rank."""
    try:
        items = tuple(RankedItem(str(i), float(s), tuple(r)) for i, s, r in hit["items"])
        result = RankResult(
            items,
            str(hit["model_version"]),
            cache_hit=True,
            degraded=False,
            arm=str(hit["arm"]),
            unknown_item_ids=tuple(map(str, unknown)) if (unknown := hit.get("unknown")) else (),
        )
        return result, str(hit.get("served", "")), str(hit.get("variant") or ""), hit.get("analytics") is True
    except (KeyError, TypeError, ValueError):
        return None


def _consents(rows: UserRows, flag: str) -> bool:
    """Unknown consent (no row, a degraded read) counts as none."""
    return bool((rows.consent or {}).get(flag) or False)


class RankingService:
    def __init__(
        self,
        settings: Settings,
        reader: UserFeatureReader,
        cache: Cache,
        tracker: Tracker,
        features: FeatureSet,
        hooks: Hooks | None = None,
        clock: Callable[[], float] = time.time,
        impressions: ImpressionSink | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.features = features
        # every declared input of each block, read once per request; each model takes its columns
        self._inputs = stages.Inputs.of(features)
        self._vocabulary = Vocabulary.of(settings.context_devices, settings.context_locale_pattern)
        self.reader, self.cache, self.tracker = reader, cache, tracker
        self.hooks = hooks or Hooks()
        self.impressions = impressions
        self.observer: Observer = observer or NoObserver()
        self.live: Live | None = None
        self._key = settings.secret_hmac_key()
        self._clock = clock
        self._failures = 0  # variant failures that fell back to the champion

    # --- lifecycle ----------------------------------------------------------------------------
    def ready(self) -> bool:
        return self.live is not None

    def close(self) -> None:
        self.tracker.close()
        if self.impressions is not None:
            self.impressions.close()

    def pseudonym(self, user_id: str) -> str:
        return pseudonymize(app_id(user_id), self._key)

    # --- Rank ---------------------------------------------------------------------------------
    def check_rank(self, q: RankQuery) -> None:
        s = self.settings
        if not q.user_id.strip():
            raise InvalidArgument(f"user_id is {blank_or_empty(q.user_id)}")
        # counted as it is kept: the spaces a client pads an id with are no part of it (``app_id``)
        if (n := len(app_id(q.user_id))) > s.max_user_id_len:
            raise InvalidArgument(f"user_id is {n} characters; at most {s.max_user_id_len} allowed")
        if q.k <= 0 or q.k > s.max_k:
            raise InvalidArgument(f"k must be between 1 and {s.max_k}, got {q.k}")
        if len(q.exclude_item_ids) > s.max_exclusions:
            raise InvalidArgument(f"{len(q.exclude_item_ids)} exclude_item_ids; at most {s.max_exclusions} allowed")
        # an id longer than any event may carry names no item; they are in the cache key, so bounded
        for n, item in enumerate(q.exclude_item_ids):
            if len(item) > s.track_max_id_len:
                raise InvalidArgument(
                    f"exclude_item_ids[{n}] is {len(item)} characters; at most {s.track_max_id_len} allowed"
                )
        if q.candidate_item_ids:
            self._check_slate(q.candidate_item_ids)
        # the bounds a Track event's context has: a huge context is refused, not parsed and dropped
        if q.context and (reason := self.tracker.policy.context_reason(q.context)) is not None:
            raise InvalidArgument("context: " + reason.removeprefix("bad_context: "))

    def _check_slate(self, slate: tuple[str, ...]) -> None:
        s = self.settings
        if len(slate) > s.max_candidate_ids:
            raise InvalidArgument(f"{len(slate)} candidate_item_ids; at most {s.max_candidate_ids} allowed")
        # the ids an event may carry: an unknown one is told back (and cached), so it is bounded too. Taken as
        # sent, as Track and the importer take an item id (padding is part of it); a blank one names nothing.
        for n, item in enumerate(slate):
            if not item.strip():
                raise InvalidArgument(f"candidate_item_ids[{n}] is {blank_or_empty(item)}")
            if len(item) > s.track_max_id_len:
                raise InvalidArgument(
                    f"candidate_item_ids[{n}] is {len(item)} characters; at most {s.track_max_id_len} allowed"
                )

    def rank(self, q: RankQuery) -> RankResult:
        cpu = time.thread_time()  # this thread's CPU only: a clock read, no allocation (ops cost)
        try:
            # the root span of a Rank (a child of the caller's, over gRPC); one flag check when tracing is off
            with tracing.span("rank", k=q.k, request_id=q.request_id or None) as current:
                result = self._rank(q, current)
            if q.context and (ignored := self._vocabulary.ignored(q.context)):
                return replace(result, ignored_context_keys=ignored)
            return result
        finally:
            self.hooks.on_cpu("Rank", time.thread_time() - cpu)

    def _rank(self, q: RankQuery, current: tracing.Span) -> RankResult:
        started = time.perf_counter()
        self.check_rank(q)
        if q.candidate_item_ids:  # each id once, in the caller's order: the key and the stages see the same slate
            q = replace(q, candidate_item_ids=tuple(dict.fromkeys(q.candidate_item_ids)))
        live = self.live
        if live is None:
            raise NotReady("models and features are still loading")
        user = self.pseudonym(q.user_id)
        route = live.router.route(user)
        variant = live.variant(route.variant)
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        # bounded once here: the key, the stages and the impression all see the same short values
        device, locale = self._vocabulary.context(q.context)
        # the request features read the hour and weekday on the routed model's clock: an entry ends with them
        hour, weekday = hour_weekday(now, variant.bundle.zone)
        bucket = f"{device}|{locale}|{weekday}|{hour}"
        self.hooks.on_arm(route.arm)
        rows: UserRows | None = None
        # A cache shared by every worker and replica (Redis) holds the versions that every Track,
        # erasure and feature publish bumps: a hit needs no feature rows, so it is looked up first.
        # a user whose withdrawal this process holds is read first: a shared entry may predate it
        if not getattr(self.cache, "shared", False) or self.reader.withheld(user):
            with tracing.span("rank.user_rows"):
                rows = self.reader.read(user)
        # the arm and strategy are in the key: two arms may serve the same models differently. With a
        # cache of its own per process the user's rows' timestamps are in it too, since another worker's
        # Track bumped only that worker's versions
        key = cache_key(
            user,
            bucket,
            q.k,
            q.exclude_item_ids,
            f"{route.arm}:{route.strategy}:{variant.bundle.version}@{variant.items.publish_version}",
            f"{'' if rows is None else rows.version}|{int(q.explain)}",
            q.candidate_item_ids,
        )
        # one cache round trip: the entry and the stamp (user version, generation) to put it with
        with tracing.span("rank.cache"):
            cached = self.cache.lookup(user, key) if rows is None or not rows.degraded else None
        if cached is not None and cached.value is not None:
            hit = _from_cache(cached.value)
            # A personalized entry is never served once consent is gone. With rows read, their consent
            # decides (another worker's cache was not bumped by the Track that withdrew it); on the
            # shared cache the entry's own consent was current when it was put, and every change since
            # (a Track, an erasure, a feature publish) made it stale.
            personal = hit is not None and (rows is None or _consents(rows, "consent_personalization"))
            if hit is not None and (personal or hit[1] != "model"):
                result, served, used, analytics = hit
                if rows is not None:
                    analytics = _consents(rows, "consent_analytics")
                used = used or route.variant
                self._impression(
                    q, user, route, used, live.variant(used), served, result, now, device, locale, analytics
                )
                self.hooks.on_cache(True, time.perf_counter() - started)
                tracing.set_attributes(
                    current, cache_hit=True, arm=result.arm, variant=used, served=served, model=result.model_version
                )
                return result
        if rows is None:
            with tracing.span("rank.user_rows"):
                rows = self.reader.read(user)
            if rows.degraded:  # what a degraded read ranks is never cached
                cached = None
        found: UserRows = rows
        analytics = _consents(found, "consent_analytics")

        def context(v: Variant) -> stages.RankContext:
            return stages.RankContext(
                stages.request(q, user, found, now, device, locale, route.strategy),
                v,
                self._inputs,
                self.settings.candidate_pool,
                self.settings.new_user_genre_cap,
            )

        result, served, used = self._serve(live, route, variant, found.degraded, context)
        # the key's bucket is the hour on the routed model's clock: a fallback ranked on another clock
        # (a champion of another zone) could outlive its own hour under it, so it is not kept
        other_clock = used != route.variant and live.variant(used).bundle.zone != variant.bundle.zone
        if cached is not None and not other_clock:
            with tracing.span("rank.cache_put"):
                self.cache.put(
                    key,
                    cached.stamp,
                    {
                        "items": [(i.item_id, i.score, list(i.reasons)) for i in result.items],
                        "model_version": result.model_version,
                        "arm": result.arm,
                        "served": served,
                        "variant": used,
                        "analytics": analytics,
                        **({"unknown": list(result.unknown_item_ids)} if result.unknown_item_ids else {}),
                    },
                )
        elif cached is None:
            self.hooks.on_degraded()
        self._impression(q, user, route, used, live.variant(used), served, result, now, device, locale, analytics)
        self.hooks.on_cache(False, time.perf_counter() - started)
        tracing.set_attributes(
            current,
            cache_hit=False,
            arm=result.arm,
            variant=used,
            served=served,
            model=result.model_version,
            degraded=result.degraded,
        )
        return result

    def _serve(
        self,
        live: Live,
        route: Route,
        variant: Variant,
        degraded: bool,
        context: Callable[[Variant], stages.RankContext],
    ) -> tuple[RankResult, str, str]:
        """Rank on the routed variant; a canary or challenger that fails falls back to the champion
        (counted against its error budget) so the caller never sees another version's bug."""
        started = time.perf_counter()
        # an alias that is not loaded is served (and recorded) as the champion
        used = route.variant if route.variant in live.variants else CHAMPION
        # only model arms are canary traffic: a popularity arm's fast answers would flatter stable
        observe = self.observer.on_served if route.strategy == "model" else _ignore
        try:
            # the context is built inside the try: rows the stages cannot read count against the variant
            result, served = self._rank_fresh(context(variant), route, degraded)
        except Exception:
            observe(route.variant, time.perf_counter() - started, True)
            if used == CHAMPION:
                raise
            self._failures += 1
            if self._failures % 1000 == 1:  # a traceback now and then, not one per request
                log.exception("variant %s failed (%d so far); serving the champion", route.variant, self._failures)
            result, served = self._rank_fresh(context(live.variant(CHAMPION)), route, degraded)
            return result, served, CHAMPION
        observe(route.variant, time.perf_counter() - started, False)
        return result, served, used

    def _rank_fresh(self, ctx: stages.RankContext, route: Route, degraded: bool) -> tuple[RankResult, str]:
        """The stages in order; returns the result and which ranker served it."""
        with tracing.span("rank.candidates") as span:
            c = stages.candidates(ctx)
            tracing.set_attributes(span, candidates=len(c.idx), personalized=c.personalized)
        self.hooks.on_candidates(len(c.idx))
        version = ctx.variant.bundle.version
        unknown = stages.unknown_items(ctx) if ctx.request.slate else ()
        if not c.personalized:
            # without an experiment the arm names the fallback, as before experiments existed
            arm = route.arm if route.experiment else "popularity"
            items = stages.popularity_ranking(ctx, c)
            return RankResult(items, version, degraded=degraded, arm=arm, unknown_item_ids=unknown), "popularity"
        # a caller's slate may leave nothing to score (every id unknown or excluded)
        items = stages.model_ranking(ctx, c) if len(c.idx) else ()
        return RankResult(items, version, degraded=degraded, arm=route.arm, unknown_item_ids=unknown), "model"

    def _impression(
        self,
        q: RankQuery,
        user: str,
        route: Route,
        used: str,
        variant: Variant,
        served: str,
        result: RankResult,
        now: datetime,
        device: str,
        locale: str,
        analytics: bool,
    ) -> None:
        """Hand what was shown to the impression writer; never blocks (see serving.impressions).
        No per-user record without analytics consent (unknown consent counts as none)."""
        if self.impressions is None or not analytics:
            return
        b = variant.bundle
        self.impressions.submit(
            Impression(
                q.request_id or uuid.uuid4().hex,
                int(now.timestamp() * 1000),
                user,
                route.experiment,
                result.arm,
                route.holdout,
                served,
                used,
                b.candidates_version,
                b.ranker_version,
                tuple(i.item_id for i in result.items),
                tuple(i.score for i in result.items),
                result.cache_hit,
                result.degraded,
                device,
                locale,
                bool(q.candidate_item_ids),
            )
        )

    # --- Track --------------------------------------------------------------------------------
    def track(self, events: list[TrackEvent]) -> TrackResult:
        cpu = time.thread_time()
        try:
            with tracing.span("track", events=len(events)) as current:
                result = self._track(events)
                tracing.set_attributes(
                    current, accepted=result.accepted, rejected=len(result.rejected), duplicates=len(result.duplicates)
                )
                return result
        finally:
            self.hooks.on_cpu("Track", time.thread_time() - cpu)

    def settle_withdrawals(self) -> None:
        """Consent withdrawals whose push failed: this process forgets the rows degraded mode would
        serve them from, and pushes them again; once pushed, their cached rankings go."""
        generation, held = self.tracker.held_flags()
        # the store may still answer reads with the older rows (it refuses writes only): Rank goes by these
        self.reader.withhold(generation, held)
        self.tracker.flush_held()  # a write that failed is tried again, even once nothing is held
        if not held:
            return
        for user in held:
            self.reader.forget(user)
        pushed = self.tracker.retry_withdrawals()
        if pushed:
            self.reader.withhold(*self.tracker.held_flags())
            self.cache.bump_users(pushed)

    def _track(self, events: list[TrackEvent]) -> TrackResult:
        if not events:
            raise InvalidArgument("events is empty")
        if len(events) > self.settings.max_track_batch:
            raise InvalidArgument(f"{len(events)} events in one request; at most {self.settings.max_track_batch}")
        live = self.live
        router = live.router if live else None
        if router is not None and router.experiment is not None:
            events = [self._with_arm(e, router) for e in events]
        result = self.tracker.track(events, live.bundle.index if live else None, self.pseudonym)
        # a retry stored before changes nothing downstream: no cache bump, no second canary count; nor
        # does an erased user's event
        new = [e for e in events if e.event_id not in result.duplicates and e.event_id not in result.erased]
        # O(1) per user: their cached rankings go stale by version, no key is scanned. Batch-tier
        # events (setlist.tiers) change nothing Rank reads before the next materialize.
        tiers = self.tracker.tiers
        self.cache.bump_users({self.pseudonym(e.user_id) for e in new if e.user_id and tiers.is_realtime(e.type)})
        self.settle_withdrawals()
        if router is not None and self.observer.active:
            rejected = {r.event_id for r in result.rejected}
            for e in new:  # plays and skips of model-arm users feed the canary's guard KPI
                if e.type in ("play", "skip") and e.user_id and e.event_id not in rejected:
                    route = router.route(self.pseudonym(e.user_id))
                    if route.strategy == "model":
                        self.observer.on_feedback(route.variant, e.type)
        if result.accepted == 0:
            shown = result.rejected[:5]
            reasons = "; ".join(f"#{r.index} {r.event_id or '<no id>'}: {r.reason}" for r in shown)
            more = f"; and {len(result.rejected) - len(shown)} more" if len(result.rejected) > len(shown) else ""
            typed = any(r.reason.startswith("unknown_type") for r in result.rejected)
            types = f". Known types: {', '.join(EVENT_TYPES)}" if typed else ""
            raise InvalidArgument(f"no event accepted ({len(result.rejected)} rejected): {reasons}{more}{types}")
        return result

    def _with_arm(self, e: TrackEvent, router: Router) -> TrackEvent:
        """Fill the row's arm from the assignment when the client did not send one."""
        if e.context.get("arm") or not e.user_id:
            return e
        return replace(e, context={**e.context, "arm": router.route(self.pseudonym(e.user_id)).arm})
