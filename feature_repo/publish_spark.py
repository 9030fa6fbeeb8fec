"""The cluster profile's publish: features built on Spark from the event log, gated, swapped into
place, and materialized by Feast's Spark engine into Redis Cluster.

Always a full build: the incremental path (``publish_incremental``) is the single machine's way to
stay cheap, and a cluster pays for its size instead. A batch that fails the gate is quarantined,
and the last good files and online values keep serving, as on every profile.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd

from feature_repo import spark_build
from feature_repo.build import FeatureBatches, fresh_from_consent
from feature_repo.buildstate import BuildState
from feature_repo.declared import Declared
from feature_repo.gate import FeatureBatchRejected, gate, reject
from feature_repo.incremental import build_columns
from feature_repo.publish_online import materialize_views
from feature_repo.publish_record import PublishReport, Step, begin_publish, end_publish, record_version, snapshot_hash
from setlist.eventlog import EventLog
from setlist.settings import Settings

STAGING = ".spark-staging"
DAY = pd.Timedelta(days=1)


def _is_uri(location: str) -> bool:
    return "://" in location


def _read_back(
    location: str, genres: list[str], as_of: pd.Timestamp, items_newest: pd.Timestamp | None = None
) -> FeatureBatches:
    """The staged files as the gate's frames. The gate is the one step that still runs on the
    driver: it holds the feature rows (not the events) in memory (docs/scale.md). ``items_newest``:
    the newest event item stats count, which judges their freshness (``fresh_from_consent``)."""

    def read(name: str) -> pd.DataFrame:
        frame = pd.read_parquet(f"{location.rstrip('/')}/{name}")
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).dt.as_unit("ns")
        return frame

    consent = read("consent.parquet")
    return FeatureBatches(
        user_profile=read("user_profile.parquet"),
        item_stats=read("item_stats.parquet"),
        session=read("session.parquet"),
        consent=consent,
        genres=genres,
        as_of=as_of,
        fresh_as_of=fresh_from_consent(consent, items_newest),
    )


def _swap_in(staged: Path, final: Path, names: list[str]) -> None:
    """Staged directories replace the served files: a rename each, the old ones deleted after."""
    old = []
    for name in names:
        target = final / name
        if target.exists():
            aside = final / f".old-{name}"
            if aside.is_dir():
                shutil.rmtree(aside)
            elif aside.exists():
                aside.unlink()
            target.rename(aside)
            old.append(aside)
        (staged / name).rename(target)
    for p in old:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    shutil.rmtree(staged, ignore_errors=True)


def publish_spark(settings: Settings, log: EventLog, items: pd.DataFrame, step: Step, d: Declared) -> PublishReport:
    from pyspark.sql import functions as F

    from setlist.spark import session

    t0 = time.monotonic()
    spark = session(settings, "setlist-features")
    files, erased = log.files(), log.erased()
    paths = [settings.spark_events_path] if settings.spark_events_path else [str(f) for f in files]
    if not paths:
        raise FeatureBatchRejected(f"the event log at {settings.events_dir} is empty: generate or import events first")
    what = paths[0] if len(paths) == 1 else f"{len(paths):,} files"
    step(f"reading the event log on Spark ({settings.spark_master}): {what}")
    events = spark_build.read_events(spark, paths, frozenset(erased.digests), build_columns(d.features))
    bounds = events.agg(F.max("timestamp").alias("last"), F.count(F.lit(1)).alias("n")).collect()[0]
    if not bounds["n"]:
        raise FeatureBatchRejected("the event log holds no events (all erased?): nothing to build")
    as_of = pd.Timestamp(bounds["last"]).tz_localize("UTC").floor("D") + DAY
    buckets = max(1, settings.spark_shuffle_partitions)
    step(f"building features from {bounds['n']:,} events on Spark, in {buckets} buckets of entities")
    batches = spark_build.build(
        events,
        items,
        d.features,
        d.user_tables,
        d.item_tables,
        consent_default=d.consent_default,
        buckets=buckets,
        term_key=d.term_key,
    )
    location = settings.feature_files_location
    staged = f"{location.rstrip('/')}/{STAGING}"
    rows = spark_build.write(batches, staged)
    step(f"wrote {sum(rows.values()):,} feature rows in {time.monotonic() - t0:.0f}s; validating them")
    newest = batches.counted.agg(F.max("timestamp").alias("last")).collect()[0]["last"]
    items_newest = pd.Timestamp(newest).tz_localize("UTC") if newest is not None else None
    frames = _read_back(staged, batches.genres, as_of, items_newest)
    failures = gate(frames, features=d.features)
    if failures:
        if not _is_uri(location):
            shutil.rmtree(staged, ignore_errors=True)
        raise reject(settings, frames, failures)
    begin_publish(settings, "spark")
    if _is_uri(location):
        # object storage has no rename: the gated files are copied over the served ones
        for name in rows:
            spark.read.parquet(f"{staged}/{name}").write.mode("overwrite").parquet(f"{location.rstrip('/')}/{name}")
    else:
        _swap_in(Path(staged), Path(location), list(rows))
    start = min(frame["event_timestamp"].min() for frame in (frames.user_profile, frames.item_stats, frames.session))
    consent = frames.consent
    del frames
    # the served files no longer match a recorded log state: a later local build starts over
    BuildState.forget(settings.features_dir)
    step("materializing to the online store with Feast's Spark engine")
    materialize_views(settings, start, as_of, consent, say=step)
    snapshot = snapshot_hash(log, files, erased)
    version = record_version(settings, snapshot, sum(rows.values()))
    end_publish(settings)
    report = PublishReport(rows=rows, snapshot=snapshot, version=version)
    report.mode, report.reason = "full", "the cluster profile builds every feature on Spark"
    return report
