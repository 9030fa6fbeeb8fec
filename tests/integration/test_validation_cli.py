"""``python -m validation``: exit codes, messages, skipped inputs, stored references, Data Docs, CI reports."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feature_repo.declarations import load as load_declarations
from setlist.catalog import save_items
from setlist.eventlog import EventLog
from setlist.settings import get_settings
from validation.cli import app
from validation.skew import ParityInput
from validation.testing import clean_events, clean_feature_batch, clean_items, clean_training_set

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    events = clean_events(n=6000, days=15, users=150, items=300)
    EventLog(tmp_path / "events").append(events)
    save_items(clean_items(300), get_settings().catalog_path)
    yield tmp_path
    get_settings.cache_clear()


def _write_hive(frame: pd.DataFrame, root: Path) -> Path:
    """A hive-partitioned copy written with plain pyarrow (no contract coercion, so corruption survives)."""
    frame = frame.assign(date=pd.to_datetime(frame["timestamp"], utc=True).dt.strftime("%Y-%m-%d"))
    pq.write_to_dataset(pa.Table.from_pandas(frame, preserve_index=False), str(root), partition_cols=["date"])
    return root


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


def test_all_passes_skips_missing_inputs_and_builds_data_docs(data_dir):
    code, out = _invoke("all")
    assert code == 0, out
    assert "features: skipped: no feature batch" in out
    assert "training-set: skipped: no training set" in out
    assert "all gates passed" in out
    index = data_dir / "validation" / "data_docs" / "index.html"
    assert index.exists() and str(index) in out.replace("\n", "")
    assert (data_dir / "validation" / "reference" / "cardinality-eventlog.json").exists()


def test_corrupted_path_fails_and_names_the_expectation(data_dir, tmp_path):
    events = EventLog(data_dir / "events").read()
    events.loc[10, "type"] = "purchase"
    events.loc[11, "user_id"] = None
    corrupt = _write_hive(events, tmp_path / "corrupt")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SETLIST_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "validation", "events", "--path", str(corrupt)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "expect_column_values_to_be_in_set(type)" in proc.stdout
    assert "expect_column_values_to_not_be_null(user_id)" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_removed_column_in_path_fails(data_dir, tmp_path):
    events = EventLog(data_dir / "events").read().drop(columns=["locale"])
    code, out = _invoke("events", "--path", str(_write_hive(events, tmp_path / "nolocale")))
    assert code == 1 and "expect_column_to_exist(locale)" in out


def test_item_explosion_in_path_fails_cardinality(data_dir, tmp_path):
    events = EventLog(data_dir / "events").read()
    recent = pd.to_datetime(events["timestamp"]) >= events["timestamp"].max().floor("D") - timedelta(days=2)
    events.loc[recent, "item_id"] = [f"junk-{i}" for i in range(int(recent.sum()))]
    code, out = _invoke("cardinality", "--path", str(_write_hive(events, tmp_path / "exploded")))
    assert code == 1, out
    assert "expect_column_unique_value_count_to_be_between(item_id)" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (("events", "--path", "/no/such/dir"), "does not exist"),
        (("features",), "no feature batch"),
        (("training-set",), "no training set"),
        (("parity", "--adapter", "no_such_module_xyz:f"), "no parity adapter"),
        (("drift", "--holdout-days", "0"), "--holdout-days"),
        (("events", "--junit", "/"), "is a directory"),
    ],
)
def test_usage_errors_exit_2_without_traceback(data_dir, args, message):
    code, out = _invoke(*args)
    assert code == 2, out
    assert message in out and "Traceback" not in out


def test_features_and_training_set_gates_read_their_files(data_dir):
    newest = EventLog(data_dir / "events").read()["timestamp"].max().to_pydatetime()
    (data_dir / "features").mkdir()
    for view in ("user_profile", "item_stats"):
        batch = clean_feature_batch(view, newest, features=load_declarations())
        batch.to_parquet(data_dir / "features" / f"{view}.parquet")
    frame, _ = clean_training_set()
    # clean_events users whose number is a multiple of 17 opted out of personalization
    frame = frame[frame["user_id"].str[1:].astype(int) % 17 != 0].reset_index(drop=True)
    (data_dir / "training").mkdir()
    frame.to_parquet(data_dir / "training" / "training_set.parquet")
    assert _invoke("features")[0] == 0
    code, out = _invoke("training-set")
    assert code == 0, out
    frame.loc[0, "user_id"] = "u00017"
    frame.to_parquet(data_dir / "training" / "training_set.parquet")
    code, out = _invoke("training-set")
    assert code == 1 and "user_opted_out" in out


def fake_parity(settings) -> list[ParityInput]:
    """A stand-in for feature_repo's adapter: identical frames except one corrupted feature."""
    off = clean_feature_batch("item_stats", datetime(2024, 5, 1, tzinfo=UTC), snapshots=1, features=load_declarations())
    on = off.copy()
    on["item_plays_7d"] = on["item_plays_7d"] + 1
    return [
        ParityInput(
            "item_stats",
            on,
            off,
            "item_id",
            ["item_plays_7d", "item_genre"],
            ttl=timedelta(days=2),
            as_of=datetime(2024, 5, 1, tzinfo=UTC),
        )
    ]


def test_parity_gate_uses_the_adapter(data_dir):
    code, out = _invoke("parity", "--adapter", f"{__name__}:fake_parity")
    assert code == 1, out
    assert "match__item_plays_7d" in out


def test_learn_reference_stores_json(data_dir):
    code, out = _invoke("learn-reference")
    assert code == 0, out
    assert (data_dir / "validation" / "reference" / "cardinality-eventlog.json").exists()


def test_explicit_reference(data_dir, tmp_path):
    events = EventLog(data_dir / "events").read()
    cutoff = events["timestamp"].max().floor("D") - timedelta(days=2)
    reference = _write_hive(events[events["timestamp"] < cutoff], tmp_path / "reference")
    current = events[events["timestamp"] >= cutoff].copy()
    current["value"] = current["value"] * 0.3
    code, out = _invoke(
        "drift", "--path", str(_write_hive(current, tmp_path / "current")), "--reference", str(reference)
    )
    assert code == 1, out
    assert "expect_column_distribution_drift_to_be_less_than(value)[fail]" in out
    code, out = _invoke("cardinality", "--reference", str(reference))
    assert code == 0, out
    assert "not stored" in out


def test_ci_reports_say_what_the_exit_code_says(data_dir, tmp_path):
    """--json and --junit: a failing gate is a failure in both, a skipped gate skipped, every expectation
    a test case; the files agree with the table and the exit code."""
    events = EventLog(data_dir / "events").read()
    events.loc[10, "type"] = "purchase"
    corrupt = _write_hive(events, tmp_path / "corrupt")
    report, junit = tmp_path / "ci" / "gates.json", tmp_path / "ci" / "gates.xml"
    code, out = _invoke("all", "--path", str(corrupt), "--json", str(report), "--junit", str(junit))
    assert code == 1, out
    assert f"report: {report}" in out.replace("\n", "") and f"report: {junit}" in out.replace("\n", "")

    doc = json.loads(report.read_text())
    assert doc["passed"] is False and doc["failed_gates"] == ["events"]
    gates = {g["gate"]: g for g in doc["gates"]}
    assert "expect_column_values_to_be_in_set(type)" in gates["events"]["failures"]
    assert gates["features"]["status"] == "skipped" and gates["features"]["skipped"]
    assert {r["status"] for r in gates["events"]["rows"]} >= {"pass", "fail"}

    suites = {s.get("name"): s for s in ET.parse(junit).getroot()}
    assert set(suites) == set(gates)
    events_suite = suites["events"]
    failed = [c.get("name") for c in events_suite if c.find("failure") is not None]
    assert failed == gates["events"]["failures"]
    assert int(events_suite.get("failures")) == len(failed)
    assert int(events_suite.get("tests")) == len(gates["events"]["rows"])
    assert suites["features"].find("testcase/skipped") is not None

    # the same run on clean data: passed, no failure anywhere, and the report replaced whole
    code, out = _invoke("all", "--json", str(report), "--junit", str(junit))
    assert code == 0, out
    assert json.loads(report.read_text())["passed"] is True
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and not list(root.iter("failure"))
    assert sorted(p.name for p in report.parent.iterdir()) == ["gates.json", "gates.xml"]


def test_a_ledger_it_may_not_write_fails_the_run_in_one_line_after_showing_every_gate(data_dir, monkeypatch):
    import errno

    from setlist import jobmetrics, lineage

    ledger = data_dir / "lineage" / "gates.jsonl"

    def refused(*args, **kwargs):  # what appending gives a user who may not write the ledger (tests run as root)
        raise PermissionError(errno.EACCES, "Permission denied", str(ledger))

    monkeypatch.setattr(lineage, "_append", refused)
    code, out = _invoke("all")
    assert code == 1 and "Traceback" not in out, out
    assert f"error: permission denied on {ledger}" in out.replace("\n", "")
    assert "events" in out and "cardinality" in out and "drift" in out  # the gates' results were shown
    samples = jobmetrics.read_status(get_settings().status_dir)["validate"]
    statuses = {dict(labels)["gate"] for (name, labels) in samples if name == "setlist_gate_status"}
    assert {"events", "cardinality", "drift"} <= statuses  # not only the first gate's
    assert samples[("setlist_job_failed", (("job", "validate"),))] == 1.0


def test_a_data_directory_that_does_not_exist_fails_the_gate_and_stays_absent(tmp_path, monkeypatch):
    from ops.__main__ import app as ops_app

    missing = tmp_path / "unmounted" / "data"
    monkeypatch.setenv("SETLIST_DATA_DIR", str(missing))
    get_settings.cache_clear()
    try:
        for command in (["all"], ["events"]):
            code, out = _invoke(*command)
            assert code == 2 and "Traceback" not in out, out
            assert f"the data directory {missing} does not exist (SETLIST_DATA_DIR)" in out.replace("\n", "")
        status = runner.invoke(ops_app, ["status", "--no-probe"])
        assert status.exit_code == 2 and f"the data directory {missing} does not exist" in status.stderr.replace(
            "\n", ""
        )
        assert not missing.exists() and not missing.parent.exists()  # no status file, no registry made there
    finally:
        get_settings.cache_clear()
