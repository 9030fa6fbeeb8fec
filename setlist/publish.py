"""The feature publish log: every successful materialization gets a version.

Serving replicas poll the latest version to know when to reload the in-process item table and
drop cached rankings. It lives in the metadata SQL store so every replica sees the same log.

And the mark a publish leaves beside the feature files while it writes them, read by the features
gate and by status, which must not import the pipeline that writes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.engine import Engine

from setlist import liveness
from setlist.sqltimeouts import engine_options

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
    def __init__(self, url: str, connect_timeout_s: float | None = None) -> None:
        # a PostgreSQL that stops answering must end a connect, not hang its caller (libpq waits forever)
        options = engine_options(url, connect_timeout_s, None)
        options.setdefault("pool_pre_ping", True)
        self.engine: Engine = create_engine(url, future=True, **options)
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
        return None if row is None else _publish(row)

    def get(self, version: int) -> Publish | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(publishes).where(publishes.c.version == version)).first()
        return None if row is None else _publish(row)

    def dispose(self) -> None:
        self.engine.dispose()


def _publish(row: Any) -> Publish:
    # SQLite keeps no zone: the time written (UTC) comes back naive, and a naive time's .timestamp()
    # is read in the machine's zone, which moved every age and lag by the UTC offset
    at = row.published_at
    return Publish(int(row.version), at if at.tzinfo else at.replace(tzinfo=UTC), row.snapshot, int(row.rows))


#: beside the feature files from a publish's first write until it is recorded (``setlist.liveness``): a
#: publish killed, or ended by an error, in between leaves it unlocked, and its files may mix two builds
#: (the online store too); while its publish runs, it is held
PUBLISHING = ".publishing"
#: held (``liveness.exclusive``) by the one publish that may run at a time, from its plan to its record
PUBLISH_LOCK = ".publish.lock"
_held: dict[Path, liveness.Mark] = {}


def mark_publishing(features_dir: Path, mode: str) -> None:
    facts = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "mode": mode, "pid": os.getpid()}
    path = features_dir / PUBLISHING
    if (old := _held.pop(path, None)) is not None:
        old.release(remove=False)
    _held[path] = liveness.Mark.take(path, facts)


def unmark_publishing(features_dir: Path) -> None:
    """The publish is recorded: the feature files are one publish's whole."""
    path = features_dir / PUBLISHING
    if (held := _held.pop(path, None)) is not None:
        held.release(remove=True)
    path.unlink(missing_ok=True)


def abandon_publishing(features_dir: Path) -> None:
    """The publish ended in an error: its mark stays, and is no longer held (it is not running)."""
    if (held := _held.pop(features_dir / PUBLISHING, None)) is not None:
        held.release(remove=False)


def _mark(features_dir: Path) -> tuple[str, bool] | None:
    found = liveness.look(features_dir / PUBLISHING)
    if found is None:
        return None
    mode = f"{found.facts['mode']} " if found.facts.get("mode") else ""
    article = "an" if mode[:1] in ("a", "e", "i", "o", "u") else "a"
    return f"{article} {mode}publish started {found.facts.get('started', '(time unreadable)')}", found.alive


def cut_short(features_dir: Path) -> str | None:
    """What a publish cut short left, in words; None when the feature files are one publish's whole, or a
    publish is writing them now (``in_progress``)."""
    mark = _mark(features_dir)
    if mark is None or mark[1]:
        return None
    return (
        f"{mark[0]} never finished (killed, or ended by an error after its first write): the feature files, "
        "and the online store, may mix two builds; make materialize builds them whole again"
    )


def in_progress(features_dir: Path) -> str | None:
    """A publish writing the feature files now, in words; None otherwise."""
    mark = _mark(features_dir)
    if mark is None or not mark[1]:
        return None
    return f"{mark[0]} is writing the feature files now"
