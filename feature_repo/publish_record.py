"""What a publish leaves behind: its report, the hash of the event-log files it read, its version in
the publish log, and the build state the next publish plans from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from feature_repo.buildstate import BuildState, Plan, erased_hash
from setlist import jobmetrics
from setlist.cachekeys import bump_shared_generation
from setlist.eventlog import Erased, EventLog
from setlist.lineage import record_gate
from setlist.publish import PublishLog, mark_publishing, unmark_publishing
from setlist.settings import Settings

Step = Callable[[str], None]


@dataclass
class PublishReport:
    rows: dict[str, int] = field(default_factory=dict)
    version: int | None = None
    snapshot: str = ""
    mode: str = "full"  # "full", "incremental" or "none" (nothing changed, nothing published)
    reason: str = ""
    changed: dict[str, int] = field(default_factory=dict)  # rows recomputed per file (incremental)
    touched: tuple[int, int] = (0, 0)  # users, items recomputed (incremental)


def snapshot_hash(log: EventLog, files: list[Path], erased: Erased) -> str:
    """``EventLog.snapshot_hash`` of exactly the files this build read."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(log.root)}:{f.stat().st_size}\n".encode())
    h.update(erased.fingerprint().encode())
    return h.hexdigest()[:16]


def record_version(settings: Settings, snapshot: str, rows: int) -> int:
    """Record a publish (its batch passed the features gate, or it would not be published)."""
    log = PublishLog(settings.metadata_url, settings.database_connect_timeout_s)
    try:
        previous = log.latest()
        publish = log.record(snapshot, rows)
    finally:
        log.dispose()
    version = publish.version
    bump_shared_generation(settings)  # servers look a cached ranking up before the rows that just changed
    # feature lag: how long the oldest event written since the previous publish waited for this one
    since = previous.published_at.timestamp() if previous is not None else 0.0
    oldest = EventLog(settings.events_dir).oldest_write_after(since)
    lag = max(0.0, publish.published_at.timestamp() - oldest) if oldest is not None else 0.0
    jobmetrics.current().set("setlist_feature_lag_seconds", lag)
    record_gate(settings.lineage_dir, "features", True, f"snapshot:{snapshot}", publish=version)
    return version


def begin_publish(settings: Settings, mode: str) -> None:
    """Before a publish's first write to the feature files (``setlist.publish.mark_publishing``)."""
    mark_publishing(settings.features_dir, mode)


def end_publish(settings: Settings) -> None:
    """Once the publish is recorded and its state saved: the feature files are one publish's whole."""
    unmark_publishing(settings.features_dir)


def latest_version(settings: Settings) -> int | None:
    log = PublishLog(settings.metadata_url, settings.database_connect_timeout_s)
    try:
        latest = log.latest()
    finally:
        log.dispose()
    return None if latest is None else latest.version


def save_state(
    settings: Settings,
    p: Plan,
    erased: Erased,
    genres: list[str],
    as_of: pd.Timestamp,
    items: pd.DataFrame,
    users: int,
    n_items: int,
    version: int | None,
    features: str,
) -> None:
    BuildState(
        files=p.prints,
        erased=erased_hash(erased),
        genres=genres,
        as_of=as_of.isoformat(),
        users=users,
        items=n_items,
        project=settings.feast_project,
        profile=settings.profile,
        publish_version=version,
        features=features,
    ).save(settings.features_dir, items)
