"""How ``python -m ops status`` judges the SLO file against what it can see: selectors, ratios from a
server's lifetime counters, the latency histogram, and threshold objectives."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.status import judge, load_objectives, parse_selector, total
from setlist.errors import BadInput, InputMissing

ROOT = Path(__file__).resolve().parents[2]
OBJECTIVES = load_objectives(ROOT / "deploy/prometheus/slo.yaml")
BUCKETS = (0.005, 0.0075, 0.01, 0.015, float("inf"))


def _rank(ok: int, errors: int, fast: int) -> list[tuple[str, dict[str, str], float]]:
    """A server's samples after ``ok + errors`` Rank calls, ``fast`` of them within 10 ms."""
    n = ok + errors
    samples = [
        ("setlist_rpc_requests_total", {"rpc": "Rank", "code": "OK"}, float(ok)),
        ("setlist_rpc_requests_total", {"rpc": "Rank", "code": "UNAVAILABLE"}, float(errors)),
        ("setlist_rpc_requests_total", {"rpc": "Track", "code": "INTERNAL"}, 50.0),  # not Rank's
        ("setlist_rpc_latency_seconds_count", {"rpc": "Rank"}, float(n)),
        ("setlist_track_events_acknowledged_total", {}, 100.0),
        ("setlist_track_events_logged_total", {}, 100.0),
        ("setlist_ingest_lag_seconds", {}, 0.0),
    ]
    for le in BUCKETS:
        count = fast if le <= 0.01 else n
        samples.append(("setlist_rpc_latency_seconds_bucket", {"rpc": "Rank", "le": str(le)}, float(count)))
    return samples


def _states(samples, local=None) -> dict[str, str]:
    return {s.name: s.state for s in judge(OBJECTIVES, samples, local or {})}


def test_selectors_read_the_promql_subset_the_slo_file_uses():
    name, matchers = parse_selector('setlist_rpc_requests_total{rpc="Rank",code=~"INTERNAL|UNAVAILABLE"}')
    assert name == "setlist_rpc_requests_total"
    assert matchers == [("rpc", "=", "Rank"), ("code", "=~", "INTERNAL|UNAVAILABLE")]
    samples = _rank(ok=90, errors=10, fast=100)
    assert total(samples, 'setlist_rpc_requests_total{code!="OK"}') == 60.0  # Rank's 10 and Track's 50
    assert total(samples, 'setlist_rpc_requests_total{rpc="Rank",code!~"OK|INTERNAL"}') == 10.0
    with pytest.raises(BadInput):
        parse_selector("rate(setlist_rpc_requests_total[5m])")


def test_a_healthy_server_holds_every_serving_slo():
    states = _states(_rank(ok=10_000, errors=1, fast=9_990))
    assert states["rank_availability"] == states["rank_latency"] == states["track_durability"] == "holds"


def test_errors_and_slow_answers_break_availability_and_latency():
    states = _states(_rank(ok=900, errors=100, fast=950))
    assert states["rank_availability"] == "broken"  # 90% < 99.9%
    assert states["rank_latency"] == "broken"  # 95% within 10 ms < 99%


def test_acknowledged_events_missing_from_the_log_break_durability_unless_still_rolling():
    samples = _rank(ok=10, errors=0, fast=10)
    samples = [s for s in samples if s[0] != "setlist_track_events_logged_total"]
    samples.append(("setlist_track_events_logged_total", {}, 90.0))
    assert _states(samples)["track_durability"] == "broken"
    rolling = [s for s in samples if s[0] != "setlist_ingest_lag_seconds"]
    rolling.append(("setlist_ingest_lag_seconds", {}, 1.5))
    assert _states(rolling)["track_durability"] == "no data"


def test_without_a_server_the_serving_slos_have_no_data_and_do_not_break():
    states = _states(None, {"feature_age": 60.0, "metric:ndcg_at_10": 0.2})
    assert states["rank_availability"] == "no data"
    assert states["feature_freshness"] == states["model_quality"] == "holds"


def test_stale_features_and_a_champion_below_the_floor_break_their_slos():
    freshness = next(o for o in OBJECTIVES if o["name"] == "feature_freshness")
    floor = next(o for o in OBJECTIVES if o["name"] == "model_quality")
    states = _states(
        None, {"feature_age": float(freshness["max_age_seconds"]) + 1, "metric:ndcg_at_10": float(floor["floor"]) / 2}
    )
    assert states["feature_freshness"] == states["model_quality"] == "broken"


def test_a_missing_or_malformed_slo_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputMissing, match="no SLO file"):
        load_objectives(tmp_path / "nope.yaml")
    bad = tmp_path / "slo.yaml"
    bad.write_text("objectives: {name: x}\n")
    with pytest.raises(BadInput, match="objectives"):
        load_objectives(bad)
    odd = tmp_path / "odd.yaml"
    odd.write_text("objectives:\n  - name: mystery\n    sli: {}\n")
    with pytest.raises(BadInput, match="mystery"):
        judge(load_objectives(odd), [], {})


def test_quota_refusals_do_not_spend_ranks_error_budget():
    over_quota = [
        ("setlist_rpc_requests_total", {"rpc": "Rank", "code": "RESOURCE_EXHAUSTED"}, 5000.0),
        ("setlist_quota_rejections_total", {"rpc": "Rank"}, 5000.0),
    ]
    assert _states(_rank(ok=10_000, errors=0, fast=10_000) + over_quota)["rank_availability"] == "holds"
    overloaded = [("setlist_rpc_requests_total", {"rpc": "Rank", "code": "RESOURCE_EXHAUSTED"}, 5000.0)]
    assert _states(_rank(ok=10_000, errors=0, fast=10_000) + overloaded)["rank_availability"] == "broken"


def test_a_promotion_by_hand_shows_as_overridden_not_as_a_pass(tmp_path: Path) -> None:
    import time

    from ops.status import gate_lines
    from setlist.lineage import record_gate
    from setlist.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    record_gate(settings.lineage_dir, "drift", True, "snapshot:1")
    record_gate(settings.lineage_dir, "promotion", True, "ranker:1", manual=True, reason="first model, small data")
    lines = {line.name: line for line in gate_lines(settings, time.time())}
    assert (lines["drift"].mark, lines["drift"].value) == ("ok", "pass")
    assert lines["promotion"].mark == "warn" and lines["promotion"].value.startswith("overridden by hand: first model")


@pytest.mark.parametrize("server", ["refusing", "silent"])
def test_a_registry_that_cannot_be_reached_is_a_failed_line_and_a_failed_status(tmp_path: Path, server: str) -> None:
    # silent: a server that accepts the connection and never answers, as a stopped PostgreSQL does; status
    # must end on the connect deadline rather than wait (libpq's own default is to wait forever)
    import socket

    from ops.status import collect
    from setlist.settings import Settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if server == "silent":
            sock.listen(8)
        port = sock.getsockname()[1]
        if server == "refusing":
            sock.close()
        settings = Settings(
            data_dir=tmp_path,
            mlflow_tracking_uri=f"postgresql+psycopg://setlist@127.0.0.1:{port}/setlist",
            database_connect_timeout_s=2,
        )
        report = collect(settings, probe=False)
    (registry,) = [line for line in report.lines if line.section == "models"]
    assert registry.mark == "fail" and registry.value.startswith("cannot read the model registry: OperationalError")
    assert "\n" not in registry.value
    assert report.unreadable == [registry] and not report.ok


def test_status_names_the_workers_whose_metrics_did_not_answer() -> None:
    """Two workers' pages expected, one answers: the SLOs are judged on its samples, and a line says
    which page was silent rather than passing over it."""
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    from ops.status import metrics_line, scrape_each
    from tests.servers import free_port

    registry = CollectorRegistry()
    Counter("setlist_rpc_requests", "calls", ["rpc", "code"], registry=registry).labels("Rank", "OK").inc(3)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        answering = f"http://127.0.0.1:{server.server_port}/metrics"
        silent = f"http://127.0.0.1:{free_port()}/metrics"
        samples, missing = scrape_each([answering, silent])
        assert missing == [silent]
        assert ("setlist_rpc_requests_total", {"rpc": "Rank", "code": "OK"}, 3.0) in (samples or [])
        line = metrics_line([answering, silent], missing)
        assert line.mark == "warn" and line.value.startswith("1 of 2 answered") and silent in line.value
        assert metrics_line([answering], []).mark == "ok"
        none = metrics_line([silent], [silent])
        assert none.value.startswith("0 of 1 answered") and "SETLIST_METRICS_PORT" in none.value
    finally:
        server.shutdown()
        thread.join(5)


def test_status_checks_each_replica_named_and_judges_the_slos_on_all_their_counters(tmp_path: Path) -> None:
    """Two replicas (one host each, the same metrics port): a health line for each, and the SLOs read
    from both pages. The second replica is down: its line says so and its page is named silent."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    from ops.status import collect
    from setlist.settings import Settings
    from tests.servers import free_port

    registry = CollectorRegistry()
    Counter("setlist_rpc_requests", "calls", ["rpc", "code"], registry=registry).labels("Rank", "OK").inc(3)
    metrics_port = free_port()
    page, thread = start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    down = f"127.0.0.2:{free_port()}"  # another loopback address: a replica that is not running
    try:
        settings = Settings(
            data_dir=tmp_path / "data", status_target=f"127.0.0.1:{port}, {down}", metrics_port=metrics_port
        )
        report = collect(settings)
        lines = {line.name: line for line in report.lines if line.section == "serving"}
        assert lines[f"health 127.0.0.1:{port}"].mark == "ok"
        assert lines[f"health {down}"].mark == "warn" and lines[f"health {down}"].value.startswith("not running")
        assert (
            lines["metrics"].value.startswith("1 of 2 answered")
            and f"127.0.0.2:{metrics_port}" in lines["metrics"].value
        )
        availability = next(s for s in report.slos if s.name == "rank_availability")
        assert availability.state == "holds"  # judged on the answering replica's 3 OK Ranks, not "no data"
    finally:
        grpc_server.stop(0)
        page.shutdown()
        thread.join(5)


def test_no_server_of_those_named_answering_is_an_outage_where_none_named_is_a_warning(tmp_path: Path) -> None:
    from ops.status import collect
    from setlist.settings import Settings
    from tests.servers import free_port

    gone = [f"127.0.0.2:{free_port()}", f"127.0.0.3:{free_port()}"]
    named = collect(Settings(data_dir=tmp_path / "data", status_target=", ".join(gone), metrics_port=free_port()))
    (line,) = [x for x in named.lines if x.name == "servers"]
    assert line.mark == "fail" and "none of the 2 named by SETLIST_STATUS_TARGET answered" in line.value
    assert not named.ok and named.stops == ["no server answered"]
    alone = collect(Settings(data_dir=tmp_path / "data", port=free_port(), metrics_port=free_port()))
    assert [x.mark for x in alone.lines if x.name == "health"] == ["warn"] and not alone.stops


def test_a_name_that_resolves_to_several_addresses_is_each_replica(tmp_path: Path, monkeypatch) -> None:
    """A Kubernetes headless Service resolves to every ready pod: named as the status target, each pod is a
    replica of its own. ``localhost`` (IPv6 and IPv4) is one server; a name that does not resolve is kept."""
    import socket

    from ops import status
    from setlist.settings import Settings

    real = socket.getaddrinfo
    pods = ["10.1.0.7", "10.1.0.9"]

    def resolve(host, port, *args, **kw):
        if host == "setlist-serving-headless":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in [*pods, pods[0]]]
        if host == "localhost":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))] + real("127.0.0.1", port)
        if host == "gone":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert status.replicas("setlist-serving-headless:50051") == ["10.1.0.7:50051", "10.1.0.9:50051"]
    assert status.replicas("localhost:50051") == ["localhost:50051"]
    assert status.replicas("gone:50051") == ["gone:50051"] and status.replicas("10.1.0.7:50051") == ["10.1.0.7:50051"]
    settings = Settings(
        data_dir=tmp_path / "data", status_target="setlist-serving-headless:50051, gone:50051", metrics_port=9100
    )
    expanded: dict[str, list[str]] = {}
    targets = status._targets(settings, expanded)
    assert [t for t, _ in targets] == ["10.1.0.7:50051", "10.1.0.9:50051", "gone:50051"]
    assert targets[1][1] == ["http://10.1.0.9:9100/metrics"]  # each pod's own page
    assert expanded == {"setlist-serving-headless:50051": ["10.1.0.7:50051", "10.1.0.9:50051"]}
