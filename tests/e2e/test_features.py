"""Feast repository: online values equal point-in-time offline values; no leakage; erasure."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from feature_repo.declarations import load
from feature_repo.online import OnlineFeatures
from feature_repo.store import definitions, get_store
from setlist.eventlog import EventLog
from setlist.pseudonym import IdentityMap, pseudonymize
from training.dataset import historical

V1 = load().service("ranker_v1")
USER_NUMERIC, ITEM_NUMERIC = V1.block("user"), V1.block("item")


def _close(a: object, b: object) -> bool:
    if isinstance(a, (list, np.ndarray)) or isinstance(b, (list, np.ndarray)):
        return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=1e-5)
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return bool(np.isclose(float(a), float(b), atol=1e-6))


def test_online_values_equal_historical_at_the_same_moment(tiny_world):
    s = tiny_world.settings
    store = get_store(s)
    profile = pd.read_parquet(s.features_dir / "user_profile.parquet")
    items = pd.read_parquet(s.features_dir / "item_stats.parquet")
    as_of = max(profile["event_timestamp"].max(), items["event_timestamp"].max()) + pd.Timedelta(seconds=1)
    users = sorted(profile["user_id"].unique())[:25]
    item_ids = sorted(items["item_id"].unique())[:25]
    entity = pd.DataFrame(
        {
            "user_id": np.repeat(users, 1),
            "item_id": item_ids[: len(users)],
            "event_timestamp": as_of,
            "device": "mobile",
        }
    )
    offline = historical(store, entity, V1.name)
    online = store.get_online_features(
        features=[f"user_profile:{n}" for n in (*USER_NUMERIC, "user_genre_affinity")]
        + [f"item_stats:{n}" for n in ITEM_NUMERIC],
        entity_rows=[{"user_id": u, "item_id": i} for u, i in zip(entity["user_id"], entity["item_id"])],
    ).to_dict()
    compared = 0
    for name in (*USER_NUMERIC, "user_genre_affinity", *ITEM_NUMERIC):
        for row, value in enumerate(online[name]):
            assert _close(value, offline[name].iloc[row]), (name, row, value, offline[name].iloc[row])
            compared += 1
    assert compared == len(entity) * (len(USER_NUMERIC) + 1 + len(ITEM_NUMERIC))


def test_point_in_time_join_never_sees_a_value_stamped_after_the_label(tiny_world):
    s = tiny_world.settings
    store = get_store(s)
    profile = pd.read_parquet(s.features_dir / "user_profile.parquet")
    # a user whose 7-day play count changes between two consecutive snapshots
    for user, grp in profile.groupby("user_id"):
        grp = grp.sort_values("event_timestamp")
        changed = grp["user_plays_7d"].diff().fillna(0) != 0
        if changed.any():
            uid = user
            after = grp[changed].iloc[0]
            before = grp[grp["event_timestamp"] < after["event_timestamp"]].iloc[-1]
            break
    else:
        pytest.fail("no user changes features in the tiny world")
    label_time = after["event_timestamp"] - pd.Timedelta(milliseconds=1)
    rows = pd.DataFrame(
        {
            "user_id": [uid, uid],
            "item_id": ["x", "y"],
            "device": "mobile",
            "event_timestamp": [label_time, after["event_timestamp"] + pd.Timedelta(milliseconds=1)],
        }
    )
    got = historical(store, rows, V1.name)
    assert got["user_plays_7d"].iloc[0] == before["user_plays_7d"]  # the value from before the label
    assert got["user_plays_7d"].iloc[1] == after["user_plays_7d"]


@pytest.fixture
def shared_models_restored(tiny_copy, tmp_path):
    """The copy's registered models are the session world's own files (``tiny_copy`` copies the data
    directory, not the artifacts MLflow points at): erasure rewrites them, so they are put back after,
    or every later test would score the world's champion without the erased user."""
    from setlist.registry import artifact_roots

    outside = [r for r in artifact_roots(tiny_copy.settings) if r.exists() and not r.is_relative_to(tmp_path)]
    saved = {r: tmp_path / f"models-{n}" for n, r in enumerate(outside)}
    for root, keep in saved.items():
        shutil.copytree(root, keep)
    yield tiny_copy
    for root, keep in saved.items():
        shutil.rmtree(root)
        shutil.copytree(keep, root)


def test_erasure_removes_a_user_everywhere(shared_models_restored):
    from feature_repo.materialize import build_from_log
    from ingest.erasure import erase

    tiny_copy = shared_models_restored
    s = tiny_copy.settings
    raw = tiny_copy.users.loc[tiny_copy.users["consent_personalization"], "user_id"].iloc[0]
    p = pseudonymize(raw, s.secret_hmac_key())
    defs = definitions(s)
    online = OnlineFeatures(get_store(s), [defs.views.user_profile, defs.views.session])
    assert online.read("user_profile", [p])[0][1] is not None
    receipt = erase(raw, s)
    assert receipt.removed_in("identity map") == 1 and receipt.removed_in("event log") > 0
    assert raw not in receipt.to_json() and p not in receipt.to_json()  # the receipt names no one
    ids = IdentityMap(s.metadata_url)
    assert ids.resolve(p) is None
    ids.dispose()
    assert p not in set(EventLog(s.events_dir).read(include_erased=True)["user_id"])
    assert online.read("user_profile", [p])[0] == (None, None)
    assert online.read("session", [p])[0] == (None, None)
    batches, _ = build_from_log(s)
    assert p not in set(batches.user_profile["user_id"]) | set(batches.session["user_id"])


def test_a_failed_feature_batch_leaves_the_online_store_unchanged(tiny_copy):
    from feature_repo.materialize import FeatureBatchRejected, build_from_log, publish

    s = tiny_copy.settings
    defs = definitions(s)
    online = OnlineFeatures(get_store(s), [defs.views.item_stats])
    item = str(pd.read_parquet(s.features_dir / "item_stats.parquet")["item_id"].iloc[0])
    before = online.read("item_stats", [item])[0]
    batches, snap = build_from_log(s)
    batches.item_stats["item_skip_rate_30d"] = 7.0  # out of range everywhere
    with pytest.raises(FeatureBatchRejected, match="item_skip_rate_30d"):
        publish(s, batches, snap)
    assert online.read("item_stats", [item])[0] == before
    assert list((s.quarantine_dir / "features").glob("*/report.json"))


def test_a_full_build_checks_without_the_session_frame_and_publishes_it_only_when_the_gate_passes(
    tiny_copy, monkeypatch
):
    import feature_repo.publish_full as full
    from feature_repo.materialize import FeatureBatchRejected, publish

    s = tiny_copy.settings
    session = s.features_dir / "session.parquet"
    before = pd.read_parquet(session)
    seen: list[int] = []

    def failing(batches, **kwargs):
        seen.append(len(batches.session))
        return ["item_stats: rejected on purpose"]

    monkeypatch.setattr(full, "gate", failing)
    with pytest.raises(FeatureBatchRejected, match="rejected on purpose"):
        publish(s, full=True)
    assert seen == [0]  # the checks ran without the session frame
    pd.testing.assert_frame_equal(pd.read_parquet(session), before)  # the published file is untouched
    (kept,) = (s.quarantine_dir / "features").glob("*/session.parquet")
    assert len(pd.read_parquet(kept)) == len(before)  # the new one went to the quarantine, whole
    assert not list((s.features_dir / full.ASIDE).glob("*.parquet"))

    monkeypatch.undo()
    report = publish(s, full=True)
    assert report.rows["session.parquet"] == len(pd.read_parquet(session)) == len(before)
    assert not list((s.features_dir / full.ASIDE).glob("*.parquet"))


class _Killed(BaseException):
    """Stands for SIGKILL between two writes: nothing after it runs."""


def test_a_publish_cut_short_fails_the_gate_shows_in_status_stops_training_and_is_built_whole_again(
    tiny_copy, monkeypatch
):
    import time

    from typer.testing import CliRunner

    import feature_repo.publish_full as full
    from feature_repo.materialize import FeatureBatchRejected, publish
    from ops.status import feature_lines
    from setlist import liveness
    from setlist.publish import PUBLISH_LOCK, cut_short, mark_publishing, unmark_publishing
    from setlist.settings import get_settings
    from training.folds import TrainingRefused
    from training.run import train
    from validation.cli import app as validation_app

    s = tiny_copy.settings
    assert cut_short(s.features_dir) is None
    # a publish running (its mark held): shown as such, and a second one waits its turn
    turn = liveness.exclusive(s.features_dir / PUBLISH_LOCK, {"pid": 0})
    assert turn is not None
    mark_publishing(s.features_dir, "full")
    lines = {line.name: line for line in feature_lines(s, time.time())}
    assert lines["publish in progress"].mark == "none" and "publish cut short" not in lines
    with pytest.raises(FeatureBatchRejected, match="one publish at a time"):
        publish(s)
    unmark_publishing(s.features_dir)
    with pytest.raises(FeatureBatchRejected, match="another publish is building features"):
        publish(s)  # still planning or building: its mark is not taken yet, its turn is
    turn.release(remove=False)
    real, written = full.write_atomic, []

    def dies_after_one(table, path):
        if written:
            raise _Killed
        written.append(path)
        real(table, path)

    monkeypatch.setattr(full, "write_atomic", dies_after_one)
    with pytest.raises(_Killed):
        publish(s, full=True)
    monkeypatch.undo()
    said = cut_short(s.features_dir)
    assert said is not None and "a full publish started" in said and "make materialize" in said
    # each file alone may pass its checks; the set is no one build's
    for var, value in (("SETLIST_DATA_DIR", str(s.data_dir)), ("SETLIST_HMAC_KEY", s.hmac_key.get_secret_value())):
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("SETLIST_SCALE", s.scale)
    get_settings.cache_clear()
    gate = CliRunner().invoke(validation_app, ["features"])
    assert gate.exit_code != 0 and "one publish's whole" in gate.output, gate.output
    lines = {line.name: line for line in feature_lines(s, time.time())}
    assert lines["publish cut short"].mark == "fail" and lines["publish cut short"].value == said
    with pytest.raises(TrainingRefused, match="never finished"):
        train(s, progress=False)
    # the log did not change, yet the next publish rebuilds everything, and the mark goes
    report = publish(s)
    assert report.mode == "full" and "cut short" in report.reason and cut_short(s.features_dir) is None
    assert "publish cut short" not in {line.name for line in feature_lines(s, time.time())}


def test_parity_gate_passes_on_published_features_and_fails_on_corrupted_online_values(tiny_copy):
    from feature_repo.parity_inputs import parity_inputs
    from validation.api import check_parity

    s = tiny_copy.settings
    assert check_parity(list(parity_inputs(s)), docs=False).passed
    defs = definitions(s)
    online = OnlineFeatures(get_store(s), [defs.views.item_stats])
    items = pd.read_parquet(s.features_dir / "item_stats.parquet")
    latest = items.sort_values("event_timestamp").groupby("item_id").tail(1)
    rows = []
    for rec in latest.to_dict("records"):
        values = {k: rec[k] for k in ITEM_NUMERIC + ("item_genre",)}
        values["item_plays_30d"] = int(values["item_plays_30d"]) + 1000  # corrupt
        rows.append((rec["item_id"], values, rec["event_timestamp"].to_pydatetime()))
    online.write("item_stats", rows)
    result = check_parity(list(parity_inputs(s)), docs=False)
    assert not result.passed and any("item_plays_30d" in f for f in result.failures)


@pytest.mark.parametrize(
    "value, dtype",
    [
        ("a", "STRING"),
        ("", "STRING"),
        (None, "STRING"),
        (5, "INT64"),
        (None, "INT64"),
        (True, "INT64"),
        (True, "BOOL"),
        (False, "BOOL"),
        (None, "BOOL"),
        (["x", "y"], "STRING_LIST"),
        ([], "STRING_LIST"),
        (("a", "b"), "STRING_LIST"),
        (None, "STRING_LIST"),
        (0.25, "DOUBLE"),
        (float("nan"), "DOUBLE"),
        (3, "DOUBLE"),
        (None, "DOUBLE"),
        (np.int64(3), "INT64"),
        (np.float64(0.5), "DOUBLE"),
        ([0.1, 0.2], "FLOAT_LIST"),
    ],
)
def test_direct_value_conversion_stores_exactly_what_feast_would(value, dtype):
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    from feature_repo.online import to_proto

    vt = ValueType[dtype]
    assert to_proto(value, vt) == python_values_to_proto_values([value], vt)[0]


def test_a_training_query_inside_a_live_session_sees_it_as_rank_would(tiny_world):
    # Rank reads the session a user is in; a training query must too, or the ranker learns that the
    # session inputs are always zero (they were: the join's nanoseconds were read as microseconds)
    from setlist.features import SESSION_GAP_S
    from training.dataset import query_state

    s = tiny_world.settings
    store = get_store(s)
    sessions = pd.read_parquet(s.features_dir / "session.parquet").sort_values(["user_id", "event_timestamp"])
    sessions["event_timestamp"] = pd.to_datetime(sessions["event_timestamp"], utc=True)
    following = sessions.groupby("user_id")["event_timestamp"].shift(-1) - sessions["event_timestamp"]
    gap = pd.Timedelta(seconds=SESSION_GAP_S)
    live = sessions[(sessions["session_length"] >= 2) & (following > pd.Timedelta(seconds=2))].head(5)
    over = sessions[(sessions["session_length"] >= 1) & (following.isna() | (following > 2 * gap))].head(5)
    # a user's last row, asked about long after: Rank reads the stored row whatever its age
    last = sessions[following.isna() & (sessions["session_last_items"].map(len) > 0)].head(5)
    assert len(live) and len(over) and len(last), "the tiny world has sessions of several events, and pauses"
    asked = pd.concat(
        [
            live.assign(event_timestamp=live["event_timestamp"] + pd.Timedelta(seconds=1)),
            over.assign(event_timestamp=over["event_timestamp"] + gap + pd.Timedelta(minutes=1)),
            last.assign(event_timestamp=last["event_timestamp"] + pd.Timedelta(days=45)),
        ]
    )
    queries = pd.DataFrame(
        {
            "query_id": np.arange(len(asked)),
            "user_id": asked["user_id"].to_numpy(),
            "event_timestamp": asked["event_timestamp"].to_numpy(),
            "device": "mobile",
        }
    )
    state = query_state(store, queries, "any", V1)
    n = len(live)
    assert state["session_length"].iloc[:n].tolist() == live["session_length"].tolist()
    assert state["session_skip_rate"].iloc[:n].tolist() == pytest.approx(live["session_skip_rate"].tolist())
    m = n + len(over)
    assert state["session_length"].iloc[n:m].tolist() == [0] * (m - n)  # the gap ended those sessions
    assert all(len(items) for items in state["session_last_items"].iloc[n:m])  # recent items outlive a session
    # ... and a month: a monthly customer's last items are what Rank offers them again
    assert [list(i) for i in state["session_last_items"].iloc[m:]] == [list(i) for i in last["session_last_items"]]


def test_a_server_write_on_sqlite_gives_up_on_another_process_write_after_its_own_wait(tiny_world, tmp_path):
    """A Track's session push behind a materialize's write (another process holding SQLite's write lock)
    fails after ``write_wait_s``, not after sqlite3's 5 s, so Track can degrade within its deadline; once
    the other write ends it writes as before."""
    import sqlite3
    from datetime import UTC, datetime

    s = tiny_world.settings.model_copy(update={"data_dir": tmp_path / "data"})
    shutil.copytree(tiny_world.settings.data_dir, s.data_dir)  # its online store is written here, not shared
    views = [definitions(s).views.session]
    online = OnlineFeatures(get_store(s), views, write_wait_s=0.05)
    conn = online.online_store._get_conn(online.config)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 50
    user = pseudonymize(tiny_world.users["user_id"].iloc[0], s.secret_hmac_key())
    row = (user, {"session_length": 3}, datetime.now(UTC))
    other = sqlite3.connect(s.data_dir / "online.db", timeout=0.1)  # another process's connection, as materialize's
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock, as a publish does
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            online.write("session", [row])
    finally:
        other.rollback()
        other.close()
    online.write("session", [row])
    ((_, values),) = online.read("session", [user], ["session_length"])
    assert values["session_length"] == 3


def test_a_rank_read_on_sqlite_gives_up_after_its_wait_and_reads_as_before_once_the_store_is_free(tiny_world):
    """SQLite serves one read or write at a time per process: one entity's read (Rank's) waits at most
    ``read_wait_s`` for a write in progress (a Track's session push) and then fails as a Redis timeout
    would, so the caller degrades instead of queueing behind every push."""
    import threading

    s = tiny_world.settings
    defs = definitions(s)
    views = [defs.views.user_profile, defs.views.session]
    names = [v.name for v in views]
    online = OnlineFeatures(get_store(s), views, read_wait_s=0.05)
    user = pseudonymize(tiny_world.users["user_id"].iloc[0], s.secret_hmac_key())
    expected = OnlineFeatures(get_store(s), views).read_views(names, user)
    assert expected[0][1] is not None  # the user has a profile row: the comparison below means something

    writing, finish = threading.Event(), threading.Event()
    real_write = online.online_store.online_write_batch

    def slow_write(*args, **kwargs):  # a push that holds the store while the read comes
        writing.set()
        finish.wait(30)
        return real_write(*args, **kwargs)

    online.online_store.online_write_batch = slow_write
    pusher = threading.Thread(target=online.write, args=("session", []))
    try:
        pusher.start()
        assert writing.wait(30)
        with pytest.raises(TimeoutError, match="stayed busy for 50 ms"):
            online.read_views(names, user)
    finally:
        finish.set()
        pusher.join(30)
    assert online.read_views(names, user) == expected
