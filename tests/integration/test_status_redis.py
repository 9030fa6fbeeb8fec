"""``python -m ops status`` says whether the server profiles' Redis answers: while it does not, Rank
degrades though every SLO may still hold, so the status must not read as all well."""

from __future__ import annotations

from pathlib import Path

from ops.status import redis_line
from setlist.settings import Settings
from tests.servers import RedisServer, db_url, free_port


def _settings(tmp_path: Path, redis_url: str, profile: str = "production") -> Settings:
    return Settings(profile=profile, data_dir=tmp_path / "data", hmac_key="k", redis_url=redis_url)


def test_a_redis_that_answers_is_ok_and_one_that_does_not_fails_naming_the_runbook(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    up = redis_line(_settings(tmp_path, db_url(redis_server, 0)))
    assert up is not None and up.mark == "ok" and up.value.startswith("answers at 127.0.0.1:")
    port = free_port()
    down = redis_line(_settings(tmp_path, f"redis://127.0.0.1:{port}/0"))
    assert down is not None and down.mark == "fail"
    assert f"does not answer at 127.0.0.1:{port} (ConnectionError)" in down.value
    assert "SetlistRedisDown" in down.value


def test_the_local_profile_has_no_redis_to_report(tmp_path: Path) -> None:
    assert redis_line(_settings(tmp_path, "redis://127.0.0.1:1/0", profile="local")) is None
