"""What the numbers were measured on: cores, CPU model, load, and the code's git revision."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    # "dirty" lists tracked files with changes: the numbers belong to the revision plus those edits.
    # Porcelain lines are "XY path", and X may be a space, so nothing is stripped before slicing.
    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"revision": git("rev-parse", "HEAD").strip() or "unknown", "dirty_files": dirty}


def machine_info() -> dict[str, Any]:
    # Load average at the start: other processes on the box compete with the server and the load
    # generator for the same cores, and the report should say so.
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in load],
    }
