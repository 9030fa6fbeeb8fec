"""What the numbers were measured on: cores, CPU model, load, how fast one core runs a fixed
workload, and the code's git revision."""

from __future__ import annotations

import hashlib
import hmac
import os
import platform
import statistics
import subprocess
import time
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


#: rounds of the reference workload; the median is reported, so one interrupted round does not count
REFERENCE_ROUNDS = 7


def _reference_round(factors: Any, scores: Any) -> None:
    import numpy as np

    key = b"setlist-reference"
    for n in range(2_000):  # what pseudonymizing ids costs: keyed hashes of short strings
        hmac.new(key, f"user-{n}".encode(), hashlib.sha256).digest()
    for _ in range(4):  # what candidate generation costs: a catalogue's scores, sorted and scanned
        np.argsort(-(factors @ factors[0]), kind="stable")
        np.flatnonzero(scores > 0.5)
    total = 0
    for n in range(100_000):  # and the interpreter's own glue
        total += n


def cpu_reference_ms() -> float:
    """How long one core takes for a fixed mix of the hot path's kinds of work (hashing, NumPy over a
    50,000-item catalogue, interpreter glue), median of ``REFERENCE_ROUNDS``.

    Machines of the same "class" differ: the same code's per-stage CPU moved 3x between two 2-core
    VMs of different CPU models. Two runs' CPU figures compare only after dividing by this."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    factors = rng.random((50_000, 64), dtype=np.float32)
    scores = rng.random(50_000, dtype=np.float32)
    times = []
    with threadpool_limits(1):  # one core's speed: BLAS threads would spin on the other
        for _ in range(3):  # warm: imports, page faults, the allocator's thresholds
            _reference_round(factors, scores)
        for _ in range(REFERENCE_ROUNDS):
            start = time.process_time()
            _reference_round(factors, scores)
            times.append(1000 * (time.process_time() - start))
    return round(statistics.median(times), 2)


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
