"""Running the README's `make` commands from a test, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_make(env: dict[str, str], *args: str) -> str:
    """``make ARGS`` in the repository with ``env``; its output, after checking it exited 0 without a
    traceback (either would be what a user saw instead of the step's own message)."""
    done = subprocess.run(["make", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"make {' '.join(args)} exited {done.returncode}:\n{out[-3000:]}"
    assert "Traceback" not in out, f"make {' '.join(args)} printed a traceback:\n{out[-3000:]}"
    return out


def fixture_env(data_dir: Path) -> dict[str, str]:
    """The environment a fixture's loop runs in: its own data directory and a fixed key."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SETLIST_DATA_DIR": str(data_dir),
        "SETLIST_HMAC_KEY": "e2e-key",
        "SETLIST_PROFILE": "local",
    }


def write_fixture(env: dict[str, str], command: str, out: Path, *args: str) -> str:
    """``python -m ingest COMMAND --out OUT ARGS``: what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "ingest", command, "--out", str(out), *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def import_and_train(env: dict[str, str], source: Path, import_args: str) -> dict[str, str]:
    """The README's loop on a file: import, materialize, validate, train; each step's output."""
    return {
        "import": run_make(env, "import", f"SOURCE={source}", f"IMPORT_ARGS={import_args}"),
        "materialize": run_make(env, "materialize"),
        "validate": run_make(env, "validate"),
        "train": run_make(env, "train"),
    }


def ranker_metrics(env: dict[str, str]) -> dict[str, float]:
    """The metrics of the one ranker a fixture's loop registered, from its MLflow run."""
    from mlflow import MlflowClient

    from setlist.settings import Settings

    settings = Settings(data_dir=Path(env["SETLIST_DATA_DIR"]))
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    (version,) = client.search_model_versions(f"name='{settings.ranker_model}'")
    return client.get_run(version.run_id).data.metrics
