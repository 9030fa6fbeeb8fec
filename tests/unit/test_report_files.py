"""validation.report_files: the CI reports of gate results, as JSON and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from validation.report_files import write_reports
from validation.result import GateResult, Row


def _results() -> list[GateResult]:
    drift = GateResult(
        "drift",
        [
            Row("psi(genre)", "0.31", "< 0.25", "warn", column="genre", measure="psi", value=0.31),
            Row('nulls(item_id) <NA> & "x"', "3 <NA>", "0", "fail", column="item_id"),
            Row("psi(device)", "0.01", "< 0.25", "pass", column="device", measure="psi", value=0.01),
        ],
        notes=["window: the newest 10% of events"],
    )
    return [drift, GateResult("features", skipped="no feature batch yet")]


def test_a_warning_passes_and_is_said_a_failure_fails_and_markup_survives(tmp_path: Path) -> None:
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    assert write_reports(_results(), report, junit) == [report, junit]

    doc = json.loads(report.read_text())
    assert doc["passed"] is False and doc["failed_gates"] == ["drift"]
    drift = doc["gates"][0]
    assert drift["warnings"] == ["psi(genre)"] and drift["failures"] == ['nulls(item_id) <NA> & "x"']
    assert drift["rows"][0]["value"] == 0.31 and drift["notes"] == ["window: the newest 10% of events"]

    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases['nulls(item_id) <NA> & "x"'].find("failure").get("message") == "observed 3 <NA>; expected 0"
    assert cases["psi(genre)"].find("failure") is None
    assert "warning: observed 0.31" in cases["psi(genre)"].find("system-out").text
    assert cases["features"].find("skipped").get("message") == "no feature batch yet"


def test_only_the_asked_reports_are_written_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "gates.xml"
    assert write_reports(_results()[1:], None, target) == [target]
    assert ET.parse(target).getroot().get("failures") == "0"
    assert [p.name for p in target.parent.iterdir()] == ["gates.xml"]
    assert write_reports(_results(), None, None) == []
