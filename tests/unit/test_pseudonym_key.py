"""The pseudonymization key in use must be the one the stored data was written with: a second key
splits every user in two and sends an erasure after the wrong pseudonym."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingest.erasure import erase
from ingest.intake import ingest
from setlist.errors import Refused
from setlist.pseudonym import IdentityMap, KeyMismatch, check_key, identity_rows, pseudonymize
from setlist.settings import Settings


def settings_with(data_dir: Path, key: str | None = None, key_file: Path | None = None) -> Settings:
    return Settings(data_dir=data_dir, hmac_key=key, hmac_key_file=key_file, impressions_enabled=False)


def remember(settings: Settings, users: list[str]) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ids = IdentityMap(settings.metadata_url)
    try:
        ids.remember((pseudonymize(u, settings.secret_hmac_key()), u) for u in users)
    finally:
        ids.dispose()


def test_a_first_run_has_nothing_to_compare_and_creates_no_store(tmp_path: Path) -> None:
    settings = settings_with(tmp_path / "data", key="k1")
    check_key(settings)
    assert not (tmp_path / "data" / "metadata.db").exists()


def test_the_key_the_data_was_written_with_passes_and_another_is_refused_naming_its_source(tmp_path: Path) -> None:
    data = tmp_path / "data"
    remember(settings_with(data, key="the-key"), ["alice", "bob"])
    check_key(settings_with(data, key="the-key"))
    other = tmp_path / "other.key"
    other.write_text("another-key\n")
    with pytest.raises(KeyMismatch, match=rf"SETLIST_HMAC_KEY_FILE={other}.*2 of the first 2 users") as caught:
        check_key(settings_with(data, key_file=other))
    assert isinstance(caught.value, Refused) and "another-key" not in str(caught.value)


def test_an_import_and_an_erasure_under_another_key_change_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    right = settings_with(data, key="the-key")
    remember(right, ["alice"])
    wrong = settings_with(data, key="a-new-key")
    event = {
        "event_id": "e1",
        "user_id": "alice",
        "item_id": "i1",
        "event_type": "play",
        "timestamp": pd.Timestamp.now(tz="UTC"),
    }
    with pytest.raises(KeyMismatch):
        ingest(pd.DataFrame([event]), wrong, source="test")
    with pytest.raises(KeyMismatch, match="pairs no pseudonym with this id either"):
        erase("carol", wrong)  # not in the identity map: the wrong key's pseudonym would be no one's
    assert not (data / "events").exists()  # no event logged, no tombstone written
    ids = IdentityMap(right.metadata_url)
    try:
        assert ids.resolve(pseudonymize("alice", b"the-key")) == "alice"  # nothing erased
    finally:
        ids.dispose()


def test_an_erasure_by_app_id_under_a_refused_key_reaches_the_pseudonym_the_identity_map_pairs_with_it(
    tmp_path: Path,
) -> None:
    from ingest.erasure import erase_all, targets

    data = tmp_path / "data"
    right = settings_with(data, key="the-key")
    remember(right, ["alice", "bob"])
    found = targets("alice", settings_with(data, key="a-new-key"), by_pseudonym=False)
    receipts = erase_all("alice", settings_with(data, key="a-new-key"), found=found)
    assert found.ids == [pseudonymize("alice", b"the-key")]  # not the new key's: that one is no one's
    assert "key in use is refused" in found.note and "used instead" in found.note
    assert [r.removed_in("identity map") for r in receipts] == [1]
    ids = IdentityMap(right.metadata_url)
    try:
        assert ids.resolve(pseudonymize("alice", b"the-key")) is None
        assert ids.resolve(pseudonymize("bob", b"the-key")) == "bob"  # no one else
    finally:
        ids.dispose()


def test_a_server_under_another_key_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    from serving.__main__ import StartupError, preflight

    data = tmp_path / "data"
    remember(settings_with(data, key="the-key"), ["alice"])
    (data / "registry.db").touch()  # past the check for a built registry
    with pytest.raises(StartupError, match="not the one this data was written with"):
        preflight(settings_with(data, key="a-new-key"))


def test_a_lost_key_file_is_refused_and_no_new_key_is_made_for_the_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    written = settings_with(data)  # the local profile's own key, made on first use
    remember(written, ["alice"])
    key_file = data / "secrets" / "hmac.key"
    key_file.unlink()  # lost: a copy of the data directory without its secrets
    with pytest.raises(KeyMismatch, match="no pseudonymization key .*does not exist"):
        check_key(settings_with(data))
    assert not key_file.exists()


def test_an_erasure_by_pseudonym_needs_no_key_and_makes_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    remember(settings_with(data, key="the-key"), ["alice"])
    pseudonym = pseudonymize("alice", b"the-key")
    receipt = erase(pseudonym, settings_with(data), by_pseudonym=True)  # no key set: the operator's fallback
    assert receipt.removed_in("identity map") == 1
    assert not (data / "secrets" / "hmac.key").exists()


def test_without_a_key_an_event_log_is_evidence_of_a_lost_one(tmp_path: Path) -> None:
    from setlist.eventlog import EventLog
    from tests.unit.test_journal import row as journal_row

    data = tmp_path / "data"
    EventLog(data / "events").append(
        pd.DataFrame([journal_row(0)]).assign(timestamp=lambda f: pd.to_datetime(f.timestamp, unit="ms", utc=True))
    )
    with pytest.raises(KeyMismatch, match="the event log holds events pseudonymized with one"):
        check_key(settings_with(data))
    assert not (data / "secrets" / "hmac.key").exists()


def test_looking_a_user_up_by_app_id_makes_no_key(tmp_path: Path) -> None:
    from ingest.access import gather

    data = tmp_path / "data"
    with pytest.raises(Refused, match="no pseudonymization key yet"):
        gather(settings_with(data), "alice")
    with pytest.raises(Refused, match="no pseudonymization key yet"):
        erase("alice", settings_with(data))
    assert not (data / "secrets" / "hmac.key").exists()


def test_a_directory_an_older_release_gave_a_second_key_is_refused_with_the_erasure_that_still_works(
    tmp_path: Path,
) -> None:
    # before the check, a missing key file was replaced by a new key, silently: the identity map then holds
    # the first key's users and, after them, the second key's
    data = tmp_path / "data"
    remember(settings_with(data, key="the-first-key"), ["alice"])
    second = settings_with(data, key="the-second-key")
    remember(second, ["bob"])
    with pytest.raises(KeyMismatch, match=r"by app id still works.*--pseudonym.*match the older key"):
        check_key(second)
    receipt = erase("bob", second)  # through the identity map's pair
    assert receipt.removed_in("identity map") == 1
    receipt = erase(pseudonymize("alice", b"the-first-key"), second, by_pseudonym=True)
    assert receipt.removed_in("identity map") == 1


def test_an_erasure_under_the_right_key_also_reaches_the_ids_pseudonym_under_an_older_releases_second_key(
    tmp_path: Path,
) -> None:
    from ingest.erasure import erase_all, erased_users, targets

    data = tmp_path / "data"
    first = settings_with(data, key="the-first-key")
    remember(first, [f"user-{n}" for n in range(16)] + ["alice"])  # the users the key check compares
    remember(settings_with(data, key="the-second-key"), ["alice"])  # alice again, after the key was replaced
    found = targets("alice", first, by_pseudonym=False)
    assert found.ids == [pseudonymize("alice", b"the-first-key"), pseudonymize("alice", b"the-second-key")]
    assert "1 pseudonym: 1 of another key" in found.note
    shown = []
    receipts = erase_all("alice", first, found=found, on_receipt=shown.append)
    assert shown == receipts and [r.removed_in("identity map") for r in receipts] == [1, 1]
    assert [p for p, raw in identity_rows(first) if raw == "alice"] == []
    assert erased_users(first)[0] == 1  # one user, two receipts
    erase("user-3", first)
    assert erased_users(first)[0] == 2


def test_an_erasure_cut_short_after_one_pseudonym_is_finished_by_running_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity map's pair goes last: an older key's pseudonym a failed run did not finish is still
    named by it, so the same erasure run again reaches it."""
    from ingest import erasure

    data = tmp_path / "data"
    first = settings_with(data, key="the-first-key")
    remember(first, [f"user-{n}" for n in range(16)] + ["alice"])
    remember(settings_with(data, key="the-second-key"), ["alice"])
    second = pseudonymize("alice", b"the-second-key")
    real = erasure._quarantine

    def failing(settings: Settings, pseudonym: str, say: object) -> object:
        if pseudonym == second:
            raise OSError(28, "No space left on device")
        return real(settings, pseudonym, say)  # type: ignore[arg-type]

    monkeypatch.setattr(erasure, "_quarantine", failing)
    with pytest.raises(OSError):
        erasure.erase("alice", first)
    assert [p for p, raw in identity_rows(first) if raw == "alice"] == [second]  # still named
    monkeypatch.setattr(erasure, "_quarantine", real)
    found = erasure.targets("alice", first, by_pseudonym=False)
    assert found.ids == [pseudonymize("alice", b"the-first-key"), second]
    receipts = erasure.erase_all("alice", first, found=found)
    assert receipts[1].resumes and [p for p, raw in identity_rows(first) if raw == "alice"] == []
    assert erasure.erased_users(first)[0] == 1 and erasure.unfinished(first) == []


def test_status_fails_under_a_key_every_job_refuses_and_is_silent_under_the_right_one(tmp_path: Path) -> None:
    from ops.status import Report, key_lines

    data = tmp_path / "data"
    remember(settings_with(data, key="the-key"), ["alice", "bob"])
    assert key_lines(settings_with(data, key="the-key")) == []
    (line,) = key_lines(settings_with(data, key="a-new-key"))
    assert (line.section, line.name, line.mark) == ("events", "pseudonymization key", "fail")
    assert "2 of the first 2 users" in line.value
    report = Report([line], [])
    assert report.stops == ["the key is refused"] and not report.ok


def test_an_erasure_stopped_between_two_pseudonyms_is_shown_cut_short(tmp_path: Path) -> None:
    """The first pseudonym's receipt names the group; the second's run never began (no tombstone of its
    own): status must not call the user erased and say nothing."""
    from ingest import erasure

    data = tmp_path / "data"
    first = settings_with(data, key="the-first-key")
    remember(first, [f"user-{n}" for n in range(16)] + ["alice"])
    remember(settings_with(data, key="the-second-key"), ["alice"])
    second = pseudonymize("alice", b"the-second-key")

    def interrupted(_: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        erasure.erase_all("alice", first, on_receipt=interrupted)
    assert [u.digest for u in erasure.unfinished(first)] == [erasure.erasure_digest(second)]
    erasure.erase_all("alice", first)
    assert erasure.unfinished(first) == [] and erasure.erased_users(first)[0] == 1


def test_a_directory_an_older_release_gave_a_second_key_is_accepted_under_the_older_key(tmp_path: Path) -> None:
    """The key check compares the first pairs stored: under the older key (the README's way out) a directory
    whose later users got a silent second key passes, whatever their pseudonyms sort as."""
    data = tmp_path / "data"
    remember(settings_with(data, key="the-first-key"), [f"user-{n}" for n in range(40)])
    remember(settings_with(data, key="the-second-key"), [f"late-{n}" for n in range(40)])
    check_key(settings_with(data, key="the-first-key"))
    with pytest.raises(KeyMismatch):
        check_key(settings_with(data, key="the-second-key"))
