"""Build features from the event log, gate them, and publish them to the online store.

A batch that fails validation is quarantined with its report and nothing is published: the
offline files and the online store keep the last good values.

By default only what changed is rebuilt (``buildstate`` decides, ``incremental`` does it): after
an append, the touched users' and items' rows are recomputed, merged into the feature files and
written online; ``full=True`` (``--full``) rebuilds everything from the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo import declarations
from feature_repo.build import Catalog, FeatureBatches, build_prepared
from feature_repo.buildstate import BuildState, Plan, erased_hash, plan
from feature_repo.data_sources import CONSENT_FILE, ITEM_STATS_FILE, SESSION_FILE, USER_PROFILE_FILE
from feature_repo.gate import FeatureBatchRejected, batch_files, gate, reject
from feature_repo.incremental import (
    LAYOUT,
    TooManyTouched,
    compute_delta,
    latest_rows,
    merge_file,
    newest_kept,
    read_events,
)
from feature_repo.store import apply, get_store
from setlist.catalog import load_items
from setlist.eventlog import EventLog, write_atomic
from setlist.featureset import FeatureSet
from setlist.pseudonym import pseudonymize
from setlist.publish import PublishLog
from setlist.settings import Settings

__all__ = ["FeatureBatchRejected", "PublishReport", "build_from_log", "gate", "publish"]

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


def _snapshot(log: EventLog, files: list[Path], erased: set[str]) -> str:
    """``EventLog.snapshot_hash`` of exactly the files this build read."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(log.root)}:{f.stat().st_size}\n".encode())
    for u in sorted(erased):
        h.update(u.encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Declared:
    """The feature declarations and the registered tables they read, loaded once per publish."""

    features: FeatureSet
    user_tables: dict[str, pd.DataFrame]
    item_tables: dict[str, pd.DataFrame]

    @classmethod
    def load(cls, settings: Settings) -> Declared:
        from feature_repo.engine import load_tables

        fs = declarations.load(settings)
        key = settings.secret_hmac_key()
        return cls(fs, load_tables(fs, "user", lambda u: pseudonymize(str(u), key)), load_tables(fs, "item"))

    def fingerprint(self) -> str:
        """Changes when a declaration or a registered table's content changes: a full rebuild."""
        h = hashlib.sha256(self.features.fingerprint().encode())
        for name, frame in sorted({**self.user_tables, **self.item_tables}.items()):
            h.update(name.encode())
            h.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]


def build_from_log(settings: Settings) -> tuple[FeatureBatches, str]:
    log = EventLog(settings.events_dir)
    files, erased = log.files(), log.erased_users()
    events = read_events(files, erased, prepared=True)
    if events.empty:
        raise FeatureBatchRejected(f"the event log at {settings.events_dir} is empty: generate or import events first")
    d = Declared.load(settings)
    return (
        build_prepared(events, load_items(settings.catalog_path), d.features, d.user_tables, d.item_tables),
        _snapshot(log, files, erased),
    )


def _forget_withdrawn(store, defs, consent: pd.DataFrame) -> None:
    """Users who withdrew personalization consent lose their personal rows online too;
    materialization alone would leave their last profile and session in place."""
    from feature_repo.online import OnlineFeatures

    withdrawn = consent.loc[~consent["consent_personalization"], "user_id"]
    if withdrawn.empty:
        return
    online = OnlineFeatures(store, [defs.views.user_profile, defs.views.session])
    for uid in withdrawn:
        for view in ("user_profile", "session"):
            online.delete(view, uid)


def _record(settings: Settings, snapshot: str, rows: int) -> int:
    log = PublishLog(settings.metadata_url)
    try:
        return log.record(snapshot, rows).version
    finally:
        log.dispose()


def _online_intact(settings: Settings) -> bool:
    """A cheap check that the online store still holds what the last build wrote: the first
    user's consent row (every user has one, and only erasure, which forces a full build, removes
    it). An emptied store (a Redis restarted without its data, a deleted SQLite file) fails it."""
    from feature_repo.online import OnlineFeatures
    from feature_repo.store import definitions

    consent = pq.read_table(settings.features_dir / CONSENT_FILE, columns=["user_id"]).slice(0, 1)
    if consent.num_rows == 0:
        return True
    defs = definitions(settings)
    try:
        online = OnlineFeatures(get_store(settings), [defs.views.consent])
        return online.read(defs.views.consent.name, [consent["user_id"][0].as_py()])[0][1] is not None
    except Exception:
        return False


def _latest_version(settings: Settings) -> int | None:
    log = PublishLog(settings.metadata_url)
    try:
        latest = log.latest()
    finally:
        log.dispose()
    return None if latest is None else latest.version


@dataclass
class _Written:
    """What publishing needs of a batch once its files are written, so the frames can go."""

    rows: dict[str, int]
    consent: pd.DataFrame
    start: pd.Timestamp
    as_of: pd.Timestamp
    genres: list[str]
    items: int


def _gate_and_write(
    settings: Settings, batches: FeatureBatches, step: Step, features: FeatureSet | None = None
) -> _Written:
    """Validate a whole batch and write its files (the full path)."""
    step("validating the feature batch")
    failures = gate(batches, features=features or declarations.load(settings))
    if failures:
        raise reject(settings, batches, failures)
    for fname, frame in batch_files(batches):
        write_atomic(pa.Table.from_pandas(frame, preserve_index=False), settings.features_dir / fname)
    return _Written(
        rows={f: len(df) for f, df in batch_files(batches)},
        consent=batches.consent,
        start=min(frame["event_timestamp"].min() for _, frame in batch_files(batches)),
        as_of=batches.as_of,
        genres=batches.genres,
        items=batches.item_stats["item_id"].nunique(),
    )


def _materialize_all(settings: Settings, written: _Written, snapshot: str, step: Step) -> PublishReport:
    """Materialize every view from the written files and record a version (the full path)."""
    step("materializing to the online store")
    store = get_store(settings)
    defs = apply(store, settings)
    # By default Feast reads every row of each file into pandas to keep each entity's newest
    # (~2 GB for the 2M-row session file at bench scale); DuckDB can pick the newest rows itself.
    # Same online values. (Set on this publishing store; repo_config in store.py could carry it.)
    store.config.materialization_config.pull_latest_features = True
    store.config.materialization_config.online_write_batch_size = 20_000
    end = written.as_of + pd.Timedelta(seconds=1)
    store.materialize(
        start_date=written.start.to_pydatetime(),
        end_date=end.to_pydatetime(),
        feature_views=[
            defs.views.user_profile.name,
            defs.views.item_stats.name,
            defs.views.session.name,
            defs.views.consent.name,
        ],
    )
    _forget_withdrawn(store, defs, written.consent)
    return PublishReport(
        rows=written.rows, snapshot=snapshot, version=_record(settings, snapshot, sum(written.rows.values()))
    )


def _save_state(
    settings: Settings,
    p: Plan,
    erased: set[str],
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


def _full(settings: Settings, log: EventLog, items: pd.DataFrame, p: Plan, step: Step, d: Declared) -> PublishReport:
    erased = log.erased_users()
    step(f"reading {len(p.files):,} event-log files")
    events = read_events(p.files, erased, prepared=True)
    if events.empty:
        raise FeatureBatchRejected(f"the event log at {settings.events_dir} is empty: generate or import events first")
    step(f"building features from {len(events):,} events")
    batches = build_prepared(events, items, d.features, d.user_tables, d.item_tables)
    del events
    written = _gate_and_write(settings, batches, step, d.features)
    del batches  # Feast's materialize reads the files back, and at scale needs the memory
    report = _materialize_all(settings, written, _snapshot(log, p.files, erased), step)
    _save_state(
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
    report.mode, report.reason = "full", p.reason
    return report


def _incremental(
    settings: Settings, log: EventLog, items: pd.DataFrame, p: Plan, step: Step, d: Declared
) -> PublishReport:
    state = p.state
    assert state is not None
    erased, catalog = log.erased_users(), Catalog.of(items)
    step(f"reading {len(p.new_files):,} new event-log files and the touched entities' events")
    delta = compute_delta(
        p.files,
        p.new_files,
        p.changed_items,
        erased,
        catalog,
        pd.Timestamp(state.as_of),
        (state.users, state.items),
        d.features,
        d.user_tables,
        d.item_tables,
    )
    changed = delta.batches(catalog.genres)
    touched = {
        USER_PROFILE_FILE: delta.users,
        SESSION_FILE: delta.users,
        CONSENT_FILE: delta.users,
        ITEM_STATS_FILE: delta.items,
    }
    step("validating the recomputed rows")
    from validation.suites.features import DEFAULT_MAX_AGE  # the gate's library loads slowly: only now

    # Row checks run on the recomputed rows only (the others passed when they were published);
    # freshness is a property of the whole batch, so it is checked on what the merged files will hold.
    own = {v: getattr(changed, v)["event_timestamp"].max() for v in ("user_profile", "item_stats")}
    failures = gate(
        changed, {v: t.to_pydatetime() for v, t in own.items() if pd.notna(t)}, skip_empty=True, features=d.features
    )
    for view, fname in (("user_profile", USER_PROFILE_FILE), ("item_stats", ITEM_STATS_FILE)):
        kept = newest_kept(settings.features_dir / fname, fname, touched[fname])
        newest = max((t for t in (kept, own[view]) if t is not None and pd.notna(t)), default=None)
        if newest is None or newest < delta.as_of - DEFAULT_MAX_AGE:
            failures.append(
                f"{view}: the newest snapshot ({newest}) is older than {DEFAULT_MAX_AGE} before "
                f"the end of the log ({delta.as_of})"
            )
    if failures:
        raise reject(settings, changed, failures)
    step(f"merging the rows of {len(delta.users):,} users and {len(delta.items):,} items into the feature files")
    rows: dict[str, int] = {}
    n_items = 0
    for fname in LAYOUT:  # one file at a time: the session file is large at scale
        merged = merge_file(settings.features_dir / fname, delta.rows[fname], touched[fname], fname)
        rows[fname] = merged.num_rows
        n_items = len(pc.unique(merged["item_id"])) if fname == ITEM_STATS_FILE else n_items
        write_atomic(merged, settings.features_dir / fname)
        del merged
    step("writing the recomputed rows to the online store")
    store = get_store(settings)
    defs = apply(store, settings)
    for feature_view, frame, key in (
        (defs.views.user_profile, changed.user_profile, "user_id"),
        (defs.views.item_stats, changed.item_stats, "item_id"),
        (defs.views.session, changed.session, "user_id"),
        (defs.views.consent, changed.consent, "user_id"),
    ):
        latest = latest_rows(frame, key)
        if len(latest):
            store.write_to_online_store(feature_view.name, latest)
    _forget_withdrawn(store, defs, changed.consent)
    snapshot = _snapshot(log, p.files, erased)
    version = _record(settings, snapshot, sum(rows.values()))
    _save_state(
        settings, p, erased, catalog.genres, delta.as_of, items, rows[CONSENT_FILE], n_items, version, d.fingerprint()
    )
    return PublishReport(
        rows=rows,
        version=version,
        snapshot=snapshot,
        mode="incremental",
        reason=p.reason,
        changed={f: len(delta.rows[f]) for f in LAYOUT},
        touched=(len(delta.users), len(delta.items)),
    )


def publish(
    settings: Settings,
    batches: FeatureBatches | None = None,
    snapshot: str | None = None,
    *,
    full: bool = False,
    step: Step | None = None,
) -> PublishReport:
    """Publish features built from the log (incrementally when possible), or the given ``batches``."""
    step = step or (lambda _msg: None)
    if batches is not None:
        # built elsewhere: the files will no longer match any recorded log state
        BuildState.forget(settings.features_dir)
        report = _materialize_all(settings, _gate_and_write(settings, batches, step), snapshot or "", step)
        report.reason = "a batch built by the caller"
        return report
    log = EventLog(settings.events_dir)
    if not log.files():
        raise FeatureBatchRejected(f"the event log at {settings.events_dir} is empty: generate or import events first")
    items = load_items(settings.catalog_path)
    step("comparing the event log and the feature declarations with the last build")
    d = Declared.load(settings)
    p = plan(
        log,
        settings.features_dir,
        items,
        Catalog.of(items).genres,
        full=full,
        project=settings.feast_project,
        profile=settings.profile,
        latest_version=_latest_version(settings),
        features=d.fingerprint(),
    )
    if p.mode != "full" and not _online_intact(settings):
        p = Plan("full", "the online store has lost rows the last build wrote (was it emptied?)", p.files, p.prints)
    if p.mode == "none":
        return PublishReport(
            mode="none",
            reason=p.reason,
            version=p.state.publish_version if p.state else None,
            snapshot=_snapshot(log, p.files, log.erased_users()),
        )
    if p.mode == "incremental":
        try:
            return _incremental(settings, log, items, p, step, d)
        except TooManyTouched as exc:
            p = Plan("full", f"{exc}, so a full build is as cheap", p.files, p.prints)
    return _full(settings, log, items, p, step, d)
