"""Gate results as files a CI system reads: JSON, and JUnit XML (which CI servers render as test
results: each gate a suite, each expectation a case, a failed one a failure, a skipped gate skipped).

Written whole or not at all (a temporary file renamed over the target), so a job that is killed
leaves no half report for the next step to misread.
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from validation.result import GateResult

#: the JUnit classname prefix: a case reads "validation.<gate>" beside its expectation
SUITE_PREFIX = "validation"


def as_dict(results: Sequence[GateResult], ran_at: datetime | None = None) -> dict[str, object]:
    """Every gate's verdict, notes and rows; ``passed`` as the exit code decides it."""
    ran = [r for r in results if r.skipped is None]
    return {
        "ran_at": (ran_at or datetime.now(UTC)).isoformat(),
        "passed": all(r.passed for r in ran),
        "failed_gates": [r.gate for r in ran if not r.passed],
        "gates": [
            {
                "gate": r.gate,
                "status": r.status,
                "skipped": r.skipped,
                "notes": list(r.notes),
                "warnings": r.warnings,
                "failures": r.failures,
                "data_docs": str(r.data_docs) if r.data_docs else None,
                "rows": [asdict(row) for row in r.rows],
            }
            for r in results
        ],
    }


def as_junit(results: Sequence[GateResult], ran_at: datetime | None = None) -> ET.Element:
    stamp = (ran_at or datetime.now(UTC)).replace(microsecond=0).isoformat()
    root = ET.Element("testsuites", name="setlist-validation")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=r.gate, timestamp=stamp)
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        if r.skipped is not None:
            case = ET.SubElement(suite, "testcase", classname=f"{SUITE_PREFIX}.{r.gate}", name=r.gate)
            ET.SubElement(case, "skipped", message=r.skipped)
            counts.update(tests=1, skipped=1)
        for row in r.rows:
            case = ET.SubElement(suite, "testcase", classname=f"{SUITE_PREFIX}.{r.gate}", name=row.expectation)
            detail = f"observed {row.observed}; expected {row.expected}"
            if row.status == "fail":
                ET.SubElement(case, "failure", message=detail, type="fail")
                counts["failures"] += 1
            elif row.status == "warn":  # passes the gate, and CI servers show a case's output beside it
                ET.SubElement(case, "system-out").text = f"warning: {detail}"
            counts["tests"] += 1
        if r.notes:
            ET.SubElement(suite, "system-out").text = "\n".join(r.notes)
        for key, n in counts.items():
            suite.set(key, str(n))
            totals[key] += n
    for key, n in totals.items():
        root.set(key, str(n))
    ET.indent(root)
    return root


def write_reports(
    results: Sequence[GateResult], json_path: Path | None = None, junit_path: Path | None = None
) -> list[Path]:
    """Write the reports asked for; returns the paths written."""
    ran_at = datetime.now(UTC)
    written = []
    if json_path is not None:
        _replace(json_path, (json.dumps(as_dict(results, ran_at), indent=2, default=str) + "\n").encode())
        written.append(json_path)
    if junit_path is not None:
        _replace(junit_path, ET.tostring(as_junit(results, ran_at), encoding="utf-8", xml_declaration=True) + b"\n")
        written.append(junit_path)
    return written


def _replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
