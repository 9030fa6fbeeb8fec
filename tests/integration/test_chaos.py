"""``make chaos``'s drills as tests, one per scenario (bench/chaos/scenarios.py): a real server under a
retrying Track load, one fault injected and removed; no acknowledged event may be lost and none
stored twice, and each fault must have done what it is there to do (refused Track, or not).

The local drills run on a copy of the session's tiny world; the production ones on a world built
once for this module on the session's Redis and PostgreSQL, which two of them kill and restart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from bench.chaos.lab import Lab, Skip, copy_world, production_settings
from bench.chaos.report import Row
from bench.chaos.scenarios import SCENARIOS, SLOW_DISK_MS
from tests.world import World, build_world

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(scope="module")
def production_world(redis_server, postgres_server, tmp_path_factory: pytest.TempPathFactory) -> World:
    redis_server.start()  # a fault test may have left it stopped
    redis_server.flush()
    data_dir = tmp_path_factory.mktemp("chaos-production") / "data"
    settings = production_settings(data_dir, redis_server.url, postgres_server.create_database())
    return build_world(data_dir, settings)


@pytest.fixture
def local_lab(tiny_copy: World, tmp_path: Path, request: pytest.FixtureRequest) -> Lab:
    return Lab.of(request.node.name, tiny_copy, tmp_path / "drill", Console())


@pytest.fixture
def production_lab(
    production_world: World, redis_server, postgres_server, tmp_path: Path, request: pytest.FixtureRequest
) -> Lab:
    redis_server.start()
    world = copy_world(production_world, tmp_path / "data")
    return Lab.of(request.node.name, world, tmp_path / "drill", Console(), redis_server, postgres_server)


def drill(name: str, lab: Lab) -> Row:
    try:
        row = SCENARIOS[name].run(lab)
    except Skip as exc:
        pytest.skip(str(exc))
    print(row)  # shown with -s or on failure: the numbers behind the verdict
    assert row.lost == 0, f"{row.lost} acknowledged events are not in the event log: {row}"
    assert row.duplicated == 0, f"{row.duplicated} events were stored more than once: {row}"
    return row


def not_the_disk(row: Row) -> int:
    """Failed calls other than those a stall of the machine's own disk explains (the server logs each
    journal write that outlasts SETLIST_JOURNAL_SLOW_WRITE_MS): on a busy CI disk one fsync can take
    longer than the clients' 2 s deadline, whatever the drill's fault."""
    return (row.failed_requests or 0) - (row.failed_in_disk_stalls or 0)


def test_kill_9_of_two_workers(local_lab):
    row = drill("kill -9, two workers", local_lab)
    assert row.failed_requests, "the killed server refused nothing: the clients never saw the fault"
    assert row.recovered, f"nothing was acknowledged after the restart: {row.note}"


def test_redis_killed_and_restarted(production_lab):
    row = drill("redis killed and restarted", production_lab)
    assert row.acknowledged
    assert not_the_disk(row) == 0, f"Track failed without Redis: {row.errors}; {row.note}"
    assert row.recovered, f"Rank stayed degraded after Redis came back: {row.note}"


def test_postgres_killed_mid_run(production_lab):
    row = drill("postgres killed mid-run", production_lab)
    assert row.acknowledged
    assert not_the_disk(row) == 0, (
        f"Track failed without PostgreSQL (identity writes are async): {row.errors}; {row.note}"
    )
    assert row.recovered


def test_journal_disk_full(local_lab):
    row = drill("journal disk full", local_lab)
    assert row.failed_requests, "the full disk refused no Track call"
    assert row.recovered, f"Track was not acknowledged again after the disk was freed: {row.note}"


def test_journal_directory_read_only(local_lab):
    row = drill("journal directory read-only", local_lab)
    assert row.failed_requests, "the read-only journal directory refused no Track call"
    assert row.recovered, f"Track was not acknowledged again after the directory was restored: {row.note}"


def test_client_retries_after_deadline(local_lab):
    row = drill("client retries after deadline", local_lab)
    assert row.failed_requests, "no call outlasted its deadline: the drill retried nothing"
    assert row.acknowledged == row.sent, f"not every retried batch was acknowledged in the end: {row.note}"


def test_slow_disk(local_lab):
    row = drill(f"slow disk (fsync +{SLOW_DISK_MS}ms)", local_lab)
    assert row.acknowledged and row.acknowledged == row.sent
    assert not_the_disk(row) == 0, (
        f"a {SLOW_DISK_MS} ms fsync failed calls with a 2 s deadline: {row.errors}; {row.note}"
    )
