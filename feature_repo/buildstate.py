"""What the published features were built from, and what changed in the log since.

After every publish from the log, a small state file beside the feature files records each
event-log file the build read (path, size, mtime and a content hash), the erased users, the
catalogue (one hash per item), the genre list and the publish version. The next materialization
compares the log with it and chooses a mode:

- ``incremental``: only new files appeared (appends never rewrite old files), so only the entities
  in them, and items whose catalogue row changed, need new rows;
- ``full``: something was removed or rewritten (erasure compacts partitions), users were erased,
  the genre list or the feature code changed, the publish log or the state is missing;
- ``none``: nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.data_sources import CONSENT_FILE, ITEM_STATS_FILE, SESSION_FILE, USER_PROFILE_FILE
from setlist.contract import ITEM_SCHEMA
from setlist.eventlog import Erased, EventLog, write_atomic

STATE_FILE = "_build_state.json"
CATALOG_FILE = "_build_catalog.parquet"
#: bump whenever a feature's definition changes, so the next run rebuilds everything
BUILDER_VERSION = 3
FEATURE_FILES = (USER_PROFILE_FILE, ITEM_STATS_FILE, SESSION_FILE, CONSENT_FILE)

Fingerprint = tuple[int, int, str]  # size, mtime_ns, sha256


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def erased_hash(erased: Erased) -> str:
    return erased.fingerprint()


def catalog_hashes(items: pd.DataFrame) -> pd.DataFrame:
    """One hash per catalogue row, to find items whose metadata changed."""
    cols = [c for c in ITEM_SCHEMA.names if c in items.columns]
    frame = items[cols].reset_index(drop=True)
    return pd.DataFrame(
        {
            "item_id": frame["item_id"].astype(str).to_numpy(),
            "row_hash": pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64),
        }
    )


@dataclass
class BuildState:
    files: dict[str, Fingerprint]
    erased: str
    genres: list[str]
    as_of: str
    users: int
    items: int
    project: str
    profile: str
    publish_version: int | None = None
    builder: int = BUILDER_VERSION
    features: str = ""  # FeatureSet fingerprint (+ registered tables' stamps) the files were built with

    def save(self, features_dir: Path, catalog: pd.DataFrame) -> None:
        write_atomic(pa.Table.from_pandas(catalog_hashes(catalog), preserve_index=False), features_dir / CATALOG_FILE)
        tmp = features_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(tmp, features_dir / STATE_FILE)

    @classmethod
    def load(cls, features_dir: Path) -> BuildState | None:
        path = features_dir / STATE_FILE
        if not path.exists() or not (features_dir / CATALOG_FILE).exists():
            return None
        try:
            raw = json.loads(path.read_text())
            raw["files"] = {k: tuple(v) for k, v in raw["files"].items()}
            return cls(**raw)
        except (ValueError, TypeError, KeyError):
            return None  # unreadable or from another format: rebuild

    @staticmethod
    def forget(features_dir: Path) -> None:
        """The feature files no longer match a recorded log state (e.g. a batch published by hand)."""
        (features_dir / STATE_FILE).unlink(missing_ok=True)


def fingerprints(
    log: EventLog, files: list[Path], known: dict[str, Fingerprint] | None = None
) -> dict[str, Fingerprint]:
    """Size, mtime and content hash per file; the hash is reused from ``known`` when size and
    mtime match, so only new or touched files are read."""
    known = known or {}
    out: dict[str, Fingerprint] = {}
    for f in files:
        rel = f.relative_to(log.root).as_posix()
        st = f.stat()
        old = known.get(rel)
        if old is not None and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            out[rel] = old
        else:
            out[rel] = (st.st_size, st.st_mtime_ns, file_hash(f))
    return out


@dataclass
class Plan:
    mode: str  # "full" | "incremental" | "none"
    reason: str
    files: list[Path]  # the log files this build is based on
    prints: dict[str, Fingerprint]
    new_files: list[Path] = field(default_factory=list)
    changed_items: list[str] = field(default_factory=list)
    state: BuildState | None = None


def _catalog_changes(features_dir: Path, items: pd.DataFrame) -> list[str]:
    old = pq.read_table(features_dir / CATALOG_FILE).to_pandas()
    new = catalog_hashes(items)
    both = old.merge(new, on="item_id", how="outer", suffixes=("_old", "_new"), indicator=True)
    differs = (both["_merge"] != "both") | (both["row_hash_old"] != both["row_hash_new"])
    return sorted(both.loc[differs, "item_id"].astype(str))


def plan(
    log: EventLog,
    features_dir: Path,
    items: pd.DataFrame,
    genres: list[str],
    *,
    full: bool,
    project: str,
    profile: str,
    latest_version: int | None,
    features: str = "",
) -> Plan:
    """Compare the log and catalogue with the last build's state; decide what to rebuild."""
    files = log.files()
    state = BuildState.load(features_dir) if not full else None

    def rebuild(reason: str) -> Plan:
        return Plan("full", reason, files, fingerprints(log, files, state.files if state else None))

    if full:
        return rebuild("--full was asked for")
    if state is None:
        return rebuild("no record of what the current feature files were built from")
    if state.builder != BUILDER_VERSION:
        return rebuild(f"the feature code changed since the last build (builder {state.builder} → {BUILDER_VERSION})")
    if state.features != features:
        return rebuild("the feature declarations or the registered tables changed since the last build")
    if (state.project, state.profile) != (project, profile):
        return rebuild(f"the last build was for project {state.project!r} ({state.profile} profile)")
    missing = [f for f in FEATURE_FILES if not (features_dir / f).exists()]
    if missing:
        return rebuild(f"feature file {missing[0]} is missing")
    if latest_version != state.publish_version:
        return rebuild(
            f"the publish log's latest version is {latest_version}, not the {state.publish_version} "
            "recorded by the last build (the metadata or online store may have been reset)"
        )
    current = {f.relative_to(log.root).as_posix(): f for f in files}
    gone = sorted(set(state.files) - set(current))
    if gone:
        return rebuild(
            f"{len(gone)} event-log file(s) were removed since the last build, e.g. {gone[0]} "
            "(erasure compacts partitions)"
        )
    if erased_hash(log.erased()) != state.erased:
        return rebuild("users were erased since the last build")
    prints = fingerprints(log, files, state.files)
    rewritten = sorted(k for k in state.files if prints[k][::2] != state.files[k][::2])
    if rewritten:
        return rebuild(f"{len(rewritten)} event-log file(s) were rewritten since the last build, e.g. {rewritten[0]}")
    if genres != state.genres:
        return rebuild("the catalogue's genre list changed (every genre-affinity vector changes)")
    new_files = [current[k] for k in sorted(set(current) - set(state.files))]
    changed = _catalog_changes(features_dir, items)
    if not new_files and not changed:
        return Plan(
            "none",
            f"the event log and catalogue are unchanged since version {state.publish_version}",
            files,
            prints,
            state=state,
        )
    what = [f"{len(new_files)} new event-log file(s)"] + (
        [f"{len(changed)} changed catalogue item(s)"] if changed else []
    )
    return Plan("incremental", " and ".join(what), files, prints, new_files, changed, state)
