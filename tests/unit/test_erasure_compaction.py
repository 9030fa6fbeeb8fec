"""Erasure and compaction rewrite the same files. An erasure waits for a running compaction instead of
failing on a file the merge deleted, and finishes a killed one before scrubbing, so no row of the user
stays in a staged output; nothing that clears a killed writer's leftovers removes a swap's staged outputs,
which after the commit point may be the only copy of their rows."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from ingest.erasure import erase
from setlist import swap
from setlist.compaction import compact
from setlist.eventlog import EventLog, Quarantine, remove_stale_temporaries
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings
from tests.unit.test_compaction import T0, Crash, _crash_fixture, _crash_target, events, ids


def _age(root: Path, seconds: float = 3600) -> int:
    """Every hidden temporary under ``root`` made ``seconds`` old, as a crash long ago leaves them."""
    then = time.time() - seconds
    temporaries = list(root.rglob(".*.tmp"))
    for p in temporaries:
        os.utime(p, (then, then))
    return len(temporaries)


def _killed_compaction(root: Path, at: str) -> None:
    log = EventLog(root)

    def crash(step: str) -> None:
        if step == at:
            raise Crash(step)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(swap, "checkpoint", crash)
        with pytest.raises(Crash):
            compact(log.root, target_bytes=_crash_target(log), min_age_s=0)


@pytest.mark.parametrize("at", ["staged", "committed", "renamed"])
def test_clearing_a_killed_writers_leftovers_keeps_a_swaps_staged_outputs(tmp_path: Path, at: str) -> None:
    log = _crash_fixture(tmp_path / "events")
    before = set(ids(log))
    _killed_compaction(log.root, at)
    assert _age(log.root) > 0
    stray = log.root / "date=2026-11-20" / ".journal-seg999.parquet.tmp"  # a killed write_atomic's file
    stray.write_bytes(b"PAR1")
    _age(log.root)
    assert remove_stale_temporaries(log.root) == 1 and not stray.exists()
    compact(log.root, target_bytes=_crash_target(log), min_age_s=0)  # finishes the killed swap
    assert Counter(ids(log)) == Counter(before)  # each row once, none lost
    assert not list(log.root.rglob(f"*{swap.STAGED_SUFFIX}"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", hmac_key="test-hmac-key")


def _two_users(settings: Settings) -> tuple[EventLog, str]:
    alice = pseudonymize("alice", settings.secret_hmac_key())
    log = EventLog(settings.events_dir)
    for f in range(6):
        log.append(pd.concat([events(f"a{f}", 3, user=alice), events(f"b{f}", 3, user="u_bob")]), name=f"j{f}")
    return log, alice


def _everywhere(root: Path) -> set[str]:
    """Users in every parquet file under ``root``, staged outputs included."""
    import pyarrow.parquet as pq

    files = [p for p in root.rglob("*") if p.is_file() and p.read_bytes()[:4] == b"PAR1"]
    files = [f for f in files if "user_id" in pq.read_schema(f).names]  # not the tombstones' digests
    return {u for f in files for u in pq.read_table(f, columns=["user_id"]).column("user_id").to_pylist()}


def test_an_erasure_finishes_a_killed_compaction_before_scrubbing(settings: Settings) -> None:
    log, alice = _two_users(settings)
    bobs = {e for e in ids(log) if e.startswith("b")}
    _killed_compaction(log.root, "committed")  # the staged outputs hold both users' rows, renamed by no one
    _age(log.root)
    receipt = erase("alice", settings)
    assert alice not in _everywhere(settings.data_dir) and "u_bob" in _everywhere(settings.data_dir)
    assert set(ids(log)) == bobs and not swap.pending(log.root)
    assert "interrupted compaction(s) of the events finished first" in next(
        p.note for p in receipt.places if p.name == "event log"
    )


def test_an_erasure_waits_for_a_running_compaction(settings: Settings) -> None:
    log, alice = _two_users(settings)
    Quarantine(settings.quarantine_dir).put(
        pd.DataFrame({"event_id": ["q1", "q2"], "user_id": [alice, "u_bob"]}), ["unknown_type"] * 2, "import"
    )
    said: list[str] = []
    waiting = threading.Event()

    def progress(line: str) -> None:
        said.append(line)
        if line.startswith("waiting for the events to be free"):
            waiting.set()

    done: list[BaseException | None] = []

    def run() -> None:
        try:
            erase("alice", settings, progress=progress)
            done.append(None)
        except BaseException as exc:  # reported to the test thread
            done.append(exc)

    with swap.locked(log.root):  # a compaction of the event log is running
        worker = threading.Thread(target=run)
        worker.start()
        assert waiting.wait(timeout=30), said
        assert worker.is_alive() and alice in set(log.read(include_erased=True)["user_id"])
        free = "waiting for the events to be free (a compaction, retention or down-sampling, or a job reading them)"
        assert free in said
    worker.join(timeout=60)
    assert done == [None]
    assert alice not in _everywhere(settings.data_dir) and "u_bob" in _everywhere(settings.data_dir)


def test_a_compaction_started_during_an_erasure_skips_the_dataset_and_says_why(settings: Settings) -> None:
    log, _ = _two_users(settings)
    with swap.locked(log.root, blocking=True):  # as an erasure holds it while it rewrites the log
        stats = compact(log.root, min_age_s=0).get("events")
    assert stats.merges == [] and any("erasure" in n for n in stats.notes)


def test_retention_finishes_a_killed_compaction_so_expired_rows_do_not_come_back(tmp_path: Path) -> None:
    from setlist.retention import apply

    s = Settings(data_dir=tmp_path / "data", hmac_key="test-hmac-key", retention_events_days=7)
    log = _crash_fixture(s.events_dir)
    _killed_compaction(log.root, "committed")
    results = apply(s, now=(T0 + pd.Timedelta(days=30)).to_pydatetime())
    assert "1 interrupted compaction(s) finished first" in results[0].notes
    compact(log.root, min_age_s=0)  # nothing left to finish: the expired rows stay gone
    assert ids(log) == Counter() and not list(log.root.rglob(f"*{swap.STAGED_SUFFIX}"))


def test_retention_and_erasure_take_their_turn_on_a_disk_too_full_for_a_lock_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room for the lock file: they lock the dataset's directory instead, and still run."""
    import errno

    from setlist.retention import apply

    log, _ = _two_users(settings)
    real_mkdir = Path.mkdir

    def full(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == swap.SWAPS:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", full)
    erase("alice", settings)
    apply(settings.model_copy(update={"retention_events_days": 7}), now=(T0 + pd.Timedelta(days=30)).to_pydatetime())
    monkeypatch.undo()
    assert not (log.root / swap.SWAPS).exists() and ids(log) == Counter()
