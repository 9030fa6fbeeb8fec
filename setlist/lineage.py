"""The lineage ledgers: append-only JSON lines under ``<data_dir>/lineage/`` that let a model version
be traced back to its data (``python -m training lineage``).

- ``imports.jsonl``: one line per import: the file's name and SHA-256, row counts, the consent basis;
  and a line as each import starts (and one if it fails), so a killed import is on record too.
- ``gates.jsonl``: one line per gate run: which gate, pass or fail, and what it judged (the event
  log's snapshot, a feature publish, a training set's digest).

A line never holds a user id. Lines are fsynced: the ledger is the audit trail.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from setlist import jobmetrics

IMPORTS = "imports.jsonl"
GATES = "gates.jsonl"
log = logging.getLogger("setlist.lineage")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _append(lineage_dir: Path, ledger: str, fields: dict[str, Any]) -> dict[str, Any]:
    """One line, whole or not at all: a write the disk cuts short is taken back, and a line a killed run
    left without its end (which no one can take back) is ended first, so it spoils no other line."""
    lineage_dir.mkdir(parents=True, exist_ok=True)
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **fields}
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    with open(lineage_dir / ledger, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # one writer at a time: a rollback must take back only its own bytes
        end = fh.seek(0, os.SEEK_END)
        if end:
            fh.seek(end - 1)
            if fh.read(1) != b"\n":
                line = b"\n" + line
        try:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            try:
                os.ftruncate(fh.fileno(), end)
            except OSError:
                pass  # the torn line stays; readers skip it
            raise
    return record


def _read(lineage_dir: Path, ledger: str) -> list[dict[str, Any]]:
    """Every whole record. A line that does not parse (a run killed in the middle of writing it) is
    skipped with a warning rather than making the whole ledger unreadable."""
    path = lineage_dir / ledger
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                log.warning("%s line %d is not a whole record (a write cut short?): skipped", path, number)
                continue
            out.append(record)
    return out


#: the ``status`` of an import's first record (written before it reads a row), of the one it writes before
#: its first append to the log, and of the one an import that ends in an error writes; a finished import's
#: record has no status
STARTED, WRITING, FAILED = "started", "writing", "failed"


def record_import(lineage_dir: Path, **fields: Any) -> dict[str, Any]:
    """Append one finished import's record and return it."""
    return _append(lineage_dir, IMPORTS, fields)


def record_import_start(lineage_dir: Path, run: str, **fields: Any) -> dict[str, Any]:
    """Before an import reads a row: with ``record_import_writing``, a run killed before its own record
    leaves these, so the ledger never holds rows of the log without the file they came from."""
    return _append(lineage_dir, IMPORTS, {"status": STARTED, "run": run, **fields})


def record_import_writing(lineage_dir: Path, run: str) -> dict[str, Any]:
    """Before an import's first append to the log: a run that stops before this one left no rows."""
    return _append(lineage_dir, IMPORTS, {"status": WRITING, "run": run})


def record_import_failure(lineage_dir: Path, run: str, kept_rows: bool, error: str) -> dict[str, Any]:
    """An import that ended in an error; ``kept_rows`` says whether it wrote to the log before it."""
    return _append(lineage_dir, IMPORTS, {"status": FAILED, "run": run, "kept_rows": kept_rows, "error": error})


def imports(lineage_dir: Path) -> list[dict[str, Any]]:
    """Every finished import, oldest first."""
    return [r for r in _read(lineage_dir, IMPORTS) if "status" not in r]


def unfinished_imports(lineage_dir: Path, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """The imports that may have put rows in the log without recording them, oldest first (as the ledger
    stood at ``as_of``, default now): each one's first record, for those that wrote to the log and never
    recorded an end (killed, or running now: ``"ended": None``) and those that ended in an error after
    writing (``"ended"`` is the error). A later finished import of the same file finished what they left
    (its rows are the same events); one killed before its first write left nothing."""
    records = [r for r in _read(lineage_dir, IMPORTS) if as_of is None or _at(r) <= as_of]
    writing = {r.get("run") for r in records if r.get("status") == WRITING}
    ends = {r.get("run"): r for r in records if r.get("run") and r.get("status") in (None, FAILED)}
    out = []
    for at, r in enumerate(records):
        if r.get("status") != STARTED:
            continue
        if r.get("sha256") and any("status" not in e and e.get("sha256") == r["sha256"] for e in records[at + 1 :]):
            continue
        end = ends.get(r["run"])
        if end is None and r["run"] in writing:
            out.append({**r, "ended": None})
        elif end is not None and end.get("status") == FAILED and end.get("kept_rows"):
            out.append({**r, "ended": end.get("error", "an error")})
    return out


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record.get("at", "1970-01-01T00:00:00+00:00")))


def record_gate(lineage_dir: Path, gate: str, passed: bool, subject: str, **fields: Any) -> dict[str, Any]:
    """Append one gate run: ``subject`` names what was judged (``snapshot:…``, ``publish:3``, ``training_set:…``).
    The running job's metrics get the gate's status too (``setlist_gate_status``)."""
    jobmetrics.current().gate(gate, "fail" if not passed else "warn" if fields.get("warnings") else "pass")
    return _append(lineage_dir, GATES, {"gate": gate, "passed": passed, "subject": subject, **fields})


def gates(lineage_dir: Path) -> list[dict[str, Any]]:
    return _read(lineage_dir, GATES)
