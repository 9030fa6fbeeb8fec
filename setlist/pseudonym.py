"""Pseudonymization and the identity map.

Raw user ids never reach storage: every boundary (ingestion, import, serving) calls
:func:`pseudonymize` with the same key, so a pseudonym from a Rank request matches the one in the
event log. The identity map (pseudonym → raw id) lives in a SQL store so that a user can be
resolved on request and erased.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, String, Table, create_engine, delete, func, insert, inspect, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from setlist.errors import Refused
from setlist.sqltimeouts import engine_options

if TYPE_CHECKING:
    from setlist.settings import Settings

PSEUDONYM_PREFIX = "u_"
_metadata = MetaData()
identity_table = Table(
    "identity_map",
    _metadata,
    Column("pseudonym", String(64), primary_key=True),
    Column("raw_id", String(512), nullable=False),
)


#: what ``str.strip`` takes from an id's ends (every character ``str.isspace`` holds for: a test checks), for
#: the SQL that finds an id stored padded
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def app_id(raw_user_id: str) -> str:
    """An application's user id as every boundary takes it (Rank, Track, imports, erasure, access): without
    surrounding whitespace, which a padded CSV cell or a client's formatting adds and no one means as part of
    an id. Pseudonymize this form, and remember it in the identity map."""
    return raw_user_id.strip()


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


#: identity map rows compared with the key in use; every row was made with the data's one key, so a few
#: tell a wrong key with certainty, and the check stays one small query
KEY_CHECK_ROWS = 16
_checked: set[tuple[str, str]] = set()


@contextmanager
def _reading(settings: Settings) -> Iterator[Connection | None]:
    """A connection to the identity map's database, or None where it has no identity map, made without
    writing anything: no database file, table or key is made where there is none (unlike
    :class:`IdentityMap`, whose opening creates its table), and the connect has the settings' deadline."""
    url = settings.metadata_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        yield None  # connecting would create the file
        return
    engine = create_engine(url, future=True, **engine_options(url, settings.database_connect_timeout_s, None))
    try:
        with engine.connect() as conn:
            yield conn if inspect(conn).has_table(identity_table.name) else None
    finally:
        engine.dispose()


def identity_rows(
    settings: Settings, pseudonym: str | None = None, limit: int | None = None, raw_id: str | None = None
) -> list[tuple[str, str]]:
    """(pseudonym, raw id) pairs of the identity map (of one ``pseudonym`` or app id ``raw_id``, or the first
    ``limit`` in the table's order), the others in pseudonym order, read without writing anything
    (``_reading``). By raw id the table is scanned (it is keyed by pseudonym): an erasure's lookup, not Rank's;
    it also finds the id stored with surrounding spaces, as Track stored ids before they were trimmed
    (``app_id``), under a pseudonym of its own."""
    with _reading(settings) as conn:
        if conn is None:
            return []
        query = select(identity_table.c.pseudonym, identity_table.c.raw_id)
        if pseudonym is not None:
            query = query.where(identity_table.c.pseudonym == pseudonym)
        wanted = None if raw_id is None else app_id(raw_id)
        if wanted is not None:
            # the stored id, padded or not (SQL's TRIM takes spaces only, where a tab or a newline pads an id as
            # well): trimmed of every character ``app_id`` strips, in the database, so that a short id does not
            # load every id containing it; ``app_id`` still has the last word below
            query = query.where(same_id(conn, wanted))
        if limit is None:
            # a stable order: the table has no time to go by, and a refused key's erasure walks these in turn
            query = query.order_by(identity_table.c.pseudonym)
        else:
            # the first pairs stored, in the table's order, as check_key compares them: in pseudonym order
            # they would be drawn from every key a directory ever had (an older release's silent second key's
            # users too), and the older key that the README says to set would be refused as well
            query = query.limit(limit)
        rows = [(str(p), str(r)) for p, r in conn.execute(query).all()]
        return rows if wanted is None else [(p, r) for p, r in rows if app_id(r) == wanted]


def same_id(conn: Connection, wanted: str) -> ColumnElement[bool]:
    """Stored ids that are ``wanted`` once trimmed as ``app_id`` trims, in SQL where the database holds and
    takes Unicode text (SQLite; PostgreSQL whose server and client encodings are UTF8); elsewhere the ids
    containing it, for ``app_id`` to tell apart: another encoding trims bytes, or cannot carry the set."""
    col = identity_table.c.raw_id
    if conn.dialect.name == "sqlite" or (conn.dialect.name == "postgresql" and _utf8(conn)):
        return func.ltrim(func.rtrim(col, WHITESPACE), WHITESPACE) == wanted
    return col.contains(wanted, autoescape=True)


def _utf8(conn: Connection) -> bool:
    return all(conn.exec_driver_sql(f"SHOW {which}_encoding").scalar() == "UTF8" for which in ("server", "client"))


def _has_events(settings: Settings) -> bool:
    """Whether the event log holds any file (its pseudonyms were made with a key), without listing it all."""
    root = settings.events_dir
    return root.exists() and next(root.glob("date=*/*.parquet"), None) is not None


class KeyMismatch(Refused):
    """The pseudonymization key in use is not the one the stored data was written with."""


#: what still works under a refused key, and why an upgraded directory may hold two keys' users
_WAY_OUT = (
    ". An erasure or access by app id still works where the identity map pairs the id with a pseudonym, "
    "and by pseudonym (`--pseudonym`) always. Releases before this check made a new key, silently, where "
    "the key file was missing: users since then are under that one, and the first users match the older key"
)


def check_key(settings: Settings) -> None:
    """Refuse to go on when the identity map's users pseudonymize to other ids under the key in use.

    A second key turns every user into a new one, silently: imports and Tracks would split each user in
    two, an erasure would remove the wrong pseudonym and miss the real one, and SQL feature tables would
    join no one. Nothing stored says which key was used except the pairs themselves, so a few of them are
    recomputed. An empty or absent identity map (a first run) has nothing to compare. Once per process
    for a given store and key. Creates no key: where there is none yet, stored pairs mean it was lost."""
    key = settings.existing_hmac_key()
    url = settings.metadata_url
    memo = (url, hmac.new(key, b"setlist key check", hashlib.sha256).hexdigest() if key is not None else "")
    if memo in _checked:
        return
    rows = identity_rows(settings, limit=KEY_CHECK_ROWS)
    if key is None:
        held = "the identity map holds users" if rows else "the event log holds events" if _has_events(settings) else ""
        if held:
            raise KeyMismatch(
                f"no pseudonymization key ({settings.hmac_key_source()} does not exist), but {held} "
                "pseudonymized with one: restore that file, or set the key the data was written with "
                "(SETLIST_HMAC_KEY or SETLIST_HMAC_KEY_FILE); a new key would make every user a new one" + _WAY_OUT
            )
        return
    wrong = sum(pseudonymize(raw, key) != pseudonym for pseudonym, raw in rows)
    if wrong:
        raise KeyMismatch(
            f"the pseudonymization key ({settings.hmac_key_source()}) is not the one this data was written "
            f"with: {wrong} of the first {len(rows)} users in the identity map get other pseudonyms under it, "
            "so every user would count as a new one and an erasure would miss them; set the key the data "
            "was written with (SETLIST_HMAC_KEY or SETLIST_HMAC_KEY_FILE; `make services` keeps one in "
            "var/services/hmac.key)" + _WAY_OUT
        )
    _checked.add(memo)


def reclaim(engine: Engine, table: str) -> None:
    """VACUUM (the whole file for SQLite, the table for PostgreSQL), outside any transaction."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        elif engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f'VACUUM "{table}"')
