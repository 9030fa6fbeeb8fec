"""The feature publish log: every successful materialization gets a version.

Serving replicas poll the latest version to know when to reload the in-process item table and
drop cached rankings. It lives in the metadata SQL store so every replica sees the same log.

And the mark a publish leaves beside the feature files while it writes them, read by the features
gate and by status, which must not import the pipeline that writes it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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


#: beside the feature files from a publish's first write until it is recorded: a publish killed, or ended by
#: an error, in between leaves it, and its files may mix two builds (the online store too)
PUBLISHING = ".publishing"


def mark_publishing(features_dir: Path, mode: str) -> None:
    facts = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "mode": mode, "pid": os.getpid()}
    features_dir.mkdir(parents=True, exist_ok=True)
    tmp = features_dir / f"{PUBLISHING}.tmp"
    tmp.write_text(json.dumps(facts), encoding="utf-8")
    os.replace(tmp, features_dir / PUBLISHING)


def unmark_publishing(features_dir: Path) -> None:
    (features_dir / PUBLISHING).unlink(missing_ok=True)


def cut_short(features_dir: Path) -> str | None:
    """What a publish cut short left, in words; None when the feature files are one publish's whole."""
    try:
        facts = json.loads((features_dir / PUBLISHING).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        facts = {}
    mode = f"{facts['mode']} " if facts.get("mode") else ""
    return (
        f"a {mode}publish started {facts.get('started', '(time unreadable)')} never finished (killed, or ended by "
        "an error after its first write): the feature files, and the online store, may mix two builds; "
        "make materialize builds them whole again"
    )
