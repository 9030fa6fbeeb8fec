"""Where the gates' inputs come from: the event log or a given path, feature batches, the training
set and the item catalog. The feature declarations and the parity pairs are not found here: the
CLI passes them in (``GateOptions``), so validation imports no pipeline package.

Every loader raises ``InputMissing`` with a sentence saying what is absent, so the CLI can report
"skipped: …" under ``all`` and exit 2 for a single gate.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from setlist.catalog import load_items
from setlist.consent import opted_out_users
from setlist.contract import EVENT_COLUMNS
from setlist.errors import BadInput, InputMissing
from setlist.eventlog import TOMBSTONES, EventLog
from setlist.settings import Settings

__all__ = [
    "BadInput",
    "InputMissing",
    "load_events",
    "load_feature_batch",
    "load_training_set",
    "opted_out",
    "read_events_path",
    "with_genre",
]  # the errors are re-exported: gates and tests catch them here


def read_events_path(path: Path) -> pd.DataFrame:
    """A parquet file or a hive-partitioned directory, read *as is*: no coercion to the contract,
    so the gate sees a removed column or a wrong type exactly as a consumer would."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"--path {path} does not exist")
    try:
        dataset = ds.dataset(str(path), format="parquet", partitioning="hive")
        schemas = [f.physical_schema for f in dataset.get_fragments()]
        if not schemas:
            raise InputMissing(f"no parquet files under {path}")
        schema = pa.unify_schemas(schemas, promote_options="permissive")
        partition_cols = [n for n in dataset.schema.names if n not in schema.names]
        table = ds.dataset(str(path), format="parquet", partitioning="hive", schema=schema).to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise BadInput(f"cannot read {path} as parquet: {exc}") from exc
    frame = table.to_pandas()
    frame = frame.drop(columns=[c for c in partition_cols if c in frame and c not in EVENT_COLUMNS])
    if path.is_dir() and (path / TOMBSTONES).exists() and "user_id" in frame:
        gone = EventLog(path).erased().among(frame["user_id"].unique())
        frame = frame[~frame["user_id"].isin(gone)]  # erased users stay erased
    return frame.reset_index(drop=True)


def load_events(settings: Settings, path: Path | None = None) -> pd.DataFrame:
    if path is not None:
        frame = read_events_path(path)
        where = str(path)
    else:
        frame = EventLog(settings.events_dir).read()
        where = str(settings.events_dir)
    if frame.empty:
        raise InputMissing(f"no events at {where} (run `make generate` or `make import`, or pass --path)")
    return frame


def with_genre(events: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Adds ``genre`` from the item catalog when there is one (genre cardinality and drift need it)."""
    items = load_items(settings.catalog_path)
    if items.empty or "item_id" not in events:
        return events
    genre = items.drop_duplicates("item_id").set_index("item_id")["genre"]
    return events.assign(genre=events["item_id"].map(genre))


def load_feature_batch(settings: Settings, view: str) -> pd.DataFrame:
    path = Path(settings.features_dir) / f"{view}.parquet"
    if not path.exists():
        raise InputMissing(f"no feature batch at {path} (run `make materialize`)")
    return pd.read_parquet(path)


def load_training_set(settings: Settings) -> pd.DataFrame:
    path = settings.training_set_path
    if not path.exists():
        raise InputMissing(f"no training set at {path} (run `make train`)")
    return pd.read_parquet(path)


def opted_out(settings: Settings, among: Iterable[str] = ()) -> set[str]:
    """Pseudonyms whose latest personalization consent is off, by the rule the feature builder
    enforces (``setlist.consent``: one rule, one place), plus the erased ones of them and of
    ``among`` (tombstones hold digests: only a pseudonym at hand can be recognised)."""
    log = EventLog(settings.events_dir)
    events = log.read(columns=["user_id", "timestamp", "consent_personalization"], include_erased=True)
    erased = log.erased().among([*events["user_id"].unique(), *among])
    return opted_out_users(events, settings.consent_granted_by_default) | erased
