"""Deadlines on serving's dependencies: a PostgreSQL that hangs or is down, an MLflow registry that
does not answer. Each call under test runs on a daemon thread joined with a bound, so a regression
fails the test instead of hanging the session."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from feature_repo.store import get_store
from serving.identity_writer import IdentityBacklogFull, IdentityWriter
from serving.rollout.canary import CanaryPolicy
from serving.rollout.driver import Rollout
from serving.rollout.models import Bounded, ModelBundle, ModelHolder, RegistryTimeout
from serving.rollout.routing import CANARY, CHAMPION
from serving.tracking import Tracker
from serving.types import TrackEvent
from setlist.eventlog import Quarantine
from setlist.pseudonym import IdentityMap, pseudonymize
from setlist.settings import Settings
from tests.fakes.dataplane import FakeJournal

KEY = b"test-key-timeouts"
BOUND_S = 10.0  # far above every deadline below, far below what the unbounded calls take


def _sqlalchemy_url(url: str) -> str:
    return Settings(database_url=url).sqlalchemy_database_url


def _finishes(fn: Callable[[], Any], within: float) -> tuple[bool, Any, float]:
    """Run ``fn`` on a daemon thread; (finished within the bound, its result or exception, seconds)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = fn()
        except Exception as exc:
            box["out"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    return not thread.is_alive(), box.get("out"), time.monotonic() - started


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A port that completes TCP handshakes and then never says a word, like a frozen server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # the kernel queues connections; nobody accepts or answers them
        yield sock.getsockname()[1]


@contextlib.contextmanager
def row_locked(url: str, pseudonym: str) -> Iterator[None]:
    """Another session inserts ``pseudonym`` and holds the transaction open: an insert of the same
    key waits for it, as a statement behind a stuck transaction does."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("INSERT INTO identity_map (pseudonym, raw_id) VALUES (%s, 'other')", (pseudonym,))
        try:
            yield
        finally:
            conn.rollback()


class Watched:
    """An IdentityMap that announces each failed write, so a test can wait for the writer's retry."""

    def __init__(self, inner: IdentityMap) -> None:
        self.inner = inner
        self.failed = threading.Event()

    def remember(self, pairs: Any) -> None:
        try:
            self.inner.remember(pairs)
        except Exception:
            self.failed.set()
            raise

    def dispose(self) -> None:
        self.inner.dispose()


def _event(user: str) -> TrackEvent:
    return TrackEvent(
        event_id=f"e-{user}", user_id=user, item_id="i-1", type="play", timestamp_ms=int(time.time() * 1000)
    )


def _tracker(tmp_path: Path, identities: Any) -> Tracker:
    return Tracker(FakeJournal(), None, Quarantine(tmp_path / "quarantine"), identities)


def _track(tracker: Tracker, user: str) -> Callable[[], Any]:
    return lambda: tracker.track([_event(user)], None, lambda raw: pseudonymize(raw, KEY))


# --- PostgreSQL deadlines -------------------------------------------------------------------------
def test_a_statement_stuck_behind_a_lock_is_cancelled_by_the_statement_timeout(postgres_server):
    url = postgres_server.create_database()
    ids = IdentityMap(_sqlalchemy_url(url), connect_timeout_s=2, statement_timeout_ms=300)
    try:
        with row_locked(url, "u_locked"):
            done, out, took = _finishes(lambda: ids.remember([("u_locked", "alice")]), BOUND_S)
        assert done, "the insert waited for the lock past the statement timeout"
        assert isinstance(out, sa.exc.OperationalError) and "statement timeout" in str(out)
        assert took < 3
    finally:
        ids.dispose()


def test_connecting_to_a_postgres_that_never_answers_fails_within_the_connect_timeout():
    with black_hole() as port:
        url = f"postgresql+psycopg://setlist:pw@127.0.0.1:{port}/setlist"
        done, out, took = _finishes(lambda: IdentityMap(url, connect_timeout_s=2, statement_timeout_ms=500), BOUND_S)
    assert done, "psycopg's own connect timeout is 130 s"
    assert isinstance(out, sa.exc.OperationalError) and took < 6


def test_the_feast_registry_engine_gets_the_connect_timeout(tmp_path: Path):
    with black_hole() as port:
        settings = Settings(
            profile="production",
            data_dir=tmp_path,
            database_url=f"postgresql://setlist:pw@127.0.0.1:{port}/setlist",
            database_connect_timeout_s=2,
        )
        done, out, took = _finishes(lambda: get_store(settings).list_feature_views(), BOUND_S)
    assert done, "the registry waited on a server that never answers"
    assert isinstance(out, Exception) and took < 6


def test_sqlite_engines_wait_on_a_lock_for_the_statement_timeout_then_fail(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/metadata.db"
    ids = IdentityMap(url, statement_timeout_ms=300)
    holder = sa.create_engine(url, connect_args={"timeout": 0})
    try:
        with holder.connect() as conn:  # closed without a commit: rolled back
            conn.execute(sa.text("INSERT INTO identity_map VALUES ('u_held', 'x')"))  # holds the write lock
            started = time.monotonic()
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                ids.remember([("u_other", "bob")])
            took = time.monotonic() - started
        assert 0.25 <= took < 3  # it waited its busy timeout, then gave up (sqlite3's default is 5 s)
    finally:
        holder.dispose()
        ids.dispose()


# --- Track and the identity map -------------------------------------------------------------------
def test_track_does_not_wait_for_a_locked_identity_map_and_the_write_is_retried(postgres_server, tmp_path: Path):
    url = postgres_server.create_database()
    watched = Watched(IdentityMap(_sqlalchemy_url(url), connect_timeout_s=2, statement_timeout_ms=300))
    writer = IdentityWriter(watched, retry_s=0.05, max_retry_s=0.2)
    tracker = _tracker(tmp_path, writer)
    pseudonym = pseudonymize("alice", KEY)
    try:
        with row_locked(url, pseudonym):
            done, result, took = _finishes(_track(tracker, "alice"), BOUND_S)
            assert done and took < 1, "Track waited for the identity map"
            assert result.accepted == 1
            assert watched.failed.wait(BOUND_S)  # the write hit the lock and timed out
        assert writer.wait_idle(BOUND_S)  # the lock is gone: a retry wrote it
        assert watched.inner.resolve(pseudonym) == "alice"
    finally:
        tracker.close()


def test_track_does_not_block_while_postgres_is_down_and_the_write_lands_once_it_is_back(
    postgres_server, tmp_path: Path
):
    url = postgres_server.create_database()
    watched = Watched(IdentityMap(_sqlalchemy_url(url), connect_timeout_s=2, statement_timeout_ms=1000))
    writer = IdentityWriter(watched, retry_s=0.05, max_retry_s=0.5)
    tracker = _tracker(tmp_path, writer)
    pseudonym = pseudonymize("bob", KEY)
    try:
        postgres_server.stop()
        done, result, took = _finishes(_track(tracker, "bob"), BOUND_S)
        assert done and took < 1 and result.accepted == 1
        assert watched.failed.wait(BOUND_S) and writer.pending() == 1
        postgres_server.start()
        assert writer.wait_idle(30)
        assert watched.inner.resolve(pseudonym) == "bob"
        assert writer.failures >= 1
    finally:
        postgres_server.start()  # the server is shared by the session
        tracker.close()


def test_a_full_identity_queue_refuses_at_once_instead_of_waiting():
    gate, entered = threading.Event(), threading.Event()

    class Stuck:
        def remember(self, pairs: Any) -> None:
            entered.set()
            gate.wait(BOUND_S)

        def dispose(self) -> None:
            return None

    writer = IdentityWriter(Stuck(), maxsize=1)
    try:
        writer.submit([("u_1", "a")])
        assert entered.wait(BOUND_S)  # the writer holds u_1 and hangs on the database
        writer.submit([("u_2", "b")])  # fills the queue
        done, out, took = _finishes(lambda: writer.submit([("u_3", "c")]), BOUND_S)
        assert done and isinstance(out, IdentityBacklogFull) and took < 1
        assert writer.pending() == 2
    finally:
        gate.set()
        writer.close()


# --- MLflow in the refresh loop -------------------------------------------------------------------
class HangingRegistry:
    """Every call waits until ``release`` is set, as MLflow does while it retries a dead store."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []

    def _hang(self, name: str) -> None:
        self.calls.append(name)
        self.release.wait(60)

    def status(self, pair: Any) -> tuple[str, None]:
        self._hang("status")
        return "", None

    def mark(self, pair: Any, tags: Any) -> None:
        self._hang("mark")

    def set_champion(self, pair: Any) -> None:
        self._hang("set_champion")

    def log_run(self, name: str, tags: Any, metrics: Any) -> None:
        self._hang("log_run")


def _bundle(pair: tuple[str, str]) -> ModelBundle:
    return ModelBundle(index=None, booster=None, candidates_version=pair[0], ranker_version=pair[1])  # type: ignore[arg-type]


def test_a_hanging_alias_lookup_does_not_stall_the_refresh(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, mlflow_timeout_s=0.3)
    registry = HangingRegistry()
    answers = iter([("1", "1")])
    lookups: list[str] = []

    def versions(_settings: Settings, alias: str) -> tuple[str, str]:
        lookups.append(alias)
        if len(lookups) > 1:  # the first lookup answers; every later one hangs
            registry.release.wait(60)
        return next(answers, ("2", "2"))

    holder = ModelHolder(settings, loader=lambda _s, pair: _bundle(pair), versions=versions)
    assert holder.refresh() and holder.current.pair == ("1", "1")
    try:
        done, changed, took = _finishes(holder.refresh, BOUND_S)
        assert done and changed is False and took < 2, "the refresh waited for the registry"
        assert holder.current.pair == ("1", "1")  # still serving what it had
        done, changed, took = _finishes(holder.refresh, BOUND_S)
        assert done and changed is False and took < 0.2  # no second call piles up behind the first
        assert len(lookups) == 2
    finally:
        registry.release.set()


def test_a_hanging_registry_does_not_stall_canary_judging(tmp_path: Path):
    registry = HangingRegistry()
    refused: list[Any] = []
    policy = CanaryPolicy(
        steps=(0.05, 1.0),
        min_requests=100,
        min_feedback=100,
        max_error_rate=0.01,
        max_p99_ratio=1.5,
        p99_slack_ms=2.0,
        max_skip_increase=0.03,
        alpha=0.01,
    )
    rollout = Rollout(
        policy,
        registry,
        True,
        load=_bundle,
        refuse=lambda pair, why: refused.append(pair),
        registry_timeout_s=0.3,
    )
    stable, candidate = _bundle(("1", "1")), _bundle(("1", "2"))

    def judge() -> bool:
        rollout.observe(stable)
        rollout.observe(candidate)  # starts the canary; recording it in the registry hangs
        for _ in range(150):
            rollout.on_served(CANARY, 0.005, True)  # every canary request fails: roll back
            rollout.on_served(CHAMPION, 0.005, False)
        return rollout.tick()

    try:
        done, acted, took = _finishes(judge, BOUND_S)
        assert done and took < 3, "judging waited for the registry"
        assert acted is True and rollout.state is not None and rollout.state.phase == "rolled_back"
        assert refused == [("1", "2")] and rollout.current is stable and rollout.share() == 0.0
    finally:
        registry.release.set()


def test_bounded_allows_one_stuck_call_and_recovers_when_it_ends():
    gate, entered = threading.Event(), threading.Event()
    bounded = Bounded(0.2)

    def stuck() -> str:
        entered.set()
        gate.wait(BOUND_S)
        return "late"

    with pytest.raises(RegistryTimeout):
        bounded(stuck)
    assert entered.is_set()
    with pytest.raises(RegistryTimeout, match="waiting"):
        bounded(lambda: "never called")
    gate.set()
    assert bounded.wait_idle(BOUND_S)
    assert bounded(lambda: "answered") == "answered"
    with pytest.raises(ZeroDivisionError):
        bounded(lambda: 1 / 0)
