"""Real Redis and PostgreSQL servers for integration tests, and the environment of a ``python -m
serving`` subprocess.

The servers themselves live in ``bench.backing``, shared with ``make chaos``; they are re-exported
here so tests import them from one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.backing import (
    INSTALL_HINT,
    PG_OS_USER,
    MissingServer,
    PostgresServer,
    PushgatewayServer,
    RedisServer,
    find_postgres_bin,
    find_redis_server,
    free_port,
    wait_for,
)

__all__ = [
    "INSTALL_HINT",
    "PG_OS_USER",
    "MissingServer",
    "PostgresServer",
    "PushgatewayServer",
    "RedisServer",
    "find_postgres_bin",
    "find_redis_server",
    "free_port",
    "server_env",
    "wait_for",
]


def server_env(settings, port: int, **extra: str) -> dict[str, str]:
    """The environment of a `python -m serving` subprocess on ``settings``' data: loopback, a given
    port, no metrics port, no model reloads during the test; ``extra`` adds or overrides variables."""
    return {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "SETLIST_DATA_DIR": str(settings.data_dir),
        "SETLIST_HMAC_KEY": settings.hmac_key.get_secret_value(),
        "SETLIST_PORT": str(port),
        "SETLIST_HOST": "127.0.0.1",
        "SETLIST_METRICS_PORT": "0",
        "SETLIST_RELOAD_INTERVAL_S": "3600",
        **extra,
    }
