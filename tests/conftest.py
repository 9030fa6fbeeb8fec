"""Shared fixtures only: fresh settings per test, and real servers for integration tests.

``redis_server``, ``postgres_server`` and ``pushgateway`` start their own servers on free loopback ports (never the ones
``make services`` runs) once per session. A missing server binary skips the tests that need it, with
the command that installs it; with SETLIST_REQUIRE_SERVERS=1 (as CI sets) it fails them instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import MissingServer, PostgresServer, PushgatewayServer, RedisServer, skip_or_fail
from tests.spark_fixtures import spark_session  # noqa: F401  (the shared Spark session fixture)

# Session fixtures of the generated tiny world (tiny_world, tiny_copy), defined beside the pipeline helpers.
pytest_plugins = ["tests.world"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's directory is its kind: tests/integration/ and tests/e2e/ carry the marker of that name
    (declared in pyproject.toml), so ``-m "not e2e"`` selects by layer without per-file marks."""
    for item in items:
        kind = Path(str(item.fspath)).parent.name
        if kind in ("integration", "e2e"):
            item.add_marker(kind)


def _missing(exc: MissingServer) -> None:
    skip_or_fail(str(exc))


@pytest.fixture(scope="session", autouse=True)
def protos() -> None:
    """Generate the gRPC code (a no-op when it is newer than every .proto), so any test, in any
    layer or order, runs from a fresh clone without `make protos`."""
    from scripts import protogen

    protogen.generate()


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """``get_settings`` is cached; clear it so each test sees its own environment."""
    from setlist.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of our own: ``.url`` is redis://127.0.0.1:PORT/0; ``stop()``/``kill()``/``start()``
    take it away and bring it back on the same port with the same data."""
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except MissingServer as exc:
        _missing(exc)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of our own: ``.url`` is postgresql://setlist:setlist@127.0.0.1:PORT/setlist;
    ``create_database()`` gives a fresh database owned by the same role."""
    try:
        server = PostgresServer()
    except MissingServer as exc:
        _missing(exc)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushgatewayServer]:
    """A Prometheus Pushgateway of our own (``.url``, ``.metrics()``), for the batch jobs' pushes."""
    try:
        server = PushgatewayServer(tmp_path_factory.mktemp("pushgateway"))
    except MissingServer as exc:
        _missing(exc)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def production_settings(tmp_path: Path, redis_server: RedisServer, postgres_server: PostgresServer):
    """Production-profile settings on the test servers, isolated per test: a fresh PostgreSQL
    database (Feast registry and MLflow), an emptied Redis, and data under tmp_path. The tests serve
    plaintext on loopback without tokens, which production allows only when told (``insecure``)."""
    from setlist.settings import Settings

    redis_server.start()  # a fault test may have left it stopped
    redis_server.flush()
    return Settings(
        profile="production",
        data_dir=tmp_path / "data",
        redis_url=redis_server.url,
        database_url=postgres_server.create_database(),
        mlflow_tracking_uri=None,
        hmac_key="test-key-production",
        insecure=True,
    )
