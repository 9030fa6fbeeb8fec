"""The feature publish log: every successful materialization gets a version.

Serving replicas poll the latest version to know when to reload the in-process item table and
drop cached rankings. It lives in the metadata SQL store so every replica sees the same log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.engine import Engine

_metadata = MetaData()
publishes = Table(
    "feature_publishes",
    _metadata,
    Column("version", Integer, primary_key=True, autoincrement=True),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("snapshot", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
)


@dataclass(frozen=True)
class Publish:
    version: int
    published_at: datetime
    snapshot: str
    rows: int


class PublishLog:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        _metadata.create_all(self.engine)

    def record(self, snapshot: str, rows: int) -> Publish:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            inserted = conn.execute(
                insert(publishes).values(published_at=now, snapshot=snapshot, rows=rows)
            ).inserted_primary_key
            if inserted is None:  # every backend we support returns it for a single-row insert
                raise RuntimeError("the publish log did not return the new row's id")
            version = inserted[0]
        return Publish(int(version), now, snapshot, rows)

    def latest(self) -> Publish | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(publishes).order_by(publishes.c.version.desc()).limit(1)).first()
        return None if row is None else Publish(int(row.version), row.published_at, row.snapshot, int(row.rows))

    def get(self, version: int) -> Publish | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(publishes).where(publishes.c.version == version)).first()
        return None if row is None else Publish(int(row.version), row.published_at, row.snapshot, int(row.rows))

    def dispose(self) -> None:
        self.engine.dispose()
