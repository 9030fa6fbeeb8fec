"""Quotas per client token against a real in-process server: an over-quota token gets
RESOURCE_EXHAUSTED with the retry hint in trailing metadata (and a QuotaExceededError from the client)
while another token is still answered. The rate is so slow (one unit per 1000 s) that no unit comes
back while a test runs: no sleeps, no clock to inject."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import yaml
from prometheus_client import REGISTRY

from serving.client import ClientError, QuotaExceededError, SetlistClient, new_event
from serving.grpc import proto
from serving.grpc.auth import fingerprint

TOKENS = "alice-secret:read+write,bob-secret:read+write"
SLOW = 0.001  # units per second
LONGEST_WAIT_MS = 1_000_000  # one unit at SLOW


def _rejections(rpc: str) -> float:
    return REGISTRY.get_sample_value("setlist_quota_rejections_total", {"rpc": rpc}) or 0.0


def _client(server, token: str) -> SetlistClient:
    return SetlistClient(f"127.0.0.1:{server.port}", token=token, timeout=5.0)


def test_an_over_quota_token_is_refused_with_a_retry_hint_while_another_is_answered(serve_fake):
    server, _, fake = serve_fake(auth_tokens=TOKENS, quota_rank_per_s=SLOW, quota_rank_burst=2)
    before = _rejections("Rank")
    with _client(server, "alice-secret") as alice, _client(server, "bob-secret") as bob:
        assert [len(alice.rank("user-1", k=3).items) for _ in range(2)] == [3, 3]  # the burst
        with pytest.raises(QuotaExceededError) as refused:
            alice.rank("user-1", k=3)
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 0.99 * LONGEST_WAIT_MS < refused.value.retry_after_ms <= LONGEST_WAIT_MS
        assert refused.value.message.startswith("quota for Rank exceeded for this token: 0.001 per s, burst 2;")
        assert refused.value.message.endswith(f"retry after {refused.value.retry_after_ms} ms")
        assert "secret" not in refused.value.message
        assert len(fake.queries) == 2  # the refused call never reached the ranking

        assert len(bob.rank("user-1", k=3).items) == 3  # bob's bucket is his own
        assert alice.track([new_event("user-1", "item-1", "play")]) == (1, ())  # and Track has no quota here
    assert _rejections("Rank") == before + 1


def test_the_retry_hint_is_trailing_metadata_beside_the_request_id(serve_fake):
    server, _, _ = serve_fake(auth_tokens=TOKENS, quota_rank_per_s=SLOW, quota_rank_burst=1)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = proto.ranking_pb2_grpc.RankingServiceStub(channel)
    metadata = [("authorization", "Bearer alice-secret"), ("x-request-id", "quota-1")]
    with channel:
        request = proto.ranking_pb2.RankRequest(user_id="user-1", k=1)
        stub.Rank(request, metadata=metadata, timeout=5.0)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Rank(request, metadata=metadata, timeout=5.0)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(refused.value.trailing_metadata())
    assert trailing["x-request-id"] == "quota-1"
    assert trailing["retry-after-ms"] == trailing["grpc-retry-pushback-ms"]
    assert 0.99 * LONGEST_WAIT_MS < int(trailing["retry-after-ms"]) <= LONGEST_WAIT_MS


def test_track_spends_its_quota_per_event(serve_fake):
    server, _, fake = serve_fake(auth_tokens=TOKENS, quota_track_per_s=SLOW, quota_track_burst=5)
    before = _rejections("Track")
    with _client(server, "alice-secret") as alice, _client(server, "bob-secret") as bob:
        assert alice.track([new_event("user-1", f"item-{i}", "play") for i in range(4)]) == (4, ())
        with pytest.raises(QuotaExceededError) as refused:  # one event left, two sent
            alice.track([new_event("user-1", f"item-{i}", "play") for i in range(2)])
        assert refused.value.retry_after_ms is not None and "events per s, burst 5" in refused.value.message
        assert len(fake.events) == 4  # the refused batch was never handed to Track
        assert alice.track([new_event("user-1", "item-9", "play")]) == (1, ())  # the one left still fits

        with pytest.raises(QuotaExceededError) as too_big:  # more than any burst: waiting cannot help
            bob.track([new_event("user-1", f"item-{i}", "play") for i in range(6)])
        assert too_big.value.retry_after_ms is None and "send at most 5 events per call" in too_big.value.message
        assert bob.track([new_event("user-1", f"item-{i}", "play") for i in range(5)]) == (5, ())
        assert len(bob.rank("user-1", k=1).items) == 1  # Rank has no quota here
    assert _rejections("Track") == before + 2


def test_the_quota_file_gives_one_token_its_own_rate(serve_fake, tmp_path):
    quota_file = tmp_path / "quotas.yaml"
    entry = {"fingerprint": fingerprint("alice-secret"), "rank_per_s": SLOW, "rank_burst": 3}
    quota_file.write_text(yaml.safe_dump({"tokens": {"alice-app": entry}}))
    server, _, _ = serve_fake(auth_tokens=TOKENS, quota_rank_per_s=SLOW, quota_rank_burst=1, quota_file=quota_file)
    with _client(server, "alice-secret") as alice, _client(server, "bob-secret") as bob:
        assert [len(alice.rank("user-1", k=1).items) for _ in range(3)] == [1, 1, 1]  # her own burst
        with pytest.raises(QuotaExceededError) as refused:
            alice.rank("user-1", k=1)
        assert refused.value.message.startswith("quota for Rank exceeded for token 'alice-app': 0.001 per s, burst 3;")
        bob.rank("user-1", k=1)  # the default: a burst of one
        with pytest.raises(QuotaExceededError) as default:
            bob.rank("user-1", k=1)
        assert "for this token: 0.001 per s, burst 1" in default.value.message


def _applied() -> float:
    return REGISTRY.get_sample_value("setlist_quota_file_reloads_total", {"outcome": "applied"}) or 0.0


def test_a_serving_server_applies_a_changed_quota_file_on_its_own(serve_fake, tmp_path):
    quota_file = tmp_path / "quotas.yaml"
    entry = {"fingerprint": fingerprint("alice-secret"), "rank_per_s": SLOW, "rank_burst": 1}
    quota_file.write_text(yaml.safe_dump({"tokens": {"alice-app": entry}}))
    server, _, _ = serve_fake(auth_tokens=TOKENS, quota_file=quota_file, quota_file_poll_s=0.01)
    with _client(server, "alice-secret") as alice:
        alice.rank("user-1", k=1)
        with pytest.raises(QuotaExceededError, match="burst 1;"):
            alice.rank("user-1", k=1)
        applied = _applied()
        replacement = tmp_path / "quotas.yaml.new"
        replacement.write_text(yaml.safe_dump({"tokens": {"alice-app": {**entry, "rank_per_s": 0}}}))
        replacement.replace(quota_file)
        # the watcher's own thread applies it; wait for its count (not a fixed time) within a bound
        deadline = threading.Event()
        for _ in range(1000):
            if _applied() > applied:
                break
            deadline.wait(0.01)
        assert _applied() == applied + 1
        assert [len(alice.rank("user-1", k=1).items) for _ in range(3)] == [1, 1, 1]  # her quota is lifted
        assert server.reload_quota_file() == "unchanged"


def test_without_auth_every_caller_shares_one_bucket(serve_fake):
    server, anonymous, _ = serve_fake(quota_rank_per_s=SLOW, quota_rank_burst=1)
    with _client(server, "anything") as other:  # no auth: the token is not even looked at
        anonymous.rank("user-1", k=1)
        with pytest.raises(QuotaExceededError) as refused:
            other.rank("user-1", k=1)
    assert "for this server (no auth: all callers share it)" in refused.value.message


def test_overload_is_not_mistaken_for_a_quota(serve_fake):
    """RESOURCE_EXHAUSTED from the concurrency limit carries no pushback: a plain ClientError."""
    server, client, fake = serve_fake(max_concurrency=1)
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(client.rank, "block", 1)
        assert fake.entered.acquire(timeout=10.0)
        with pytest.raises(ClientError) as refused:
            client.rank("user-1", k=1)
        fake.release.set()
        blocked.result(timeout=10.0)
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not isinstance(refused.value, QuotaExceededError)
