"""An erasure asks Redis to rewrite its append-only file, where it keeps deleted keys, and only where
Redis keeps one: a Redis without one would write every user's keys to disk when asked."""

from __future__ import annotations

from pathlib import Path

from ingest.erasure import _redis_files
from setlist.settings import Settings
from tests.servers import RedisServer


def test_the_append_only_file_is_rewritten_only_where_redis_keeps_one(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = Settings(profile="production", data_dir=tmp_path / "data", hmac_key="k", redis_url=redis.url)
        rewritten = _redis_files(settings)
        assert rewritten.removed == 1 and rewritten.note.startswith("rewrite started")
        with redis.client() as c:
            c.config_set("appendonly", "no")
        skipped = _redis_files(settings)
        assert skipped.removed == 0 and "keeps no append-only file" in skipped.note
    finally:
        redis.stop()
