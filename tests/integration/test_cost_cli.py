"""``python -m ops cost`` on a small hand-built data directory (tests/cost_world): CPU per call scraped from
a /metrics page, a job's CPU from its status file, prices from a cost file, and the JSON report's numbers
worked out by hand; the fallbacks when no server answers; the one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from ops.cost.model import GB
from setlist import jobmetrics
from setlist.settings import Settings
from tests import cost_world
from tests.cost_world import EXPECTED
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
# 1 per request, 1 per GB-day of files (a month is 30.4375 days), 0.01 per CPU-second, no Redis
PRICES = """# EXAMPLE prices for the test
currency: EUR
prices: {cpu_second: 0.01, storage_gb_month: 30.4375, redis_gb_hour: 0, million_requests: 1000000}
"""


@pytest.fixture
def world(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", cost_file=tmp_path / "cost.yaml")
    cost_world.build(settings)
    settings.cost_file.write_text(PRICES)
    m = jobmetrics.JobMetrics("materialize")
    m.set("setlist_job_cpu_seconds", 3.0, job="materialize")  # hourly: 72 CPU-seconds a day
    jobmetrics.publish(settings, m)
    return settings


@pytest.fixture
def metrics_page() -> Iterator[int]:
    """A stand-in for a server's /metrics: 2 ms per Rank, 2 ms per Track event, 5 events per Track call."""
    registry = CollectorRegistry()
    cpu = Counter("setlist_rpc_cpu_seconds", "", ["rpc"], registry=registry)
    calls = Counter("setlist_rpc_cpu_calls", "", ["rpc"], registry=registry)
    acknowledged = Counter("setlist_track_events_acknowledged", "", registry=registry)
    cpu.labels(rpc="Rank").inc(2.0)
    calls.labels(rpc="Rank").inc(1000)
    cpu.labels(rpc="Track").inc(1.0)
    calls.labels(rpc="Track").inc(100)
    acknowledged.inc(500)
    port = free_port()
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def cost(settings: Settings, metrics_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SETLIST_DATA_DIR": str(settings.data_dir),
        "SETLIST_COST_FILE": str(settings.cost_file),
        "SETLIST_HOST": "127.0.0.1",
        "SETLIST_PORT": str(free_port()),
        "SETLIST_METRICS_PORT": str(metrics_port),
        "SETLIST_PROFILE": "local",
    }
    return subprocess.run(
        [sys.executable, "-m", "ops", "cost", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_report_prices_what_the_server_and_the_jobs_measured(world: Settings, metrics_page: int) -> None:
    run = cost(world, metrics_page, "--no-mlflow", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report == json.loads((world.reports_dir / "cost" / "cost.json").read_text())
    assert (world.reports_dir / "cost" / "cost.png").read_bytes()[:4] == b"\x89PNG"
    assert report["currency"] == "EUR" and "mlflow_run_id" not in report

    m = report["measured"]
    assert m["rank_cpu_ms_per_call"] == pytest.approx(2.0)
    assert m["track_cpu_ms_per_event"] == pytest.approx(2.0)
    assert m["track_events_per_call"] == pytest.approx(5.0)
    assert m["jobs_cpu_s_per_day"] == pytest.approx(72.0)
    assert m["redis_gb"] is None and "not measured" in m["sources"]["redis"]

    days = {d["date"]: d for d in report["days"]}
    assert list(days) == EXPECTED["days"]
    day = days["2024-05-01"]
    assert (day["rank_calls"], day["track_events"]) == (4, 9)
    c = day["cost"]
    assert c["serving_cpu"] == pytest.approx((4 + 9) * 0.002 * 0.01)
    assert c["jobs_cpu"] == pytest.approx(0.72)
    assert c["requests"] == pytest.approx(4 + 9 / 5)
    held = sum(days[d]["events_bytes"] + days[d]["impressions_bytes"] for d in ("2024-04-30", "2024-05-01"))
    assert day["held_bytes"] == held and c["storage"] == pytest.approx(held / GB)
    assert c["redis"] == 0.0
    total = c["serving_cpu"] + c["jobs_cpu"] + c["requests"] + c["storage"]
    assert c["total"] == pytest.approx(total)
    assert day["per_1000_rank_calls"] == pytest.approx(total / 4 * 1000)
    assert day["per_engaged_user"] == pytest.approx(total / 1)
    assert day["per_value_event"] == pytest.approx(total / 4)
    assert days["2024-05-02"]["per_1000_rank_calls"] is None  # no Rank call that day
    # sampling: 4 views at weight 5 stand for 20, so 16 events were not stored
    assert day["sampling_saved_events"] == pytest.approx(16.0)
    assert day["sampling_saved_bytes"] == pytest.approx(16 * day["events_bytes"] / 9)
    assert report["sampling"]["saved_events"] == pytest.approx(16.0)

    period = report["period"]
    whole = sum(d["cost"]["total"] for d in report["days"])
    assert period["cost"]["total"] == pytest.approx(whole)
    assert period["per_engaged_user"] == pytest.approx(whole / EXPECTED["engaged"])
    assert period["per_1000_rank_calls"] == pytest.approx(whole / 9 * 1000)

    arms = {a["arm"]: a for a in report["arms"]["rows"]}
    calls = {"champion": 7 + 7 / 5, "control": 1 + 5 / 5, "": 1 + 1 / 5}  # Rank calls + Track events / 5
    for arm, n in calls.items():
        assert arms[arm]["calls"] == pytest.approx(n)
        assert arms[arm]["cost"] == pytest.approx(whole * n / sum(calls.values()))
    assert arms["control"]["per_engaged_user"] == pytest.approx(arms["control"]["cost"])
    assert arms["champion"]["per_value_event"] == pytest.approx(arms["champion"]["cost"] / 3)
    assert sum(a["cost"] for a in arms.values()) == pytest.approx(whole)


def test_the_table_names_each_unit_cost(world: Settings, metrics_page: int) -> None:
    run = cost(world, metrics_page, "--no-mlflow")
    assert run.returncode == 0, run.stderr
    for words in ("per engaged user", "cost per day", "cost per experiment arm", "champion", "2024-05-01"):
        assert words in run.stdout, words


def test_with_no_server_rank_cpu_comes_from_the_bench_report_and_track_cpu_is_not_measured(
    world: Settings, tmp_path: Path
) -> None:
    bench = tmp_path / "latest.json"
    bench.write_text(json.dumps({"scale": "small", "rank": {"server_cpu": {"cpu_ms_per_request": 4.0}}}))
    run = cost(world, free_port(), "--no-mlflow", "--json", "--bench-report", str(bench))
    assert run.returncode == 0, run.stderr
    m = json.loads(run.stdout)["measured"]
    assert m["rank_cpu_ms_per_call"] == pytest.approx(4.0) and "bench" in m["sources"]["rank_cpu"]
    assert m["track_cpu_ms_per_event"] is None and "no server running" in m["sources"]["track_cpu"]

    run = cost(world, free_port(), "--no-mlflow", "--json", "--bench-report", str(tmp_path / "absent.json"))
    m = json.loads(run.stdout)["measured"]
    assert m["rank_cpu_ms_per_call"] is None and "not measured" in m["sources"]["rank_cpu"]


def test_what_sampling_saved_on_the_bench_data_is_priced_per_million_events(world: Settings, tmp_path: Path) -> None:
    bench = tmp_path / "latest.json"
    sampling = {"sent": 1000, "accepted": 1000, "sampled_out": 250, "stored": 750, "sent_by_type": {"view": 1000}}
    bench.write_text(
        json.dumps({"scale": "small", "finished_at": "2024-05-02T10:00:00Z", "track": {"sampling": sampling}})
    )
    run = cost(world, free_port(), "--no-mlflow", "--bench-report", str(bench))
    assert run.returncode == 0, run.stderr
    assert "sampling on the bench data" in run.stdout and "250 (25%)" in run.stdout

    doc = json.loads((world.reports_dir / "cost" / "cost.json").read_text())
    saved, days = doc["sampling"]["bench"], doc["days"]
    mean = sum(d["events_bytes"] for d in days) / sum(d["track_events"] for d in days)
    assert saved["mean_event_bytes"] == pytest.approx(mean)
    assert saved["saved_bytes_per_million_events"] == pytest.approx(0.25 * 1e6 * mean)
    # 30.4375 per GB-month in the test's prices
    assert saved["storage_saved_per_month_per_million_events"] == pytest.approx(0.25 * 1e6 * mean / GB * 30.4375)

    run = cost(world, free_port(), "--no-mlflow", "--bench-report", str(tmp_path / "absent.json"))
    assert "no bench report with a Track sampling phase" in run.stdout


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        (None, "no cost file at"),
        (
            "prices: {cpu_second: -1, storage_gb_month: 1, redis_gb_hour: 1, million_requests: 1}",
            "a price is 0 or more",
        ),
        ("prices: [unclosed", "is not valid YAML"),
    ],
)
def test_a_bad_cost_file_is_one_line_and_exit_2(world: Settings, prices: str | None, message: str) -> None:
    if prices is None:
        world.cost_file.unlink()
    else:
        world.cost_file.write_text(prices)
    run = cost(world, free_port(), "--no-mlflow")
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_an_empty_data_directory_has_nothing_to_cost(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", cost_file=ROOT / "cost.yaml")
    run = cost(settings, free_port(), "--no-mlflow")
    assert run.returncode == 2 and "nothing to cost" in run.stderr, run.stderr
