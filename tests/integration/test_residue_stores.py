"""The residue scan against real servers: Redis keys and values (Feast's binary row keys among them),
PostgreSQL columns of every kind, and a dead store of either failing fast with an error that names
the store and keeps its password and the needles out."""

from __future__ import annotations

import time
import uuid

import pytest

from ingest.residue import ResidueScanError, Token, render, scan_redis, scan_sql
from tests.servers import free_port

PSEUDONYM = "u_" + "0123456789abcdef" * 2
OTHER = "u_" + "fedcba9876543210" * 2
RAW = "listener-4711"
NEEDLES = {"raw id": RAW, "pseudonym": PSEUDONYM}


def _feast_row_key(entity_id: str) -> bytes:
    """The key Feast's Redis online store files a user's row under: the serialized entity key."""
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=entity_id)])
    return _redis_key("setlist", key, entity_key_serialization_version=3)


def _assert_no_needle(*texts: str) -> None:
    for text in texts:
        assert PSEUDONYM not in text and RAW not in text


def test_redis_keys_and_values_holding_a_needle_are_found(redis_server) -> None:
    redis_server.start()  # a fault test may have left it stopped
    redis_server.flush()
    feast_key, other_key = _feast_row_key(PSEUDONYM), _feast_row_key(OTHER)
    assert PSEUDONYM.encode() in feast_key
    with redis_server.client() as c:
        c.hset(feast_key, mapping={b"\x01\x02": b"\x08\x03", b"_ts:user_profile": b"\x00"})
        c.hset(other_key, mapping={b"\x01\x02": b"\x08\x03"})
        c.hset("setlist:profile:42", mapping={"owner": f"id={RAW}", "plan": "free"})
        c.set("setlist:cache:other", f'{{"user": "{OTHER}"}}')
        c.sadd("setlist:dedupe", "e-1", f"e-2:{PSEUDONYM}")
    notes: list[str] = []
    findings = scan_redis(redis_server.url, NEEDLES, notes=notes)
    places = {(f.store, f.where, f.needle_kind, f.detail) for f in findings}
    shown_feast_key = next(f.where for f in findings if f.detail == "hash: key name")
    assert places == {
        ("redis", shown_feast_key, "pseudonym", "hash: key name"),
        ("redis", "setlist:profile:42", "raw id", "hash: hash value"),
        ("redis", "setlist:dedupe", "pseudonym", "set: member"),
    }
    assert "<pseudonym>" in shown_feast_key and "\\x" in shown_feast_key  # binary, shown escaped and masked
    assert any("RDB and AOF" in note for note in notes)
    _assert_no_needle(repr(findings), render(findings, notes), *notes)


def test_a_dead_redis_fails_fast_naming_the_store(tmp_path) -> None:
    started = time.monotonic()
    with pytest.raises(ResidueScanError) as raised:
        scan_redis(f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0", NEEDLES, timeout_s=1.0)
    assert time.monotonic() - started < 10
    assert str(raised.value).startswith("redis at redis://:***@127.0.0.1:")
    assert "s3cret-pw" not in str(raised.value)


def test_postgres_columns_of_every_kind_are_scanned(postgres_server) -> None:
    import sqlalchemy as sa

    url = postgres_server.create_database()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE identity_map (pseudonym varchar(64) PRIMARY KEY, raw_id text NOT NULL);"
                    "CREATE TABLE runs (id integer, tags jsonb, blob bytea, note text);"
                    "CREATE TABLE unrelated (who text, n bigint)"
                )
            )
            conn.execute(
                sa.text("INSERT INTO identity_map VALUES (:p, :r), (:o, 'listener-0815')"),
                {"p": PSEUDONYM, "r": RAW, "o": OTHER},
            )
            conn.execute(
                sa.text("INSERT INTO runs VALUES (1, CAST(:tags AS jsonb), :blob, :note), (2, NULL, NULL, :decoy)"),
                {
                    "tags": f'{{"user": "{PSEUDONYM}"}}',
                    "blob": b"\x00\x01" + PSEUDONYM.encode() + b"\xff",
                    "note": f"exported for {RAW} and again {RAW}",
                    # the pseudonym's "_" is a LIKE wildcard: a scan that did not escape it would match this
                    "decoy": "uX" + PSEUDONYM[2:],
                },
            )
            conn.execute(sa.text("INSERT INTO unrelated VALUES (:o, 7)"), {"o": OTHER})
    finally:
        engine.dispose()
    notes: list[str] = []
    findings = scan_sql(url, NEEDLES, notes=notes)
    database = url.rsplit("/", 1)[1]
    assert {(f.store, f.where, f.needle_kind, f.detail) for f in findings} == {
        ("postgres", "identity_map.pseudonym", "pseudonym", f"1 row (1 exact) (database {database})"),
        ("postgres", "identity_map.raw_id", "raw id", f"1 row (1 exact) (database {database})"),
        ("postgres", "runs.tags", "pseudonym", f"1 row (0 exact) (database {database})"),
        ("postgres", "runs.blob", "pseudonym", f"1 row (0 exact) (database {database})"),
        ("postgres", "runs.note", "raw id", f"1 row (0 exact) (database {database})"),
    }
    assert any("until VACUUM" in note for note in notes)
    _assert_no_needle(repr(findings), render(findings, notes), *notes)


def test_a_dead_postgres_fails_fast_naming_the_store_without_its_password() -> None:
    url = f"postgresql://setlist:s3cret-pw@127.0.0.1:{free_port()}/setlist"
    started = time.monotonic()
    with pytest.raises(ResidueScanError) as raised:
        scan_sql(url, NEEDLES, connect_timeout_s=2)
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert message.startswith("postgres at postgresql+psycopg://setlist:***@127.0.0.1:")
    assert "could not be scanned" in message
    assert "s3cret-pw" not in message
    _assert_no_needle(message)


def test_a_numeric_id_is_judged_as_a_whole_token_in_redis_and_postgres(redis_server, postgres_server) -> None:
    """Erasing user 17: Redis and PostgreSQL rows holding 1705 are no residue, ones holding 17 alone
    are possible coincidences, and the identity map's row for 17 is residue."""
    import sqlalchemy as sa

    needles = {"raw id": Token("17"), "pseudonym": PSEUDONYM}
    redis_server.start()
    redis_server.flush()
    with redis_server.client() as c:
        c.set("setlist:item:1705", "plays=1705")
        c.set("setlist:time", "08:17")  # a number joined by a time's colon is part of it
        c.hset("setlist:counts", mapping={"plays": "17"})
    findings = scan_redis(redis_server.url, needles)
    assert [(f.where, f.detail, f.coincidence) for f in findings] == [("setlist:counts", "hash: hash value", True)]

    url = postgres_server.create_database()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("CREATE TABLE identity_map (pseudonym text, raw_id text); CREATE TABLE runs (note text)")
            )
            conn.execute(sa.text("INSERT INTO identity_map VALUES ('u_a', '17'), ('u_b', '1705'), ('u_c', '117')"))
            conn.execute(sa.text("INSERT INTO runs VALUES ('top 17 of 1705'), ('1705 plays'), ('0.17')"))
    finally:
        engine.dispose()
    found = {(f.where, f.detail.split(" (database")[0], f.coincidence) for f in scan_sql(url, needles)}
    assert found == {("identity_map.raw_id", "1 row (1 exact)", False), ("runs.note", "1 row (0 exact)", True)}


def test_the_identity_maps_lookups_by_raw_id_work_on_postgres(postgres_server, tmp_path) -> None:
    """An erasure's lookup of the identity map on the production profile's database: the pairs of one app id,
    the id as an older release stored it with surrounding spaces among them, in pseudonym order."""
    from setlist.pseudonym import IdentityMap, identity_rows
    from setlist.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data", profile="production", database_url=postgres_server.create_database(), hmac_key="k"
    )
    padded = ("u_" + "a" * 32, f" {RAW}\t")  # a tab too: SQL's TRIM would leave it
    spaced = ("u_" + "c" * 32, f"\u00a0\n{RAW}\u3000")  # and Unicode's spaces, as str.strip takes them
    pairs = [(OTHER, RAW), (PSEUDONYM, RAW), padded, ("u_" + "b" * 32, "someone"), spaced]
    pairs += [("u_" + "d" * 32, f"{RAW}x"), ("u_" + "e" * 32, f"x {RAW}")]  # ids that only contain it
    ids = IdentityMap(settings.metadata_url)
    try:
        ids.remember(pairs)
    finally:
        ids.dispose()
    assert identity_rows(settings, raw_id=RAW) == sorted([*pairs[:2], padded, spaced])
    assert identity_rows(settings, raw_id=f"  {RAW}") == sorted([*pairs[:2], padded, spaced])
    assert identity_rows(settings, raw_id="someone") == [pairs[3]]


def test_the_lookup_by_raw_id_holds_on_a_postgres_database_not_in_utf8(postgres_server, tmp_path) -> None:
    """A database in LATIN1 cannot take the Unicode whitespace set the UTF8 lookup trims with: the lookup
    falls back to the ids containing the one asked for, and still finds the padded and accented ones."""
    from psycopg import sql

    from setlist.pseudonym import IdentityMap, identity_rows
    from setlist.settings import Settings

    name = f"t_latin1_{uuid.uuid4().hex[:8]}"
    with postgres_server._admin() as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} OWNER {} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ).format(sql.Identifier(name), sql.Identifier(postgres_server.user))
        )
    settings = Settings(
        data_dir=tmp_path / "data", profile="production", database_url=postgres_server.url_for(name), hmac_key="k"
    )
    pairs = [(PSEUDONYM, "café"), ("u_" + "a" * 32, " café\t"), (OTHER, "cafés"), ("u_" + "b" * 32, RAW)]
    ids = IdentityMap(settings.metadata_url)
    try:
        ids.remember(pairs)
    finally:
        ids.dispose()
    assert identity_rows(settings, raw_id="café") == sorted(pairs[:2])
    assert identity_rows(settings, raw_id=RAW) == [pairs[3]]


def test_the_lookup_by_raw_id_holds_with_a_client_encoding_not_utf8(postgres_server, tmp_path, monkeypatch) -> None:
    """A UTF8 database read through a LATIN1 client connection cannot take the Unicode whitespace set either."""
    from setlist.pseudonym import IdentityMap, identity_rows
    from setlist.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data", profile="production", database_url=postgres_server.create_database(), hmac_key="k"
    )
    pairs = [(PSEUDONYM, "café"), ("u_" + "a" * 32, "\tcafé "), (OTHER, "cafés")]
    ids = IdentityMap(settings.metadata_url)
    try:
        ids.remember(pairs)
    finally:
        ids.dispose()
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    assert identity_rows(settings, raw_id="café") == sorted(pairs[:2])
