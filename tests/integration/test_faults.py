"""Fault tests: Redis dies under load, serving is killed mid-Track, PostgreSQL is missing at start."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from serving.bootstrap import build
from serving.client import ClientError, SetlistClient, new_event
from serving.grpc.server import start_server
from setlist.eventlog import EventLog
from tests.servers import free_port, server_env
from tests.world import SEED, build_world

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def production_world(production_settings, tmp_path):
    settings = production_settings.model_copy(
        update={
            "scale": "tiny",
            "seed": SEED,
            "port": 0,
            "metrics_port": 0,
            "host": "127.0.0.1",
            "reload_interval_s": 3600,
            "online_timeout_ms": 100,
        }
    )
    return build_world(settings.data_dir, settings)


def test_redis_killed_under_load_degrades_without_failures_and_recovers(production_world, redis_server):
    s = production_world.settings
    users = [str(u) for u in production_world.users["user_id"][:40]]
    server = build(s)
    with start_server(server, s) as running:
        client = SetlistClient(f"127.0.0.1:{running.port}", timeout=10)
        assert client.wait_ready(timeout=30)
        assert not client.rank(users[0], k=5).degraded
        failures: list[Exception] = []
        degraded: list[bool] = []
        stop = threading.Event()

        def load() -> None:
            n = 0
            while not stop.is_set():
                try:
                    degraded.append(client.rank(users[n % len(users)], k=5).degraded)
                except ClientError as exc:
                    failures.append(exc)
                n += 1

        worker = threading.Thread(target=load)
        worker.start()
        try:
            redis_server.kill()
            deadline = time.monotonic() + 30
            while not any(degraded[-20:]) and time.monotonic() < deadline:
                client.rank(users[1], k=5)  # keep going until the server notices
            seen_degraded = any(degraded)
            redis_server.start()
            deadline = time.monotonic() + 30
            recovered = False
            while time.monotonic() < deadline:  # the breaker lets one probe through per cool-down
                if not client.rank(users[2], k=5).degraded:
                    recovered = True
                    break
        finally:
            stop.set()
            worker.join()
            client.close()
    assert seen_degraded, "Rank never reported degraded while Redis was down"
    assert not failures, f"{len(failures)} failed Rank requests, first: {failures[0]}"
    assert recovered, "Rank did not recover after Redis came back"


def _serve(settings, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "serving"],
        env=_serve_env(settings, port),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _serve_env(settings, port: int) -> dict[str, str]:
    return server_env(settings, port, SETLIST_JOURNAL_ROLL_S="0.5")


def test_kill_9_during_track_load_loses_no_acknowledged_event(tiny_copy):
    s = tiny_copy.settings
    port = free_port()
    proc = _serve(s, port)
    acked: list[str] = []
    progress = threading.Condition()
    stop = threading.Event()
    users = [str(u) for u in tiny_copy.users["user_id"][:30]]
    try:
        client = SetlistClient(f"127.0.0.1:{port}", timeout=5)
        assert client.wait_ready(timeout=60)

        def load(stream: int) -> None:
            n = 0
            while not stop.is_set():
                batch = [
                    new_event(users[(n + i) % len(users)], "track_000001", "play", session_id=f"k{stream}", value=0.9)
                    for i in range(20)
                ]
                try:
                    accepted, _ = client.track(batch)
                except ClientError:
                    return  # the server died: these were never acknowledged
                if accepted:
                    with progress:
                        acked.extend(e.event_id for e in batch)
                        progress.notify_all()
                n += 1

        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        with progress:
            progress.wait_for(lambda: len(acked) >= 400, timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join()
        client.close()
        assert len(acked) >= 400
        # restart: the journal is recovered into the event log before serving
        proc = _serve(s, port)
        client = SetlistClient(f"127.0.0.1:{port}", timeout=5)
        assert client.wait_ready(timeout=60)
        client.close()
        stored = set(EventLog(s.events_dir).read(columns=["event_id"])["event_id"])
        lost = [e for e in acked if e not in stored]
        print(f"acknowledged {len(acked)} events, lost {len(lost)}")
        assert lost == []
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _workers_ready(proc: subprocess.Popen, n: int) -> tuple[threading.Event, collections.deque[str]]:
    """Set once ``n`` distinct workers of ``proc`` have logged "worker ready" on stderr (which keeps
    being drained, so the server never blocks on a full pipe); with the last lines it wrote, to say
    what the server did when they never do."""
    ready, seen = threading.Event(), set()
    said: collections.deque[str] = collections.deque(maxlen=30)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            said.append(line.rstrip()[:300])
            if '"worker ready"' in line:
                try:
                    seen.add(json.loads(line)["worker"])
                except (ValueError, KeyError):
                    continue
                if len(seen) >= n:
                    ready.set()

    threading.Thread(target=read, daemon=True).start()
    return ready, said


def test_a_restart_with_fewer_workers_recovers_the_dropped_workers_journal(tiny_copy):
    """kill -9 a two-worker server after acknowledged Tracks on both workers, restart it with one:
    worker 1's journal has no owner any more, and the new worker 0 moves it into the log, once."""
    s = tiny_copy.settings
    wal = s.wal_dir
    port = free_port()
    env = {**_serve_env(s, port), "SETLIST_JOURNAL_ROLL_S": "3600", "SETLIST_WORKERS": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    ready, said = _workers_ready(proc, 2)
    users = [str(u) for u in tiny_copy.users["user_id"][:30]]
    acked: list[str] = []
    try:
        # health answers as soon as one worker listens; the kernel only spreads connections over the
        # workers that listen, so wait for both to say they are ready
        assert ready.wait(timeout=180), "the two workers did not both report ready; the server said:\n" + "\n".join(
            said
        )
        # each new client is a new connection, which the kernel hands to either worker
        for attempt in range(50):
            with SetlistClient(f"127.0.0.1:{port}", timeout=10) as client:
                assert client.wait_ready(timeout=60)
                batch = [new_event(users[(attempt + i) % len(users)], "track_000001", "play") for i in range(10)]
                assert client.track(batch)[0] == len(batch)
                acked.extend(e.event_id for e in batch)
            if all(any(p.stat().st_size for p in (wal / f"worker-{w}").glob("*.jsonl")) for w in (0, 1)):
                break
        else:
            pytest.fail("every connection went to one worker")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and both workers, at once
        proc.wait(timeout=30)
    proc = _serve(s, port)  # one worker now
    try:
        client = SetlistClient(f"127.0.0.1:{port}", timeout=5)
        assert client.wait_ready(timeout=60)
        client.close()
        stored = Counter(EventLog(s.events_dir).read(columns=["event_id"])["event_id"])
        assert [e for e in acked if stored[e] != 1] == []
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_postgres_unavailable_at_start_is_one_clear_error(tmp_path):
    port = free_port()  # nothing listens here
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SETLIST_PROFILE": "production",
        "SETLIST_DATA_DIR": str(tmp_path),
        "SETLIST_HMAC_KEY": "k",
        "SETLIST_DATABASE_URL": f"postgresql://setlist:secret-pw@127.0.0.1:{port}/setlist",
    }
    done = subprocess.run(
        [sys.executable, "-m", "serving"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    err = done.stdout + done.stderr
    assert "metadata store" in err and "unavailable" in err
    assert "Traceback" not in err and "secret-pw" not in err


def test_a_hung_redis_degrades_rank_within_the_online_timeout_not_the_bulk_clients(production_world, redis_server):
    # 20 ms per read; Feast's bulk client would wait 200 ms twice (its retry): past the 300 ms deadline
    s = production_world.settings.model_copy(update={"online_timeout_ms": 20, "online_breaker_failures": 100})
    users = [str(u) for u in production_world.users["user_id"][:8]]
    server = build(s)
    with start_server(server, s) as running:
        client = SetlistClient(f"127.0.0.1:{running.port}", timeout=10)
        try:
            assert client.wait_ready(timeout=30)
            for user in users:  # every user's key built and the connections open before Redis hangs
                assert not client.rank(user, k=5).degraded
            failures: list[Exception] = []
            degraded: list[bool] = []
            with redis_server.hung():
                for user in users:  # the breaker never opens: each Rank meets the hung Redis itself
                    try:
                        degraded.append(client.rank(user, k=5, timeout=0.3).degraded)
                    except ClientError as exc:
                        failures.append(exc)
            assert not client.rank(users[0], k=5).degraded, "Rank did not recover once Redis answered again"
        finally:
            client.close()
    assert not failures, f"{len(failures)} of {len(users)} Rank calls failed, first: {failures[0]}"
    assert degraded == [True] * len(users)
