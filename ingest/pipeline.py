"""Ingestion: the one door into the event log.

Raw events (with the application's user ids) come in; each row is checked against the contract,
the user id is pseudonymized, duplicates are caught, valid rows are appended and the rest go to
the quarantine with a reason. Nothing is dropped without a count.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from setlist.contract import EVENT_COLUMNS, SCHEMA_VERSION, reject_reason
from setlist.eventlog import EventLog, Quarantine
from setlist.pseudonym import IdentityMap, pseudonymize
from setlist.settings import Settings


@dataclass
class IngestReport:
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)

    def merge(self, other: "IngestReport") -> None:
        self.received += other.received
        self.accepted += other.accepted
        self.quarantined += other.quarantined
        self.reasons.update(other.reasons)


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for col in EVENT_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    if frame["schema_version"].isna().all():
        frame["schema_version"] = SCHEMA_VERSION
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
    for col in ("device", "locale"):
        frame[col] = frame[col].fillna("unknown")
    for col in ("consent_personalization", "consent_analytics"):
        frame[col] = frame[col].map(lambda v: True if v is None or v != v else bool(v)).astype(bool)
    return frame


def _reasons(frame: pd.DataFrame, known_ids: set[str], now: datetime, max_future_s: float) -> list[str | None]:
    """Row-wise contract check plus duplicate detection within the batch and against the log."""
    records = frame[list(EVENT_COLUMNS)].to_dict("records")
    seen: set[str] = set()
    out: list[str | None] = []
    for row in records:
        ts = row["timestamp"]
        row["timestamp"] = None if pd.isna(ts) else ts.to_pydatetime()
        version = row["schema_version"]
        row["schema_version"] = int(version) if isinstance(version, (int, float, np.integer)) and version == version else version
        reason = reject_reason(row, now, max_future_s)
        eid = row["event_id"]
        if reason is None and (eid in seen or eid in known_ids):
            reason = f"duplicate_event_id: {eid}"
        if reason is None:
            seen.add(eid)
        out.append(reason)
    return out


def ingest(raw: pd.DataFrame, settings: Settings, source: str, identities: IdentityMap | None = None,
           check_log_duplicates: bool = True) -> IngestReport:
    """Validate, pseudonymize and append ``raw`` events (which carry application user ids)."""
    log, quarantine = EventLog(settings.events_dir), Quarantine(settings.quarantine_dir)
    frame = _normalize(raw)
    now = datetime.now(timezone.utc)
    known: set[str] = set()
    if check_log_duplicates and log.files():
        known = set(log.read(columns=["event_id"], include_erased=True)["event_id"])
    reasons = _reasons(frame, known, now, settings.max_future_skew_s)
    bad = np.array([r is not None for r in reasons], dtype=bool)
    report = IngestReport(received=len(frame))

    key = settings.secret_hmac_key()
    raw_ids = frame["user_id"].astype("string").fillna("")
    unique_raw = raw_ids[raw_ids != ""].unique()
    mapping = {r: pseudonymize(r, key) for r in unique_raw}
    frame["user_id"] = raw_ids.map(lambda r: mapping.get(r, "")).astype(object)

    if bad.any():
        rejected = frame[bad]
        report.quarantined = quarantine.put(rejected, [r for r in reasons if r is not None], source)
        report.reasons.update(r.split(":", 1)[0] for r in reasons if r is not None)
    good = frame[~bad]
    report.accepted = log.append(good, tag=source)
    if identities is None:
        identities = IdentityMap(settings.metadata_url)
        try:
            identities.remember((mapping[r], r) for r in raw_ids[~bad].unique() if r)
        finally:
            identities.dispose()
    else:
        identities.remember((mapping[r], r) for r in raw_ids[~bad].unique() if r)
    return report
