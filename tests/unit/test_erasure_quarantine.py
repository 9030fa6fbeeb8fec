"""Erasure reaches Track's buffered quarantine rows too: those a running server has not flushed yet,
and those a dead process left in its pending file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

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


def test_a_later_import_leaves_an_erased_users_rows_out_everywhere(tmp_path: Path) -> None:
    from ingest.intake import ingest
    from setlist.eventlog import EventLog
    from setlist.pseudonym import IdentityMap

    s = _settings(tmp_path, flush_s=0.05)
    now = pd.Timestamp.now(tz="UTC").floor("s")

    def events(tag: str, users: list[str], kinds: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {"event_id": [f"{tag}{k}" for k in range(len(users))], "user_id": users, "item_id": "i1",
             "timestamp": [now - pd.Timedelta(minutes=k + 1) for k in range(len(users))], "type": kinds}
        )  # fmt: skip

    ingest(events("a", ["alice", "bob"], ["play", "play"]), s, "first")
    erase("alice", s)
    # the second file names alice again, once valid and once with a row that would be quarantined
    report = ingest(events("b", ["alice", "alice", "bob"], ["play", "dance", "skip"]), s, "second")
    assert (report.received, report.accepted, report.quarantined, report.erased, report.erased_users) == (3, 1, 0, 2, 1)
    # an import in chunks merges one report per chunk: the same erased user in two is one user
    report.merge(ingest(events("c", ["alice"], ["play"]), s, "third"))
    assert (report.erased, report.erased_users) == (3, 1)
    gone = pseudonymize("alice", s.secret_hmac_key())
    stored = EventLog(s.events_dir).read(include_erased=True)
    assert gone not in set(stored["user_id"]) and len(stored) == 2  # bob's two events alone
    assert not s.quarantine_dir.exists() or gone not in set(Quarantine(s.quarantine_dir).read()["user_id"])
    names = IdentityMap(s.metadata_url)
    try:
        assert names.resolve(gone) is None and names.resolve(pseudonymize("bob", s.secret_hmac_key())) == "bob"
    finally:
        names.dispose()


def test_a_killed_writers_temporaries_are_removed_and_its_users_still_resolvable(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.intake import ingest
    from ingest.residue import scan
    from setlist.eventlog import STALE_TEMPORARY_S, remove_stale_temporaries
    from setlist.pseudonym import IdentityMap

    s = _settings(tmp_path, flush_s=0.05)
    batch = _two_plays(s, ("alice", "bob"), ("a0", "a1"))
    gone = pseudonymize("alice", s.secret_hmac_key())
    # a killed import's batch, never renamed into place: stale, and one a live writer is writing now
    day = next(s.events_dir.glob("date=*"))
    stale, live = day / ".batch-1.parquet.tmp", day / ".batch-2.parquet.tmp"
    for path in (stale, live):
        pq.write_table(pa.table({"user_id": [gone]}), path)
    old = time.time() - STALE_TEMPORARY_S - 5
    os.utime(stale, (old, old))
    assert remove_stale_temporaries(s.events_dir) == 1 and not stale.exists() and live.exists()
    # the residue scan reads a temporary as the parquet it is, so it cannot hide a user
    assert any(f.where.endswith(".batch-2.parquet.tmp") for f in scan(s, {"pseudonym": gone}))
    live.unlink()
    # a run killed after its events were logged but before their users were remembered, run again: the
    # events are in the log already (not quarantined again), and their users are remembered all the same
    (s.data_dir / "metadata.db").unlink()  # the identity map as that run left it: without them
    quarantined = len(Quarantine(s.quarantine_dir).read())
    again = ingest(batch, s, "again")
    assert again.accepted == 0 and again.already_logged == 2 and not again.reasons
    assert len(Quarantine(s.quarantine_dir).read()) == quarantined
    names = IdentityMap(s.metadata_url)
    try:
        assert names.resolve(gone) == "alice"
    finally:
        names.dispose()


def test_an_erasure_killed_after_its_tombstone_shows_in_status_until_it_runs_again(tmp_path: Path) -> None:
    from ingest.erasure import ERASING, unfinished
    from ops.status import event_lines
    from setlist import liveness
    from setlist.eventlog import EventLog, erasure_digest

    s = _settings(tmp_path, flush_s=0.05)
    _alice_and_bob(s)
    erase("bob", s)  # finished: its receipt closes it
    assert unfinished(s) == []
    # alice's erasure killed right after its first write, the tombstone: no receipt
    alice = pseudonymize("alice", s.secret_hmac_key())
    EventLog(s.events_dir).tombstone(alice)
    (left,) = unfinished(s)
    assert left.digest == erasure_digest(alice)
    lines = {line.name: line for line in event_lines(s, left.started.timestamp() + 30)}
    cut = lines["erasure cut short"]
    assert cut.mark == "fail" and cut.value.startswith("1 erasure started") and "make erase" in cut.value
    assert f"digest {left.digest[:12]}" in cut.value and cut.age_s == pytest.approx(30, abs=1)
    # while an erasure runs, its tombstone without a receipt is no erasure cut short
    running = liveness.exclusive(s.data_dir / ERASING, {"digest": left.digest})
    assert running is not None
    assert unfinished(s) == []
    running.release(remove=False)
    erase("alice", s)  # run again, as the line says
    assert unfinished(s) == [] and "erasure cut short" not in {line.name for line in event_lines(s, time.time())}


def test_erasures_take_turns(tmp_path: Path) -> None:
    import threading

    from ingest.erasure import ERASING
    from ingest.intake import ingest
    from setlist import liveness

    s = _settings(tmp_path, flush_s=0.05)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    batch = pd.DataFrame(
        {"event_id": ["a0"], "user_id": ["alice"], "item_id": "i1", "timestamp": [now], "type": "play"}
    )  # fmt: skip
    ingest(batch, s, "first")
    other = liveness.exclusive(s.data_dir / ERASING, {"pid": 0})  # another erasure, running
    assert other is not None
    waiting, done = threading.Event(), []

    def said(step: str) -> None:
        if step.startswith("waiting for another erasure"):
            waiting.set()

    worker = threading.Thread(target=lambda: done.append(erase("alice", s, progress=said)))
    worker.start()
    assert waiting.wait(timeout=60)
    assert not done and not list((s.data_dir / "erasure" / "receipts").glob("*.json"))  # it waits its turn
    other.release(remove=False)
    worker.join(timeout=120)
    assert len(done) == 1 and done[0].path is not None and done[0].path.exists()


def test_an_erasure_whose_scan_found_the_user_shows_in_status_until_one_finds_none(tmp_path: Path) -> None:
    import json

    from ingest.erasure import left_copies, record_verification
    from ops.status import event_lines
    from setlist.eventlog import erasure_digest

    s = _settings(tmp_path, flush_s=0.05)
    _alice_and_bob(s)
    first = erase("alice", s)
    record_verification(first, 2)  # the scan after it still found the user (a job wrote them back)
    assert first.path is not None and json.loads(first.path.read_text())["residue"] == 2
    (digest, places, _), *_ = left_copies(s)
    assert (digest, places) == (erasure_digest(pseudonymize("alice", s.secret_hmac_key())), 2)
    line = {line.name: line for line in event_lines(s, 0)}["erasure left copies"]
    assert line.mark == "fail" and "found the user in 2 place(s)" in line.value and "make erase" in line.value
    first.path.rename(first.path.with_name("20000101T000000-" + first.path.name.split("-", 1)[1]))  # older
    again = erase("alice", s)
    record_verification(again, 0)
    assert left_copies(s) == [] and "erasure left copies" not in {line.name for line in event_lines(s, 0)}
    done = {line.name: line for line in event_lines(s, time.time())}["erasures"]  # alice, erased twice: one user
    assert done.mark == "ok" and done.value.startswith("1 user erased (receipts in ") and "s ago" in done.value


def _alice_and_bob(s: Settings) -> None:
    _two_plays(s, ("alice", "bob"), ("a0", "b0"))


def _two_plays(s: Settings, users: tuple[str, str], event_ids: tuple[str, str], source: str = "first") -> pd.DataFrame:
    """A play of each of ``users``, a minute and two ago, through the DataFrame intake; the batch sent."""
    from ingest.intake import ingest

    now = pd.Timestamp.now(tz="UTC").floor("s")
    batch = pd.DataFrame(
        {"event_id": list(event_ids), "user_id": list(users), "item_id": "i1",
         "timestamp": [now - pd.Timedelta(minutes=1), now - pd.Timedelta(minutes=2)], "type": "play"}
    )  # fmt: skip
    ingest(batch, s, source)
    return batch


def test_the_dataframe_intake_takes_ids_without_surrounding_spaces_and_erasure_reaches_them(tmp_path: Path) -> None:
    from setlist.eventlog import EventLog
    from setlist.pseudonym import identity_rows

    s = _settings(tmp_path, flush_s=0.05)
    _two_plays(s, (" alice", "alice\t"), ("a0", "a1"), "padded")
    alice = pseudonymize("alice", s.secret_hmac_key())
    assert set(EventLog(s.events_dir).read()["user_id"]) == {alice}
    assert identity_rows(s) == [(alice, "alice")]
    erase("alice", s)
    assert EventLog(s.events_dir).read().empty
