"""The gate a feature batch passes before it is published, and where a rejected one goes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from feature_repo import declarations
from feature_repo.build import FeatureBatches
from feature_repo.data_sources import CONSENT_FILE, ITEM_STATS_FILE, SESSION_FILE, USER_PROFILE_FILE
from setlist.errors import Refused
from setlist.eventlog import write_atomic
from setlist.featureset import FeatureSet
from setlist.lineage import record_gate
from setlist.settings import Settings


class FeatureBatchRejected(Refused, RuntimeError):  # still a RuntimeError for callers that catch that
    """A feature batch failed its gate (or there was nothing to build); the online store was left untouched."""


def gate(
    batches: FeatureBatches,
    as_of: dict[str, datetime] | None = None,
    *,
    skip_empty: bool = False,
    features: FeatureSet | None = None,
) -> list[str]:
    """Validate the user and item batches; ``as_of`` per view overrides the batch's, and
    ``skip_empty`` skips views without rows (both for the recomputed rows of an incremental run).
    ``features`` are the declarations to check against (None: the declared ones)."""
    from validation.api import validate_feature_batch  # the boundary guard

    features = declarations.load() if features is None else features  # validation never finds them itself
    failures: list[str] = []
    for name, frame in (("user_profile", batches.user_profile), ("item_stats", batches.item_stats)):
        if skip_empty and frame.empty:
            continue
        when = (as_of or {}).get(name, batches.as_of.to_pydatetime())
        result = validate_feature_batch(name, frame, as_of=when, features=features)
        failures += [f"{name}: {f}" for f in result.failures]
    return failures


def quarantine(settings: Settings, batches: FeatureBatches, failures: list[str]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    where = settings.quarantine_dir / "features" / stamp
    for fname, frame in batch_files(batches):
        write_atomic(pa.Table.from_pandas(frame, preserve_index=False), where / fname)
    (where / "report.json").write_text(json.dumps({"failures": failures}, indent=2))
    return where


def reject(settings: Settings, batches: FeatureBatches, failures: list[str]) -> FeatureBatchRejected:
    where = quarantine(settings, batches, failures)
    record_gate(settings.lineage_dir, "features", False, f"quarantine:{where.name}", failures=len(failures))
    return FeatureBatchRejected(
        "feature batch failed validation and was quarantined at "
        f"{where}; the last good features keep serving:\n  " + "\n  ".join(failures)
    )


def batch_files(batches: FeatureBatches) -> list[tuple[str, pd.DataFrame]]:
    return [
        (USER_PROFILE_FILE, batches.user_profile),
        (ITEM_STATS_FILE, batches.item_stats),
        (SESSION_FILE, batches.session),
        (CONSENT_FILE, batches.consent),
    ]
