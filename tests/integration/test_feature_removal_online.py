"""A feature taken out of the declarations, then declared again, in the online store of each profile: SQLite
(local) and a real Redis (production).

A publish that no longer declares a feature drops its online values (a re-added declaration must not serve
them), and a rebuild from the same log writes a feature added or redefined even on Redis, whose Feast write
kept any stored row as new as the one written. Parity (offline against online) holds at every step, and an
erased user leaves no Redis key behind a dropped feature.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from feature_repo.declarations import load
from feature_repo.inventory import plan
from feature_repo.materialize import publish
from feature_repo.online import OnlineFeatures, entity_key
from feature_repo.parity_inputs import parity_inputs
from feature_repo.store import apply, definitions, get_store
from ingest.erasure import user_views
from ingest.generate import generate
from ingest.intake import ingest
from setlist.catalog import save_items
from setlist.settings import Settings
from tests.world import END, SEED, tiny_settings
from validation.api import check_parity

pytestmark = [pytest.mark.integration]

NAME = "user_recent_x_30d"
DECLARATION = (
    "from setlist.featureset import Events, Feature\n"
    "FEATURES = [Feature('user_recent_x', 'user', Events('count', types=({types},), windows=(30,)), 'int64', "
    "missing=0, since=2)]\n"
)


def _declared(settings: Settings, tmp_path: Path, name: str, types: str) -> Settings:
    """The settings with one more declaration directory (a new directory each time: declarations are
    loaded once per set of directories)."""
    d = tmp_path / name
    d.mkdir()
    (d / "recent.py").write_text(DECLARATION.format(types=types))
    return settings.model_copy(update={"feature_dirs": [d]})


def _offline(settings: Settings) -> dict[str, int]:
    frame = pd.read_parquet(settings.features_dir / "user_profile.parquet")
    newest = frame.sort_values("event_timestamp").groupby("user_id").tail(1)
    return {str(u): int(v) for u, v in zip(newest["user_id"], newest[NAME])}


def _online(declaring: Settings, users: list[str]) -> dict[str, object]:
    """Each user's value of the feature online, read through a view that declares it (as serving would
    once the declaration is back)."""
    view = definitions(declaring).views.user_profile
    rows = OnlineFeatures(get_store(declaring), [view]).read("user_profile", users)
    return {u: (values or {}).get(NAME) for u, (_, values) in zip(users, rows)}


def _parity_holds(settings: Settings) -> None:
    result = check_parity(parity_inputs(settings), docs=False)
    assert result.passed, result.failures


@pytest.fixture(params=["local", "production"])
def world(request, tmp_path: Path) -> Settings:
    if request.param == "production":
        base = request.getfixturevalue("production_settings")
        settings = base.model_copy(update={"scale": "tiny", "seed": SEED})
    else:
        settings = tiny_settings(tmp_path / "data")
    data = generate("tiny", seed=SEED, end=END, progress=False)
    save_items(data.items, settings.catalog_path)
    ingest(data.events, settings, source="generator", check_log_duplicates=False)
    publish(settings)  # a build without the feature: the one to add it to
    return settings


def test_a_removed_feature_leaves_the_online_store_and_a_readded_one_serves_only_its_new_build(world, tmp_path):
    s = world
    plays = _declared(s, tmp_path, "plays", "'play'")
    assert publish(plays).mode == "full"
    played = _offline(plays)
    users = sorted(played)
    # added to a built world: written online for every user, as built (Redis kept the older rows' fields)
    assert _online(plays, users) == played and any(played.values())
    _parity_holds(plays)

    # taken away: the plan says what apply drops online, and apply drops it
    lines = [str(line) for line in plan(s, load(s))]
    assert any(line.startswith(f"- user_profile.{NAME}: no longer declared; apply") for line in lines), lines
    applied = apply(get_store(s), s, prune=True)
    assert applied.dropped == {"user_profile": ([NAME], len(users))}
    assert set(_online(plays, users).values()) == {None}
    assert apply(get_store(s), s).dropped == {}  # once: the registry no longer has it
    assert publish(s).mode == "full"
    assert set(_online(plays, users).values()) == {None}
    # the rest of each user's row is still served
    rows = OnlineFeatures(get_store(s), [definitions(s).views.user_profile]).read("user_profile", users)
    assert all(values is not None for _, values in rows)
    _parity_holds(s)

    # declared again, redefined under the same name: nothing served before its build, then the new values
    likes = _declared(s, tmp_path, "likes", "'like'")
    assert apply(get_store(likes), likes, prune=True).dropped == {}
    assert set(_online(likes, users).values()) == {None}
    assert publish(likes).mode == "full"
    assert _online(likes, users) == _offline(likes) != played
    _parity_holds(likes)

    if s.profile == "production":
        # an erased user's Redis hash goes with its last field: none of a dropped feature is left behind
        assert publish(s).mode == "full"
        online, views = user_views(s)
        gone = users[0]
        for view in views:
            online.delete(view, gone)
        assert not online.redis_client.exists(online.redis_key(entity_key("user_id", gone)))


@pytest.mark.parametrize("served", ["read by a served model", "registry unreadable"])
def test_a_removed_feature_a_served_model_reads_keeps_its_online_values(world, tmp_path, monkeypatch, served):
    """A running server resolved its views at start and goes on reading a feature its model was trained on: an
    apply without its declaration (a job run without another component's directories) keeps the values, and
    says why; so does one that cannot read the model registry to know."""
    from feature_repo import inventory

    s = world
    plays = _declared(s, tmp_path, "plays", "'play'")
    assert publish(plays).mode == "full"
    played = _offline(plays)
    users = sorted(played)
    reads = {("user_profile", NAME): ["v7 (champion) on ranker_v2"]} if served.startswith("read") else None
    monkeypatch.setattr(inventory, "served_reads", lambda store, settings: reads)
    applied = apply(get_store(s), s, prune=True)
    assert applied.dropped == {} and [n for n, _ in applied.kept["user_profile"]] == [NAME]
    (why,) = [w for _, w in applied.kept["user_profile"]]
    assert ("v7 (champion) on ranker_v2" in why) if reads else ("could not be read" in why)
    assert _online(plays, users) == played  # still there for the server that reads them
    assert apply(get_store(s), s).kept == applied.kept  # the registry forgot it; a record still names it

    monkeypatch.setattr(inventory, "served_reads", lambda store, settings: {})  # nothing served reads it now
    last = s
    if reads:  # then the next apply drops it
        assert apply(get_store(s), s).dropped == {"user_profile": ([NAME], len(users))}
        assert set(_online(plays, users).values()) == {None}
    else:  # or declared again, redefined: its old values go before the new build writes
        last = _declared(s, tmp_path, "likes", "'like'")
        assert apply(get_store(last), last).dropped == {"user_profile": ([NAME], len(users))}
        assert set(_online(last, users).values()) == {None}
    assert apply(get_store(last), last).dropped == {} and not (s.features_dir / "_kept_online.json").exists()


def test_a_kept_feature_declared_again_is_no_longer_recorded_for_a_later_drop(world, tmp_path, monkeypatch):
    """Kept for a served model, then declared again while still served: its next build writes new values, which
    a later apply must not drop when the model stops being served."""
    from feature_repo import inventory

    s = world
    plays = _declared(s, tmp_path, "plays", "'play'")
    assert publish(plays).mode == "full"
    monkeypatch.setattr(inventory, "served_reads", lambda store, settings: None)
    assert [n for n, _ in apply(get_store(s), s).kept["user_profile"]] == [NAME]
    again = _declared(s, tmp_path, "again", "'play'")
    apply(get_store(again), again)
    assert not (s.features_dir / "_kept_online.json").exists()
    publish(again)  # the same definition as the files were built with: nothing to rebuild, or a build
    monkeypatch.setattr(inventory, "served_reads", lambda store, settings: {})
    assert apply(get_store(again), again).dropped == {}
    assert _online(again, sorted(_offline(again))) == _offline(again)
