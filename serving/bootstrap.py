"""Wire once: build the feature reader, models, item tables, cache, journal, impression writer,
experiment router, canary rollout and service from settings.

Nothing is built at import time; tests call :func:`build` with their own settings and may pass
a fake for any part (tests/fakes/dataplane.py holds honest ones). Each part is built here only
when the caller did not pass it, so a fake never has a real adapter (a store, a database, MLflow)
built beside it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

import numpy as np

from feature_repo.online import OnlineFeatures
from feature_repo.store import get_store, request_store_config
from serving import metrics
from serving.breaker import Breaker
from serving.cache import Cache, MemoryCache, NoCache, RedisCache
from serving.dedupe import Dedupe, make_dedupe
from serving.errors import NotReady
from serving.identity_writer import IdentityWriter
from serving.impressions import ImpressionLog
from serving.item_table import ItemTable, load_items
from serving.journal import Journal
from serving.live import ImpressionSink
from serving.rollout.canary import CanaryPolicy
from serving.rollout.driver import Rollout, RolloutRegistry
from serving.rollout.models import Bounded, ModelHolder
from serving.rollout.registry_ops import MlflowRolloutRegistry
from serving.rollout.routing import CANARY, CHAMPION, Router
from serving.service import Hooks, Live, RankingService, Variant
from serving.tombstones import Stamp, Tombstones
from serving.tracking import WITHDRAWAL_RETRY_S, Tracker, TrackPolicy
from serving.types import RankQuery, RankResult, TrackEvent, TrackResult
from serving.user_features import UserFeatureReader
from setlist.eventlog import EventLog, Quarantine
from setlist.experiment import Experiment, load_experiment
from setlist.featureset import FeatureSet
from setlist.journal_dirs import adopt_held, journal_dir, sweep_orphans
from setlist.pseudonym import IdentityMap
from setlist.publish import PublishLog
from setlist.registry import Pair, model_names, reader, version_facts
from setlist.settings import Settings
from setlist.tiers import Tiers

log = logging.getLogger("setlist.serving")
VIEWS = ("user_profile", "item_stats", "session", "user_consent")


#: builds the in-process item table for a candidate index's items (serving.item_table.load_items)
ItemLoader = Callable[[OnlineFeatures, np.ndarray, int, tuple[str, ...]], ItemTable]


class MetricsSink(Protocol):
    """What serving reports; :class:`PrometheusMetrics` in production, a recorder in tests."""

    def record_cache(self, hit: bool, seconds: float) -> None: ...

    def record_candidates(self, count: int) -> None: ...

    def record_degraded(self, reason: str = "fallback") -> None: ...

    def record_arm(self, arm: str) -> None: ...

    def record_cpu(self, rpc: str, seconds: float) -> None: ...

    def record_impression_drop(self) -> None: ...

    def record_impressions_written(self, rows: int) -> None: ...

    def record_canary(self, action: str, share: float) -> None: ...

    def set_model_version(self, model: str, version: str) -> None: ...

    def set_canary_share(self, share: float) -> None: ...

    def mark_feature_publish(self, published_at: float) -> None: ...

    def record_track_duplicates(self, count: int) -> None: ...

    def record_track_degraded(self, reason: str) -> None: ...

    def record_acknowledged(self, count: int) -> None: ...

    def record_logged(self, count: int) -> None: ...

    def record_journal_write(self, seconds: float) -> None: ...

    def record_quarantined(self, reasons: list[str]) -> None: ...

    def record_sampled_out(self, types: list[str]) -> None: ...

    def watch_ingest(self, oldest_unlogged: Callable[[], float | None]) -> None: ...

    def watch_cache(self, entries: Callable[[], int]) -> None: ...

    def mark_feature_lag(self, oldest_uncovered: float | None) -> None: ...

    def mark_view(self, view: str, newest: float) -> None: ...

    def set_model_facts(self, alias: str, facts: list[tuple[str, float, dict[str, float]]]) -> None: ...


class PrometheusMetrics:
    """serving.metrics (process-global Prometheus series) as a sink."""

    record_cache = staticmethod(metrics.record_cache)
    record_candidates = staticmethod(metrics.record_candidates)
    record_degraded = staticmethod(metrics.record_degraded)
    record_arm = staticmethod(metrics.record_arm)
    record_cpu = staticmethod(metrics.record_cpu)
    record_impression_drop = staticmethod(metrics.record_impression_drop)
    record_impressions_written = staticmethod(metrics.record_impressions_written)
    record_canary = staticmethod(metrics.record_canary)
    set_model_version = staticmethod(metrics.set_model_version)
    mark_feature_publish = staticmethod(metrics.mark_feature_publish)
    record_track_duplicates = staticmethod(metrics.record_track_duplicates)
    record_acknowledged = staticmethod(metrics.record_acknowledged)
    record_logged = staticmethod(metrics.record_logged)
    record_journal_write = staticmethod(metrics.record_journal_write)
    record_quarantined = staticmethod(metrics.record_quarantined)
    record_sampled_out = staticmethod(metrics.record_sampled_out)
    record_track_degraded = staticmethod(metrics.record_track_degraded)
    watch_ingest = staticmethod(metrics.watch_ingest)
    watch_cache = staticmethod(metrics.watch_cache)
    mark_feature_lag = staticmethod(metrics.mark_feature_lag)
    mark_view = staticmethod(metrics.mark_view)
    set_model_facts = staticmethod(metrics.set_model_facts)

    @staticmethod
    def set_canary_share(share: float) -> None:
        metrics.CANARY_SHARE.set(share)


FactsLoader = Callable[[Settings, Pair], list[tuple[str, float, dict[str, float]]]]


def registry_facts(settings: Settings, pair: Pair) -> list[tuple[str, float, dict[str, float]]]:
    """(model, registered at, the ranker's offline metrics) for both versions of a served pair."""
    client = reader(settings)
    names = model_names(settings)
    return [
        (f.model, f.created, f.metrics)
        for f in (
            version_facts(client, names.candidates, pair[0], with_metrics=False),
            version_facts(client, names.ranker, pair[1], with_metrics=True),
        )
    ]


def _track_breakers(settings: Settings, clock: Callable[[], float] | None) -> dict[str, Breaker]:
    """Breakers for Track's Redis work (the embedded stores are local files and fail at once). A
    cluster's session push has none: a batch spans masters, and one dead master would hold back every
    user's push; there it pays its timeouts, as docs/redis-cluster.md measures."""
    if not settings.on_servers:
        return {}

    def breaker() -> Breaker:
        return Breaker(settings.online_breaker_cooldown_s, clock or time.monotonic, settings.online_breaker_failures)

    if settings.profile == "cluster":
        return {"dedupe_breaker": breaker()}
    return {"dedupe_breaker": breaker(), "push_breaker": breaker()}


def make_cache(settings: Settings, clock: Callable[[], float] | None = None) -> Cache:
    if not settings.cache_enabled:
        return NoCache()
    if settings.cache_store == "redis":
        breaker = Breaker(settings.online_breaker_cooldown_s, clock or time.monotonic, settings.online_breaker_failures)
        return RedisCache(
            settings.redis_url, settings.cache_ttl_s, settings.online_timeout_ms / 1000, breaker, settings.feast_project
        )
    return MemoryCache(settings.cache_size, settings.cache_ttl_s, clock=clock or time.monotonic)


@dataclass
class Server:
    """The service plus the background work that keeps it current. Implements ``Ranking``."""

    service: RankingService
    models: ModelHolder
    online: OnlineFeatures
    publishes: PublishLog
    rollout: Rollout
    experiment: Experiment | None = None
    items: ItemLoader = load_items
    metrics: MetricsSink = field(default_factory=PrometheusMetrics)
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    tombstones: Tombstones | None = None  # the erased users, shared with Track
    tombstones_seen: Stamp | None = None  # the tombstone list's stamp when erased users were last forgotten
    facts: FactsLoader | None = None  # registration times and metrics of served models, for the metrics
    facts_reported: dict[str, Pair] = field(default_factory=dict)
    facts_lookup: Bounded | None = None

    def rank(self, query: RankQuery) -> RankResult:
        try:
            return self.service.rank(query)
        except NotReady:
            # "still loading" is not the truth when the registry's champion was refused or unset: nothing is loading
            why = getattr(self.models, "waiting_for", None)
            if why:
                raise NotReady(f"not serving yet: {why}") from None
            raise

    def track(self, events: list[TrackEvent]) -> TrackResult:
        return self.service.track(events)

    def ready(self) -> bool:
        return self.service.ready()

    @property
    def failure(self) -> BaseException | None:
        """Why this process must stop taking traffic (its Track journal failed), or None; health
        reads it (serving.grpc.health)."""
        return getattr(self.service.tracker.journal, "failure", None)  # a fake journal never fails

    def refresh(self) -> bool:
        """Pick up new model versions, judge a running canary, pick up a new feature publish.
        Returns True if what is served changed."""
        self.forget_erased()
        # the rollout holds bundles the aliases may name again (a rollback): reuse, don't reload
        self.models.refresh(reuse=(self.rollout.current, self.rollout.candidate))
        self.report_models()
        self.rollout.observe(self.models.current)
        self.rollout.tick()
        if self.rollout.current is None:
            return False
        live = self.service.live
        try:
            latest = self.publishes.latest()
        except Exception as exc:
            log.warning("cannot read the feature publish log: %s", type(exc).__name__)
            return live is not None and self._go_live(live.items.publish_version)
        self.report_features(latest.published_at.timestamp() if latest else None)
        return self._go_live(latest.version if latest else 0, latest.published_at.timestamp() if latest else None)

    def report_features(self, published_at: float | None) -> None:
        """Feature age per view (since the publish that wrote it) and feature lag (the oldest
        event-log write no publish covers yet), for the metrics."""
        if published_at is not None:
            for view in VIEWS:
                self.metrics.mark_view(view, published_at)
        try:
            uncovered = EventLog(self.service.settings.events_dir).oldest_write_after(published_at or 0.0)
        except OSError as exc:
            log.warning("cannot list the event log for the feature lag: %s", type(exc).__name__)
            return
        self.metrics.mark_feature_lag(uncovered)

    def report_models(self) -> None:
        """Each served alias's registration times and (champion) offline metrics, once per pair."""
        if self.facts is None:
            return
        if self.facts_lookup is None:
            self.facts_lookup = Bounded(self.service.settings.mlflow_timeout_s, "setlist-model-facts")
        for alias, bundle in self.models.bundles.items():
            if self.facts_reported.get(alias) == bundle.pair:
                continue
            try:
                facts = self.facts_lookup(self.facts, self.service.settings, bundle.pair)
            except Exception as exc:  # the next refresh asks again
                log.warning("cannot read %s's registry facts: %s", alias, type(exc).__name__)
                continue
            self.metrics.set_model_facts(alias, facts)
            self.facts_reported[alias] = bundle.pair

    def forget_erased(self) -> None:
        """Drop the last-known rows (degraded mode's copy) of users erased since the last look."""
        if self.tombstones is None:
            self.tombstones = Tombstones(self.service.settings.events_dir)
        stamp, erased = self.tombstones.snapshot()
        if stamp == self.tombstones_seen:
            return
        self.tombstones_seen = stamp
        self.service.reader.forget_erased(erased)

    def check_canary(self) -> bool:
        """Judge a running canary between refreshes (widen, complete or roll back)."""
        live = self.service.live
        if live is None or not self.rollout.tick():
            return False
        return self._go_live(live.items.publish_version)

    def _go_live(self, publish_version: int, published_at: float | None = None) -> bool:
        """Serve the current plan; False (and nothing swapped) when it is what is served already."""
        stable = self.rollout.current
        assert stable is not None
        bundles = {a: b for a, b in self.models.bundles.items() if a != CHAMPION}
        bundles[CHAMPION] = stable
        if self.rollout.active and self.rollout.candidate is not None:
            bundles[CANARY] = self.rollout.candidate
        router = Router(self.experiment, self.rollout.share(), self.rollout.salt())
        prev = self.service.live
        if (
            prev is not None
            and prev.router == router
            and prev.items.publish_version == publish_version
            and {n: v.bundle.pair for n, v in prev.variants.items()} == {n: b.pair for n, b in bundles.items()}
        ):
            return False
        # item tables follow the candidate index (its item order); reuse them for an unchanged publish
        tables: dict[str, ItemTable] = {}
        if prev is not None and prev.items.publish_version == publish_version:
            tables = {v.bundle.candidates_version: v.items for v in prev.variants.values()}
        variants = {}
        for name, bundle in bundles.items():
            if bundle.candidates_version not in tables:
                tables[bundle.candidates_version] = self.items(
                    self.online, bundle.index.item_ids, publish_version, self.service.features.inputs("item")
                )
            variants[name] = Variant(bundle, tables[bundle.candidates_version])
        self.service.live = Live(variants, router)  # one assignment: requests see old or new, never a mix
        self.service.cache.bump_generation()  # O(1): entries of earlier generations read as misses
        settings = self.service.settings
        self.metrics.set_model_version(settings.candidates_model, stable.candidates_version)
        self.metrics.set_model_version(settings.ranker_model, stable.ranker_version)
        self.metrics.set_canary_share(router.canary_share)
        if published_at is not None:
            self.metrics.mark_feature_publish(published_at)
        items = variants[CHAMPION].items
        log.info(
            "live: %s, features v%d (%d items, %d without online stats)%s",
            {n: v.bundle.version for n, v in variants.items()},
            publish_version,
            len(stable.index.item_ids),
            items.missing,
            f", canary share {router.canary_share:.0%}" if router.canary_share else "",
        )
        return True

    def start(self) -> None:
        settings = self.service.settings

        def loop() -> None:
            last = last_canary = time.monotonic()
            while True:
                # wakes at least every WITHDRAWAL_RETRY_S: a consent withdrawal the store did not take
                # is pushed soon even on a quiet server (a look costs a lock and an empty dict)
                wait = min(settings.reload_interval_s, WITHDRAWAL_RETRY_S)
                if self.rollout.active:  # judge a canary more often than the registry is polled
                    wait = min(wait, settings.canary_check_s)
                if self.stop_event.wait(wait):
                    return
                try:
                    self.service.settle_withdrawals()
                    now = time.monotonic()
                    if now - last >= settings.reload_interval_s:
                        last = last_canary = now
                        if self.refresh():
                            # the new models are long-lived too (see serving.grpc.workers); collected
                            # first, or the cycles the old ones left would be frozen with them for good
                            gc.collect()
                            gc.freeze()
                    elif self.rollout.active and now - last_canary >= settings.canary_check_s:
                        last_canary = now
                        self.check_canary()
                except Exception:
                    log.exception("refresh failed; still serving the previous models and features")

        self.thread = threading.Thread(target=loop, name="setlist-refresh", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.service.close()
        self.publishes.dispose()


def load_features(settings: Settings) -> FeatureSet:
    """The declarations, loaded once at start-up (a user's declaration file that fails says which)."""
    from feature_repo.declarations import load

    return load(settings)


def _identity_writer(settings: Settings) -> IdentityMap:
    """The identity map behind a background writer, so Track never waits on PostgreSQL."""
    store = IdentityMap(
        settings.metadata_url,
        connect_timeout_s=settings.database_connect_timeout_s,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )
    writer = IdentityWriter(store, maxsize=settings.identity_queue, retry_s=settings.identity_retry_s)
    # Tracker calls only remember() and dispose(), which the writer answers (without blocking)
    return cast(IdentityMap, writer)


def build(
    settings: Settings,
    worker: int = 0,
    hooks: Hooks | None = None,
    load: bool = True,
    start: bool = False,
    *,
    online: OnlineFeatures | None = None,
    features: FeatureSet | None = None,
    models: ModelHolder | None = None,
    rollout_registry: RolloutRegistry | None = None,
    items: ItemLoader | None = None,
    publishes: PublishLog | None = None,
    cache: Cache | None = None,
    reader: UserFeatureReader | None = None,
    journal: Journal | None = None,
    quarantine: Quarantine | None = None,
    identities: IdentityMap | None = None,
    dedupe: Dedupe | None = None,
    tracker: Tracker | None = None,
    impressions: ImpressionSink | None = None,
    clock: Callable[[], float] | None = None,
    metrics_sink: MetricsSink | None = None,
) -> Server:
    """The server, with every part given by the caller or else built from ``settings``.

    online: the online store (user rows, item stats, session pushes); models: the served model
    pairs (a ModelHolder over the registry; its loader and alias lookup can be fakes); items: the
    item-table loader; publishes: the feature publish log; cache, reader (user rows with the
    breaker), journal/quarantine/identities/dedupe (or a whole tracker), impressions: the Track and Rank
    side effects; rollout_registry: where a canary records its decisions; metrics_sink: what is
    reported. ``clock`` (Unix seconds) is the service's and Track's "now"; when given, the default
    cache and breaker run on it too, so one fake clock drives request hours, TTLs and cool-downs.
    """
    # configuration errors (a malformed experiments file, bad canary steps) stop start-up, with why,
    # before any thread or file is opened
    experiment = load_experiment(settings.experiments_file)
    policy = CanaryPolicy.from_settings(settings)
    # `is None`, never `or`: an empty fake (a MemoryCache, a store) can be falsy
    features = load_features(settings) if features is None else features
    sink: MetricsSink = PrometheusMetrics() if metrics_sink is None else metrics_sink
    if online is None:
        store = get_store(settings)
        # Views are resolved from the registry once, here, and never per request.
        online = OnlineFeatures.from_registry(
            store,
            VIEWS,
            request_store_config(settings),
            read_wait_s=settings.online_sqlite_wait_ms / 1000,
            write_wait_s=settings.online_sqlite_write_wait_ms / 1000,
        )
    tombstones = Tombstones(settings.events_dir)
    if tracker is None:
        dedupe = make_dedupe(settings) if dedupe is None else dedupe  # retries of stored events, by event_id
        if journal is None:
            events = EventLog(settings.events_dir)
            # what a recovery moves into the log is marked stored: its clients are about to retry it
            journal = Journal(
                journal_dir(settings.wal_dir, worker),
                events,
                max_age_s=settings.journal_roll_s,
                append_timeout_s=settings.journal_append_timeout_ms / 1000,
                lock_wait_s=settings.journal_lock_wait_s,
                on_recovered=dedupe.commit,
                on_flushed=sink.record_logged,
                on_write=sink.record_journal_write,
                slow_write_s=settings.journal_slow_write_ms / 1000,
            )
            sink.watch_ingest(journal.oldest_unlogged)
            # journals of dead workers and pods: nobody else would ever move their events, nor push the
            # consent withdrawals they held (this process takes those over)
            held = journal.held_path
            swept = sweep_orphans(
                settings.journal_sweep_dir or settings.wal_dir,
                events,
                dedupe.commit,
                on_held=lambda orphan: adopt_held(orphan, held),
            )
            # a dead process acknowledged these; counting them here keeps the durability SLI whole
            sink.record_logged(journal.recovered + swept)
        quarantine = Quarantine(settings.quarantine_dir) if quarantine is None else quarantine
        if identities is None:
            identities = _identity_writer(settings)
        tracker = Tracker(
            journal,
            online,
            quarantine,
            identities,
            TrackPolicy.from_settings(settings),
            clock=clock or time.time,
            dedupe=dedupe,
            on_duplicates=sink.record_track_duplicates,
            on_acknowledged=sink.record_acknowledged,
            on_quarantined=sink.record_quarantined,
            tiers=Tiers.load(settings.tiers_file),
            on_sampled_out=sink.record_sampled_out,
            on_degraded=sink.record_track_degraded,
            term_key=settings.secret_hmac_key(),
            **_track_breakers(settings, clock),
            erased=tombstones.current,
        )
    hooks = hooks or Hooks(
        on_cache=sink.record_cache,
        on_candidates=sink.record_candidates,
        on_degraded=sink.record_degraded,
        on_arm=sink.record_arm,
        on_cpu=sink.record_cpu,
    )
    if impressions is None and settings.impressions_enabled:
        impressions = ImpressionLog.to_directory(
            settings.impressions_dir,
            maxsize=settings.impressions_queue,
            batch=settings.impressions_batch,
            flush_s=settings.impressions_flush_s,
            on_drop=sink.record_impression_drop,
            on_written=sink.record_impressions_written,
        )
    facts: FactsLoader | None = None
    if models is None:
        models = ModelHolder(settings, aliases=experiment.aliases if experiment else (CHAMPION,))
        facts = registry_facts  # the registry the models came from; fakes have no registry to ask
    if rollout_registry is None:
        rollout_registry = MlflowRolloutRegistry(settings)
    rollout = Rollout(
        policy,
        rollout_registry,
        settings.canary_enabled,
        load=models.load,
        refuse=models.refuse,
        on_decision=sink.record_canary,
        registry_timeout_s=settings.mlflow_timeout_s,
    )
    if reader is None:
        reader = UserFeatureReader(
            online,
            cooldown_s=settings.online_breaker_cooldown_s,
            clock=clock or time.monotonic,
            failures_to_open=settings.online_breaker_failures,
        )
    cache = make_cache(settings, clock) if cache is None else cache
    if isinstance(cache, MemoryCache):
        sink.watch_cache(cache.__len__)
    publishes = (
        PublishLog(settings.metadata_url, settings.database_connect_timeout_s) if publishes is None else publishes
    )
    service = RankingService(
        settings,
        reader,
        cache,
        tracker,
        features,
        hooks,
        clock=clock or time.time,
        impressions=impressions,
        observer=rollout,
    )
    server = Server(
        service,
        models,
        online,
        publishes,
        rollout,
        experiment,
        items=load_items if items is None else items,
        metrics=sink,
        facts=facts,
        tombstones=tombstones,
    )
    if load:
        server.refresh()
    if start:
        server.start()
    return server
