"""Running the README's `make` commands from a test, as a user would."""

from __future__ import annotations

import subprocess
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
