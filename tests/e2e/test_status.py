"""``python -m ops status`` on a built world: every line of the loop, the JSON form, and the exit code
that cron and CI gate on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.servers import free_port, server_env

ROOT = Path(__file__).resolve().parents[2]


def _status(settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # a port nobody serves on: the serving lines say "not running" rather than finding a stray server
    environment = server_env(settings, free_port(), SETLIST_METRICS_PORT=str(free_port()), **env)
    return subprocess.run(
        [sys.executable, "-m", "ops", "status", *args],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_reports_each_part_of_the_loop_and_holds_on_a_fresh_world(tiny_copy):
    run = _status(tiny_copy.settings, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    names = {(line["section"], line["name"]) for line in report["lines"]}
    for expected in [
        ("events", "newest event"),
        ("events", "ingest lag"),
        ("features", "last publish"),
        ("features", "feature lag"),
        ("gates", "features"),
        ("gates", "training-set"),
        ("models", "champion"),
        ("models", "canary"),
        ("serving", "health"),
    ]:
        assert expected in names, expected
    health = next(line for line in report["lines"] if line["name"] == "health")
    assert "not running" in health["value"]
    slos = {s["name"]: s["state"] for s in report["slos"]}
    assert slos["feature_freshness"] == slos["model_quality"] == "holds"
    assert slos["rank_availability"] == "no data"
    assert report["ok"] is True


def test_status_exits_1_and_names_the_broken_slo(tiny_copy, tmp_path):
    slo = yaml.safe_load((ROOT / "deploy/prometheus/slo.yaml").read_text())
    for objective in slo["objectives"]:
        if "floor" in objective:
            objective["floor"] = 0.99  # no champion clears this
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(slo))
    run = _status(tiny_copy.settings, SETLIST_SLO_FILE=str(path))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "SLO broken: model_quality" in run.stdout


def test_a_missing_slo_file_is_one_line_and_exit_code_not_a_traceback(tiny_copy, tmp_path):
    run = _status(tiny_copy.settings, SETLIST_SLO_FILE=str(tmp_path / "missing.yaml"))
    assert run.returncode != 0
    assert "no SLO file" in run.stderr
    assert "Traceback" not in run.stderr
