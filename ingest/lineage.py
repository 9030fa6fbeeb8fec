"""The import ledger: one JSON line per import under ``<data_dir>/lineage/imports.jsonl``, so a model's
lineage can name the files its events came from, and how their consent was decided.

A line holds the file's name and SHA-256, row counts and the consent basis; never a user id.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LEDGER = "imports.jsonl"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_import(lineage_dir: Path, **fields: Any) -> dict[str, Any]:
    """Append one import's record (fsynced: the ledger is the audit trail) and return it."""
    lineage_dir.mkdir(parents=True, exist_ok=True)
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **fields}
    with open(lineage_dir / LEDGER, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return record


def imports(lineage_dir: Path) -> list[dict[str, Any]]:
    """Every import recorded, oldest first."""
    path = lineage_dir / LEDGER
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
