"""The lineage ledgers: append-only JSON lines under ``<data_dir>/lineage/`` that let a model version
be traced back to its data (``python -m training lineage``).

- ``imports.jsonl``: one line per import: the file's name and SHA-256, row counts, the consent basis.
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


def record_import(lineage_dir: Path, **fields: Any) -> dict[str, Any]:
    """Append one import's record and return it."""
    return _append(lineage_dir, IMPORTS, fields)


def imports(lineage_dir: Path) -> list[dict[str, Any]]:
    """Every import recorded, oldest first."""
    return _read(lineage_dir, IMPORTS)


def record_gate(lineage_dir: Path, gate: str, passed: bool, subject: str, **fields: Any) -> dict[str, Any]:
    """Append one gate run: ``subject`` names what was judged (``snapshot:…``, ``publish:3``, ``training_set:…``).
    The running job's metrics get the gate's status too (``setlist_gate_status``)."""
    jobmetrics.current().gate(gate, "fail" if not passed else "warn" if fields.get("warnings") else "pass")
    return _append(lineage_dir, GATES, {"gate": gate, "passed": passed, "subject": subject, **fields})


def gates(lineage_dir: Path) -> list[dict[str, Any]]:
    return _read(lineage_dir, GATES)
