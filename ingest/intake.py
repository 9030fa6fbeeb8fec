"""Ingestion: the one door into the event log.

Raw events (with the application's user ids) come in; each row is checked against the contract,
the user id is pseudonymized, duplicates are caught, valid rows are appended and the rest go to
the quarantine with a reason. Nothing is dropped without a count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from setlist.consent import FLAGS, flag_reason, parse_flag
from setlist.contract import (
    EVENT_COLUMNS,
    ITEM_TYPES,
    KNOWN_SCHEMA_VERSIONS,
    LIGHT_TYPES,
    SCHEMA_VERSION,
    future_reason,
    reject_reason,
)
from setlist.eventlog import Erased, EventLog, Quarantine, remove_stale_temporaries
from setlist.numbers import to_numbers
from setlist.pseudonym import IdentityMap, check_key, pseudonymize
from setlist.querytext import normalize, stored
from setlist.retention import events_cutoff
from setlist.settings import Settings
from setlist.tiers import Tiers

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class IngestReport:
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    #: valid batch-tier events the sample left out (setlist.tiers): counted, not stored
    sampled_out: int = 0
    #: events of users erased earlier (``make erase``): counted, never stored, quarantine included
    erased: int = 0
    #: the erased pseudonyms those events belonged to (a set, so reports of several chunks merge right)
    erased_met: set[str] = field(default_factory=set)
    #: rows the log holds already, the same event of the same kind (a re-run of an import): counted, not
    #: stored again nor quarantined; an id the log holds for another kind of event is a duplicate
    already_logged: int = 0
    #: of ``quarantined``, the rows the quarantine held already for the same reason (a re-run): not written twice
    quarantined_before: int = 0

    @property
    def erased_users(self) -> int:
        return len(self.erased_met)

    def merge(self, other: IngestReport) -> None:
        self.received += other.received
        self.accepted += other.accepted
        self.quarantined += other.quarantined
        self.reasons.update(other.reasons)
        self.sampled_out += other.sampled_out
        self.erased += other.erased
        self.erased_met |= other.erased_met
        self.already_logged += other.already_logged
        self.quarantined_before += other.quarantined_before


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
    return frame  # consent values stay as given until checked: a bad one is quarantined, not guessed


def _safe_flag(value: object) -> bool | None:
    try:
        return parse_flag(value)
    except ValueError:
        return None  # the row is quarantined for it; its text is still not kept raw


def _stored_queries(frame: pd.DataFrame, key: bytes) -> pd.Series:
    """What may be stored of each row's text (setlist.querytext): a feature_use's feature name
    normalized, any other text hashed term by term unless the row grants analytics consent."""
    out = pd.Series(None, index=frame.index, dtype=object)
    has = frame["query"].notna() & (frame["query"].astype("string").str.strip() != "")
    for i in np.flatnonzero(has.to_numpy()):
        row = frame.iloc[i]
        text = str(row["query"])
        kept = (
            normalize(text) if row["type"] == "feature_use" else stored(text, _safe_flag(row["consent_analytics"]), key)
        )
        out.iloc[i] = kept or None
    return out


def _consent_flags(frame: pd.DataFrame) -> pd.DataFrame:
    """Checked consent values as nullable booleans: null is "no flag on this event". In place:
    ``frame`` is ingestion's own copy."""
    for col in FLAGS:
        frame[col] = frame[col].map(parse_flag).astype("boolean")
    return frame


def _unparsed(raw: object, now: datetime, max_future_s: float) -> str:
    """Why a timestamp pandas could not hold is refused. pandas stops at 1677 and 2262, Python's
    datetime does not, so a date far in the past or future still gets the reason it deserves."""
    when = raw if isinstance(raw, datetime) else None
    if when is None and isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            when = None
    if when is not None:
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if when <= EPOCH:
            return f"bad_timestamp: {when.isoformat()} is not after 1970-01-01"
        if when.timestamp() > now.timestamp() + max_future_s:
            return future_reason(when, max_future_s)
    return f"bad_timestamp: {raw!r} is not a timestamp"


#: rows per slice of the row-wise check: one dict per row of a slice exists at a time
ROW_SLICE = 50_000


def _text(s: pd.Series) -> np.ndarray:
    """Cells that are non-blank ``str`` (anything else is left to the row-wise check)."""
    values = s.to_numpy(dtype=object)
    is_str = np.fromiter((type(v) is str for v in values), bool, len(values))
    out = np.zeros(len(values), bool)
    if is_str.any():
        out[is_str] = pd.Series(values[is_str], dtype=object).str.strip().ne("").to_numpy()
    return out


def _flags_ok(s: pd.Series, name: str) -> np.ndarray:
    """Cells whose consent value ``flag_reason`` accepts, decided once per distinct value."""
    uniques = pd.unique(s.to_numpy(dtype=object))
    missing = [v for v in uniques if pd.isna(v)]
    accepted = [v for v in uniques if not pd.isna(v) and flag_reason(name, v) is None]
    ok = s.isin(accepted).to_numpy()
    if all(flag_reason(name, v) is None for v in missing):
        ok |= s.isna().to_numpy()
    return ok


def _plainly_valid(frame: pd.DataFrame, now: datetime, max_future_s: float, oldest: datetime | None) -> np.ndarray:
    """Rows that every check of ``reject_reason`` and the retention floor would pass, decided column
    by column. Conservative by design: anything unusual (ids that are not strings, search and
    feature_use rows, columns of mixed types, a time within a millisecond of a limit) is left to the
    row-wise check, so the reasons reported are always the contract's own."""
    n = len(frame)
    nothing = np.zeros(n, bool)
    ok = _text(frame["event_id"]) & _text(frame["user_id"]) & _text(frame["item_id"])
    ok &= frame["type"].isin(ITEM_TYPES + LIGHT_TYPES).to_numpy()
    version = frame["schema_version"]
    numeric = pd.api.types.is_numeric_dtype
    ok &= version.isin(list(KNOWN_SCHEMA_VERSIONS)).to_numpy() if numeric(version) else nothing
    ts = frame["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        return nothing
    # milliseconds, never nanoseconds: a far-future millisecond time would overflow them and wrap
    ms = ts.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    margin = 2  # ms: rows this close to a limit go through the row-wise comparison
    ok &= ts.notna().to_numpy() & (ms > margin)
    ok &= ms < int((now.timestamp() + max_future_s) * 1000) - margin
    if oldest is not None:
        ok &= ms > int(oldest.timestamp() * 1000) + margin
    for flag in FLAGS:
        ok &= _flags_ok(frame[flag], flag)
    value, weight = frame["value"], frame["weight"]
    if not (numeric(value) and numeric(weight)) or value.dtype == bool or weight.dtype == bool:
        return nothing
    v, w = value.to_numpy(dtype=np.float64), weight.to_numpy(dtype=np.float64)
    play = (frame["type"] == "play").to_numpy()
    ok &= np.isnan(v) | (np.isfinite(v) & (~play | ((v >= 0.0) & (v <= 1.0))))
    ok &= np.isnan(w) | ((w >= 1.0) & (w < np.inf))
    return ok


def _missing(raw: object) -> bool:
    """None, NaN and NaT: nothing the writer sent. NaT is a ``datetime`` subclass, so without this it
    would be read as a stamp."""
    try:
        return bool(pd.isna(raw))
    except (TypeError, ValueError):  # lists and other containers are values, not missing
        return False


def _row_reason(
    row: dict[str, Any], raw: object, now: datetime, max_future_s: float, oldest: datetime | None
) -> str | None:
    """The contract's reason for one row (``reject_reason``), with the raw timestamp's own reason
    when pandas could not parse it, and the retention floor."""
    ts = row["timestamp"]
    # Python's datetime holds microseconds; a nanosecond log's last digits do not decide a reason
    row["timestamp"] = None if pd.isna(ts) else pd.Timestamp(ts).floor("us").to_pydatetime()
    version = row["schema_version"]
    row["schema_version"] = (
        int(version) if isinstance(version, (int, float, np.integer)) and version == version else version
    )
    reason = reject_reason(row, now, max_future_s)
    if reason is not None and reason.startswith("bad_timestamp") and row["timestamp"] is None and not _missing(raw):
        reason = _unparsed(raw, now, max_future_s)
    if reason is None and oldest is not None and row["timestamp"] < oldest:
        reason = f"retention: {row['timestamp'].isoformat()} is older than the events retention ({oldest.date()})"
    return reason


#: what the log holds of an event, by id: its type and value (``EventLog.kinds_of``)
Logged = tuple[str, float | None]

#: not a quarantine reason: the row's event is in the log already, of the same kind (``IngestReport.already_logged``)
ALREADY_LOGGED = "already_logged"


def _reasons(
    frame: pd.DataFrame,
    known_ids: set[str],
    now: datetime,
    max_future_s: float,
    raw_ts: pd.Series | None = None,
    oldest: datetime | None = None,
    row_wise: bool = False,
    logged: Callable[[list[str]], dict[str, Logged]] | None = None,
) -> list[str | None]:
    """Row-wise contract check plus duplicate detection within the batch and against the log.

    ``logged``: looks up what the log holds for ids of this batch it holds; a row whose id, type and value
    match is ``ALREADY_LOGGED`` (the same event read again), one of another type or value a duplicate
    (kept in the quarantine for a look: a rating corrected since, a second kind of event at one time).

    Timestamps are checked against what is impossible only (``setlist.contract.reject_reason``):
    at or before the Unix epoch, or more than ``max_future_s`` after ``now``. There is no calendar
    floor: a ratings log may start in 1996.

    Rows that plainly pass are found column-wise (``_plainly_valid``); only the others go through
    the row-wise check, a slice at a time: a million-row import no longer builds a million dicts.
    ``row_wise`` checks every row that way (the reference the column-wise screen is tested against)."""
    n = len(frame)
    out: list[str | None] = [None] * n
    try:
        fast = np.zeros(n, bool) if row_wise else _plainly_valid(frame, now, max_future_s, oldest)
    except (TypeError, ValueError):  # cells pandas cannot hash or compare (lists from JSON): all row-wise
        fast = np.zeros(n, bool)
    slow = np.flatnonzero(~fast)
    columns = list(EVENT_COLUMNS)
    for at in range(0, len(slow), ROW_SLICE):
        rows = slow[at : at + ROW_SLICE]
        records = frame.iloc[rows][columns].to_dict("records")
        raws = raw_ts.iloc[rows].tolist() if raw_ts is not None else [None] * len(rows)
        for i, row, raw in zip(rows.tolist(), records, raws):
            out[i] = _row_reason(row, raw, now, max_future_s, oldest)
    # duplicates: of the rows that pass, one already in the log, or after an earlier one of this batch
    passed = np.flatnonzero(np.fromiter((r is None for r in out), bool, n))
    ids = frame["event_id"].iloc[passed]
    # membership in the set itself: `isin` would turn the whole set (16.4M ids on a re-run of a large
    # log) into an array and hash it again for every slice, ~30 s each, where this is ~0.1 s
    known = (
        np.fromiter((e in known_ids for e in ids.tolist()), bool, len(ids)) if known_ids else np.zeros(len(ids), bool)
    )
    again = np.zeros(len(passed), bool)
    again[~known] = ids[~known].duplicated(keep="first").to_numpy()
    held = logged([str(e) for e in ids[known]]) if logged is not None and known.any() else {}
    kinds, values = frame["type"].iloc[passed], to_numbers(frame["value"].iloc[passed])
    hit = known | again
    for i, eid, kind, value, in_log in zip(
        passed[hit].tolist(), ids[hit].tolist(), kinds[hit].tolist(), values[hit].tolist(), known[hit]
    ):
        same = in_log and _same_event(held.get(str(eid)), str(kind), value)
        out[i] = ALREADY_LOGGED if same else f"duplicate_event_id: {eid}"
    return out


def _same_event(held: Logged | None, kind: str, value: float) -> bool:
    """The logged event is this row's: the same type, and the same value (both missing, or equal as stored)."""
    if held is None or held[0] != kind:
        return False
    if held[1] is None or held[1] != held[1]:
        return value != value
    return value == value and abs(held[1] - value) <= 1e-6 * max(1.0, abs(value))


def _take_other_ids(
    frame: pd.DataFrame, others: np.ndarray, known: set[str], logged: Callable[[list[str]], dict[str, Logged]]
) -> None:
    """Give each row whose other id (``OTHER_ID``) the log holds for an event of the row's type that id: the
    duplicate check then finds it logged already (the same value: a re-run of the import that logged it) or
    a conflict (another value, quarantined as a duplicate, as before the type was part of some ids)."""
    ids = others.tolist()
    at = [i for i, e in enumerate(ids) if e in known]
    if not at:
        return
    held = logged([str(ids[i]) for i in at])
    # the same type: the same event, its value compared by the duplicate check (another value is a conflict
    # quarantined there, as for an event read again the same way; another type is another event)
    kinds = frame["type"].tolist()
    same = [i for i in at if (h := held.get(str(ids[i]))) is not None and h[0] == str(kinds[i])]
    if same:  # by place: a later slice's frame keeps the file's row labels
        column = frame["event_id"].to_numpy(dtype=object).copy()
        column[same] = [ids[i] for i in same]
        frame["event_id"] = column


def _explained(reasons: list[str | None], unread: np.ndarray) -> list[str | None]:
    """Each reason an unread cell explains, its detail replaced by that cell in words."""
    out = list(reasons)
    for i in np.flatnonzero(pd.notna(unread)).tolist():
        reason = out[i]
        if reason is not None and (code := reason.partition(":")[0]) in _EXPLAINED:
            out[i] = f"{code}: {unread[i]}"
    return out


def _sampled(frame: pd.DataFrame, tiers: Tiers) -> tuple[pd.DataFrame, int]:
    """The rows the tiers' sample keeps, each with its weight; and how many it left out."""
    if frame.empty or not tiers.batch:
        return frame, 0
    types = frame["type"].astype(str).to_numpy()
    sampled = [t for t in pd.unique(types) if tiers.rate(t) < 1.0]
    if not sampled:  # realtime types and rate 1 keep every row and its own weight: nothing to decide
        return frame, 0
    rows = np.flatnonzero(np.isin(types, sampled))
    ids = frame["event_id"].astype(str).to_numpy()[rows]
    keep = np.ones(len(frame), bool)
    keep[rows] = np.fromiter((tiers.keep(t, e) for t, e in zip(types[rows], ids)), dtype=bool, count=len(rows))
    kept = frame[keep].copy()
    here = [tiers.weight(t) or 1.0 for t in types[keep]]
    given = to_numbers(kept["weight"]).fillna(1.0).tolist()
    # a row sampled upstream keeps its weight, times this sample's when it is sampled again here
    kept["weight"] = [None if g * w == 1.0 else g * w for g, w in zip(given, here)]
    return kept, int((~keep).sum())


#: rows validated, pseudonymized and appended at a time: each slice's working copies are freed
#: before the next, so a large import's peak memory is its events plus one slice's copies
INGEST_SLICE_ROWS = 500_000

#: a column an importer may add: for a row it could not read, which cell, in words; it replaces the
#: detail of the row's quarantine reason (the code stays, so counts still group) and is not stored
READ_NOTE = "_read_note"
#: a column an importer may add: the hash (``hex_ids``) of the id the row's event has when read the other
#: way. A file of one kind of event (``--type``) has its type in its ids, a file read by a type column or
#: a rating does not (nor did any before this release), so the same event may come under either; a row
#: whose other id the log holds for an event of its type takes that id, and is not stored twice
OTHER_ID = "_other_id"


def hex_ids(hashes: np.ndarray, prefix: str) -> np.ndarray:
    """Event (or session) ids: ``prefix`` + a 64-bit hash in 16 hex digits. Formatting each hash with an
    f-string measured faster than a vectorized byte-to-hex table (1.0 against 2.7 s for 2M rows) and holds a
    third less memory while it runs."""
    assert len(prefix) == 2
    return np.array([f"{prefix}{x:016x}" for x in hashes.tolist()], dtype=object)


#: the reasons an unread cell explains: the time left empty, the type left empty by its rating, or
#: an item named by several columns left without a name by an empty one
_EXPLAINED = ("bad_timestamp", "unknown_type", "missing_id")


def logged_event_ids(settings: Settings) -> set[str]:
    """The ids of every event in the log, erased users' included: a replayed event is a duplicate."""
    log = EventLog(settings.events_dir)
    if not log.files():
        return set()
    return set(log.read(columns=["event_id"], include_erased=True)["event_id"])


def ingest(
    raw: pd.DataFrame,
    settings: Settings,
    source: str,
    identities: IdentityMap | None = None,
    check_log_duplicates: bool = True,
    known: set[str] | None = None,
    before_write: Callable[[], None] | None = None,
    log_files_before: list[Path] | None = None,
) -> IngestReport:
    """Validate, pseudonymize and append ``raw`` events (which carry application user ids).

    ``log_files_before``: the log's files as the import began (default: as this call begins). A row whose
    event one of them holds was read before (a re-run); one whose id this import accepted already is a
    duplicate within the file, as it would be in one frame.

    ``before_write`` is called before each append to the log (the import's ledger records, once, that
    its run has started writing: a run killed before that put nothing in the log).

    Large frames go in slices of ``INGEST_SLICE_ROWS`` (callers hand them over in time order, so
    each slice writes few day files); an event id that passed in an earlier slice is a duplicate
    in a later one, as it would be in one frame.

    ``known``: the event ids already in the log (``logged_event_ids``), kept by a caller that ingests
    one file in several calls; the ids this call accepts are added to it. Without it the log is read."""
    log, quarantine = EventLog(settings.events_dir), Quarantine(settings.quarantine_dir)
    for root in (settings.events_dir, settings.quarantine_dir):  # what a killed import left half-written
        remove_stale_temporaries(root)
    check_key(settings)  # before a first key is made: stored pairs without one mean it was lost
    key = settings.secret_hmac_key()
    now = datetime.now(UTC)
    if known is None:
        known = logged_event_ids(settings) if check_log_duplicates else set()
    report = IngestReport()
    opened: list[IdentityMap] = []

    def names() -> IdentityMap:
        # opened on first use, as before slicing: the metadata database lives in the data
        # directory, which a first import may not have created yet
        if identities is not None:
            return identities
        if not opened:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            opened.append(IdentityMap(settings.metadata_url))
        return opened[0]

    erased = log.erased()  # read once: an erasure during an import is a race the erasure's own scan catches
    before = log.files() if log_files_before is None else log_files_before
    looked_up = (lambda ids: log.kinds_of(ids, before)) if check_log_duplicates else None
    held = quarantine.held() if check_log_duplicates else set()
    try:
        for start in range(0, max(len(raw), 1), INGEST_SLICE_ROWS):
            part = raw.iloc[start : start + INGEST_SLICE_ROWS]
            report.merge(
                _ingest_slice(
                    part,
                    settings,
                    source,
                    names,
                    known,
                    now,
                    key,
                    log,
                    quarantine,
                    erased,
                    looked_up,
                    held,
                    before_write,
                )
            )
    finally:
        for m in opened:
            m.dispose()
    return report


def _ingest_slice(
    raw: pd.DataFrame,
    settings: Settings,
    source: str,
    identities: Callable[[], IdentityMap],
    known: set[str],
    now: datetime,
    key: bytes,
    log: EventLog,
    quarantine: Quarantine,
    erased: Erased,
    logged: Callable[[list[str]], dict[str, Logged]] | None,
    quarantined: set[tuple[str, str, str]],
    before_write: Callable[[], None] | None = None,
) -> IngestReport:
    """One slice of ``ingest``; the ids of its passing rows join ``known``. Rows of erased users are
    left out before anything is checked or written: an erasure holds for every later import, as for
    Track's journals (``setlist.journal_dirs``), and their raw ids never reach the identity map."""
    frame = _normalize(raw)
    raw_ids = frame["user_id"].astype("string").fillna("").str.strip()  # setlist.pseudonym.app_id, per row
    unique_raw = raw_ids[raw_ids != ""].unique()
    mapping = {r: pseudonymize(r, key) for r in unique_raw}
    left_out, met = 0, set[str]()
    if erased and (met := erased.among(mapping.values())):
        drop = raw_ids.map(lambda r: mapping.get(r, "") in met).to_numpy(dtype=bool)
        left_out = int(drop.sum())
        keep = ~drop
        raw, frame, raw_ids = raw[keep], frame[keep].reset_index(drop=True), raw_ids[keep].reset_index(drop=True)
    unread = frame.pop(READ_NOTE).to_numpy(dtype=object) if READ_NOTE in frame.columns else None
    other = frame.pop(OTHER_ID) if OTHER_ID in frame.columns else None
    # formatted only where the log or the quarantine holds something to find them in
    others = hex_ids(other.to_numpy(dtype=np.uint64), "i_") if other is not None and (known or quarantined) else None
    if others is not None and logged is not None and known:
        _take_other_ids(frame, others, known, logged)
    # before anything is written, quarantine included: raw search text never reaches storage
    frame["query"] = _stored_queries(frame, key)
    raw_ts = raw["timestamp"].reset_index(drop=True) if "timestamp" in raw else None
    reasons = _reasons(
        frame, known, now, settings.max_future_skew_s, raw_ts, events_cutoff(settings, now), logged=logged
    )
    if unread is not None:
        reasons = _explained(reasons, unread)
    held = np.array([r == ALREADY_LOGGED for r in reasons], dtype=bool)
    if held.any():  # in the log already: neither stored again nor quarantined, but their users are remembered
        reasons = [None if h else r for r, h in zip(reasons, held)]
    bad = np.array([r is not None for r in reasons], dtype=bool)
    report = IngestReport(
        received=len(frame) + left_out, erased=left_out, erased_met=met, already_logged=int(held.sum())
    )
    known.update(frame["event_id"].to_numpy()[~bad & ~held].tolist())

    frame["user_id"] = raw_ids.map(lambda r: mapping.get(r, "")).astype(object)

    if bad.any():
        rows = np.flatnonzero(bad)
        codes = [str(reasons[i]).split(":", 1)[0] for i in rows]
        ids = frame["event_id"].to_numpy()[rows]
        # quarantined before, as the same row (its type too) under either id: read the other way then (by an
        # earlier release) as well
        alt = others[rows] if others is not None else ids
        # as the quarantine stores a cell (``Quarantine.held``): a missing one "", any other as text
        kinds = ["" if pd.isna(k) else str(k) for k in frame["type"].to_numpy()[rows]]
        before = np.fromiter(
            (
                (str(e), c, k) in quarantined or (str(a), c, k) in quarantined
                for e, a, c, k in zip(ids, alt, codes, kinds)
            ),
            bool,
            len(rows),
        )
        new = rows[~before]
        written = quarantine.put(frame.iloc[new], [str(reasons[i]) for i in new], source)
        report.quarantined, report.quarantined_before = written + int(before.sum()), int(before.sum())
        report.reasons.update(codes)
    good = _consent_flags(frame[~bad & ~held].copy() if (bad | held).any() else frame)
    good, report.sampled_out = _sampled(good, Tiers.load(settings.tiers_file))
    # before the events: a run killed between the two and run again finds its events logged (duplicates,
    # so not remembered then) and would leave their users unresolvable; remembering twice is harmless
    logged = np.array([r is None or r.startswith("duplicate_event_id") for r in reasons], dtype=bool)  # held too
    identities().remember((mapping[r], r) for r in raw_ids[logged].unique() if r)
    if before_write is not None and len(good):
        before_write()
    report.accepted = log.append(good, tag=source)
    return report
