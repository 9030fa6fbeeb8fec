"""scripts/services.sh (behind `make services` / `make services-down`), run for real on free ports in a
directory of its own, so it never touches the servers a developer started."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.servers import MissingServer, find_postgres_bin, find_redis_server, free_port, skip_or_fail

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"


@pytest.fixture
def services_env():
    try:
        find_redis_server()
        find_postgres_bin()
    except MissingServer as exc:
        skip_or_fail(str(exc))
    # Under /tmp and traversable: as root, PostgreSQL runs as the `postgres` user, who must reach it.
    state = Path(tempfile.mkdtemp(prefix="setlist-svc-", dir="/tmp"))
    state.chmod(0o755)
    redis_port, pg_port = free_port(), free_port()
    env = {
        **os.environ,
        "SETLIST_SERVICES_DIR": str(state),
        "SETLIST_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "SETLIST_DATABASE_URL": f"postgresql://setlist:s3cret@127.0.0.1:{pg_port}/setlist",
    }
    yield env
    subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(state, ignore_errors=True)


def _run(env: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), action], env=env, capture_output=True, text=True, timeout=120)


def test_up_status_down_are_idempotent_and_the_servers_take_the_urls_credentials(services_env):
    import psycopg
    import redis

    up = _run(services_env, "up")
    assert up.returncode == 0, up.stderr
    assert "redis: started" in up.stdout and "postgres: started" in up.stdout

    again = _run(services_env, "up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 2

    status = _run(services_env, "status")
    assert status.returncode == 0 and status.stdout.count("running on 127.0.0.1") == 2

    r = redis.from_url(services_env["SETLIST_REDIS_URL"], socket_timeout=2)
    assert r.ping()
    with psycopg.connect(services_env["SETLIST_DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("setlist", "setlist")
    state = Path(services_env["SETLIST_SERVICES_DIR"])
    assert (state / "redis" / "redis.log").exists() and (state / "postgres" / "postgres.log").exists()

    down = _run(services_env, "down")
    assert down.returncode == 0, down.stderr
    assert "redis: stopped" in down.stdout and "postgres: stopped" in down.stdout
    assert "not running" in _run(services_env, "down").stdout
    assert _run(services_env, "status").returncode == 3

    # Data survives a restart: the role and database are still there, and bootstrap is a no-op.
    assert _run(services_env, "up").returncode == 0
    with psycopg.connect(services_env["SETLIST_DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_remote_url_is_refused_with_a_message(services_env):
    env = {**services_env, "SETLIST_DATABASE_URL": "postgresql://setlist:x@db.example.com:5432/setlist"}
    result = _run(env, "up")
    assert result.returncode != 0
    assert "only starts local servers" in result.stderr


def test_a_taken_port_is_reported_instead_of_reused(services_env, redis_server):
    env = {**services_env, "SETLIST_REDIS_URL": redis_server.url}
    result = _run(env, "up")
    assert result.returncode != 0
    assert f"port {redis_server.port} is taken" in result.stderr


def test_the_urls_may_come_from_the_settings_file_as_for_every_command(services_env, tmp_path):
    # the script read the environment only: with the URLs in the settings file it started the servers on
    # the default ports while every command connected to the file's
    import redis

    env = {k: v for k, v in services_env.items() if k not in ("SETLIST_REDIS_URL", "SETLIST_DATABASE_URL")}
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"redis_url: {services_env['SETLIST_REDIS_URL']}\ndatabase_url: {services_env['SETLIST_DATABASE_URL']}\n"
    )
    env["SETLIST_SETTINGS_FILE"] = str(settings)
    up = _run(env, "up")
    assert up.returncode == 0, up.stderr
    port = services_env["SETLIST_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
    assert f"redis: started on 127.0.0.1:{port}" in up.stdout
    assert redis.from_url(services_env["SETLIST_REDIS_URL"], socket_timeout=2).ping()
    assert _run(env, "down").returncode == 0
    # a settings file that does not read stops the script with the commands' own message
    settings.write_text("redis_ur: redis://127.0.0.1:1/0\n")
    bad = _run(env, "status")
    assert bad.returncode == 2 and "'redis_ur' (did you mean redis_url?)" in bad.stderr
