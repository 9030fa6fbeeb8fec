"""The gate a feature batch passes before it is published, and where a rejected one goes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
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
        when = (as_of or {}).get(name, batches.freshness_as_of(name).to_pydatetime())
        result = validate_feature_batch(name, frame, as_of=when, features=features)
        failures += [f"{name}: {f}" for f in result.failures]
    return failures


#: the session view's list columns (fixed, not declared): lists of item ids
STRING_LISTS = ("session_last_items", "session_blocked_items")
#: declared dtypes that are lists, and their element type
LIST_ELEMENTS = {"float_list": pa.float32()}


def feature_table(frame: pd.DataFrame, features: FeatureSet | None = None) -> pa.Table:
    """A feature frame as Arrow with every list column typed. A list column whose lists are all empty
    comes out of pandas as ``list<null>`` (a log without skips leaves every session's blocked items
    empty), and Feast's file source then fails to read it back as the list it declares."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    elements = dict.fromkeys(STRING_LISTS, pa.string())
    if features is not None:
        for view in ("user_profile", "item_stats"):
            elements.update((f.name, LIST_ELEMENTS[f.dtype]) for f in features.view(view) if f.dtype in LIST_ELEMENTS)
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) and pa.types.is_null(field.type.value_type):
            typed = pa.list_(elements.get(field.name, pa.string()))
            table = table.set_column(i, pa.field(field.name, typed, field.nullable), table.column(i).cast(typed))
    return table


def quarantine(
    settings: Settings,
    batches: FeatureBatches,
    failures: list[str],
    features: FeatureSet | None = None,
    aside: Mapping[str, Path] | None = None,
) -> Path:
    """The whole batch beside the failures; ``aside``: files already written (moved, not rewritten)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    where = settings.quarantine_dir / "features" / stamp
    for fname, frame in batch_files(batches):
        if aside and fname in aside:
            where.mkdir(parents=True, exist_ok=True)
            os.replace(aside[fname], where / fname)
        else:
            write_atomic(feature_table(frame, features), where / fname)
    (where / "report.json").write_text(json.dumps({"failures": failures}, indent=2))
    return where


def reject(
    settings: Settings, batches: FeatureBatches, failures: list[str], aside: Mapping[str, Path] | None = None
) -> FeatureBatchRejected:
    where = quarantine(settings, batches, failures, aside=aside)
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
