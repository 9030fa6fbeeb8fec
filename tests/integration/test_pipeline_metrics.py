"""The pipeline's metrics, scraped for real: a running server's /metrics page, a batch job's status
file, and the same job's push to a real Pushgateway. Between them, every series the operations
contract names (setlist.jobmetrics.CATALOGUE) is there, with values that follow what was done."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from serving.client import SetlistClient, new_event
from setlist import jobmetrics, registry
from tests.servers import free_port, server_env, wait_for

ROOT = Path(__file__).resolve().parents[2]

#: the names the operations issue lists; setlist_cache_hit_ratio is a recording rule (checked below)
NAMED = {
    "setlist_ingest_lag_seconds",
    "setlist_feature_lag_seconds",
    "setlist_feature_age_seconds",
    "setlist_events_quarantined_total",
    "setlist_schema_violations_total",
    "setlist_gate_status",
    "setlist_gate_last_run_timestamp_seconds",
    "setlist_drift",
    "setlist_cardinality",
    "setlist_model_age_seconds",
    "setlist_model_metric",
    "setlist_job_duration_seconds",
    "setlist_job_last_success_timestamp_seconds",
}

Samples = list[tuple[str, dict[str, str], float]]


def _parse(text: str) -> Samples:
    return [(s.name, dict(s.labels), float(s.value)) for f in text_string_to_metric_families(text) for s in f.samples]


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return _parse(response.read().decode("utf-8"))


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items())]
    return sum(found) if found else None


@pytest.fixture(scope="module")
def served(tiny_world, tmp_path_factory):
    """A server on a copy of the tiny world, with its metrics port, after some Rank and Track traffic:
    ``good`` events acknowledged and ``bad`` ones (empty item id) quarantined."""
    import shutil

    data = tmp_path_factory.mktemp("metrics") / "data"
    shutil.copytree(tiny_world.settings.data_dir, data)
    settings = tiny_world.settings.model_copy(update={"data_dir": data})
    port, metrics_port = free_port(), free_port()
    env = server_env(settings, port, SETLIST_METRICS_PORT=str(metrics_port), SETLIST_JOURNAL_ROLL_S="0.2")
    proc = subprocess.Popen([sys.executable, "-m", "serving"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    users = [str(u) for u in tiny_world.users["user_id"][:10]]
    item = str(tiny_world.items["item_id"].iloc[0])
    try:
        with SetlistClient(f"127.0.0.1:{port}", timeout=10) as client:
            assert client.wait_ready(timeout=90)
            for user in users:
                client.rank(user, k=10)
            client.rank(users[0], k=10)  # a cache hit
            good = [new_event(u, item, "play", value=0.8) for u in users]
            bad = [new_event(u, "", "skip") for u in users[:3]]
            accepted, rejected = client.track(good + bad)
            assert accepted == len(good) and len(rejected) == len(bad)
        yield settings, metrics_port, len(good), len(bad)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_running_server_exports_the_pipeline_as_it_sees_it(served):
    settings, metrics_port, good, bad = served
    # the journal rolls every 0.2 s: wait for what was acknowledged to reach the log
    wait_for(
        lambda: _value(_scrape(metrics_port), "setlist_track_events_logged_total") == good,
        30,
        "acknowledged events reaching the event log",
    )
    samples = _scrape(metrics_port)
    assert _value(samples, "setlist_track_events_acknowledged_total") == good
    assert _value(samples, "setlist_ingest_lag_seconds") == 0.0  # nothing left in the journal
    assert _value(samples, "setlist_events_quarantined_total", reason="missing_id") == bad
    assert _value(samples, "setlist_schema_violations_total", field="item_id") == bad
    lag = _value(samples, "setlist_feature_lag_seconds")  # as of the server's last refresh
    assert lag is not None and lag >= 0.0
    for view in ("user_profile", "item_stats", "session", "user_consent"):
        age = _value(samples, "setlist_feature_age_seconds", view=view)
        assert age is not None and age > 0.0
    champion = registry.alias_facts(registry.reader(settings), settings, registry.CHAMPION)
    ranker = champion[-1]
    assert _value(samples, "setlist_model_metric", model=ranker.model, metric="ndcg_at_10") == pytest.approx(
        ranker.metrics["ndcg_at_10"]
    )
    for facts in champion:
        age = _value(samples, "setlist_model_age_seconds", model=facts.model, alias="champion")
        assert age is not None and age > 0.0
    assert _value(samples, "setlist_cache_hits_total") == 1.0


def test_every_named_metric_comes_from_the_server_or_a_jobs_status_file_and_reaches_the_pushgateway(
    served, tiny_copy, pushgateway
):
    _, metrics_port, _, _ = served
    settings = tiny_copy.settings  # the world as built: its gates pass
    env = server_env(settings, free_port(), SETLIST_PUSHGATEWAY_URL=pushgateway.url)
    run = subprocess.run(
        [sys.executable, "-m", "validation", "all"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    status = _parse((settings.status_dir / "validate.prom").read_text())
    from_job = {name for name, _, _ in status}
    from_server = {name for name, _, _ in _scrape(metrics_port)}
    assert NAMED <= from_job | from_server, sorted(NAMED - from_job - from_server)
    compacted = subprocess.run(
        [sys.executable, "-m", "ingest.lifecycle", "all"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compacted.returncode == 0, compacted.stdout[-2000:] + compacted.stderr[-2000:]
    from_compaction = {name for name, _, _ in _parse((settings.status_dir / "compaction.prom").read_text())}
    assert set(jobmetrics.CATALOGUE) <= from_job | from_server | from_compaction
    assert _value(status, "setlist_job_failed", job="validate") == 0.0

    pushed = _parse(pushgateway.metrics())
    assert _value(pushed, "setlist_job_last_success_timestamp_seconds", job="validate") == pytest.approx(
        _value(status, "setlist_job_last_success_timestamp_seconds", job="validate")
    )
    for gate in ("events", "drift", "cardinality"):
        assert _value(pushed, "setlist_gate_status", gate=gate, job="validate") == _value(
            status, "setlist_gate_status", gate=gate
        )


def test_the_cache_hit_ratio_is_a_recording_rule_over_the_exported_counters():
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/setlist.rules.yml").read_text())
    recorded = {r["record"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    assert "setlist_cache_hit_ratio" in recorded
    assert "setlist_cache_hits_total" in recorded["setlist_cache_hit_ratio"]
    assert "setlist_cache_misses_total" in recorded["setlist_cache_hit_ratio"]
