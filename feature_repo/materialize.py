"""Build features from the event log, gate them, and publish them to the online store.

A batch that fails validation is quarantined with its report and nothing is published: the
offline files and the online store keep the last good values.

By default only what changed is rebuilt (``buildstate`` decides, ``incremental`` does it): after
an append, the touched users' and items' rows are recomputed, merged into the feature files and
written online (``publish_incremental``); ``full=True`` (``--full``) rebuilds everything from the
log (``publish_full``). ``publish_online`` writes the online store; ``publish_record`` keeps what a
publish leaves behind.
"""

from __future__ import annotations

import os

from feature_repo.build import Catalog, FeatureBatches
from feature_repo.buildstate import BuildState, Plan, plan
from feature_repo.declared import Declared
from feature_repo.gate import FeatureBatchRejected, gate
from feature_repo.incremental import TooManyTouched
from feature_repo.publish_full import build_from_log, publish_batches, publish_full
from feature_repo.publish_incremental import publish_incremental
from feature_repo.publish_online import online_intact
from feature_repo.publish_record import PublishReport, Step, latest_version, snapshot_hash
from feature_repo.store import apply, definitions, get_store, registry_drift
from setlist import liveness
from setlist.catalog import load_items
from setlist.eventlog import EventLog
from setlist.publish import PUBLISH_LOCK, abandon_publishing, cut_short, in_progress
from setlist.settings import Settings

__all__ = ["Declared", "FeatureBatchRejected", "PublishReport", "build_from_log", "gate", "publish"]


def publish(
    settings: Settings,
    batches: FeatureBatches | None = None,
    snapshot: str | None = None,
    *,
    full: bool = False,
    step: Step | None = None,
) -> PublishReport:
    """Publish features built from the log (incrementally when possible), or the given ``batches``."""
    turn = liveness.exclusive(settings.features_dir / PUBLISH_LOCK, {"pid": os.getpid()})
    if turn is None:
        running = in_progress(settings.features_dir) or "another publish is building features"
        raise FeatureBatchRejected(f"{running}: one publish at a time, so wait for it to end and run this again")
    try:
        return _publish(settings, batches, snapshot, full=full, step=step)
    except BaseException:
        abandon_publishing(settings.features_dir)  # not running any more; a mark it left stays, for what it says
        raise
    finally:
        turn.release(remove=False)


def _publish(
    settings: Settings,
    batches: FeatureBatches | None,
    snapshot: str | None,
    *,
    full: bool,
    step: Step | None,
) -> PublishReport:
    step = step or (lambda _msg: None)
    if batches is not None:
        # built elsewhere: the files will no longer match any recorded log state
        BuildState.forget(settings.features_dir)
        report = publish_batches(settings, batches, snapshot or "", step)
        report.reason = "a batch built by the caller"
        return report
    log = EventLog(settings.events_dir)
    if not log.files():
        raise FeatureBatchRejected(f"the event log at {settings.events_dir} is empty: generate or import events first")
    items = load_items(settings.catalog_path)
    d = Declared.load(settings)
    if settings.on_spark:
        from feature_repo.publish_spark import publish_spark

        return publish_spark(settings, log, items, step, d)
    step("comparing the event log and the feature declarations with the last build")
    p = plan(
        log,
        settings.features_dir,
        items,
        Catalog.of(items).genres,
        full=full,
        project=settings.feast_project,
        profile=settings.profile,
        latest_version=latest_version(settings),
        features=d.fingerprint(),
    )
    if p.mode != "full" and cut_short(settings.features_dir):
        p = Plan("full", "the last publish was cut short, so its files may mix two builds", p.files, p.prints)
    if p.mode != "full" and not online_intact(settings):
        p = Plan("full", "the online store has lost rows the last build wrote (was it emptied?)", p.files, p.prints)
    if p.mode == "none":
        reason = p.reason
        store = get_store(settings)
        drift = registry_drift(store, definitions(settings))
        if drift:
            step("applying the Feast definitions, which changed with nothing to rebuild")
            apply(store, settings)
            reason += f"; applied the Feast definitions ({'; '.join(drift)})"
        return PublishReport(
            mode="none",
            reason=reason,
            version=p.state.publish_version if p.state else None,
            snapshot=snapshot_hash(log, p.files, log.erased()),
        )
    if p.mode == "incremental":
        try:
            return publish_incremental(settings, log, items, p, step, d)
        except TooManyTouched as exc:
            p = Plan("full", f"{exc}, so a full build is as cheap", p.files, p.prints)
    return publish_full(settings, log, items, p, step, d)
