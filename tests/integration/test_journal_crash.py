"""The Track journal across processes: a server killed with SIGKILL strands nothing (another server
on the same data, or ``python -m serving recover-journals``, moves its acknowledged events into the
event log exactly once), and a second server on a live journal directory refuses to start."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from serving.client import SetlistClient, new_event
from setlist.eventlog import EventLog
from tests.servers import free_port, server_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]


def _env(settings, port: int, wal: Path, **extra: str) -> dict[str, str]:
    # no roll before the kill: every acknowledged event is only in the journal when A dies; the WAL
    # directory is keyed by pod name, as in deploy/k8s
    return server_env(settings, port, **{"SETLIST_JOURNAL_ROLL_S": "3600", "SETLIST_WAL_DIR": str(wal), **extra})


def _serve(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "serving"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _track_acknowledged(world, port: int, batches: int = 10) -> list[str]:
    """Track ``batches`` batches of 20 events on a ready server; the ids it acknowledged."""
    users = [str(u) for u in world.users["user_id"][:30]]
    acked: list[str] = []
    with SetlistClient(f"127.0.0.1:{port}", timeout=10) as client:
        assert client.wait_ready(timeout=60)
        for n in range(batches):
            batch = [new_event(users[(n + i) % len(users)], "track_000001", "play", value=0.9) for i in range(20)]
            accepted, _ = client.track(batch)
            assert accepted == len(batch)
            acked.extend(e.event_id for e in batch)
    return acked


def _stored(settings) -> Counter[str]:
    return Counter(EventLog(settings.events_dir).read(columns=["event_id"])["event_id"])


def _killed_with_acknowledged_events(world, wal: Path) -> list[str]:
    """Server A on its own journal directory: Track, then SIGKILL. Returns what A acknowledged."""
    port = free_port()
    proc = _serve(_env(world.settings, port, wal))
    try:
        acked = _track_acknowledged(world, port)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not set(acked) & set(_stored(world.settings))  # A rolled nothing: all of it is in its journal
    return acked


def test_a_server_on_the_same_data_recovers_a_killed_servers_journal_exactly_once(tiny_copy):
    s = tiny_copy.settings
    wal = s.data_dir / "wal"
    acked = _killed_with_acknowledged_events(tiny_copy, wal / "pod-a")
    port = free_port()
    proc = _serve(_env(s, port, wal / "pod-b", SETLIST_JOURNAL_SWEEP_DIR=str(wal)))
    try:
        with SetlistClient(f"127.0.0.1:{port}", timeout=10) as client:
            assert client.wait_ready(timeout=60)  # B swept A's orphaned directory before serving
        stored = _stored(s)
        assert [e for e in acked if stored[e] != 1] == []  # every acknowledged event, exactly once
        assert not (wal / "pod-a" / "worker-0").exists()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_recover_journals_moves_a_killed_servers_events_exactly_once(tiny_copy):
    s = tiny_copy.settings
    wal = s.data_dir / "wal"
    acked = _killed_with_acknowledged_events(tiny_copy, wal / "pod-a")
    env = _env(s, free_port(), wal / "unused")
    cmd = [sys.executable, "-m", "serving", "recover-journals", "--root", str(wal)]
    first = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"recovered {len(acked)} events" in first.stdout
    again = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "recovered 0 events" in again.stdout
    stored = _stored(s)
    assert [e for e in acked if stored[e] != 1] == []


def test_a_second_server_on_a_live_journal_refuses_to_start(tiny_copy):
    s = tiny_copy.settings
    wal = s.data_dir / "wal" / "pod-a"
    port = free_port()
    first = _serve(_env(s, port, wal))
    try:
        acked = _track_acknowledged(tiny_copy, port, batches=2)
        second = subprocess.run(
            [sys.executable, "-m", "serving"],
            env=_env(s, free_port(), wal, SETLIST_JOURNAL_LOCK_WAIT_S="0"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0
        err = second.stdout + second.stderr
        assert "cannot start" in err and "is locked by another process" in err, err
        assert "Traceback" not in err
        acked += _track_acknowledged(tiny_copy, port, batches=2)  # the first server's journal is intact
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        stored = _stored(s)
        assert [e for e in acked if stored[e] != 1] == []
    finally:
        first.kill()
        first.wait(timeout=30)
