"""``serve()`` as a real process: one worker, or N forked workers sharing a port; SIGTERM drains."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from serving.client import SetlistClient
from serving.grpc import proto
from serving.grpc.workers import _reserve_port
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from setlist.settings import Settings
from serving.grpc import workers
from serving.grpc.workers import serve
from tests.fakes.transport import fake_factory
if sys.argv[4] == "poll":  # as on a platform without a parent-death signal
    workers._ask_kernel = lambda signum: False
settings = Settings(
    host="127.0.0.1",
    port=int(sys.argv[1]),
    workers=int(sys.argv[2]),
    metrics_port=0,
    grpc_max_connection_age_s=float(sys.argv[3]),
)
sys.exit(serve(settings, fake_factory, grace_s=5))
"""


@pytest.fixture
def run_serve(tmp_path):
    procs: list[subprocess.Popen] = []

    def start(
        workers: int, max_connection_age_s: float = 60.0, parent_watch: str = "kernel"
    ) -> tuple[subprocess.Popen, int, Path]:
        port, log = free_port(), tmp_path / f"serve-{len(procs)}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", SCRIPT, str(port), str(workers), str(max_connection_age_s), parent_watch],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        return proc, port, log

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _workers_ready(log: Path, n: int, within_s: float = 30.0) -> bool:
    """Whether ``n`` workers have said "worker ready" in ``log`` within ``within_s``: a client's first answer
    comes from whichever worker bound the port first, and until the others have, every connection is that
    one's. Polls the log for the event itself, at most ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if log.read_text().count('"msg":"worker ready"') >= n:
            return True
        time.sleep(0.05)
    return False


def _worker_of(port: int) -> str:
    # a private subchannel pool forces a new TCP connection, which SO_REUSEPORT may give to any worker
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        stub = proto.ranking_pb2_grpc.RankingServiceStub(ch)
        reply = stub.Rank(proto.ranking_pb2.RankRequest(user_id="u", k=1), timeout=10, wait_for_ready=True)
    return reply.model_version.split("/")[1]  # the fake puts its pid there


def test_single_worker_serves_and_stops_on_sigterm(run_serve):
    proc, port, log = run_serve(workers=1)
    with SetlistClient(f"127.0.0.1:{port}") as client:
        assert client.wait_ready(timeout=30), log.read_text()
        assert len(client.rank("u", k=2).items) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert '"msg":"server stopped"' in log.read_text()


def test_forked_workers_share_the_port(run_serve):
    proc, port, log = run_serve(workers=2)
    with SetlistClient(f"127.0.0.1:{port}") as client:
        assert client.wait_ready(timeout=30), log.read_text()
    assert _workers_ready(log, 2), log.read_text()
    pids = {_worker_of(port) for _ in range(24)}
    assert len(pids) == 2 and str(proc.pid) not in pids, log.read_text()
    proc.send_signal(signal.SIGTERM)  # the parent forwards it; each worker drains
    assert proc.wait(timeout=30) == 0, log.read_text()
    assert log.read_text().count('"msg":"server stopped"') == 2


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on processes it did not start through pidfds")
@pytest.mark.parametrize("parent_watch", ["kernel", "poll"])
def test_workers_stop_when_the_supervisor_is_killed(run_serve, parent_watch):
    proc, port, log = run_serve(workers=2, parent_watch=parent_watch)
    with SetlistClient(f"127.0.0.1:{port}") as client:
        assert client.wait_ready(timeout=30), log.read_text()
    assert _workers_ready(log, 2), log.read_text()
    pids = {int(_worker_of(port)) for _ in range(24)}
    assert len(pids) == 2, log.read_text()
    # the workers are not this process's children; a pidfd becomes readable when one exits, reaped or not
    pidfds = {pid: os.pidfd_open(pid) for pid in pids}
    try:
        proc.kill()  # no SIGTERM to forward: the workers must notice on their own
        proc.wait()
        deadline = time.monotonic() + 30
        running = set(pidfds.values())
        while running and time.monotonic() < deadline:
            exited, _, _ = select.select(list(running), [], [], deadline - time.monotonic())
            running -= set(exited)
        left = [pid for pid, fd in pidfds.items() if fd in running]
        for pid in left:  # do not leave them serving for the rest of the run
            os.kill(pid, signal.SIGKILL)
    finally:
        for fd in pidfds.values():
            os.close(fd)
    assert not left, log.read_text()
    assert log.read_text().count('"msg":"server stopped"') == 2  # drained, as on a SIGTERM
    assert log.read_text().count(f'"parent_watch":"{parent_watch}"') == 2  # each watched the way asked


def _pids_seen(client: SetlistClient, calls: int | None = None, until_both_within_s: float = 0.0) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + until_both_within_s
    n = 0
    while (calls is not None and n < calls) or (calls is None and len(seen) < 2 and time.monotonic() < deadline):
        seen.add(client.rank("u", k=1).model_version.split("/")[1])  # a failed call fails the test
        n += 1
    return seen


def test_one_connection_stays_on_one_worker_without_a_maximum_age(run_serve):
    # the imbalance the maximum age exists for: SO_REUSEPORT places connections, not calls
    proc, port, log = run_serve(workers=2, max_connection_age_s=0)
    with SetlistClient(f"127.0.0.1:{port}") as client:
        assert client.wait_ready(timeout=30), log.read_text()
        assert len(_pids_seen(client, calls=300)) == 1


def test_an_aged_connection_reconnects_to_any_worker_without_failing_a_call(run_serve):
    # each reconnect is a fresh draw of the kernel's hash, so one long-lived client reaches both
    # workers; the loop ends as soon as it has (every call must succeed across the reconnects)
    proc, port, log = run_serve(workers=2, max_connection_age_s=0.2)
    with SetlistClient(f"127.0.0.1:{port}") as client:
        assert client.wait_ready(timeout=30), log.read_text()
        assert len(_pids_seen(client, until_both_within_s=60)) == 2, log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()


def test_reserved_port_is_shared_with_reuseport():
    with _reserve_port("127.0.0.1", 0) as port:
        assert port > 0
        with socket.socket() as worker:
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", port))


def test_the_bench_load_generator_holds_as_many_connections_on_each_worker(run_serve):
    import asyncio
    from collections import Counter

    from bench.connections import balanced

    proc, port, log = run_serve(workers=2, max_connection_age_s=0)
    with SetlistClient(f"127.0.0.1:{port}") as client:
        assert client.wait_ready(timeout=30), log.read_text()
    assert _workers_ready(log, 2), log.read_text()

    async def served_by() -> tuple[dict[int, int], list[str]]:
        def open_channel() -> grpc.aio.Channel:
            return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])

        channels, counts = await balanced(open_channel, port, 6)
        try:
            pids = []
            for channel in channels:  # the fake names the pid of the worker that answered
                stub = proto.ranking_pb2_grpc.RankingServiceStub(channel)
                reply = await stub.Rank(proto.ranking_pb2.RankRequest(user_id="u", k=1), timeout=10)
                pids.append(reply.model_version.split("/")[1])
            return counts, pids
        finally:
            await asyncio.gather(*(c.close() for c in channels))

    counts, pids = asyncio.run(served_by())
    assert sorted(counts.values()) == [3, 3], log.read_text()
    assert Counter(pids) == {str(pid): n for pid, n in counts.items()}
    assert pids[0] != pids[1]  # interleaved: calls over the channels in turn alternate workers
