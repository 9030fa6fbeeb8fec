"""The lineage ledgers survive a write cut short: a full disk's partial line is taken back, a killed run's
torn line is ended before the next one and skipped by readers, so one bad write never makes the audit
trail (and the import, status and lineage commands that read it) unreadable."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from setlist import lineage


def test_a_line_the_disk_cuts_short_is_taken_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lineage.record_import(tmp_path, file="first.csv", accepted=3)
    before = (tmp_path / lineage.IMPORTS).read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        lineage.record_import(tmp_path, file="second.csv", accepted=5)
    monkeypatch.undo()
    assert (tmp_path / lineage.IMPORTS).read_bytes() == before
    assert [r["file"] for r in lineage.imports(tmp_path)] == ["first.csv"]


def test_a_torn_line_is_skipped_and_spoils_no_later_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lineage.record_import(tmp_path, file="first.csv", accepted=3)
    with open(tmp_path / lineage.IMPORTS, "ab") as fh:  # a run killed in the middle of its line
        fh.write(b'{"at": "2026-12-06T11:00:00+00:00", "file": "sec')
    lineage.record_import(tmp_path, file="third.csv", accepted=7)
    with caplog.at_level(logging.WARNING, logger="setlist.lineage"):
        files = [r["file"] for r in lineage.imports(tmp_path)]
    assert files == ["first.csv", "third.csv"]
    assert "line 2 is not a whole record" in caplog.text
    lines = (tmp_path / lineage.IMPORTS).read_text().splitlines()
    assert len(lines) == 3 and lines[1].endswith('"sec')  # the torn bytes kept as they were, on a line of their own


def test_gate_records_read_alike(tmp_path: Path) -> None:
    lineage.record_gate(tmp_path, "features", True, "publish-1")
    with open(tmp_path / lineage.GATES, "a") as fh:
        fh.write("[1, 2]\n")  # valid JSON, but no record
    lineage.record_gate(tmp_path, "training-set", False, "digest-2")
    assert [(g["gate"], g["passed"]) for g in lineage.gates(tmp_path)] == [("features", True), ("training-set", False)]
