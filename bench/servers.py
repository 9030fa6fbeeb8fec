"""Real ``python -m serving`` subprocesses for the scenarios, ready when their health check says so.

Readiness is the gRPC health Watch (``SetlistClient.wait_ready``), with the process's exit checked
around it, so a server that dies during start-up fails the run at once with its log tail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

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
    metrics_ports: tuple[int, ...] = ()  # each worker's /metrics (metrics_port + worker index); () if off

    def handler_cpu(self, rpc: str = "Rank") -> tuple[float, float] | None:
        """(CPU seconds, calls) that every worker's ``rpc`` handler has counted so far
        (``setlist_rpc_cpu_seconds_total`` and ``setlist_rpc_cpu_calls_total``, scraped from each
        worker's /metrics); None when metrics are off or a worker did not answer."""
        if not self.metrics_ports:
            return None
        seconds = calls = 0.0
        for port in self.metrics_ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                    text = reply.read().decode()
            except OSError:
                return None
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.labels.get("rpc") != rpc:
                        continue
                    if sample.name == "setlist_rpc_cpu_seconds_total":
                        seconds += sample.value
                    elif sample.name == "setlist_rpc_cpu_calls_total":
                        calls += sample.value
        return seconds, calls

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


def _free_run(n: int, tries: int = 50) -> tuple[int, ...]:
    """``n`` consecutive free loopback ports (worker i serves metrics on the first + i)."""
    for _ in range(tries):
        first = free_port()
        if first + n > 65536:
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + n):
                    sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return tuple(range(first, first + n))
    raise RuntimeError(f"found no {n} consecutive free ports for the workers' metrics")


@contextlib.contextmanager
def server(
    name: str,
    env: Mapping[str, str],
    log_dir: Path,
    engine: str = "fast",
    workers: int = 1,
    ready_timeout_s: float = 300.0,
    metrics: bool = False,
) -> Iterator[Running]:
    """Start one server on a free loopback port; stop it (SIGTERM, then SIGKILL) on exit. ``metrics``:
    each worker serves /metrics on a free port of its own (``Running.metrics_ports``)."""
    port = free_port()
    metrics_ports = _free_run(workers) if metrics else ()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    cmd = [
        sys.executable,
        "-m",
        "serving",
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_ports[0] if metrics_ports else 0),
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
        yield Running(name, target, proc.pid, log, time.monotonic() - started, metrics_ports)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
