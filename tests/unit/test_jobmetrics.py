"""Batch jobs' metrics: the status file each run leaves, how a failure keeps the last success, and
what library code reports into the running job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families

from setlist import jobmetrics, lineage
from setlist.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path, **over) -> Settings:
    return Settings(data_dir=tmp_path / "data", **over)


def _value(settings: Settings, file: str, name: str, **labels: str) -> float | None:
    return jobmetrics.read_status(settings.status_dir).get(file, {}).get((name, tuple(sorted(labels.items()))))


def test_a_successful_run_writes_its_status_file_in_prometheus_text_format(tmp_path):
    s = _settings(tmp_path)
    with jobmetrics.job_run(s, "validate") as m:
        m.gate("drift", "warn")
        m.set("setlist_drift", 0.31, column="hour_of_day", measure="psi")
    text = (s.status_dir / "validate.prom").read_text()
    names = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    assert {
        "setlist_job_duration_seconds",
        "setlist_job_last_success_timestamp_seconds",
        "setlist_job_last_run_timestamp_seconds",
        "setlist_job_failed",
        "setlist_gate_status",
        "setlist_gate_last_run_timestamp_seconds",
        "setlist_drift",
    } <= names
    assert _value(s, "validate", "setlist_gate_status", gate="drift") == 1.0
    assert _value(s, "validate", "setlist_drift", column="hour_of_day", measure="psi") == pytest.approx(0.31)
    assert _value(s, "validate", "setlist_job_failed", job="validate") == 0.0


def test_a_failed_run_is_marked_and_keeps_the_previous_success_time(tmp_path):
    s = _settings(tmp_path)
    with jobmetrics.job_run(s, "train"):
        pass
    first = _value(s, "train", "setlist_job_last_success_timestamp_seconds", job="train")
    assert first is not None
    with pytest.raises(RuntimeError), jobmetrics.job_run(s, "train"):
        raise RuntimeError("boom")
    assert _value(s, "train", "setlist_job_failed", job="train") == 1.0
    assert _value(s, "train", "setlist_job_last_success_timestamp_seconds", job="train") == first
    last_run = _value(s, "train", "setlist_job_last_run_timestamp_seconds", job="train")
    assert last_run is not None and last_run >= first


def test_a_job_that_never_succeeded_reports_no_success_time(tmp_path):
    s = _settings(tmp_path)
    with pytest.raises(SystemExit), jobmetrics.job_run(s, "materialize"):
        raise SystemExit(1)
    assert _value(s, "materialize", "setlist_job_failed", job="materialize") == 1.0
    assert _value(s, "materialize", "setlist_job_last_success_timestamp_seconds", job="materialize") is None


@pytest.mark.parametrize(("code", "failed"), [(0, 0.0), (1, 1.0)])
def test_a_cli_exit_counts_by_its_code(tmp_path, code, failed):
    s = _settings(tmp_path)
    with pytest.raises(typer.Exit), jobmetrics.job_run(s, "generate"):
        raise typer.Exit(code)
    assert _value(s, "generate", "setlist_job_failed", job="generate") == failed


def test_gate_records_reach_the_running_job_and_nothing_outside_one(tmp_path):
    s = _settings(tmp_path)
    lineage.record_gate(s.lineage_dir, "events", False, "snapshot:x")  # no job: nothing written
    assert not s.status_dir.exists()
    with jobmetrics.job_run(s, "validate"):
        lineage.record_gate(s.lineage_dir, "events", True, "snapshot:x", warnings=2)
        lineage.record_gate(s.lineage_dir, "parity", False, "snapshot:x")
    assert _value(s, "validate", "setlist_gate_status", gate="events") == 1.0  # warn
    assert _value(s, "validate", "setlist_gate_status", gate="parity") == 2.0  # fail


def test_quarantine_reasons_count_by_code_and_by_the_field_they_blame(tmp_path):
    s = _settings(tmp_path)
    with jobmetrics.job_run(s, "import") as m:
        m.quarantined(
            {
                "missing_id: user_id is empty": 3,
                "missing_id: item_id is empty": 1,
                "bad_timestamp: 'x' is not a timestamp": 2,
                "retention: older than the events retention": 5,
            }
        )
    text = (s.status_dir / "import.prom").read_text()
    assert _value(s, "import", "setlist_events_quarantined_total", reason="missing_id") == 4, text
    assert _value(s, "import", "setlist_events_quarantined_total", reason="retention") == 5
    assert _value(s, "import", "setlist_schema_violations_total", field="user_id") == 3
    assert _value(s, "import", "setlist_schema_violations_total", field="timestamp") == 2
    # retention is a policy, not a broken contract
    fields = {labels for (name, labels) in jobmetrics.read_status(s.status_dir)["import"] if "schema" in name}
    assert (("field", "retention"),) not in fields


def test_a_dry_run_reports_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    calls = []

    @jobmetrics.reports("retention")
    def retention(dry_run: bool = False) -> None:
        calls.append(dry_run)

    retention(dry_run=True)
    assert not (tmp_path / "data" / "status").exists()
    retention(dry_run=False)
    assert (tmp_path / "data" / "status" / "retention.prom").exists()
    assert calls == [True, False]


def test_an_unreachable_pushgateway_does_not_fail_the_job(tmp_path, caplog):
    from tests.servers import free_port

    s = _settings(tmp_path, pushgateway_url=f"http://127.0.0.1:{free_port()}", pushgateway_timeout_s=1.0)
    with jobmetrics.job_run(s, "compaction"):
        pass
    assert _value(s, "compaction", "setlist_job_failed", job="compaction") == 0.0
    assert "could not push compaction's metrics" in caplog.text


def test_an_unreadable_status_file_is_skipped_with_a_warning(tmp_path, caplog):
    s = _settings(tmp_path)
    s.status_dir.mkdir(parents=True)
    (s.status_dir / "broken.prom").write_text("setlist_job_failed{job=\n")
    with jobmetrics.job_run(s, "validate"):
        pass
    assert set(jobmetrics.read_status(s.status_dir)) == {"validate"}
    assert "unreadable status file broken.prom" in caplog.text


def test_a_traced_job_is_one_trace_a_root_span_and_a_span_per_step(tmp_path, capsys):
    import json

    from setlist import tracing

    s = _settings(tmp_path, tracing="console")
    try:
        with jobmetrics.job_run(s, "train") as m:
            m.step("fitting candidates")
            m.step("training the ranker")
    finally:
        tracing.shutdown()
    spans = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    by_name = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    assert set(by_name) == {"job.train", "train.step"}
    root = by_name["job.train"][0]
    steps = by_name["train.step"]
    assert [st["attributes"]["step"] for st in sorted(steps, key=lambda x: x["start_time"])] == [
        "fitting candidates",
        "training the ranker",
    ]
    assert {st["context"]["trace_id"] for st in steps} == {root["context"]["trace_id"]}
    assert {st["parent_id"] for st in steps} == {root["context"]["span_id"]}


def test_an_untraced_job_creates_no_spans(tmp_path, capsys):
    s = _settings(tmp_path)
    with jobmetrics.job_run(s, "train") as m:
        m.step("fitting candidates")
    assert '"name"' not in capsys.readouterr().err


def test_a_usage_error_is_no_run_and_leaves_no_file(tmp_path):
    from setlist.errors import UsageError

    s = _settings(tmp_path)
    with pytest.raises(UsageError), jobmetrics.job_run(s, "generate"):
        raise UsageError("unknown scale")
    assert not (tmp_path / "data").exists()


def test_counts_start_from_zero_in_each_run_even_after_feast_was_imported(tmp_path):
    # Feast's import switches prometheus_client into multiprocess mode, where a metric's value lives
    # in a per-process file keyed by its name: a second run in one process would start from the
    # first one's count. The order of imports is the point, so it runs in a fresh interpreter.
    script = f"""
import feast  # first, as a caller's module may
from pathlib import Path
from setlist import jobmetrics
from setlist.settings import Settings
for i in range(2):
    s = Settings(data_dir=Path({str(tmp_path)!r}) / str(i))
    with jobmetrics.job_run(s, "import") as m:
        m.quarantined({{"missing_id: item_id is empty": 1}})
    samples = jobmetrics.read_status(s.status_dir)["import"]
    print(samples[("setlist_events_quarantined_total", (("reason", "missing_id"),))])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["1.0", "1.0"], out.stderr


def test_a_killed_run_is_told_from_a_last_success_until_the_job_runs_again(tmp_path):
    from ops.status import job_lines

    s = _settings(tmp_path)
    with jobmetrics.job_run(s, "materialize"):
        assert [r.job for r in jobmetrics.running(s.status_dir)] == ["materialize"]  # running, and alive
        assert jobmetrics.running(s.status_dir)[0].alive is True
    assert jobmetrics.running(s.status_dir) == []  # a run that ends leaves no marker
    # the next run is SIGKILLed: no handler runs, so its status file still says the last run succeeded
    script = f"""
import os, signal
from pathlib import Path
from setlist import jobmetrics
from setlist.settings import Settings
with jobmetrics.job_run(Settings(data_dir=Path({str(s.data_dir)!r})), "materialize"):
    os.kill(os.getpid(), signal.SIGKILL)
"""
    died = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert died.returncode == -9, died.stderr
    (killed,) = jobmetrics.running(s.status_dir)
    assert killed.job == "materialize" and killed.alive is False
    lines = {line.name: line for line in job_lines(s, killed.started + 60)}
    assert lines["materialize (killed)"].mark == "fail" and "never ended" in lines["materialize (killed)"].value
    assert lines["materialize"].mark == "ok"  # the status file is the last run that reported
    # a later run's report is the job's newest word: the killed run's marker goes
    with jobmetrics.job_run(s, "materialize"):
        pass
    assert jobmetrics.running(s.status_dir) == [] and "materialize (killed)" not in {
        line.name for line in job_lines(s, killed.started + 120)
    }


def test_marks_are_judged_by_their_lock_whatever_host_or_pid_they_name(tmp_path):
    import json

    from ops.status import job_lines
    from setlist import liveness
    from setlist.errors import UsageError

    s = _settings(tmp_path)
    s.status_dir.mkdir(parents=True)
    facts = {"pid": 1, "host": "setlist-train-28391-abcde", "started": 1.0e9}  # a CronJob pod's PID 1
    # a pod killed by its deadline: its mark stays, unlocked
    (s.status_dir / f"train.gone{jobmetrics.RUNNING}").write_text(json.dumps({**facts, "job": "train"}))
    # another pod's run, alive (this process holds its lock in its stead)
    held = liveness.Mark.take(s.status_dir / f"materialize.live{jobmetrics.RUNNING}", {**facts, "job": "materialize"})
    try:
        lines = {line.name: line for line in job_lines(s, 1.0e9 + 60)}
        assert lines["train (killed)"].mark == "fail" and "setlist-train-28391-abcde" in lines["train (killed)"].value
        assert lines["materialize (running)"].mark == "none"
        # a mistyped command is no run of the job: the killed run stays on show
        with pytest.raises(UsageError), jobmetrics.job_run(s, "train"):
            raise UsageError("no such option")
        assert "train (killed)" in {line.name for line in job_lines(s, 1.0e9 + 60)}
        # a run that reports is the job's newest word; another job's live run is left alone
        for job in ("train", "materialize"):
            with jobmetrics.job_run(s, job):
                pass
        assert [(r.job, r.alive) for r in jobmetrics.running(s.status_dir)] == [("materialize", True)]
    finally:
        held.release(remove=True)


@pytest.mark.parametrize("fails", [True, False])
def test_a_run_whose_status_file_cannot_be_written_says_how_it_ended_in_its_mark(tmp_path, monkeypatch, fails):
    import errno
    from contextlib import nullcontext

    from ops.status import job_lines

    s = _settings(tmp_path)
    with jobmetrics.job_run(s, "train"):
        pass  # an earlier success, on record

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobmetrics, "write_to_textfile", full)  # the disk fills up during the next run
    with pytest.raises(RuntimeError) if fails else nullcontext():
        with jobmetrics.job_run(s, "train"):
            if fails:
                raise RuntimeError("the model could not be logged")
    monkeypatch.undo()
    (left,) = jobmetrics.running(s.status_dir)
    assert (left.alive, left.ended, left.unreported) == (
        False,
        "failed" if fails else "succeeded",
        "No space left on device",
    )
    lines = {line.name: line for line in job_lines(s, left.started + 60)}
    assert lines["train (unreported)"].mark == ("fail" if fails else "warn")
    assert "could not write its status file (No space left on device)" in lines["train (unreported)"].value
    assert "train (killed)" not in lines
    # once there is room, the next run's report is the job's newest word again
    with jobmetrics.job_run(s, "train"):
        pass
    assert jobmetrics.running(s.status_dir) == []


def test_an_unreported_run_still_clears_the_jobs_earlier_killed_marks(tmp_path, monkeypatch):
    import errno

    from ops.status import job_lines
    from setlist import liveness

    s = _settings(tmp_path)
    killed = liveness.Mark.take(
        s.status_dir / f"train.0123456789ab{jobmetrics.RUNNING}",
        {"job": "train", "pid": 1, "host": "h", "started": 0.0},
    )
    killed.release(remove=False)  # a run killed long ago

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobmetrics, "write_to_textfile", full)
    with jobmetrics.job_run(s, "train"):
        pass
    monkeypatch.undo()
    (left,) = jobmetrics.running(s.status_dir)
    assert left.ended == "succeeded"
    names = {line.name for line in job_lines(s, left.started + 60)}
    assert "train (killed)" not in names and "train (unreported)" in names


@pytest.mark.parametrize("ok", [True, False])
def test_a_mark_that_cannot_be_amended_is_kept_only_for_a_failed_run(tmp_path, monkeypatch, ok):
    import errno
    from contextlib import nullcontext

    from setlist import liveness

    s = _settings(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobmetrics, "write_to_textfile", full)
    monkeypatch.setattr(liveness.Mark, "amend", lambda self, **facts: False)
    with nullcontext() if ok else pytest.raises(RuntimeError), jobmetrics.job_run(s, "train"):
        if not ok:
            raise RuntimeError("failed")
    monkeypatch.undo()
    left = jobmetrics.running(s.status_dir)
    assert [(r.alive, r.ended) for r in left] == ([] if ok else [(False, None)])
