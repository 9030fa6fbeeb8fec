"""Real ``python -m serving`` subprocesses for the scenarios, ready when their health check says so.

Readiness is the gRPC health Watch (``SetlistClient.wait_ready``), with the process's exit checked
around it, so a server that dies during start-up fails the run at once with its log tail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.backing import free_port
from serving.client import SetlistClient

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Running:
    name: str
    target: str
    pid: int
    log: Path
    startup_s: float

    def cpu_s(self) -> float:
        """CPU seconds used so far by the server and its worker processes (user + system)."""
        by_process = self.cpu_by_process_s()
        return sum(by_process.values()) if by_process else float("nan")

    def cpu_by_process_s(self) -> dict[int, float]:
        """CPU seconds used so far by each process of the server (the parent and its workers), by pid;
        empty when the server is gone."""
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        used: dict[int, float] = {}
        for p in procs:
            try:
                t = p.cpu_times()
                used[p.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return used


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def server(
    name: str,
    env: Mapping[str, str],
    log_dir: Path,
    engine: str = "fast",
    workers: int = 1,
    ready_timeout_s: float = 300.0,
) -> Iterator[Running]:
    """Start one server on a free loopback port; stop it (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    cmd = [
        sys.executable,
        "-m",
        "serving",
        "--port",
        str(port),
        "--metrics-port",
        "0",
        "--engine",
        engine,
        "--workers",
        str(workers),
    ]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "SETLIST_HOST": "127.0.0.1", **env}
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        target = f"127.0.0.1:{port}"
        with SetlistClient(target) as client:
            # wait_ready blocks on the health stream; a dead process would make it wait the whole
            # timeout, so wait in slices and look at the process between them.
            deadline = started + ready_timeout_s
            while not client.wait_ready(timeout=min(5.0, max(deadline - time.monotonic(), 0.1))):
                if proc.poll() is not None:
                    raise RuntimeError(f"server {name} exited with {proc.returncode} during start-up:\n{_tail(log)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server {name} not SERVING after {ready_timeout_s:.0f}s:\n{_tail(log)}")
        yield Running(name, target, proc.pid, log, time.monotonic() - started)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
