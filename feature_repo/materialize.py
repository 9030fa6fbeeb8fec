"""Build features from the event log, gate them, and publish them to the online store.

A batch that fails validation is quarantined with its report and nothing is published: the
offline files and the online store keep the last good values.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa

from setlist.catalog import load_items
from setlist.eventlog import EventLog, write_atomic
from setlist.publish import PublishLog
from setlist.settings import Settings

from .build import FeatureBatches, build
from .data_sources import CONSENT_FILE, ITEM_STATS_FILE, SESSION_FILE, USER_PROFILE_FILE
from .store import apply, get_store


class FeatureBatchRejected(RuntimeError):
    """A feature batch failed its gate; the online store was left untouched."""


@dataclass
class PublishReport:
    rows: dict[str, int] = field(default_factory=dict)
    version: int | None = None
    snapshot: str = ""
    quarantined_to: Path | None = None
    failures: list[str] = field(default_factory=list)


def build_from_log(settings: Settings) -> tuple[FeatureBatches, str]:
    log = EventLog(settings.events_dir)
    events = log.read()
    if events.empty:
        raise FeatureBatchRejected(f"the event log at {settings.events_dir} is empty: generate or import events first")
    return build(events, load_items(settings.catalog_path)), log.snapshot_hash()


def gate(batches: FeatureBatches) -> list[str]:
    from validation.api import validate_feature_batch  # the boundary guard

    failures: list[str] = []
    for name, frame in (("user_profile", batches.user_profile), ("item_stats", batches.item_stats)):
        result = validate_feature_batch(name, frame, as_of=batches.as_of.to_pydatetime())
        failures += [f"{name}: {f}" for f in result.failures]
    return failures


def _quarantine(settings: Settings, batches: FeatureBatches, failures: list[str]) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    where = settings.quarantine_dir / "features" / stamp
    for fname, frame in _files(batches):
        write_atomic(pa.Table.from_pandas(frame, preserve_index=False), where / fname)
    (where / "report.json").write_text(json.dumps({"failures": failures}, indent=2))
    return where


def _files(batches: FeatureBatches) -> list[tuple[str, pd.DataFrame]]:
    return [(USER_PROFILE_FILE, batches.user_profile), (ITEM_STATS_FILE, batches.item_stats),
            (SESSION_FILE, batches.session), (CONSENT_FILE, batches.consent)]


def _forget_withdrawn(store, defs, batches: FeatureBatches) -> None:  # noqa: ANN001
    """Users who withdrew personalization consent lose their personal rows online too;
    materialization alone would leave their last profile and session in place."""
    from .online import OnlineFeatures

    withdrawn = batches.consent.loc[~batches.consent["consent_personalization"], "user_id"]
    if withdrawn.empty:
        return
    online = OnlineFeatures(store, [defs.views.user_profile, defs.views.session])
    for uid in withdrawn:
        for view in ("user_profile", "session"):
            online.delete(view, uid)


def publish(settings: Settings, batches: FeatureBatches | None = None, snapshot: str | None = None) -> PublishReport:
    if batches is None:
        batches, snapshot = build_from_log(settings)
    report = PublishReport(rows={f: len(df) for f, df in _files(batches)}, snapshot=snapshot or "")
    report.failures = gate(batches)
    if report.failures:
        report.quarantined_to = _quarantine(settings, batches, report.failures)
        raise FeatureBatchRejected(
            "feature batch failed validation and was quarantined at "
            f"{report.quarantined_to}; the last good features keep serving:\n  " + "\n  ".join(report.failures))
    for fname, frame in _files(batches):
        write_atomic(pa.Table.from_pandas(frame, preserve_index=False), settings.features_dir / fname)
    store = get_store(settings)
    defs = apply(store, settings)
    start = min(frame["event_timestamp"].min() for _, frame in _files(batches))
    end = batches.as_of + pd.Timedelta(seconds=1)
    store.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime(),
                      feature_views=[defs.views.user_profile.name, defs.views.item_stats.name,
                                     defs.views.session.name, defs.views.consent.name])
    _forget_withdrawn(store, defs, batches)
    log = PublishLog(settings.metadata_url)
    try:
        report.version = log.record(report.snapshot, sum(report.rows.values())).version
    finally:
        log.dispose()
    return report
