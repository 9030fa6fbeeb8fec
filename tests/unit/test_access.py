"""A subject-access request: the user's rows found where erasure would look, by the same pseudonym,
copied out on request, and nobody else's."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ingest.__main__ import app
from ingest.access import export, gather
from setlist.eventlog import EventLog
from setlist.pseudonym import IdentityMap, pseudonymize
from setlist.settings import Settings
from tests.unit.test_journal import row as journal_row


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(data_dir=tmp_path / "data", hmac_key="test-hmac-key", impressions_enabled=False)
    alice, bob = (pseudonymize(u, s.secret_hmac_key()) for u in ("alice", "bob"))
    rows = [{**journal_row(n), "user_id": user} for n, user in enumerate([alice, bob, alice])]
    EventLog(s.events_dir).append(
        pd.DataFrame(rows).assign(timestamp=lambda f: pd.to_datetime(f.timestamp, unit="ms", utc=True))
    )
    s.features_dir.mkdir(parents=True)
    pd.DataFrame({"user_id": [alice, bob], "user_plays_7d": [3, 9]}).to_parquet(s.features_dir / "user_profile.parquet")
    ids = IdentityMap(s.metadata_url)
    try:
        ids.remember([(alice, "alice"), (bob, "bob")])
    finally:
        ids.dispose()
    return s


def test_the_users_rows_are_found_by_place_and_nobody_elses(settings: Settings) -> None:
    found = gather(settings, "alice")
    assert found.raw_id == "alice" and found.pseudonym == pseudonymize("alice", b"test-hmac-key")
    counts = {(h.place, h.dataset): len(h.rows) for h in found.held}
    assert counts == {("event log", "events"): 2, ("feature files", "features/user_profile.parquet"): 1}
    assert all(set(h.rows["user_id"]) == {found.pseudonym} for h in found.held)
    assert found.online == {} and "no feature store yet" in found.notes[0]


def test_the_export_holds_every_row_found_readable_by_its_owner_only(settings: Settings, tmp_path: Path) -> None:
    found = gather(settings, "alice")
    written = export(found, tmp_path / "out")
    assert {p.name for p in written} == {
        "event-log-events.jsonl",
        "feature-files-features-user-profile.jsonl",
        "summary.json",
    }
    lines = [json.loads(x) for x in (tmp_path / "out" / "event-log-events.jsonl").read_text().splitlines()]
    assert [x["event_id"] for x in lines] == ["e0", "e2"] and {x["user_id"] for x in lines} == {found.pseudonym}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["raw_id"] == "alice" and summary["datasets"]["event-log-events.jsonl"]["rows"] == 2
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700


def test_the_command_lists_the_places_and_a_user_never_seen_has_none(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SETLIST_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "test-hmac-key")
    runner = CliRunner()
    result = runner.invoke(app, ["access", "alice"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "identity map: alice" in result.output and "events" in result.output
    assert "file: events/ [pseudonym] 1 day file" in result.output  # the scan, one line per dataset
    nobody = runner.invoke(app, ["access", "carol", "--no-scan"], env={"COLUMNS": "200"})
    assert nobody.exit_code == 0, nobody.output
    assert "not in the identity map" in nobody.output and "no rows of this user" in nobody.output


def test_an_export_overwrites_nothing_and_leaves_an_existing_directorys_mode(
    settings: Settings, tmp_path: Path
) -> None:
    from setlist.errors import UsageError

    found = gather(settings, "alice")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "summary.json").write_text("someone else's")
    with pytest.raises(UsageError, match="not a new or empty directory"):
        export(found, busy)
    assert (busy / "summary.json").read_text() == "someone else's"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # as /tmp
    export(found, shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    runner = CliRunner()
    refused = runner.invoke(app, ["access", "alice", "--no-scan", "--export", str(busy)])
    assert refused.exit_code == 2 and "not a new or empty directory" in refused.output


def test_a_models_row_of_the_user_is_found_and_exported_and_no_registry_is_made(
    settings: Settings, tmp_path: Path
) -> None:
    """A candidate model's files hold inferences about the user (factors, the items it counts as seen,
    its precomputed nearest items): the answer includes that row, as erasure removes it."""
    import numpy as np
    import scipy.sparse as sp

    from setlist.embedding_top import INDPTR_FILE, ITEMS_FILE

    alice, bob = (pseudonymize(u, b"test-hmac-key") for u in ("alice", "bob"))
    index = settings.artifact_root / "models" / "m-1" / "artifacts" / "index"
    index.mkdir(parents=True)
    np.savez(
        index / "arrays.npz",
        user_ids=np.array([bob, alice]),
        user_factors=np.array([[0.0, 0.0], [0.5, -1.0]], np.float32),
        item_ids=np.array(["i0", "i1", "i2"]),
    )
    sp.save_npz(index / "seen.npz", sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 1]])))
    np.save(index / INDPTR_FILE, np.array([0, 1, 3]))
    np.save(index / ITEMS_FILE, np.array([2, 0, 1], np.uint16))  # bob: i2; alice: i0 then i1
    found = gather(settings, "alice")
    ((where, row),) = found.models.items()
    assert where.endswith("m-1/artifacts/index")
    assert row == {"user_factors": [0.5, -1.0], "seen_items": ["i1", "i2"], "nearest_items": ["i0", "i1"]}
    written = export(found, tmp_path / "out")
    assert "models.json" in {p.name for p in written}
    assert json.loads((tmp_path / "out" / "models.json").read_text()) == found.models
    assert not (settings.data_dir / "mlflow.db").exists()  # a request for access made no registry
    assert gather(settings, "carol").models == {}


def test_an_ids_pseudonym_under_another_key_is_read_too_and_a_model_file_that_cannot_be_read_is_a_note(
    settings: Settings, tmp_path: Path
) -> None:
    older = pseudonymize("alice", b"an-older-key")  # an older release's second key, as erasure reaches it
    EventLog(settings.events_dir).append(
        pd.DataFrame([{**journal_row(9), "user_id": older}]).assign(
            timestamp=lambda f: pd.to_datetime(f.timestamp, unit="ms", utc=True)
        )
    )
    ids = IdentityMap(settings.metadata_url)
    try:
        ids.remember([(older, "alice")])
    finally:
        ids.dispose()
    broken = settings.artifact_root / "models" / "m-2" / "artifacts" / "index"
    broken.mkdir(parents=True)
    (broken / "arrays.npz").write_bytes(b"cut short")
    found = gather(settings, "alice")
    current = pseudonymize("alice", settings.secret_hmac_key())
    # under a refused key (1 of 3 wrong) the identity map's pairs, in pseudonym order
    assert [found.pseudonym, *found.others] == sorted([current, older])
    assert "2 pseudonyms for this id are used instead" in found.notes[0]
    counts = {(h.place, h.dataset): len(h.rows) for h in found.held}
    rows = {current: 2, older: 1}
    assert counts[("event log", "events")] == rows[found.pseudonym]
    assert counts[("event log", "events pseudonym-2")] == rows[found.others[0]]
    assert any("could not read the model files in" in n and "not answered" in n for n in found.notes)
    written = {p.name for p in export(found, tmp_path / "out")}
    assert "event-log-events-pseudonym-2.jsonl" in written
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["other_pseudonyms"] == found.others
