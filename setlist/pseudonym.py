"""Pseudonymization and the identity map.

Raw user ids never reach storage: every boundary (ingestion, import, serving) calls
:func:`pseudonymize` with the same key, so a pseudonym from a Rank request matches the one in the
event log. The identity map (pseudonym → raw id) lives in a SQL store so that a user can be
resolved on request and erased.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import Column, MetaData, String, Table, create_engine, delete, insert, select
from sqlalchemy.engine import Engine

from setlist.sqltimeouts import engine_options

PSEUDONYM_PREFIX = "u_"
_metadata = MetaData()
identity_table = Table(
    "identity_map",
    _metadata,
    Column("pseudonym", String(64), primary_key=True),
    Column("raw_id", String(512), nullable=False),
)


def pseudonymize(raw_user_id: str, key: bytes) -> str:
    digest = hmac.new(key, raw_user_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


class IdentityMap:
    def __init__(
        self, url: str, *, connect_timeout_s: float | None = None, statement_timeout_ms: int | None = None
    ) -> None:
        """The timeouts bound each connect and statement (serving sets them; a bulk import may not)."""
        self.engine: Engine = create_engine(
            url, future=True, **engine_options(url, connect_timeout_s, statement_timeout_ms)
        )
        _metadata.create_all(self.engine)

    def remember(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Store pseudonym → raw id pairs; existing pairs are left alone."""
        rows = [{"pseudonym": p, "raw_id": r} for p, r in dict(pairs).items()]
        if not rows:
            return
        with self.engine.begin() as conn:
            known: set[str] = set()
            for start in range(0, len(rows), 5000):
                chunk = [r["pseudonym"] for r in rows[start : start + 5000]]
                known.update(
                    conn.execute(
                        select(identity_table.c.pseudonym).where(identity_table.c.pseudonym.in_(chunk))
                    ).scalars()
                )
            fresh = [r for r in rows if r["pseudonym"] not in known]
            if fresh:
                conn.execute(insert(identity_table), fresh)

    def resolve(self, pseudonym: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(identity_table.c.raw_id).where(identity_table.c.pseudonym == pseudonym)
            ).scalar_one_or_none()

    def forget(self, pseudonym: str) -> bool:
        """Delete the pair, then reclaim the space it took: a deleted row lingers in SQLite's free
        pages and in PostgreSQL's dead tuples until then, readable by anyone with the file."""
        with self.engine.begin() as conn:
            removed = conn.execute(delete(identity_table).where(identity_table.c.pseudonym == pseudonym)).rowcount > 0
        if removed:
            reclaim(self.engine, identity_table.name)
        return removed

    def dispose(self) -> None:
        self.engine.dispose()


def reclaim(engine: Engine, table: str) -> None:
    """VACUUM (the whole file for SQLite, the table for PostgreSQL), outside any transaction."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        elif engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f'VACUUM "{table}"')
