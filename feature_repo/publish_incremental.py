"""The incremental publish: after an append, only the touched users' and items' rows are recomputed
(``incremental`` computes them), gated, merged into the feature files and written online."""

from __future__ import annotations

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo.build import Catalog, FeatureBatches
from feature_repo.buildstate import Plan
from feature_repo.data_sources import CONSENT_FILE, ITEM_STATS_FILE, SESSION_FILE, USER_PROFILE_FILE
from feature_repo.declared import Declared
from feature_repo.gate import gate, reject
from feature_repo.incremental import LAYOUT, Delta, compute_delta, merge_file, newest_kept
from feature_repo.publish_online import write_rows
from feature_repo.publish_record import (
    PublishReport,
    Step,
    begin_publish,
    end_publish,
    record_version,
    save_state,
    snapshot_hash,
)
from setlist.eventlog import EventLog, write_atomic
from setlist.settings import Settings


def publish_incremental(
    settings: Settings, log: EventLog, items: pd.DataFrame, p: Plan, step: Step, d: Declared
) -> PublishReport:
    state = p.state
    assert state is not None
    erased, catalog = log.erased(), Catalog.of(items, d.term_key)
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
        consent_default=d.consent_default,
        analytics=_analytics_consent(settings),
    )
    changed = delta.batches(catalog.genres)
    touched = {
        USER_PROFILE_FILE: delta.users,
        SESSION_FILE: delta.users,
        CONSENT_FILE: delta.users,
        ITEM_STATS_FILE: delta.items,
    }
    step("validating the recomputed rows")
    _gate_recomputed(settings, delta, changed, touched, d)
    step(f"merging the rows of {len(delta.users):,} users and {len(delta.items):,} items into the feature files")
    begin_publish(settings, "incremental")
    rows, n_items = _merge(settings, delta, touched)
    step("writing the recomputed rows to the online store")
    write_rows(settings, changed, say=step)
    snapshot = snapshot_hash(log, p.files, erased)
    version = record_version(settings, snapshot, sum(rows.values()))
    save_state(
        settings, p, erased, catalog.genres, delta.as_of, items, rows[CONSENT_FILE], n_items, version, d.fingerprint()
    )
    end_publish(settings)
    return PublishReport(
        rows=rows,
        version=version,
        snapshot=snapshot,
        mode="incremental",
        reason=p.reason,
        changed={f: len(delta.rows[f]) for f in LAYOUT},
        touched=(len(delta.users), len(delta.items)),
    )


def _gate_recomputed(
    settings: Settings, delta: Delta, changed: FeatureBatches, touched: dict[str, list[str]], d: Declared
) -> None:
    """Row checks on the recomputed rows only (the others passed when they were published); freshness
    is a property of the whole batch, so it is checked on what the merged files will hold."""
    from validation.suites.features import DEFAULT_MAX_AGE  # the gate's library loads slowly: only now

    own = {v: getattr(changed, v)["event_timestamp"].max() for v in ("user_profile", "item_stats")}
    failures = gate(
        changed, {v: t.to_pydatetime() for v, t in own.items() if pd.notna(t)}, skip_empty=True, features=d.features
    )
    for view, fname in (("user_profile", USER_PROFILE_FILE), ("item_stats", ITEM_STATS_FILE)):
        usable = delta.fresh_as_of.get(view)
        if usable is None:  # nothing new it may use (every new event's user lacks consent): its rows stand
            continue
        kept = newest_kept(settings.features_dir / fname, fname, touched[fname])
        newest = max((t for t in (kept, own[view]) if t is not None and pd.notna(t)), default=None)
        if newest is None or newest < usable - DEFAULT_MAX_AGE:
            failures.append(
                f"{view}: the newest snapshot ({newest}) is older than {DEFAULT_MAX_AGE} before "
                f"the newest event it may use ({usable})"
            )
    if failures:
        raise reject(settings, changed, failures)


def _merge(settings: Settings, delta: Delta, touched: dict[str, list[str]]) -> tuple[dict[str, int], int]:
    """The recomputed rows merged into each feature file; their row counts and the number of items."""
    rows: dict[str, int] = {}
    n_items = 0
    for fname in LAYOUT:  # one file at a time: the session file is large at scale
        merged = merge_file(settings.features_dir / fname, delta.rows[fname], touched[fname], fname)
        rows[fname] = merged.num_rows
        n_items = len(pc.unique(merged["item_id"])) if fname == ITEM_STATS_FILE else n_items
        write_atomic(merged, settings.features_dir / fname)
        del merged
    return rows, n_items


def _analytics_consent(settings: Settings) -> pd.Series:
    """Each user's analytics consent as the last publish wrote it (every user has a consent row)."""
    table = pq.read_table(settings.features_dir / CONSENT_FILE, columns=["user_id", "consent_analytics"])
    return pd.Series(
        table["consent_analytics"].to_numpy(zero_copy_only=False), index=table["user_id"].to_pylist(), dtype=bool
    )
