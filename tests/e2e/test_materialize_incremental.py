"""Incremental materialization gives what a full rebuild gives, offline and online.

A tiny generated world is published with its newest events held back; the tests append them (or
change the log in other ways) and compare an incremental publish with a ``--full`` one on an
identical copy of the data directory.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.data_sources import CONSENT_FILE, ITEM_STATS_FILE, SESSION_FILE, USER_PROFILE_FILE
from setlist.settings import Settings
from tests.world import END, SEED, tiny_settings

FILES = (USER_PROFILE_FILE, ITEM_STATS_FILE, SESSION_FILE, CONSENT_FILE)
HELD_BACK = 300


@dataclass
class Base:
    settings: Settings
    held_back: pd.DataFrame  # raw events (application user ids), newest of the world
    items: pd.DataFrame
    users: pd.DataFrame


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    from feature_repo.materialize import publish
    from ingest.generate import generate
    from ingest.intake import ingest
    from setlist.catalog import save_items

    settings = tiny_settings(tmp_path_factory.mktemp("incremental") / "data")
    data = generate("tiny", seed=SEED, end=END, progress=False)
    events = data.events.sort_values(["timestamp", "event_id"], kind="mergesort").reset_index(drop=True)
    save_items(data.items, settings.catalog_path)
    ingest(events.iloc[:-HELD_BACK], settings, source="generator", check_log_duplicates=False)
    report = publish(settings)
    assert report.mode == "full" and report.version == 1
    return Base(settings, events.iloc[-HELD_BACK:].reset_index(drop=True), data.items, data.users)


def _copy(settings: Settings, target: Path) -> Settings:
    shutil.copytree(settings.data_dir, target)
    return settings.model_copy(update={"data_dir": target})


def _online(settings: Settings, ids_from: Settings | None = None) -> dict[str, list]:
    """Every user's and item's row (those of ``ids_from``'s files) in every batch view, as the
    serving path reads them."""
    from feature_repo.online import OnlineFeatures
    from feature_repo.store import definitions, get_store

    defs = definitions(settings)
    online = OnlineFeatures(
        get_store(settings), [defs.views.user_profile, defs.views.session, defs.views.consent, defs.views.item_stats]
    )
    where = (ids_from or settings).features_dir
    users = sorted(pd.read_parquet(where / CONSENT_FILE)["user_id"])
    items = sorted(pd.read_parquet(where / ITEM_STATS_FILE)["item_id"].unique())
    out = {view: online.read(view, users) for view in ("user_profile", "session", "user_consent")}
    out["item_stats"] = online.read("item_stats", items)
    return out


def _assert_same_as_full(incremental: Settings, full: Settings) -> None:
    for fname in FILES:
        a = (incremental.features_dir / fname).read_bytes()
        b = (full.features_dir / fname).read_bytes()
        assert a == b, f"{fname} differs between the incremental and the full build"
    got, want = _online(incremental), _online(full)
    for view in want:
        assert len(got[view]) == len(want[view]) > 0
        diff = [i for i, (g, w) in enumerate(zip(got[view], want[view])) if g != w]
        assert not diff, (view, got[view][diff[0]], want[view][diff[0]])


def _append(settings: Settings, raw: pd.DataFrame) -> None:
    from ingest.intake import ingest

    report = ingest(raw, settings, source="import")
    assert report.accepted == len(raw)


def test_incremental_after_an_append_equals_a_full_rebuild(base: Base, tmp_path: Path) -> None:
    from feature_repo.materialize import publish

    inc = _copy(base.settings, tmp_path / "inc")
    new = base.held_back.copy()
    # one known user withdraws personalization consent in the new events: their rows must go
    withdrawing = new.loc[
        new["user_id"].isin(base.users.loc[base.users["consent_personalization"], "user_id"]), "user_id"
    ].iloc[0]
    new.loc[new["user_id"] == withdrawing, "consent_personalization"] = False
    _append(inc, new)
    full = _copy(inc, tmp_path / "full")

    report = publish(inc)
    assert report.mode == "incremental", report.reason
    users, items = report.touched
    assert 0 < users < len(base.users) and 0 < items
    assert report.changed[USER_PROFILE_FILE] < report.rows[USER_PROFILE_FILE]
    assert publish(full, full=True).mode == "full"
    _assert_same_as_full(inc, full)
    before, after = _online(base.settings), _online(inc, ids_from=base.settings)
    for view in before:  # the run did write new values online
        assert before[view] != after[view], view
    from setlist.pseudonym import pseudonymize

    gone = pseudonymize(withdrawing, inc.secret_hmac_key())
    profile = pd.read_parquet(inc.features_dir / USER_PROFILE_FILE)
    assert gone not in set(profile["user_id"])

    again = publish(inc)
    assert again.mode == "none" and again.version == report.version


def test_days_of_events_without_consent_do_not_make_the_features_stale(base: Base, tmp_path: Path) -> None:
    """Five days on, only users who refused consent were active: nothing new may reach the features,
    and the batch is not rejected as five days behind the log."""
    from feature_repo.materialize import publish

    inc = _copy(base.settings, tmp_path / "inc")
    quiet = base.held_back.head(40).copy()
    quiet["user_id"] = [f"refused-{k % 4}" for k in range(len(quiet))]
    quiet["event_id"] = quiet["event_id"] + "-quiet"
    quiet["timestamp"] = pd.Timestamp(END) + pd.Timedelta(days=5) + pd.to_timedelta(range(len(quiet)), unit="s")
    quiet["consent_personalization"], quiet["consent_analytics"] = False, False
    _append(inc, quiet)
    report = publish(inc)
    assert report.mode == "incremental", report.reason
    assert publish(inc, full=True).mode == "full"  # the full build's gate agrees


def test_a_changed_catalogue_row_recomputes_that_item_and_its_listeners(base: Base, tmp_path: Path) -> None:
    from feature_repo.materialize import publish
    from setlist.catalog import save_items

    inc = _copy(base.settings, tmp_path / "inc")
    items = base.items.copy()
    # an item played by some users, but by few enough that recomputing them stays incremental: the
    # most played item may have been played by most users (the user ids, and so ties, vary per run)
    from feature_repo.incremental import MAX_TOUCHED_SHARE
    from setlist.eventlog import EventLog

    log = EventLog(inc.events_dir).read(columns=("user_id", "item_id"))
    listeners = log.groupby("item_id")["user_id"].nunique()
    played = listeners[listeners < MAX_TOUCHED_SHARE / 2 * log["user_id"].nunique()].idxmax()
    assert played in set(pd.read_parquet(inc.features_dir / ITEM_STATS_FILE)["item_id"])
    genres = sorted(items["genre"].dropna().unique())
    now = items.loc[items["item_id"] == played, "genre"].iloc[0]
    items.loc[items["item_id"] == played, "genre"] = next(g for g in genres if g != now)
    items.loc[items["item_id"] == played, "duration_s"] = 123.0
    save_items(items, inc.catalog_path)
    full = _copy(inc, tmp_path / "full")

    report = publish(inc)
    assert report.mode == "incremental" and "1 changed catalogue item" in report.reason
    assert report.touched[0] > 0  # the item's listeners: their genre affinities moved
    publish(full, full=True)
    _assert_same_as_full(inc, full)


def test_erasure_falls_back_to_a_full_rebuild_and_says_why(base: Base, tmp_path: Path) -> None:
    from feature_repo.materialize import publish
    from ingest.erasure import erase

    s = _copy(base.settings, tmp_path / "data")
    erase(str(base.users["user_id"].iloc[0]), s)
    report = publish(s)
    assert report.mode == "full"
    assert "erasure" in report.reason or "erased" in report.reason


def test_a_batch_published_by_the_caller_makes_the_next_run_full(base: Base, tmp_path: Path) -> None:
    from feature_repo.materialize import build_from_log, publish

    s = _copy(base.settings, tmp_path / "data")
    batches, snap = build_from_log(s)
    publish(s, batches, snap)
    report = publish(s)
    assert report.mode == "full" and "no record" in report.reason


def test_a_changed_ttl_with_nothing_to_rebuild_is_still_applied_to_the_registry(base: Base, tmp_path: Path) -> None:
    # training's point-in-time join reads the registry's TTLs: "nothing to do" must not leave the old ones
    from datetime import timedelta

    from feature_repo.materialize import publish
    from feature_repo.store import get_store

    s = _copy(base.settings, tmp_path / "data").model_copy(update={"feature_ttl_days": 7.0})
    report = publish(s)
    assert report.mode == "none" and "user_profile TTL none → 7 days" in report.reason, report.reason
    assert get_store(s).get_feature_view("user_profile").ttl == timedelta(days=7)
    again = publish(s)
    assert again.mode == "none" and "applied" not in again.reason


def test_an_emptied_online_store_is_noticed_and_rebuilt(base: Base, tmp_path: Path) -> None:
    from feature_repo.materialize import publish

    s = _copy(base.settings, tmp_path / "data")
    (s.data_dir / "online.db").unlink()
    report = publish(s)
    assert report.mode == "full" and "online store" in report.reason
    assert _online(s)["user_consent"][0][1] is not None


def test_an_append_touching_most_users_falls_back_to_a_full_rebuild(base: Base, tmp_path: Path) -> None:
    from feature_repo.materialize import publish

    s = _copy(base.settings, tmp_path / "data")
    everyone = base.held_back.drop_duplicates("user_id").head(1).copy()
    everyone = pd.concat(
        [everyone.assign(user_id=u, event_id=f"again-{i}") for i, u in enumerate(base.users["user_id"])],
        ignore_index=True,
    )
    _append(s, everyone)
    report = publish(s)
    assert report.mode == "full" and "full build is as cheap" in report.reason


def test_the_command_says_which_mode_ran_and_why(base: Base, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from feature_repo.__main__ import app

    s = _copy(base.settings, tmp_path / "data")
    for key, value in {
        "SETLIST_DATA_DIR": str(s.data_dir),
        "SETLIST_SCALE": "tiny",
        "SETLIST_SEED": str(SEED),
        "SETLIST_HMAC_KEY": "test-hmac-key",
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, " ".join(result.output.split())  # rich wraps long lines

    code, out = run("materialize")
    assert code == 0 and "nothing to do" in out
    code, out = run("materialize", "--full")
    assert code == 0 and "full build: --full was asked for" in out

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "empty"))
    from setlist.settings import get_settings

    get_settings.cache_clear()
    code, out = run("materialize")
    assert code == 1 and "is empty" in out and "Traceback" not in out
