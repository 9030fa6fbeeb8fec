"""``python -m ops status`` says whether the server profiles' Redis answers: while it does not, Rank
degrades though every SLO may still hold, so the status must not read as all well."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from ops.status import Report, redis_line
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
    assert Report([down], []).stops == ["redis down"] and not Report([down], []).ok
    assert Report([up], []).ok


def test_status_exits_1_and_says_redis_is_down_when_it_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every SLO has no data (no server): only the Redis line can fail the command."""
    from ops.status import command

    settings = _settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    settings.data_dir.mkdir(parents=True)
    monkeypatch.setattr("ops.status.get_settings", lambda: settings)
    monkeypatch.setattr("ops.status.model_lines", lambda settings, now: [])  # no registry to reach here
    monkeypatch.setattr("ops.status.feature_lines", lambda settings, now: [])  # nor a publish log
    with pytest.raises(typer.Exit) as ended:
        command(as_json=False, probe=True)
    assert ended.value.exit_code == 1
    assert "the loop does not hold: redis down" in capsys.readouterr().out


def test_the_local_profile_has_no_redis_to_report(tmp_path: Path) -> None:
    assert redis_line(_settings(tmp_path, "redis://127.0.0.1:1/0", profile="local")) is None
