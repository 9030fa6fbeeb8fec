"""The bench's own scenarios against a real in-process gRPC server with the honest fake ranking."""

from __future__ import annotations

import asyncio

from bench import scenarios as sc
from serving.grpc import proto


def _requests(*contexts: dict[str, str]) -> list:
    return [proto.ranking_pb2.RankRequest(user_id=f"u{i}", k=3, context=c) for i, c in enumerate(contexts)]


def test_priming_sends_every_request_over_every_connection(serve_fake):
    server, _, ranking = serve_fake()
    requests = _requests({}, {}, {})
    primed = asyncio.run(sc.rank_prime(f"127.0.0.1:{server.port}", requests, 5.0))
    # one process: plain connections, each of which carries every request once
    assert primed.summary["ok"] == sc.CHANNELS * len(requests) and primed.summary["errors"] == 0
    assert sorted(q.user_id for q in ranking.queries) == sorted(["u0", "u1", "u2"] * sc.CHANNELS)


def test_the_unloaded_run_counts_which_replies_were_cache_hits(serve_fake):
    server, _, _ = serve_fake()
    # the fake answers cache_hit when the context asks for it: one request in four is a miss
    requests = _requests({"cache": "hit"}, {"cache": "hit"}, {"cache": "hit"}, {})
    measured = asyncio.run(sc.rank_sequential(f"127.0.0.1:{server.port}", requests, 8, 5.0))
    assert measured.summary["ok"] == 8 and measured.summary["cache_hit_fraction"] == 0.75


def test_the_bench_reads_each_workers_rank_handler_cpu_from_its_metrics():
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    from bench.servers import Running, _free_run

    ports, servers = _free_run(2), []
    for port, (seconds, calls) in zip(ports, ((1.5, 300), (2.5, 500)), strict=True):
        registry = CollectorRegistry()  # one worker's /metrics
        cpu = Counter("setlist_rpc_cpu_seconds", "", ["rpc"], registry=registry)
        cpu.labels("Rank").inc(seconds)
        cpu.labels("Track").inc(9.0)  # Track's handler is not Rank's
        Counter("setlist_rpc_cpu_calls", "", ["rpc"], registry=registry).labels("Rank").inc(calls)
        servers.append(start_http_server(port, "127.0.0.1", registry=registry))
    try:
        running = Running("w", "127.0.0.1:1", 1, None, 0.0, ports)  # type: ignore[arg-type]
        assert running.handler_cpu() == (4.0, 800.0)  # both workers, Rank only
        assert Running("w", "127.0.0.1:1", 1, None, 0.0).handler_cpu() is None  # metrics off
    finally:
        for httpd, _thread in servers:
            httpd.shutdown()
            httpd.server_close()
