"""A feature dropped by one deployment leaves another's rows alone on a shared Redis, even when the other's
project name ends with this one's (``staging_setlist`` next to ``setlist``): the SCAN pattern
``<prefix>*<project>`` matches both, so each key is checked to end in the project exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from feast import FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.infra.online_stores.helpers import _redis_key, _redis_key_prefix
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.registry.sql import SqlRegistryConfig
from feast.types import Int64

from feature_repo.entities import user
from feature_repo.online import OnlineFeatures, entity_key, of_project
from feature_repo.store import redis_connection_string

pytestmark = [pytest.mark.integration]


def test_of_project_tells_a_project_from_one_whose_name_ends_with_it():
    prefix = _redis_key_prefix(["user_id"])
    for uid in ("u1", "xsetlist", "", "staging_"):
        own = _redis_key("setlist", entity_key("user_id", uid), 3)
        other = _redis_key("staging_setlist", entity_key("user_id", uid), 3)
        assert of_project(own, prefix, "setlist")
        assert not of_project(other, prefix, "setlist")
        assert of_project(other, prefix, "staging_setlist")
    assert not of_project(_redis_key("setlist", entity_key("item_id", "u1"), 3), prefix, "setlist")


def _online(tmp_path: Path, url: str, project: str) -> tuple[OnlineFeatures, FeatureView]:
    config = RepoConfig(
        project=project,
        provider="local",
        registry=SqlRegistryConfig(registry_type="sql", path=f"sqlite:///{tmp_path}/registry.db"),
        online_store=RedisOnlineStoreConfig(connection_string=redis_connection_string(url, 2000)),
        entity_key_serialization_version=3,
        repo_path=str(tmp_path),
    )
    store = FeatureStore(config=config)
    source = FileSource(path=str(tmp_path / "unused.parquet"), timestamp_field="event_timestamp")
    view = FeatureView(
        name="user_profile",
        entities=[user],
        source=source,
        online=True,
        schema=[Field(name="gone", dtype=Int64), Field(name="kept", dtype=Int64)],
    )
    store.apply([user, view])
    registered = store.get_feature_view("user_profile")
    return OnlineFeatures(store, [registered]), registered


def test_a_drop_leaves_the_rows_of_a_project_whose_name_ends_with_this_one(tmp_path, redis_server):
    redis_server.start()
    redis_server.flush()
    now = datetime.now(UTC)
    mine, view = _online(tmp_path, redis_server.url, "setlist")
    theirs, _ = _online(tmp_path, redis_server.url, "staging_setlist")
    for online in (mine, theirs):
        online.write("user_profile", [("u1", {"gone": 1, "kept": 2}, now), ("u2", {"gone": 3, "kept": 4}, now)])

    assert mine.drop_features(view, ["gone"]) == 2  # its own two users, not the other project's
    assert [values for _, values in mine.read("user_profile", ["u1", "u2"])] == [
        {"gone": None, "kept": 2},
        {"gone": None, "kept": 4},
    ]
    assert [values for _, values in theirs.read("user_profile", ["u1", "u2"])] == [
        {"gone": 1, "kept": 2},
        {"gone": 3, "kept": 4},
    ]
