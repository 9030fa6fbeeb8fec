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
