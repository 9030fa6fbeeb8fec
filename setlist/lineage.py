"""The lineage ledgers: append-only JSON lines under ``<data_dir>/lineage/`` that let a model version
be traced back to its data (``python -m training lineage``).

- ``imports.jsonl``: one line per import: the file's name and SHA-256, row counts, the consent basis;
  and a line as each import starts (and one if it fails), so a killed import is on record too.
- ``gates.jsonl``: one line per gate run: which gate, pass or fail, and what it judged (the event
  log's snapshot, a feature publish, a training set's digest).

A line never holds a user id. Lines are fsynced: the ledger is the audit trail.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from setlist import jobmetrics

IMPORTS = "imports.jsonl"
GATES = "gates.jsonl"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _append(lineage_dir: Path, ledger: str, fields: dict[str, Any]) -> dict[str, Any]:
    lineage_dir.mkdir(parents=True, exist_ok=True)
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **fields}
    with open(lineage_dir / ledger, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return record


def _read(lineage_dir: Path, ledger: str) -> list[dict[str, Any]]:
    path = lineage_dir / ledger
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


#: the ``status`` of an import's first record, written before it reads or writes a row, and of the one an
#: import that ends in an error writes; a finished import's record has no status
STARTED, FAILED = "started", "failed"


def record_import(lineage_dir: Path, **fields: Any) -> dict[str, Any]:
    """Append one finished import's record and return it."""
    return _append(lineage_dir, IMPORTS, fields)


def record_import_start(lineage_dir: Path, run: str, **fields: Any) -> dict[str, Any]:
    """Before an import writes anything: a run killed before its own record leaves this one, so the ledger
    never holds rows of the log without the file they came from."""
    return _append(lineage_dir, IMPORTS, {"status": STARTED, "run": run, **fields})


def record_import_failure(lineage_dir: Path, run: str, kept_rows: bool, error: str) -> dict[str, Any]:
    """An import that ended in an error; ``kept_rows`` says whether it wrote to the log before it."""
    return _append(lineage_dir, IMPORTS, {"status": FAILED, "run": run, "kept_rows": kept_rows, "error": error})


def imports(lineage_dir: Path) -> list[dict[str, Any]]:
    """Every finished import, oldest first."""
    return [r for r in _read(lineage_dir, IMPORTS) if "status" not in r]


def unfinished_imports(lineage_dir: Path) -> list[dict[str, Any]]:
    """The imports that may have put rows in the log without recording them, oldest first: each one's
    first record, for those that never recorded an end (killed, or running now: ``"ended": None``) and
    those that ended in an error after writing (``"ended"`` is the error). A later finished import of
    the same file finished what they left (its rows are the same events)."""
    records = _read(lineage_dir, IMPORTS)
    ends = {r.get("run"): r for r in records if r.get("run") and r.get("status") != STARTED}
    out = []
    for at, r in enumerate(records):
        if r.get("status") != STARTED:
            continue
        if r.get("sha256") and any("status" not in e and e.get("sha256") == r["sha256"] for e in records[at + 1 :]):
            continue
        end = ends.get(r["run"])
        if end is None:
            out.append({**r, "ended": None})
        elif end.get("status") == FAILED and end.get("kept_rows"):
            out.append({**r, "ended": end.get("error", "an error")})
    return out


def record_gate(lineage_dir: Path, gate: str, passed: bool, subject: str, **fields: Any) -> dict[str, Any]:
    """Append one gate run: ``subject`` names what was judged (``snapshot:…``, ``publish:3``, ``training_set:…``).
    The running job's metrics get the gate's status too (``setlist_gate_status``)."""
    jobmetrics.current().gate(gate, "fail" if not passed else "warn" if fields.get("warnings") else "pass")
    return _append(lineage_dir, GATES, {"gate": gate, "passed": passed, "subject": subject, **fields})


def gates(lineage_dir: Path) -> list[dict[str, Any]]:
    return _read(lineage_dir, GATES)
