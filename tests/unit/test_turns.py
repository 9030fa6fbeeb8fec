"""Which batch jobs run together on one data directory: imports one at a time, an erasure alone against
the jobs that could write its user back, and readers of the event log against its rewriters. Each wait is
said before it starts; a usage error leaves no lock file behind."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from setlist import swap, turns
from setlist.compaction import compact
from setlist.errors import UsageError
from setlist.eventlog import EventLog
from setlist.settings import Settings
from tests.unit.test_compaction import events


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(data_dir=tmp_path / "data", hmac_key="test-hmac-key")
    log = EventLog(s.events_dir)
    for f in range(4):
        log.append(events(f"e{f}", 3), name=f"j{f}")
    return s


class Waiter:
    """Runs ``enter`` in a thread and tells when it says it waits, and when it got in."""

    def __init__(self, enter: Callable[[Callable[[str], None]], object]) -> None:
        self.said: list[str] = []
        self.waiting, self.inside, self.leave = threading.Event(), threading.Event(), threading.Event()
        self.error: BaseException | None = None

        def say(line: str) -> None:
            if line.startswith("waiting"):  # not a job's other progress lines
                self.said.append(line)
                self.waiting.set()

        def run() -> None:
            try:
                with enter(say):  # type: ignore[attr-defined]
                    self.inside.set()
                    self.leave.wait(timeout=30)
            except BaseException as exc:  # reported to the test thread
                self.error = exc
                self.inside.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def done(self) -> None:
        self.leave.set()
        self.thread.join(timeout=30)
        assert self.error is None, self.error


def _job(settings: Settings, name: str) -> Callable[[Callable[[str], None]], object]:
    return lambda say: turns.job(settings, name, say)


def test_a_second_import_waits_for_the_first(settings: Settings) -> None:
    with turns.job(settings, "import", lambda _: None):
        second = Waiter(_job(settings, "import"))
        assert second.waiting.wait(timeout=30) and not second.inside.is_set()
        assert second.said == ["waiting for another import into this data directory"]
    assert second.inside.wait(timeout=30)
    second.done()


@pytest.mark.parametrize("name", ["generate", "materialize", "validate", "train", "retention", "compaction"])
def test_a_second_run_of_a_job_waits_for_the_first(settings: Settings, name: str) -> None:
    with turns.job(settings, name, lambda _: None):
        second = Waiter(_job(settings, name))
        assert second.waiting.wait(timeout=30) and not second.inside.is_set()
        assert second.said == [f"waiting for another {name} run on this data directory to finish"]
        other = Waiter(_job(settings, "validate" if name != "validate" else "train"))
        assert other.inside.wait(timeout=30) and other.said == []  # another job does not wait for it
        other.done()
    assert second.inside.wait(timeout=30)
    second.done()


def test_a_usage_error_in_a_data_directory_the_run_made_leaves_no_turn_file_behind(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "fresh", hmac_key="test-hmac-key")
    with pytest.raises(UsageError), turns.job(s, "train", lambda _: None):
        raise UsageError("--scale bogus")  # the first run in a fresh data directory, misused
    assert not s.data_dir.exists()


def test_a_run_waiting_for_its_turn_is_no_run_of_the_job_yet(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from setlist import jobmetrics

    said, ran = threading.Event(), threading.Event()
    monkeypatch.setattr(turns, "_stderr", lambda line: said.set())
    monkeypatch.setattr("setlist.settings.get_settings", lambda: settings)

    @jobmetrics.reports("validate")
    def command() -> None:
        ran.set()

    with turns.own(settings, "validate", lambda _: None):  # another validate is running
        waiting = threading.Thread(target=command, daemon=True)
        waiting.start()
        assert said.wait(timeout=30)  # it says it waits, then blocks on the turn
        assert not ran.is_set() and jobmetrics.running(settings.status_dir) == []  # not marked as running
    waiting.join(timeout=30)
    assert ran.is_set() and not waiting.is_alive()


@pytest.mark.parametrize("name", sorted(turns.WRITES_USERS))
def test_an_erasure_and_a_job_that_could_write_its_user_back_wait_for_each_other(settings: Settings, name: str) -> None:
    with turns.job(settings, name, lambda _: None):
        erasure = Waiter(lambda say: turns.erasure(settings, say))
        assert erasure.waiting.wait(timeout=30) and not erasure.inside.is_set()
        assert "could write the user back" in erasure.said[0]
    assert erasure.inside.wait(timeout=30)
    later = Waiter(_job(settings, name))  # started while the erasure runs
    assert later.waiting.wait(timeout=30) and not later.inside.is_set()
    assert later.said == ["waiting for a running erasure to finish (make erase)"]
    erasure.done()
    assert later.inside.wait(timeout=30)
    later.done()


def test_jobs_that_only_read_or_only_carry_rows_run_together(settings: Settings) -> None:
    with turns.job(settings, "materialize", lambda _: None):
        with turns.job(settings, "train", lambda _: None), turns.job(settings, "validate", lambda _: None):
            with turns.job(settings, "import", lambda _: None):
                pass  # no wait: nothing was said, nothing blocked


@pytest.mark.parametrize("name", sorted(turns.READS_LOG))
def test_a_reader_of_the_log_is_not_compacted_under_and_waits_for_a_compaction(settings: Settings, name: str) -> None:
    log = EventLog(settings.events_dir)
    before = sorted(log.files())
    with turns.job(settings, name, lambda _: None):
        stats = compact(log.root, min_age_s=0).get("events")
        assert stats.merges == [] and any("is in use" in n for n in stats.notes)
        assert sorted(log.files()) == before  # not a file merged or deleted under the reader
    with swap.locked(log.root):  # a compaction is running
        reader = Waiter(_job(settings, name))
        assert reader.waiting.wait(timeout=30) and not reader.inside.is_set()
        assert reader.said == ["waiting for a compaction, retention or erasure of the event log to finish"]
    assert reader.inside.wait(timeout=30)
    reader.done()


def test_retention_waits_for_a_reader(settings: Settings) -> None:
    from datetime import UTC, datetime

    from setlist.retention import apply

    s = settings.model_copy(update={"retention_events_days": 1})
    with turns.job(s, "train", lambda _: None):
        retention = Waiter(lambda say: _applying(s, say, apply, datetime(2027, 1, 1, tzinfo=UTC)))
        assert retention.waiting.wait(timeout=30) and not retention.inside.is_set()
        assert EventLog(s.events_dir).count() == 12  # nothing deleted while the reader runs
    assert retention.inside.wait(timeout=30)
    retention.done()
    assert EventLog(s.events_dir).count() == 0


@contextmanager
def _applying(s: Settings, say: Callable[[str], None], apply: Callable[..., object], now: object) -> Iterator[None]:
    apply(s, now=now, progress=say)
    yield


def test_lock_files_stay_whatever_the_run_so_no_two_jobs_hold_the_same_turn_on_two_files(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "fresh", hmac_key="test-hmac-key")
    with turns.job(s, "materialize", lambda _: None):
        with pytest.raises(UsageError), turns.job(s, "import", lambda _: None):
            raise UsageError("no such column")  # the first run in a fresh data directory, misused
        assert (s.data_dir / turns.TURNS / "users").exists()
        erasure = Waiter(lambda say: turns.erasure(s, say))
        assert erasure.waiting.wait(timeout=30) and not erasure.inside.is_set()  # still excluded
    assert erasure.inside.wait(timeout=30)
    erasure.done()


@pytest.mark.parametrize("name", sorted(turns.READS_LOG))
def test_an_empty_data_directory_gets_no_event_log_from_a_job_taking_its_turns(tmp_path: Path, name: str) -> None:
    s = Settings(data_dir=tmp_path / "fresh", hmac_key="test-hmac-key")
    with turns.job(s, name, lambda _: None):
        pass
    assert not s.events_dir.exists()
