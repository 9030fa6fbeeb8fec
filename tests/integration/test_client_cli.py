"""``python -m serving.client``: tables, events, health and clean failures, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from serving.client.cli import app
from tests.fakes.transport import FakeRanking
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "160"})


def test_rank_prints_a_table_and_the_response_fields(serve_fake):
    server, _, fake = serve_fake()
    result = _run(
        "rank",
        "--user",
        "u-1",
        "--k",
        "3",
        "--context",
        "device=mobile",
        "--exclude",
        "item-0",
        "--explain",
        "--target",
        f"127.0.0.1:{server.port}",
    )
    assert result.exit_code == 0, result.output
    for text in (
        "item-1",
        "item-2",
        "fake reason",
        "model_version=fake-1",
        "cache_hit=False",
        "degraded=False",
        "arm=A",
        "request_id=",
        "latency=",
    ):
        assert text in result.output
    assert "item-0 " not in result.output
    assert fake.queries[-1].context == {"device": "mobile"}
    assert "ignored these context keys" not in result.output


def test_rank_orders_a_slate_and_names_the_items_it_could_not(serve_fake):
    server, _, fake = serve_fake()
    target = f"127.0.0.1:{server.port}"
    args = ("--candidate", "item-4", "--candidate", "new-9", "--candidate", "item-6")
    result = _run("rank", "--user", "u-1", *args, "--no-labels", "--target", target)
    assert result.exit_code == 0, result.output
    assert fake.queries[-1].candidate_item_ids == ("item-4", "new-9", "item-6")
    assert result.output.index("item-6") < result.output.index("item-4")
    assert "not ranked, the served models do not know these items: new-9" in " ".join(result.output.split())


def test_rank_warns_of_context_keys_the_server_ignored(serve_fake):
    server, _, fake = serve_fake()
    target = f"127.0.0.1:{server.port}"
    result = _run("rank", "--user", "u-1", "--context", "devcie=mobile", "--context", "locale=en", "--target", target)
    assert result.exit_code == 0, result.output
    assert "the server ignored these context keys: devcie" in " ".join(result.output.split())


def test_track_sends_a_fresh_event(serve_fake):
    server, _, fake = serve_fake()
    result = _run(
        "track",
        "--user",
        "u-1",
        "--item",
        "item-9",
        "--type",
        "skip",
        "--session",
        "s-1",
        "--value",
        "0.3",
        "--target",
        f"127.0.0.1:{server.port}",
    )
    assert result.exit_code == 0, result.output
    assert "accepted=1" in result.output
    event = fake.events[-1]
    assert (event.user_id, event.item_id, event.type, event.session_id) == ("u-1", "item-9", "skip", "s-1")
    assert abs(event.value - 0.3) < 1e-6 and len(event.event_id) == 36 and event.timestamp_ms > 0


def test_track_sends_an_event_without_an_item_a_query_and_a_consent_change(serve_fake):
    server, _, fake = serve_fake()
    result = _run(
        "track",
        "--user",
        "u-1",
        "--type",
        "feature_use",
        "--query",
        "privacy_settings",
        "--context",
        "consent_personalization=false",
        "--target",
        f"127.0.0.1:{server.port}",
    )
    assert result.exit_code == 0, result.output
    event = fake.events[-1]
    assert (event.item_id, event.type, event.query) == ("", "feature_use", "privacy_settings")
    assert event.context == {"consent_personalization": "false"}


def test_track_reports_rejections(serve_fake):
    server, _, _ = serve_fake()
    result = _run("track", "--user", "u-1", "--item", "i", "--type", "teleport", "--target", f"127.0.0.1:{server.port}")
    assert result.exit_code == 1 and "accepted=0" in result.output and "unknown type" in result.output


def test_health_exit_code_follows_status(serve_fake):
    server, _, fake = serve_fake(FakeRanking(ready=False))
    result = _run("health", "--target", f"127.0.0.1:{server.port}")
    assert (result.exit_code, result.output.strip()) == (1, "NOT_SERVING")


def test_error_status_prints_code_and_message(serve_fake):
    server, _, _ = serve_fake()
    result = _run("rank", "--user", "u-1", "--k", "0", "--target", f"127.0.0.1:{server.port}")
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT: k must be between 1 and 500, got 0" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_unreachable_server_is_a_clean_error():
    result = _run("rank", "--user", "u-1", "--target", f"127.0.0.1:{free_port()}", "--timeout", "2")
    assert result.exit_code == 1
    assert "UNAVAILABLE" in result.output and "Traceback" not in result.output


def test_connect_opens_the_connection_or_says_it_could_not(serve_fake):
    from serving.client import SetlistClient

    server, _, _ = serve_fake()
    with SetlistClient(f"127.0.0.1:{server.port}") as live:
        assert live.connect(timeout=5)
    with SetlistClient(f"127.0.0.1:{free_port()}") as dead:
        assert not dead.connect(timeout=0.3)


def test_bad_context_is_a_usage_error():
    result = _run("rank", "--user", "u-1", "--context", "novalue", "--target", "127.0.0.1:1")
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_module_entry_point(serve_fake):
    server, _, _ = serve_fake()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "serving.client", "health", "--target", f"127.0.0.1:{server.port}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING"), result.stderr


def test_rank_shows_titles_and_genres_from_the_local_catalogue(serve_fake, tmp_path, monkeypatch):
    import pandas as pd

    from setlist.catalog import save_items
    from setlist.settings import get_settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    items = pd.DataFrame(
        {
            "item_id": ["item-1", "item-2"],
            "title": ["Song One", None],
            "artist": ["unknown", "The Band"],  # no title: the artist stands in
            "genre": ["rock", "unknown"],
        }
    )
    save_items(items, get_settings().catalog_path)
    server, _, _ = serve_fake()
    args = ["rank", "--user", "u-1", "--k", "3", "--target", f"127.0.0.1:{server.port}"]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "item-1" in line)
    assert "Song One" in row and "rock" in row
    assert "The Band" in next(line for line in result.output.splitlines() if "item-2" in line)
    plain = _run(*args, "--no-labels")
    assert plain.exit_code == 0 and "Song One" not in plain.output and "item-1" in plain.output
    get_settings.cache_clear()
