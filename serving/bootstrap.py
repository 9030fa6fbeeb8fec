"""Wire once: build the feature reader, models, item table, cache, journal and service from settings.

Nothing is built at import time; tests call :func:`build` with their own settings (and may pass
fakes for any part).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from feature_repo.online import OnlineFeatures
from feature_repo.store import get_store
from setlist.eventlog import EventLog, Quarantine
from setlist.publish import PublishLog
from setlist.pseudonym import IdentityMap
from setlist.settings import Settings

from . import metrics
from .cache import Cache, MemoryCache, NoCache, RedisCache
from .item_table import load_items
from .journal import Journal
from .models import ModelBundle, ModelHolder
from .service import Hooks, Live, RankingService
from .tracking import Tracker
from .types import RankQuery, RankResult, TrackEvent, TrackResult
from .user_features import UserFeatureReader

log = logging.getLogger("setlist.serving")
VIEWS = ("user_profile", "item_stats", "session", "user_consent")


def make_cache(settings: Settings) -> Cache:
    if not settings.cache_enabled:
        return NoCache()
    if settings.cache_backend == "redis":
        return RedisCache(settings.redis_url, settings.cache_ttl_s, settings.online_timeout_ms / 1000)
    return MemoryCache(settings.cache_size, settings.cache_ttl_s)


@dataclass
class Server:
    """The service plus the background work that keeps it current. Implements ``Ranking``."""

    service: RankingService
    models: ModelHolder
    online: OnlineFeatures
    publishes: PublishLog
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def rank(self, query: RankQuery) -> RankResult:
        return self.service.rank(query)

    def track(self, events: list[TrackEvent]) -> TrackResult:
        return self.service.track(events)

    def ready(self) -> bool:
        return self.service.ready()

    def refresh(self) -> bool:
        """Pick up a new champion or a new feature publish. Returns True if anything changed."""
        changed = self.models.refresh()
        bundle = self.models.current
        if bundle is None:
            return changed
        try:
            latest = self.publishes.latest()
        except Exception as exc:  # noqa: BLE001 - the metadata store is down: keep what we have
            log.warning("cannot read the feature publish log: %s", type(exc).__name__)
            return changed
        version = latest.version if latest else 0
        live = self.service.live
        if changed or live is None or live.items.publish_version != version or live.bundle is not bundle:
            self._go_live(bundle, version)
            return True
        return changed

    def _go_live(self, bundle: ModelBundle, publish_version: int) -> None:
        items = load_items(self.online, bundle.index.item_ids, publish_version)
        self.service.live = Live(bundle, items)  # one assignment: requests see old or new, never a mix
        self.service.cache.clear()
        metrics.set_model_version(self.service.settings.candidates_model, bundle.candidates_version)
        metrics.set_model_version(self.service.settings.ranker_model, bundle.ranker_version)
        latest = self.publishes.latest()
        if latest is not None:
            metrics.mark_feature_publish(latest.published_at.timestamp())
        log.info("live: models %s, features v%d (%d items, %d without online stats)", bundle.version,
                 publish_version, len(bundle.index.item_ids), items.missing)

    def start(self) -> None:
        def loop() -> None:
            while not self.stop_event.wait(self.service.settings.reload_interval_s):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                    log.exception("refresh failed; still serving the previous models and features")

        self.thread = threading.Thread(target=loop, name="setlist-refresh", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.service.close()
        self.publishes.dispose()


def build(settings: Settings, worker: int = 0, hooks: Hooks | None = None, load: bool = True,
          start: bool = False) -> Server:
    store = get_store(settings)
    # Views are resolved from the registry once, here, and never per request.
    online = OnlineFeatures.from_registry(store, VIEWS)
    journal = Journal(settings.wal_dir / f"worker-{worker}", EventLog(settings.events_dir),
                      max_age_s=settings.journal_roll_s)
    tracker = Tracker(journal, online, Quarantine(settings.quarantine_dir), IdentityMap(settings.metadata_url),
                      settings.max_future_skew_s)
    hooks = hooks or Hooks(on_cache=metrics.record_cache, on_candidates=metrics.record_candidates,
                           on_degraded=metrics.record_degraded)
    service = RankingService(settings, UserFeatureReader(online), make_cache(settings), tracker, hooks)
    server = Server(service, ModelHolder(settings), online, PublishLog(settings.metadata_url))
    if load:
        server.refresh()
    if start:
        server.start()
    return server
