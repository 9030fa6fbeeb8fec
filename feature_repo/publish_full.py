"""The full build: every feature from the whole event log, gated, written to the feature files and
materialized online; also the path for a batch built by the caller."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from feature_repo import declarations
from feature_repo.build import FeatureBatches, build_prepared
from feature_repo.build_sharded import build_in_shards, shards_for
from feature_repo.buildstate import Plan
from feature_repo.data_sources import SESSION_FILE
from feature_repo.declared import Declared
from feature_repo.gate import FeatureBatchRejected, batch_files, feature_table, gate, reject
from feature_repo.incremental import build_columns, read_events, read_events_table
from feature_repo.publish_online import materialize_views
from feature_repo.publish_record import (
    PublishReport,
    Step,
    begin_publish,
    end_publish,
    record_version,
    save_state,
    snapshot_hash,
)
from setlist.catalog import load_items
from setlist.eventlog import EventLog, write_atomic
from setlist.featureset import FeatureSet
from setlist.memory import require_room
from setlist.settings import Settings


def build_from_log(settings: Settings) -> tuple[FeatureBatches, str]:
    log = EventLog(settings.events_dir)
    files, erased = log.files(), log.erased()
    d = Declared.load(settings)
    events = read_events(files, erased, columns=build_columns(d.features), prepared=True)
    if events.empty:
        raise FeatureBatchRejected(f"the event log at {settings.events_dir} is empty: generate or import events first")
    return (
        build_prepared(
            events,
            load_items(settings.catalog_path),
            d.features,
            d.user_tables,
            d.item_tables,
            consent_default=d.consent_default,
            term_key=d.term_key,
        ),
        snapshot_hash(log, files, erased),
    )


@dataclass
class _Written:
    """What publishing needs of a batch once its files are written, so the frames can go."""

    rows: dict[str, int]
    consent: pd.DataFrame
    start: pd.Timestamp
    as_of: pd.Timestamp
    genres: list[str]
    items: int


#: where the full build writes the unchecked session file while the gate runs (see ``_gate_and_write``)
ASIDE = ".unchecked"


@dataclass(frozen=True)
class Aside:
    """A view's file written beside the feature files before the gate, its frame never held whole."""

    name: str
    path: Path
    rows: int
    start: pd.Timestamp | None


def _gate_and_write(
    settings: Settings,
    batches: FeatureBatches,
    step: Step,
    features: FeatureSet | None = None,
    *,
    aside: Aside | None = None,
) -> _Written:
    """Validate a whole batch and write its files (the full path).

    ``aside``: the gate does not check the session view, its biggest (a row per event, with lists
    of items: 1.2 GB of 2M events as a frame), so the full build writes it beside the feature files
    as it goes, and the checks run without it. It takes its place only once the gate passes;
    otherwise it goes to the quarantine with the rest of the batch."""
    features = features or declarations.load(settings)
    files = [(f, df) for f, df in batch_files(batches) if aside is None or f != aside.name]
    rows = {f: len(df) for f, df in files}
    starts = [frame["event_timestamp"].min() for _, frame in files if len(frame)]
    moved: dict[str, Path] = {}
    if aside is not None:
        rows[aside.name], moved[aside.name] = aside.rows, aside.path
        starts += [aside.start] if aside.start is not None else []
    start = min(starts) if starts else pd.Timestamp(batches.as_of)
    step("validating the feature batch")
    failures = gate(batches, features=features)
    if failures:
        raise reject(settings, batches, failures, moved)
    begin_publish(settings, "full")
    for fname, frame in batch_files(batches):
        if fname in moved:
            os.replace(moved[fname], settings.features_dir / fname)
        else:
            write_atomic(feature_table(frame, features), settings.features_dir / fname)
    return _Written(
        rows=rows,
        consent=batches.consent,
        start=start,
        as_of=batches.as_of,
        genres=batches.genres,
        items=batches.item_stats["item_id"].nunique(),
    )


def _materialize_all(settings: Settings, written: _Written, snapshot: str, step: Step) -> PublishReport:
    """Materialize every view from the written files and record a version (the full path)."""
    step("materializing to the online store")
    materialize_views(settings, written.start, written.as_of, written.consent, say=step)
    return PublishReport(
        rows=written.rows, snapshot=snapshot, version=record_version(settings, snapshot, sum(written.rows.values()))
    )


def publish_batches(settings: Settings, batches: FeatureBatches, snapshot: str, step: Step) -> PublishReport:
    """Gate, write and materialize a batch built by the caller."""
    report = _materialize_all(settings, _gate_and_write(settings, batches, step), snapshot, step)
    end_publish(settings)
    return report


def check_build_memory(events: int, settings: Settings) -> None:
    """Stop before a build the memory available cannot hold (nothing is read yet; the build's
    batches, a row per event and view, are what the estimate is for)."""
    require_room(
        events * settings.build_bytes_per_event,
        f"building features from {events:,} events",
        "SETLIST_BUILD_BYTES_PER_EVENT",
        "The online store keeps the features it has. Build on Spark (SETLIST_PROFILE=cluster, docs/cluster.md), "
        "keep less history (SETLIST_RETENTION_EVENTS_DAYS, then make retention), or use a machine with more memory",
    )


def publish_full(
    settings: Settings, log: EventLog, items: pd.DataFrame, p: Plan, step: Step, d: Declared
) -> PublishReport:
    erased = log.erased()
    check_build_memory(log.count(p.files), settings)  # before reading, which is itself a large part of the peak
    step(f"reading {len(p.files):,} event-log files")
    # handed over whole: the builder frees it
    held = [read_events_table(p.files, erased, columns=build_columns(d.features), prepared=True)]
    events = held[0].num_rows
    if not events:
        raise FeatureBatchRejected(f"the event log at {settings.events_dir} is empty: generate or import events first")
    shards = shards_for(events, settings.build_shard_events)
    step(f"building features from {events:,} events" + (f" in {shards} shards of users" if shards > 1 else ""))
    built = build_in_shards(
        held,
        items,
        d.features,
        d.user_tables,
        d.item_tables,
        consent_default=d.consent_default,
        term_key=d.term_key,
        shard_events=settings.build_shard_events,
        session_file=settings.features_dir / ASIDE / SESSION_FILE,
        step=step,
    )
    aside = Aside(SESSION_FILE, built.session_file, built.session_rows, built.session_start)
    written = _gate_and_write(settings, built.batches, step, d.features, aside=aside)
    del built  # Feast's materialize reads the files back, and at scale needs the memory
    report = _materialize_all(settings, written, snapshot_hash(log, p.files, erased), step)
    save_state(
        settings,
        p,
        erased,
        written.genres,
        written.as_of,
        items,
        len(written.consent),
        written.items,
        report.version,
        d.fingerprint(),
    )
    end_publish(settings)
    report.mode, report.reason = "full", p.reason
    return report
