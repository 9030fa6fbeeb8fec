"""``make cost`` as the README gives it: the tables, the report files, and the MLflow run it logs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from mlflow import MlflowClient

from setlist.settings import Settings
from tests import cost_world
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_make_cost_prints_the_tables_writes_the_report_and_logs_an_mlflow_run(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    cost_world.build(settings)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SETLIST_DATA_DIR": str(settings.data_dir),
        "SETLIST_PROFILE": "local",
        "SETLIST_HOST": "127.0.0.1",
        "SETLIST_METRICS_PORT": str(free_port()),  # nobody serves there
    }
    done = subprocess.run(["make", "cost"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "per engaged user" in done.stdout and "per 1,000" in done.stdout

    report = json.loads((settings.reports_dir / "cost" / "cost.json").read_text())
    run = MlflowClient(tracking_uri=settings.tracking_uri).get_run(report["mlflow_run_id"])
    assert run.info.run_name == "cost"
    assert run.data.metrics["cost_total"] > 0
    assert run.data.tags["cost.source.track_cpu"].startswith("no server running")
    artifacts = {a.path for a in MlflowClient(tracking_uri=settings.tracking_uri).list_artifacts(run.info.run_id)}
    assert {"cost.json", "cost.png"} <= artifacts
