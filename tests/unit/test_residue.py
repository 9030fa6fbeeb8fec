"""The residue scan finds a user's raw id and pseudonym wherever a file under the data directory still
holds them (parquet values, compressed NumPy arrays, a SQLite file's free pages, text in any
encoding), misses nothing across chunk boundaries, and never shows a needle in what it reports."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ingest import residue
from ingest.residue import Finding, Token, places, render, scan, scan_files, scan_sql
from setlist.pseudonym import IdentityMap, pseudonymize
from setlist.settings import Settings

RAW, OTHER_RAW = "listener-4711", "listener-0815"


def _settings(tmp_path: Path, **extra) -> Settings:
    return Settings(data_dir=tmp_path / "data", hmac_key="k", **extra)


def _needles(settings: Settings) -> dict[str, str]:
    return {"raw id": RAW, "pseudonym": pseudonymize(RAW, settings.secret_hmac_key())}


def _other(settings: Settings) -> str:
    return pseudonymize(OTHER_RAW, settings.secret_hmac_key())


def _sqlite_with_deleted_row(path: Path, value: str, secure_delete: bool) -> None:
    """A table that held ``value`` in one row, deleted since: with secure_delete off (the default
    of most SQLite builds, though not Debian's) the row's bytes stay in the page's free space."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute(f"PRAGMA secure_delete={'ON' if secure_delete else 'OFF'}")
        con.execute("CREATE TABLE plays (user TEXT, item TEXT)")
        con.executemany("INSERT INTO plays VALUES (?, ?)", [(value, "t1"), ("someone-else", "t2")])
        con.commit()
        con.execute("DELETE FROM plays WHERE user = ?", (value,))
        con.commit()
    finally:
        con.close()


def _assert_no_needle(needles: dict[str, str], *texts: str) -> None:
    for text in texts:
        for value in needles.values():
            assert value not in text


@pytest.fixture
def world(tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    """A data directory with the user's traces in every form the scan must read, and a file of
    another user only."""
    s = _settings(tmp_path)
    needles = _needles(s)
    pseudonym, other = needles["pseudonym"], _other(s)
    data = s.data_dir
    (data / "events").mkdir(parents=True)
    sessions = pa.array([f"s-{other}", f"s-{pseudonym}", f"s-{other}"]).dictionary_encode()
    pq.write_table(
        pa.table({"user_id": [other, pseudonym, other], "session": sessions, "n": [1, 2, 3]}),
        data / "events" / "part-0.parquet",
    )
    (data / "features").mkdir()
    pq.write_table(
        pa.table({"user": ["a", "b"], "recent": pa.array([[other], ["x", pseudonym]], pa.list_(pa.string()))}),
        data / "features" / "lists.parquet",
    )
    (data / "candidates").mkdir()
    np.savez_compressed(data / "candidates" / "arrays.npz", users=np.array([other, pseudonym]), scores=np.arange(2.0))
    _sqlite_with_deleted_row(data / "leaky.db", pseudonym, secure_delete=False)
    _sqlite_with_deleted_row(data / "scrubbed.db", pseudonym, secure_delete=True)
    (data / "notes").mkdir()
    (data / "notes" / "export.txt").write_text(f"user={RAW}\n", encoding="utf-8")
    (data / "notes" / "export-utf16.csv").write_bytes(f"user\n{RAW}\n".encode("utf-16-le"))
    (data / "notes" / "other.txt").write_text(f"user={OTHER_RAW} pseudonym={other}\n", encoding="utf-8")
    return s, needles


def _places(findings: list[Finding]) -> set[tuple[str, str, str]]:
    return {(f.store, f.where, f.needle_kind) for f in findings}


def test_every_form_of_residue_is_found_and_nothing_else(world) -> None:
    s, needles = world
    notes: list[str] = []
    findings = scan(s, needles, notes)
    assert _places(findings) == {
        ("file", "events/part-0.parquet", "pseudonym"),
        ("file", "features/lists.parquet", "pseudonym"),
        ("file", "candidates/arrays.npz", "pseudonym"),
        ("file", "leaky.db", "pseudonym"),
        ("file", "notes/export.txt", "raw id"),
        ("file", "notes/export-utf16.csv", "raw id"),
    }
    by_where = {f.where: f.detail for f in findings}
    # exact values and substrings, in a plain and a dictionary-encoded column
    assert by_where["events/part-0.parquet"] == "column session: 1 value (0 exact); column user_id: 1 value (1 exact)"
    assert by_where["features/lists.parquet"] == "column recent: 1 value (1 exact)"
    # compressed: found in the decompressed member and by value, not in the file's own bytes
    assert by_where["candidates/arrays.npz"] == "member users.npy bytes utf-32-le; array users: 1 value (1 exact)"
    assert needles["pseudonym"].encode("utf-32-le") not in (s.data_dir / "candidates" / "arrays.npz").read_bytes()
    assert by_where["leaky.db"].startswith("bytes utf-8 (SQLite file")
    assert by_where["notes/export.txt"] == "bytes utf-8"
    assert by_where["notes/export-utf16.csv"] == "bytes utf-16-le"
    # the local profile's stores that do not exist are said so, not created; Redis is not scanned
    assert any("metadata.db: does not exist" in note for note in notes)
    assert any(note.startswith("redis: not scanned") for note in notes)
    assert not (s.data_dir / "metadata.db").exists()
    _assert_no_needle(needles, repr(findings), render(findings, notes), *notes)


def test_render_gives_one_line_per_finding_without_needles(world) -> None:
    s, needles = world
    findings = scan_files(s, needles)
    lines = render(findings).splitlines()
    assert len(lines) == len(findings)
    assert lines[0].startswith("file: candidates/arrays.npz [pseudonym] ")
    _assert_no_needle(needles, *lines)
    assert render([]) == "no residue found"


def test_identity_map_rows_are_found_by_sql_and_their_deleted_bytes_in_the_file(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    needles = _needles(s)
    s.data_dir.mkdir(parents=True)
    ids = IdentityMap(s.metadata_url)
    try:
        ids.remember([(needles["pseudonym"], RAW), (_other(s), OTHER_RAW)])
    finally:
        ids.dispose()
    live = scan(s, needles)
    assert {("sqlite", "identity_map.pseudonym", "pseudonym"), ("sqlite", "identity_map.raw_id", "raw id")} <= (
        _places(live)
    )
    assert next(f for f in live if f.where == "identity_map.raw_id").detail == "1 row (1 exact) (database metadata.db)"
    # the row is deleted as a SQLite without secure_delete deletes: SQL sees nothing, the file still holds it
    con = sqlite3.connect(s.data_dir / "metadata.db")
    con.execute("PRAGMA secure_delete=OFF")
    con.execute("DELETE FROM identity_map WHERE pseudonym = ?", (needles["pseudonym"],))
    con.commit()
    con.close()
    after = scan(s, needles)
    assert not [f for f in after if f.store == "sqlite"]
    assert _places(after) == {("file", "metadata.db", "raw id"), ("file", "metadata.db", "pseudonym")}


def test_sql_scan_of_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    notes: list[str] = []
    assert scan_sql(f"sqlite:///{tmp_path}/absent.db", {"pseudonym": "u_" + "0" * 32}, notes=notes) == []
    assert not (tmp_path / "absent.db").exists()
    assert notes == ["sqlite absent.db: does not exist, nothing to scan"]


def test_names_are_findings_and_are_shown_masked(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    needles = _needles(s)
    folder = s.data_dir / "exports" / needles["pseudonym"]
    folder.mkdir(parents=True)
    (folder / "rows.json").write_text("{}")
    (s.data_dir / f"dump-{RAW}.log").write_text("")
    findings = scan_files(s, needles)
    assert [(f.where, f.needle_kind, f.detail) for f in findings] == [
        ("dump-<raw id>.log", "raw id", "in the file name"),
        ("exports/<pseudonym>", "pseudonym", "in the directory name"),
    ]


def test_a_needle_across_a_chunk_boundary_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(tmp_path)
    needles = _needles(s)
    monkeypatch.setattr(residue, "CHUNK", 5)
    s.data_dir.mkdir(parents=True)
    for offset in range(7):  # every split of the needle over two reads
        (s.data_dir / f"f{offset}.bin").write_bytes(b"x" * offset + RAW.encode() + b"y" * 3)
    findings = scan_files(s, {"raw id": needles["raw id"]})
    assert [f.where for f in findings] == [f"f{offset}.bin" for offset in range(7)]


def test_compressed_text_is_read_decompressed(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    needles = _needles(s)
    s.data_dir.mkdir(parents=True)
    with gzip.open(s.data_dir / "ratings.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("user,item\n" + f"{RAW},t1\n" * 100)
    [finding] = scan_files(s, needles)
    assert (finding.where, finding.needle_kind, finding.detail) == (
        "ratings.csv.gz",
        "raw id",
        "decompressed bytes utf-8",
    )


def test_an_artifact_root_outside_data_dir_is_scanned_once_and_links_are_not_followed(tmp_path: Path) -> None:
    s = _settings(tmp_path, events_dir_override=tmp_path / "data" / "events")
    needles = _needles(s)
    outside = tmp_path / "artifacts"
    (outside / "1").mkdir(parents=True)
    (outside / "1" / "model.txt").write_text(needles["pseudonym"])
    s.data_dir.mkdir(parents=True)
    (s.data_dir / "mlartifacts").symlink_to(outside, target_is_directory=True)  # resolves outside data_dir
    (s.data_dir / "events").mkdir()
    (s.data_dir / "events" / "log.jsonl").write_text(f'{{"user_id": "{needles["pseudonym"]}"}}\n')
    notes: list[str] = []
    findings = scan_files(s, needles, notes)
    assert [f.where for f in findings] == ["<artifact_root>/1/model.txt", "events/log.jsonl"]
    assert any("symbolic link(s)" in note for note in notes)


def test_a_pickled_array_is_never_loaded(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    needles = _needles(s)
    s.data_dir.mkdir(parents=True)
    np.savez_compressed(s.data_dir / "objects.npz", users=np.array([needles["pseudonym"], 1], dtype=object))
    notes: list[str] = []
    [finding] = scan_files(s, needles, notes)
    assert finding.detail == "member users.npy bytes utf-8"  # pickle keeps a str as UTF-8
    assert any("holds Python objects" in note for note in notes)


def test_a_value_filtered_out_of_a_dictionary_column_is_still_found(tmp_path: Path) -> None:
    """Filtering rows keeps a dictionary-encoded column's dictionary, and the writer stores it whole:
    the erased value stays in the file though no row shows it."""
    s = _settings(tmp_path)
    needles = _needles(s)
    table = pa.table({"user_id": pa.array([_other(s), needles["pseudonym"]]).dictionary_encode(), "n": [1, 2]})
    s.data_dir.mkdir(parents=True)
    pq.write_table(table.filter(pc.equal(table["n"], 1)), s.data_dir / "compacted.parquet")
    assert pq.read_table(s.data_dir / "compacted.parquet").num_rows == 1
    [finding] = scan_files(s, needles)
    assert (finding.where, finding.needle_kind, finding.detail) == (
        "compacted.parquet",
        "pseudonym",
        "column user_id: no row, but its dictionary still holds it",
    )


# --- the application's own id, matched as a whole token ------------------------------------------------


def test_a_numeric_id_counts_only_as_a_user_value_and_its_coincidences_are_a_note(tmp_path: Path) -> None:
    """Real logs number their users: erasing user 17 must neither find 1705, 0.17 or 2026-11-17, nor
    count item 17 or a count of 17 as the user; a user column still holding 17 is residue."""
    s = _settings(tmp_path)
    pseudonym = pseudonymize("17", s.secret_hmac_key())
    needles = {"raw id": Token("17"), "pseudonym": pseudonym}
    data = s.data_dir
    (data / "events").mkdir(parents=True)
    pq.write_table(
        pa.table({"user_id": ["u_x", "u_y"], "item_id": ["17", "1705"], "score": ["0.17", "2026-11-17"]}),
        data / "events" / "part-0.parquet",
    )
    (data / "reports").mkdir()
    (data / "reports" / "run.json").write_text('{"count": 17, "at": "08:17", "ts": 1705000017}')
    (data / "reports" / "near.txt").write_text("users 1705 and 117 and 0.17 and 17.5 and 2026-11-17")
    notes: list[str] = []
    assert scan(s, needles, notes) == []
    [note] = [n for n in notes if "stands alone" in n]
    assert note.startswith("the raw id stands alone in 2 other place(s), not counted as residue")
    assert "events/part-0.parquet" in note and "reports/run.json" in note and "near.txt" not in note
    assert any(n.startswith("the raw id is a number") for n in notes)

    pq.write_table(pa.table({"user_id": ["17", "u_y"], "n": [1, 2]}), data / "events" / "leak.parquet")
    ids = IdentityMap(s.metadata_url)
    try:
        ids.remember([(pseudonym, "17"), (_other(s), "117")])
    finally:
        ids.dispose()
    found = scan(s, needles)
    assert {(f.store, f.where, f.needle_kind) for f in found if f.needle_kind == "raw id"} == {
        ("file", "events/leak.parquet", "raw id"),
        ("sqlite", "identity_map.raw_id", "raw id"),
    }
    assert next(f for f in found if f.where == "identity_map.raw_id").detail == "1 row (1 exact) (database metadata.db)"
    assert not any(f.coincidence for f in found)


def test_a_token_is_not_found_inside_a_longer_id_but_alone_anywhere(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    s.data_dir.mkdir(parents=True)
    (s.data_dir / "longer.txt").write_text(f"user={RAW}0 {RAW}_b x{RAW}")
    (s.data_dir / "alone.txt").write_text(f'{{"user": "{RAW}"}}')
    (s.data_dir / "alone-utf16.txt").write_bytes(f"({RAW})".encode("utf-16-le"))
    (s.data_dir / "longer-utf16.txt").write_bytes(f"{RAW}9".encode("utf-16-le"))
    findings = scan_files(s, {"raw id": Token(RAW)})
    assert [(f.where, f.detail, f.coincidence) for f in findings] == [
        ("alone-utf16.txt", "bytes utf-16-le", False),
        ("alone.txt", "bytes utf-8", False),
    ]


def test_a_token_is_judged_with_both_neighbours_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _settings(tmp_path)
    monkeypatch.setattr(residue, "CHUNK", 5)
    s.data_dir.mkdir(parents=True)
    for offset in range(7):  # every split of the id, and of its neighbours, over two reads
        (s.data_dir / f"alone{offset}.txt").write_bytes(b"x" * offset + b" " + RAW.encode() + b" yyy")
        (s.data_dir / f"joined{offset}.txt").write_bytes(b"x" * offset + b"a" + RAW.encode() + b"0yyy")
    (s.data_dir / "end.txt").write_bytes(b"xxxxxxx " + RAW.encode())  # alone up to the file's end
    findings = scan_files(s, {"raw id": Token(RAW)})
    assert [f.where for f in findings] == [f"alone{offset}.txt" for offset in range(7)] + ["end.txt"]


def test_masking_a_numeric_id_leaves_other_numbers_whole(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    s.data_dir.mkdir(parents=True)
    (s.data_dir / "5").mkdir()
    (s.data_dir / "5" / "51.txt").write_text("count 5")
    findings = scan_files(s, {"raw id": Token("5")})
    assert not (s.data_dir / "mlflow.db").exists()  # the scan created no tracking store of its own
    assert [(f.where, f.coincidence) for f in findings] == [("<raw id>", True), ("<raw id>/51.txt", True)]
    text = render(findings)
    assert "51.txt" in text and "(possible coincidence)" in text


def test_a_numeric_id_in_a_user_array_is_residue_and_elsewhere_a_coincidence(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    (s.data_dir / "candidates").mkdir(parents=True)
    np.savez_compressed(
        s.data_dir / "candidates" / "arrays.npz", user_ids=np.array(["17", "170"]), item_ids=np.array(["17", "3"])
    )
    findings = scan_files(s, {"raw id": Token("17")})
    [residue_found] = [f for f in findings if not f.coincidence]
    assert residue_found.detail == "array user_ids: 1 value (1 exact)"
    # the item with the same id, and the id's bytes in the arrays' members, are possible coincidences
    [coincidence] = [f for f in findings if f.coincidence]
    assert "array item_ids: 1 value (1 exact)" in coincidence.detail


def test_a_place_holding_both_needles_is_one_place() -> None:
    both = [
        Finding("file", "events/a.parquet", "pseudonym", "1 row"),
        Finding("file", "events/a.parquet", "raw id", "1 row"),
        Finding("postgres", "identity_map.raw_id", "raw id", "1 row"),
        Finding("redis", "setlist:*", "pseudonym 2", "1 key"),
    ]
    assert places(both) == 3
    assert places(both, ("pseudonym", "raw id")) == 2
    assert places(both, ("pseudonym 2",)) == 1 and places([], None) == 0
