"""Erasure reaches Track's buffered quarantine rows too: those a running server has not flushed yet,
and those a dead process left in its pending file."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ingest.erasure import erase
from setlist.eventlog import Quarantine
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings


def _settings(tmp_path: Path, flush_s: float) -> Settings:
    return Settings(data_dir=tmp_path / "data", hmac_key="test-hmac-key", track_quarantine_flush_s=flush_s)


def _rows(*users: str) -> pd.DataFrame:
    return pd.DataFrame({"event_id": [f"e{n}" for n in range(len(users))], "user_id": list(users), "type": "dance"})


def test_erasure_waits_for_a_live_buffer_and_removes_its_rows(tmp_path: Path) -> None:
    s = _settings(tmp_path, flush_s=0.05)
    gone, kept = pseudonymize("alice", s.secret_hmac_key()), pseudonymize("bob", s.secret_hmac_key())
    buffer = Quarantine(s.quarantine_dir).buffered(max_rows=1000, flush_s=s.track_quarantine_flush_s)
    try:
        buffer.put(_rows(gone, kept), ["unknown_type", "unknown_type"], "track")
        erase("alice", s)  # the rows are still in the live buffer's pending file when it starts
        users = set(Quarantine(s.quarantine_dir).read()["user_id"])
        assert gone not in users and kept in users
    finally:
        buffer.close()


def test_erasure_adopts_a_dead_process_pending_file(tmp_path: Path) -> None:
    s = _settings(tmp_path, flush_s=3600)
    gone, kept = pseudonymize("alice", s.secret_hmac_key()), pseudonymize("bob", s.secret_hmac_key())
    buffer = Quarantine(s.quarantine_dir).buffered(max_rows=1000, flush_s=3600)
    buffer.put(_rows(gone, kept), ["unknown_type", "unknown_type"], "track")
    # a crash: the file stays, its lock goes with the process (here: with the closed handle)
    buffer._stop.set()
    buffer._fh.close()
    assert any(p.name.startswith("pending-") for p in s.quarantine_dir.iterdir())
    erase("alice", s)
    users = set(Quarantine(s.quarantine_dir).read()["user_id"])
    assert gone not in users and kept in users
    assert not any(p.name.startswith("pending-") and os.path.getsize(p) for p in s.quarantine_dir.iterdir())
