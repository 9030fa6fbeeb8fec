"""What the cost report reads: per-day and per-arm usage from a hand-built data directory
(tests/cost_world), the onboarding summary, the serving counters, the jobs' CPU, and the CPU that
Rank, Track and a batch job record about themselves."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ops.cost import measured, usage
from ops.cost.model import NO_ARM
from serving import metrics
from serving.errors import InvalidArgument
from serving.types import RankQuery, TrackEvent
from setlist import jobmetrics
from setlist.kpis import ValueRule
from setlist.settings import Settings
from tests import cost_world
from tests.cost_world import EXPECTED


@pytest.fixture
def world(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    cost_world.build(settings)
    return settings


def test_usage_per_day_counts_rank_calls_events_value_and_engaged_users(world: Settings) -> None:
    u = usage.collect(world, ValueRule.from_settings(world))
    assert [d.date for d in u.days] == EXPECTED["days"]
    by_day = {d.date: d for d in u.days}
    for date, calls in EXPECTED["rank_calls"].items():
        assert by_day[date].rank_calls == calls, date
    for date, n in EXPECTED["track_events"].items():
        assert by_day[date].track_events == n, date
    for date, n in EXPECTED["represented"].items():
        assert by_day[date].represented_events == pytest.approx(n), date
    for date, n in EXPECTED["value_events"].items():
        assert by_day[date].value_events == pytest.approx(n), date
    for date, n in EXPECTED["engaged_users"].items():
        assert by_day[date].engaged_users == n, date
    assert (u.users, u.engaged_users) == (EXPECTED["users"], EXPECTED["engaged"])


def test_bytes_per_day_are_the_partition_files(world: Settings) -> None:
    u = usage.collect(world, ValueRule.from_settings(world))
    by_day = {d.date: d for d in u.days}
    on_disk = sum(f.stat().st_size for f in (world.events_dir / "date=2024-05-01").glob("*.parquet"))
    assert by_day["2024-05-01"].events_bytes == on_disk > 0
    counted = world.impressions_dir / "daily" / "date=2024-04-30" / "counted.parquet"
    assert by_day["2024-04-30"].impressions_bytes == counted.stat().st_size
    assert by_day["2024-05-02"].impressions_bytes == 0


def test_usage_per_arm_from_the_event_log_and_the_impressions(world: Settings) -> None:
    u = usage.collect(world, ValueRule.from_settings(world))
    got = {a.arm: (a.users, a.engaged_users, a.value_events, a.rank_calls, a.track_events) for a in u.arms}
    assert got == EXPECTED["arms"]
    assert "computed" in u.arms_source and not u.notes


def test_the_onboarding_summary_gives_the_arms_when_it_exists(world: Settings) -> None:
    path = usage.onboarding_path(world)
    path.parent.mkdir(parents=True)
    # the shape experiments.onboarding.summary writes: arms keyed by name; rank_calls null when not counted
    arms = {
        "champion": {"users": 40, "engaged_users": 10, "value_events": 90, "rank_calls": 400},
        "control": {"users": 30, "engaged_users": 5, "value_events": 20, "rank_calls": None},
    }
    path.write_text(json.dumps({"experiment": "ab", "engaged_min_value_events": 3, "arms": arms}))
    u = usage.collect(world, ValueRule.from_settings(world))
    by_arm = {a.arm: a for a in u.arms}
    assert set(by_arm) == {"champion", "control", NO_ARM}  # the summary's arms, and the calls under none
    assert (by_arm["champion"].users, by_arm["champion"].engaged_users, by_arm["champion"].rank_calls) == (40, 10, 400)
    assert by_arm["champion"].track_events == 7  # from the event log
    assert by_arm["control"].rank_calls == 1  # not counted by the summary: from the impressions
    assert "onboarding" in u.arms_source and any("no Rank calls for control" in n for n in u.notes)

    path.write_text(json.dumps({"simulation": {"users": 70}, "arms": arms}))
    assert any("simulated traffic" in n for n in usage.collect(world, ValueRule.from_settings(world)).notes)

    path.write_text(json.dumps({"arms": {"champion": {"users": 3}}}))  # no engaged users, no value events
    u = usage.collect(world, ValueRule.from_settings(world))
    assert {a.arm for a in u.arms} == set(EXPECTED["arms"])
    assert any("lack engaged_users, value_events" in n for n in u.notes)


# --- what the processes measured ----------------------------------------------------------------------------
def _samples(rank: tuple[float, float], track: tuple[float, float], acked: float) -> list:
    return [
        ("setlist_rpc_cpu_seconds_total", {"rpc": "Rank"}, rank[0]),
        ("setlist_rpc_cpu_calls_total", {"rpc": "Rank"}, rank[1]),
        ("setlist_rpc_cpu_seconds_total", {"rpc": "Track"}, track[0]),
        ("setlist_rpc_cpu_calls_total", {"rpc": "Track"}, track[1]),
        ("setlist_track_events_acknowledged_total", {}, acked),
    ]


def test_serving_rates_come_from_the_servers_counters(tmp_path: Path) -> None:
    # two workers' pages: their counters add up
    samples = _samples((1.5, 600), (0.2, 40), 300) + _samples((0.5, 400), (0.2, 60), 200)
    rank, track, per_call, _, sources = measured.serving(samples, None, tmp_path / "none.json")
    assert rank == pytest.approx(2.0 / 1000)
    assert track == pytest.approx(0.4 / 500)
    assert per_call == pytest.approx(5.0)
    assert "server /metrics" in sources["rank_cpu"] and "server /metrics" in sources["track_cpu"]


def test_without_a_server_rank_cpu_comes_from_the_bench_and_track_cpu_is_not_measured(tmp_path: Path) -> None:
    bench = {"scale": "small", "finished_at": "2024-05-01T00:00:00Z", "rank": {"server_cpu": {"cpu_ms_per_request": 4}}}
    rank, track, per_call, _, sources = measured.serving(None, bench, tmp_path / "latest.json")
    assert rank == pytest.approx(0.004) and "bench" in sources["rank_cpu"]
    assert track is None and per_call is None and "not measured" in sources["track_cpu"]
    rank, *_, sources = measured.serving(None, None, tmp_path / "latest.json")
    assert rank is None and "no server running" in sources["rank_cpu"] and "not measured" in sources["rank_cpu"]
    # --no-probe asked no server: it does not claim that none runs
    rank, *_, sources = measured.serving(None, bench, tmp_path / "latest.json", probed=False)
    assert rank == pytest.approx(0.004) and sources["rank_cpu"].startswith("servers not asked (--no-probe); from")
    assert "no server running" not in sources["track_cpu"] and "--no-probe" in sources["track_cpu"]


def test_jobs_cpu_a_day_is_each_jobs_last_run_times_its_runs_a_day(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    now = datetime(2024, 5, 1, tzinfo=UTC)
    assert measured.batch_jobs(settings, now)[0] is None  # no status file: not measured
    for job, cpu in (("materialize", 3.0), ("train", 100.0), ("generate", 50.0)):
        m = jobmetrics.JobMetrics(job)
        m.set("setlist_job_cpu_seconds", cpu, job=job)
        jobmetrics.publish(settings, m)
    per_day, jobs, source = measured.batch_jobs(settings, now)
    assert per_day == pytest.approx(3.0 * 24 + 100.0 * 1)  # hourly and daily in ops/schedule.yaml
    assert jobs["generate"] == {"cpu_s": 50.0, "runs_per_day": 0.0}  # a one-off job adds nothing a day
    assert "validate" in source  # scheduled, never run: named as not measured


def test_redis_is_not_measured_without_redis_and_the_sqlite_store_is_its_files(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert measured.redis_memory(settings)[0] is None
    assert measured.online_store(settings)[0] == 0
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "online.db").write_bytes(b"x" * 4096)
    (settings.data_dir / "online.db-wal").write_bytes(b"x" * 100)
    assert measured.online_store(settings)[0] == 4196
    production = Settings(data_dir=tmp_path / "data", profile="production", redis_url="redis://127.0.0.1:1/0")
    used, why = measured.redis_memory(production)
    assert used is None and "did not answer" in why


# --- the CPU the processes record -----------------------------------------------------------------------------
def _burn(seconds: float) -> None:
    """Spend CPU (not wall time) until this process has used ``seconds`` more."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        sum(range(1000))


def test_a_job_run_records_the_cpu_it_used(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with jobmetrics.job_run(settings, "materialize"):
        _burn(0.05)
    cpu = jobmetrics.read_status(settings.status_dir)["materialize"][
        ("setlist_job_cpu_seconds", (("job", "materialize"),))
    ]
    assert 0.05 <= cpu < 5.0


def _counter(name: str, rpc: str) -> float:
    return REGISTRY.get_sample_value(name, {"rpc": rpc}) or 0.0


def test_rank_and_track_count_their_calls_and_cpu(tmp_path: Path) -> None:
    from tests.fakes.dataplane import Dataplane

    plane = Dataplane.fresh(tmp_path, hmac_key="k", impressions_enabled=False, reload_interval_s=3600)
    server = plane.build()
    try:
        for _ in range(3):
            server.rank(RankQuery("user-0", 5))
        now_ms = int(plane.clock() * 1000)
        server.track([TrackEvent("e1", "user-0", "item-3", "play", now_ms, "s1")])
        with pytest.raises(InvalidArgument):  # a refused call still cost CPU, and is counted
            server.track([])
        cpu = [args for name, args in plane.metrics.calls if name == "record_cpu"]
        for rpc, calls in (("Rank", 3), ("Track", 2)):
            mine = [seconds for r, seconds in cpu if r == rpc]
            assert len(mine) == calls and all(s >= 0 for s in mine) and sum(mine) > 0, rpc
        # and the exported counters add up what the sink is given
        before = _counter("setlist_rpc_cpu_seconds_total", "Rank"), _counter("setlist_rpc_cpu_calls_total", "Rank")
        metrics.record_cpu("Rank", 0.25)
        assert _counter("setlist_rpc_cpu_seconds_total", "Rank") - before[0] == pytest.approx(0.25)
        assert _counter("setlist_rpc_cpu_calls_total", "Rank") - before[1] == 1
    finally:
        server.close()


def test_events_dated_before_the_first_import_are_history_not_days_of_work(world: Settings) -> None:
    # an import on 2024-05-02 of a log reaching back before it: the days before are the log's history,
    # not days of Track calls and batch jobs, unless the server was already serving then
    import shutil

    from setlist.lineage import IMPORTS

    full = usage.collect(world, ValueRule.from_settings(world))
    world.lineage_dir.mkdir(parents=True, exist_ok=True)
    (world.lineage_dir / IMPORTS).write_text(json.dumps({"at": "2024-05-02T09:00:00+00:00", "source": "r.csv"}) + "\n")
    served = usage.collect(world, ValueRule.from_settings(world))  # it ranked from 2024-04-30 on: all work
    assert [(d.date, d.track_events) for d in served.days] == [(d.date, d.track_events) for d in full.days]
    assert not any("imported history" in n for n in served.notes)
    shutil.rmtree(world.impressions_dir)  # no Rank before the import: what came before is history
    cut = usage.collect(world, ValueRule.from_settings(world))
    assert [d.date for d in cut.days] == ["2024-05-02"]
    assert cut.days[0].track_events == EXPECTED["track_events"].get("2024-05-02", 0)
    assert sum(d.events_bytes for d in cut.days) == sum(d.events_bytes for d in full.days)  # moved, not lost
    assert any("imported history" in n and "2024-05-02" in n for n in cut.notes)
    assert cut.users <= full.users and sum(a.track_events for a in cut.arms) < sum(a.track_events for a in full.arms)
