"""Deadlines for the SQL stores (PostgreSQL in production, SQLite locally).

Without them a PostgreSQL that stops answering hangs a caller: psycopg waits 130 s to connect and a
statement waits forever. Every SQLAlchemy engine serving depends on gets :func:`engine_options`;
engines built by a library (MLflow's) get the same deadlines through libpq's environment
(:func:`libpq_environment`), since they take no connect arguments from us.
"""

from __future__ import annotations

import math
from typing import Any

#: libpq (and psycopg, which follows it) treats a connect timeout under 2 s as 2 s
MIN_CONNECT_TIMEOUT_S = 2


def _connect_timeout(seconds: float) -> int:
    return max(MIN_CONNECT_TIMEOUT_S, math.ceil(seconds))


def engine_options(url: str, connect_timeout_s: float | None, statement_timeout_ms: int | None) -> dict[str, Any]:
    """``create_engine`` keyword arguments bounding connects and statements for ``url``'s dialect.

    PostgreSQL: ``connect_timeout`` and a server-side ``statement_timeout`` (the server cancels the
    statement, so a lock wait or a runaway query ends too). SQLite has neither; it gets a busy timeout,
    its only wait. ``None`` leaves that bound unset (bulk jobs whose statements may rightly run long)."""
    args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        if connect_timeout_s is not None:
            args["connect_timeout"] = _connect_timeout(connect_timeout_s)
        if statement_timeout_ms is not None:
            args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
        # a pooled connection to a server that restarted is replaced instead of failing one call
        return {"connect_args": args, "pool_pre_ping": True} if args else {"pool_pre_ping": True}
    if url.startswith("sqlite") and statement_timeout_ms is not None:
        return {"connect_args": {"timeout": statement_timeout_ms / 1000}}
    return {}


def libpq_environment(connect_timeout_s: float, statement_timeout_ms: int) -> dict[str, str]:
    """The same deadlines as libpq environment variables, for engines a library creates itself."""
    return {
        "PGCONNECT_TIMEOUT": str(_connect_timeout(connect_timeout_s)),
        "PGOPTIONS": f"-c statement_timeout={int(statement_timeout_ms)}",
    }


def probe(url: str, connect_timeout_s: float) -> None:
    """Connect to ``url`` and run ``select 1``, within the connect deadline; raises what the driver raises.

    For a caller that would otherwise hand the URL to a library that retries for minutes (MLflow's store
    retries a refused connect for about two) or, on a hung server, waits a deadline per retry."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, **engine_options(url, connect_timeout_s, None))
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    finally:
        engine.dispose()
