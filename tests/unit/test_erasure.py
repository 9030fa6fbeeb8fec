"""Erasure without servers: who is erased (an app id is always an app id), what the tombstone keeps
(a digest, never the pseudonym), Track journals (a dead server's moved without the user, a running
server's waited for) and the consent withdrawals kept beside them, and the candidate models' factor rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from ingest.erasure import _drop_user_row, erase, erase_all, resolve
from serving.journal import Journal
from setlist.errors import UsageError
from setlist.eventlog import TOMBSTONES, EventLog, erasure_digest
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings
from tests.unit.test_journal import row as journal_row


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", hmac_key="test-hmac-key", journal_roll_s=0.1, impressions_enabled=False)


def row(n: int, user: str) -> dict:
    """A journal row (as test_journal makes them) of ``user``."""
    return {**journal_row(n), "user_id": user}


def test_an_app_id_shaped_like_a_pseudonym_is_still_an_app_id(settings: Settings) -> None:
    looks_like = "u_" + "ab" * 16
    assert resolve(looks_like, settings, by_pseudonym=False) == pseudonymize(looks_like, settings.secret_hmac_key())
    assert resolve(looks_like, settings, by_pseudonym=True) == looks_like
    with pytest.raises(UsageError, match="32 hex"):
        resolve("alice", settings, by_pseudonym=True)
    with pytest.raises(UsageError, match="empty"):
        resolve("  ", settings, by_pseudonym=False)


def test_the_tombstone_holds_a_digest_and_still_keeps_the_user_out(settings: Settings) -> None:
    p = pseudonymize("alice", settings.secret_hmac_key())
    log = EventLog(settings.events_dir)
    log.append(
        pd.DataFrame([row(0, p), row(1, "u_other")]).assign(
            timestamp=lambda f: pd.to_datetime(f.timestamp, unit="ms", utc=True)
        )
    )
    receipt = erase("alice", settings)
    stored = pq.read_table(log.root / TOMBSTONES).to_pydict()
    assert stored["digest"] == [erasure_digest(p)] and p not in json.dumps(stored, default=str)
    assert p in log.erased() and "u_other" not in log.erased()
    assert set(log.read(include_erased=True)["user_id"]) == {"u_other"}
    body = receipt.path.read_text()
    assert p not in body and "alice" not in body and receipt.digest == erasure_digest(p)


def test_an_older_tombstone_list_of_pseudonyms_is_read_and_rewritten_as_digests(settings: Settings) -> None:
    import pyarrow as pa

    log = EventLog(settings.events_dir)
    log.root.mkdir(parents=True)
    pq.write_table(
        pa.table({"user_id": ["u_old"], "erased_at": pa.array([0], pa.timestamp("ms", tz="UTC"))}),
        log.root / TOMBSTONES,
    )
    assert "u_old" in log.erased()
    log.tombstone("u_new")
    assert set(pq.read_table(log.root / TOMBSTONES).column_names) == {"digest", "erased_at"}
    assert "u_old" in log.erased() and "u_new" in log.erased()


def test_a_dead_servers_journal_is_moved_without_the_user(settings: Settings) -> None:
    p = pseudonymize("alice", settings.secret_hmac_key())
    events = EventLog(settings.events_dir)
    dead = Journal(settings.wal_dir / "worker-0", events, max_age_s=3600)
    dead.append([row(0, p), row(1, "u_other")])
    dead.abandon()  # a crash: the segment stays, unlocked
    receipt = erase("alice", settings)
    assert receipt.removed_in("Track journals") == 1
    assert set(events.read(include_erased=True)["user_id"]) == {"u_other"}
    assert not list(settings.wal_dir.rglob("*.jsonl"))


def test_erasure_waits_for_a_running_servers_segment_to_roll_and_the_roll_drops_the_user(
    settings: Settings,
) -> None:
    p = pseudonymize("alice", settings.secret_hmac_key())
    events = EventLog(settings.events_dir)
    live = Journal(settings.wal_dir / "worker-0", events, max_age_s=settings.journal_roll_s)
    try:
        live.append([row(0, p), row(1, "u_other")])
        erase("alice", settings)  # the segment is locked by a live journal: moved by its own roll
        assert p not in set(events.read(include_erased=True)["user_id"])
        assert "u_other" in set(events.read()["user_id"])
    finally:
        live.close()


def held_withdrawal(user: str, n: int = 0) -> list[dict]:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [{"event_id": f"e{n}", "timestamp": at, "consent_personalization": False, "consent_analytics": None}]


def test_a_dead_servers_held_consent_withdrawals_lose_the_user_and_keep_the_rest(settings: Settings) -> None:
    from setlist.journal_dirs import HELD, read_held, write_held

    p = pseudonymize("alice", settings.secret_hmac_key())
    dead = settings.wal_dir / "worker-1"
    dead.mkdir(parents=True)
    write_held(dead / HELD, {p: held_withdrawal(p), "u_other": held_withdrawal("u_other", 1)})
    only_her = settings.wal_dir / "worker-2"
    only_her.mkdir()
    write_held(only_her / HELD, {p: held_withdrawal(p, 2)})
    receipt = erase("alice", settings)
    assert receipt.removed_in("Track journals") == 2
    assert set(read_held(dead / HELD)) == {"u_other"}  # left for the next server's sweep to push
    assert not only_her.exists()  # nothing else held: the orphan directory goes


def test_erasure_waits_for_a_running_server_to_drop_the_user_from_its_held_withdrawals(settings: Settings) -> None:
    """A running server rewrites its file without erased users at its next retry (within a second);
    erasure waits for that, as it waits for a segment to roll."""
    import threading

    from setlist.journal_dirs import read_held, write_held

    p = pseudonymize("alice", settings.secret_hmac_key())
    events = EventLog(settings.events_dir)
    live = Journal(settings.wal_dir / "worker-0", events, max_age_s=3600)
    write_held(live.held_path, {p: held_withdrawal(p), "u_other": held_withdrawal("u_other", 1)})
    stop = threading.Event()

    def server_retry() -> None:  # what Tracker.retry_withdrawals does once the tombstone is written
        while not stop.is_set() and p not in events.erased():
            stop.wait(0.01)
        write_held(live.held_path, {u: rows for u, rows in read_held(live.held_path).items() if u != p})

    retry = threading.Thread(target=server_retry)
    retry.start()
    try:
        erase("alice", settings)
        assert set(read_held(live.held_path)) == {"u_other"}
    finally:
        stop.set()
        retry.join()
        live.close()


def test_erasure_refuses_while_a_running_server_still_holds_the_user(settings: Settings) -> None:
    from setlist.errors import Refused
    from setlist.journal_dirs import write_held

    p = pseudonymize("alice", settings.secret_hmac_key())
    live = Journal(settings.wal_dir / "worker-0", EventLog(settings.events_dir), max_age_s=3600)
    try:
        write_held(live.held_path, {p: held_withdrawal(p)})  # a server that never retries
        with pytest.raises(Refused, match="journal file"):
            erase("alice", settings)
    finally:
        live.close()


def test_the_factor_row_goes_and_the_rest_stay_aligned(tmp_path: Path) -> None:
    arrays = tmp_path / "index" / "arrays.npz"
    arrays.parent.mkdir()
    users = np.array(["u_a", "u_gone", "u_b"])
    factors = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.savez(arrays, item_ids=np.array(["i1", "i2"]), user_ids=users, user_factors=factors)
    sp.save_npz(arrays.with_name("seen.npz"), sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1]])))
    assert _drop_user_row(arrays, "u_gone")
    with np.load(arrays) as z:
        assert z["user_ids"].tolist() == ["u_a", "u_b"]
        assert z["user_factors"].tolist() == [[0.0, 1.0], [4.0, 5.0]] and z["item_ids"].tolist() == ["i1", "i2"]
    assert sp.load_npz(arrays.with_name("seen.npz")).toarray().tolist() == [[1, 0], [1, 1]]
    assert not _drop_user_row(arrays, "u_gone")  # nothing left to do: the file is not rewritten


def test_the_users_row_of_nearest_items_goes_and_the_next_users_keep_their_own(tmp_path: Path) -> None:
    """The table training precomputes (``setlist.embedding_top``) is read by user position: with a
    row gone from the factors but not from it, every later user would read the next one's items."""
    from setlist.embedding_top import EmbeddingTop

    index = tmp_path / "index"
    index.mkdir()
    arrays = index / "arrays.npz"
    np.savez(arrays, user_ids=np.array(["u_a", "u_gone", "u_b"]), user_factors=np.ones((3, 2), np.float32))
    EmbeddingTop(2, np.array([0, 2, 3, 5]), np.array([7, 8, 9, 1, 2], np.uint16)).save(index)
    assert _drop_user_row(arrays, "u_gone")
    table = EmbeddingTop.load(index, 2)
    assert table is not None and table.row(0).tolist() == [7, 8] and table.row(1).tolist() == [1, 2]
    assert len(table.indptr) == 3 and table.items.dtype == np.uint16


def test_a_running_server_forgets_an_erased_users_last_known_rows(tmp_path: Path) -> None:
    """Degraded mode serves the rows a worker last read; after an erasure the refresh loop drops them."""
    from serving.types import RankQuery
    from tests.fakes.dataplane import Dataplane

    plane = Dataplane.fresh(tmp_path, impressions_enabled=False)
    server = plane.build()
    try:
        server.rank(RankQuery("user-0", 5))  # read once: now remembered for degraded mode
        p = server.service.pseudonym("user-0")
        EventLog(plane.settings.events_dir).tombstone(p)
        server.forget_erased()
        plane.online.fail = TimeoutError("online store down")
        rows = server.service.reader.read(p)
        assert rows.degraded and rows.consent is None and rows.profile is None
    finally:
        server.close()


def test_a_receipt_that_finishes_a_cut_short_erasure_counts_what_the_first_run_removed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.erasure as erasure
    from ingest.erasure import PROGRESS, unfinished

    p = pseudonymize("alice", settings.secret_hmac_key())
    log = EventLog(settings.events_dir)
    frame = pd.DataFrame([row(n, p) for n in range(3)] + [row(9, "u_other")])
    log.append(frame.assign(timestamp=lambda f: pd.to_datetime(f.timestamp, unit="ms", utc=True)))

    def cut(*args, **kwargs):  # Ctrl-C after the event log was rewritten, before the quarantine
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(erasure, "_quarantine", cut)
        with pytest.raises(KeyboardInterrupt):
            erase("alice", settings)
    assert len(unfinished(settings)) == 1 and log.read(include_erased=True)["user_id"].tolist() == ["u_other"]
    (progress,) = (settings.data_dir / PROGRESS).iterdir()  # what the cut run did, naming no one
    assert p not in progress.read_text() and "alice" not in progress.read_text()

    receipt = erase("alice", settings)  # the run again finds no row left in the log
    assert receipt.removed_in("event log") == 3  # the first run's three, not the second's none
    assert len(receipt.resumes) == 1 and json.loads(receipt.path.read_text())["resumes"] == receipt.resumes
    assert not (settings.data_dir / PROGRESS).exists() or not list((settings.data_dir / PROGRESS).iterdir())
    assert p not in receipt.path.read_text()

    again = erase("alice", settings)  # a later erasure of the same user starts its own count
    assert again.removed_in("event log") == 0 and again.resumes == []

    def stopped_after_the_receipt(path: Path) -> None:  # its progress file stays behind
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(erasure._Tally, "close", lambda self: stopped_after_the_receipt(self.path))
        with pytest.raises(KeyboardInterrupt):
            erase("alice", settings)
    assert list((settings.data_dir / PROGRESS).iterdir())
    later = erase("alice", settings)  # the stopped run wrote its receipt: it is not counted twice
    assert later.resumes == [] and later.removed_in("event log") == 0


def test_a_track_for_an_erased_user_reaches_neither_the_identity_map_nor_the_online_store(tmp_path: Path) -> None:
    """Their events are acknowledged (the journal's roll drops them); the session and consent pushes and
    the identity write would put them back where the erasure removed them. Others in the batch go on."""
    from serving.types import TrackEvent
    from tests.fakes.dataplane import Dataplane

    plane = Dataplane.fresh(tmp_path, impressions_enabled=False)
    server = plane.build()
    try:
        erased, kept = server.service.pseudonym("gone"), server.service.pseudonym("stays")
        for view in ("session", "user_consent"):
            plane.online.delete(view, erased)
        EventLog(plane.settings.events_dir).tombstone(erased)
        now_ms = int(plane.clock() * 1000)
        consent = {"consent_personalization": "true", "consent_analytics": "true"}
        cache = server.service.cache
        stamps = {p: cache.lookup(p, "k").stamp for p in (erased, kept)}
        result = server.track(
            [TrackEvent(f"e-{user}", user, "item-1", "play", now_ms, "s1", consent, 0.9) for user in ("gone", "stays")]
        )
        assert result.accepted == 2 and not result.rejected
        assert {r["user_id"] for r in plane.journal.rows} == {erased, kept}  # journaled; the roll drops them
        assert set(plane.identities.known) == {kept}
        assert result.erased == {"e-gone"}
        assert cache.lookup(erased, "k").stamp == stamps[erased]  # no cache version written for no one
        assert cache.lookup(kept, "k").stamp != stamps[kept]
        for view in ("session", "user_consent"):
            assert plane.online.read(view, [erased])[0] == (None, None)
            assert plane.online.read(view, [kept])[0][1] is not None
    finally:
        server.close()


def test_an_id_stored_with_surrounding_spaces_by_an_older_release_is_erased_with_it(settings: Settings) -> None:
    """Every boundary takes an id without surrounding spaces now (``app_id``); an older release's Track stored
    " alice" as sent, under a pseudonym of its own, which an erasure of "alice" (or of " alice") reaches too."""
    from ingest.erasure import pseudonyms_of
    from setlist.pseudonym import IdentityMap, identity_rows

    settings.data_dir.mkdir(parents=True)
    key = settings.secret_hmac_key()
    padded, plain, bob = pseudonymize(" alice", key), pseudonymize("alice", key), pseudonymize("bob", key)
    IdentityMap(settings.metadata_url).remember([(padded, " alice"), (plain, "alice"), (bob, "bob")])
    log = EventLog(settings.events_dir)
    log.append(
        pd.DataFrame([row(0, padded), row(1, plain), row(2, bob)]).assign(
            timestamp=lambda f: pd.to_datetime(f.timestamp, unit="ms", utc=True)
        )
    )
    found = pseudonyms_of(" alice ", settings)
    assert found.ids == [plain, padded] and "1 pseudonym: 1 under the id with surrounding spaces" in found.note
    receipts = erase_all("alice", settings)
    assert len(receipts) == 2
    assert set(log.read(include_erased=True)["user_id"]) == {bob}
    assert identity_rows(settings) == [(bob, "bob")]


def test_the_identity_maps_pairs_of_one_id_come_in_pseudonym_order(settings: Settings) -> None:
    from setlist.pseudonym import IdentityMap, identity_rows

    settings.data_dir.mkdir(parents=True)
    pairs = [("u_" + c * 32, "bob") for c in "c1a9"]
    IdentityMap(settings.metadata_url).remember(pairs)
    assert identity_rows(settings, raw_id="bob") == sorted(pairs)


def test_the_identity_maps_lookup_by_raw_id_finds_any_padding_and_only_that_id(settings: Settings) -> None:
    """An older release stored ids as sent: padded with a tab or a newline too, which SQL's TRIM leaves. A
    wildcard in the id is a character like any other: ``a_b`` finds no ``axb``."""
    from setlist.pseudonym import IdentityMap, identity_rows

    settings.data_dir.mkdir(parents=True)
    pairs = [
        ("u_" + "a" * 32, "a_b"),
        ("u_" + "b" * 32, "\ta_b\n"),
        ("u_" + "c" * 32, "axb"),
        ("u_" + "d" * 32, "xa_b"),
    ]
    pairs += [("u_" + "e" * 32, "50%"), ("u_" + "f" * 32, "500")]
    pairs += [("u_" + "g" * 32, "\u2003\u00a0a_b\u3000"), ("u_" + "h" * 32, "a_b\u200b")]  # U+200B is no space
    IdentityMap(settings.metadata_url).remember(pairs)
    assert identity_rows(settings, raw_id="a_b") == [*pairs[:2], pairs[6]]
    assert identity_rows(settings, raw_id=" 50% ") == [pairs[4]]
    assert identity_rows(settings, raw_id="a_b\u200b") == [pairs[7]]


def test_the_lookup_by_raw_id_narrows_in_sql_to_the_id_and_its_paddings(settings: Settings) -> None:
    """The database itself returns only the id and its padded forms (every character ``str.strip`` takes), not
    every id that contains a short one."""
    from sqlalchemy import create_engine, select

    from setlist.pseudonym import WHITESPACE, IdentityMap, identity_table, same_id

    assert WHITESPACE == "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    settings.data_dir.mkdir(parents=True)
    ids = ["7", " 7\t", "17", "71", "x 7", f"{WHITESPACE}7{WHITESPACE}", "7\u200b"]
    IdentityMap(settings.metadata_url).remember([(f"u_{n:032d}", raw) for n, raw in enumerate(ids)])
    engine = create_engine(settings.metadata_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(identity_table.c.raw_id).where(same_id(conn, "7"))).scalars().all()
    finally:
        engine.dispose()
    assert sorted(rows) == sorted(["7", " 7\t", f"{WHITESPACE}7{WHITESPACE}"])
