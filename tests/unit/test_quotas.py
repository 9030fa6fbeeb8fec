"""Quotas per client token (serving.grpc.quotas) on an injected clock: the burst, the refill, buckets
kept apart per token, Track's cost per event, the refusal's message and retry hint, and where the
guard charges them (before a Rank is parsed, after a Track's events are counted and before it runs)."""

from __future__ import annotations

import hashlib
import threading
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from serving.breaker import Breaker
from serving.errors import QuotaExceeded
from serving.grpc.auth import TokenAuth, fingerprint
from serving.grpc.interceptors import REQUEST_ID_KEY, Guard
from serving.grpc.quotas import Quota, RedisTokenBucket, TokenBucket, quotas_from_settings
from tests.fakes.dataplane import FakeClock
from tests.fakes.transport import make_settings


def _refusal(quota: Quota, client: object, cost: int = 1) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as refused:
        quota.charge(client, cost)
    return refused.value


# --- the shared buckets' breaker --------------------------------------------------------------
class HungRedis:
    """A Redis client whose script call fails as a timed-out one does; counts the calls made."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = True

    def register_script(self, _: str) -> Any:
        def run(keys: list[str], args: list[Any]) -> list[str]:
            self.calls += 1
            if self.fail:
                raise TimeoutError("Timeout reading from socket")
            return ["0", "4"]

        return run


def _errors() -> float:
    return REGISTRY.get_sample_value("setlist_quota_backend_errors_total", {"rpc": "Rank"}) or 0.0


def test_a_failing_redis_is_asked_again_only_once_per_cool_down_and_every_call_goes_through():
    redis, clock = HungRedis(), FakeClock()
    breaker = Breaker(cooldown_s=1.0, clock=clock, failures_to_open=2)
    bucket = RedisTokenBucket(redis, "setlist:quota:Rank", 1, 5, clock=clock, rpc="Rank", breaker=breaker)
    before = _errors()
    assert [bucket.take("a") for _ in range(10)] == [0.0] * 10  # all through, none waited on Redis twice
    assert redis.calls == 2 and _errors() == before + 10
    clock.advance(1.0)
    bucket.take("a")  # the probe, which fails: open again
    bucket.take("a")
    assert redis.calls == 3
    redis.fail = False
    clock.advance(1.0)
    bucket.take("a")  # the probe answers: closed
    bucket.take("a")
    assert redis.calls == 5


def test_the_shared_quotas_hold_one_breaker_between_their_rpcs():
    settings = make_settings(quota_backend="redis", quota_rank_per_s=10, quota_track_per_s=10)
    quotas = quotas_from_settings(settings, None, shared=HungRedis())
    breakers = {id(q.breaker) for q in quotas.values()}
    assert set(quotas) == {"Rank", "Track"} and len(breakers) == 1 and None not in {q.breaker for q in quotas.values()}
    assert quotas_from_settings(make_settings(quota_rank_per_s=10), None)["Rank"].breaker is None


# --- the bucket -------------------------------------------------------------------------------
def test_a_new_bucket_allows_its_burst_at_once_then_refuses():
    bucket = TokenBucket(per_s=2.0, burst=5, clock=FakeClock())
    assert [bucket.take("a") for _ in range(5)] == [0.0] * 5
    assert bucket.take("a") == pytest.approx(0.5)  # one unit at 2 per s
    assert bucket.take("a", cost=3) == pytest.approx(1.5)


def test_it_refills_at_the_rate_and_never_beyond_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(per_s=2.0, burst=5, clock=clock)
    for _ in range(5):
        bucket.take("a")
    clock.advance(0.49)
    assert bucket.take("a") > 0  # not quite one unit yet
    clock.advance(0.01)
    assert bucket.take("a") == 0.0 and bucket.take("a") > 0
    clock.advance(3600)  # an idle hour refills to the burst, not to 7200 units
    assert bucket.available("a") == pytest.approx(5)
    assert [bucket.take("a") for _ in range(5)] == [0.0] * 5 and bucket.take("a") > 0


def test_a_refused_take_takes_nothing():
    clock = FakeClock()
    bucket = TokenBucket(per_s=1.0, burst=4, clock=clock)
    assert bucket.take("a", cost=3) == 0.0
    assert bucket.take("a", cost=2) == pytest.approx(1.0)
    assert bucket.available("a") == pytest.approx(1.0)
    assert bucket.take("a", cost=1) == 0.0  # the unit left is still there


def test_buckets_are_kept_apart_per_key():
    bucket = TokenBucket(per_s=1.0, burst=2, clock=FakeClock())
    assert bucket.take(1) == 0.0 and bucket.take(1) == 0.0 and bucket.take(1) > 0
    assert bucket.take(2) == 0.0 and bucket.take(2) == 0.0  # another token still has its whole burst
    assert bucket.take(None) == 0.0  # and so does the shared bucket of a server without auth


def test_a_cost_beyond_the_burst_can_never_be_paid():
    bucket = TokenBucket(per_s=100.0, burst=10, clock=FakeClock())
    assert bucket.take("a", cost=11) == float("inf")
    assert bucket.available("a") == pytest.approx(10)


def test_concurrent_takes_never_spend_more_than_the_burst():
    bucket = TokenBucket(per_s=1.0, burst=100, clock=FakeClock())  # the clock stands still
    granted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        ok = sum(bucket.take("a") == 0.0 for _ in range(50))
        with lock:
            granted.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100


@pytest.mark.parametrize(("per_s", "burst"), [(0.0, 5), (-1.0, 5), (1.0, 0)])
def test_a_bucket_needs_a_rate_and_room_for_one_unit(per_s, burst):
    with pytest.raises(ValueError):
        TokenBucket(per_s, burst)


# --- the quota of one RPC ---------------------------------------------------------------------
def test_the_refusal_names_the_limits_and_when_to_retry():
    clock = FakeClock()
    quota = Quota("Rank", per_s=5, burst=2, clock=clock)
    quota.charge(1)
    quota.charge(1)
    refused = _refusal(quota, 1)
    assert str(refused) == "quota for Rank exceeded for this token: 5 per s, burst 2; retry after 200 ms"
    assert refused.code == "RESOURCE_EXHAUSTED" and refused.retry_after_ms == 200
    assert refused.trailing_metadata() == (("retry-after-ms", "200"), ("grpc-retry-pushback-ms", "200"))
    clock.advance(0.15)
    assert _refusal(quota, 1).retry_after_ms == 50  # the hint shrinks as the bucket refills
    clock.advance(0.05)
    quota.charge(1)  # and the hint was right


def test_the_retry_hint_rounds_up_to_whole_milliseconds():
    quota = Quota("Rank", per_s=3, burst=1, clock=FakeClock())
    quota.charge("a")
    assert _refusal(quota, "a").retry_after_ms == 334  # 333.3 ms: retrying at 333 would be too early


def test_without_auth_the_message_says_the_bucket_is_shared():
    quota = Quota("Rank", per_s=1, burst=1, per_token=False, clock=FakeClock())
    quota.charge(None)
    assert "for this server (no auth: all callers share it)" in str(_refusal(quota, None))


def test_track_is_charged_per_event():
    quotas = quotas_from_settings(make_settings(quota_track_per_s=10, quota_track_burst=20), clock=FakeClock())
    track = quotas["Track"]
    assert track.cost is not None and "Rank" not in quotas

    def batch(n: int) -> Any:
        return SimpleNamespace(events=[object()] * n)

    assert (track.cost(batch(15)), track.cost(batch(1)), track.cost(batch(0))) == (15, 1, 1)  # empty: one
    track.charge("a", track.cost(batch(15)))
    refused = _refusal(track, "a", track.cost(batch(6)))  # 5 events left: 6 do not fit
    assert refused.retry_after_ms == 100 and "10 events per s, burst 20" in str(refused)
    track.charge("a", track.cost(batch(5)))  # the 5 left do
    track.charge("b", track.cost(batch(20)))  # another token's whole burst in one batch


def test_a_track_batch_beyond_the_burst_is_told_to_send_less_not_to_wait():
    track = quotas_from_settings(make_settings(quota_track_per_s=10, quota_track_burst=20), clock=FakeClock())["Track"]
    refused = _refusal(track, "a", 21)
    assert refused.retry_after_ms is None
    assert refused.trailing_metadata() == (("grpc-retry-pushback-ms", "-1"),)  # gRPC's "do not retry"
    assert "send at most 20 events per call" in str(refused)
    track.charge("a", 20)  # nothing was taken by the refusal


def test_settings_leave_quotas_off_by_default_and_fill_in_the_burst():
    assert quotas_from_settings(make_settings()) == {}
    assert quotas_from_settings(make_settings(quota_rank_per_s=0, quota_track_per_s=0, quota_rank_burst=9)) == {}
    quotas = quotas_from_settings(make_settings(quota_rank_per_s=2.5, quota_track_per_s=100, quota_track_burst=0))
    assert (quotas["Rank"].burst, quotas["Track"].burst) == (3, 100)  # unset or 0: one second's worth
    assert quotas["Rank"].cost is None  # Rank: per call, charged before parsing
    with pytest.raises(ValueError, match="quota_rank_per_s"):  # the settings object's bound, before any server
        make_settings(quota_rank_per_s=-1)


def test_auth_names_the_caller_by_its_tokens_fingerprint_never_by_its_secret():
    auth = TokenAuth("first:read,second:read+write")
    first = auth.check("Rank", [("authorization", "Bearer first")])
    second = auth.check("Track", [("authorization", "Bearer second")])
    assert first == fingerprint("first") == hashlib.sha256(b"first").hexdigest()[:16]
    assert second == fingerprint(b"second") != first
    assert [fp for fp, _ in auth.fingerprints()] == [first, second]
    # the list's order does not change who a caller is (replicas may list tokens differently)
    assert TokenAuth("second:read+write,first:read").check("Rank", [("authorization", "Bearer first")]) == first


# --- where the guard charges ------------------------------------------------------------------
class Aborted(Exception):
    pass


class _Context:
    """Just enough of grpc.ServicerContext for the guard."""

    def __init__(self, token: str | None = None) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.aborted: tuple[grpc.StatusCode, str] | None = None
        self.trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> Any:
        return self.metadata

    def set_trailing_metadata(self, md: Any) -> None:
        self.trailing = tuple(md)

    def time_remaining(self) -> float:
        return 5.0

    def is_active(self) -> bool:
        return True

    def code(self) -> grpc.StatusCode | None:
        return self.aborted[0] if self.aborted else None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted()


def _rejections(rpc: str) -> float:
    return REGISTRY.get_sample_value("setlist_quota_rejections_total", {"rpc": rpc}) or 0.0


def test_the_guard_refuses_an_over_quota_rank_before_parsing_it():
    settings = make_settings(quota_rank_per_s=1, quota_rank_burst=1)
    auth = TokenAuth("alice:read,bob:read")
    guard = Guard(4, auth, quotas=quotas_from_settings(settings, auth, clock=FakeClock()))
    parsed: list[bytes] = []
    ranked: list[object] = []

    def parse(raw: bytes) -> object:
        parsed.append(raw)
        return raw

    def rank(request: object, context: object) -> str:
        ranked.append(request)
        return "ranked"

    assert guard.run("Rank", rank, b"1", _Context("alice"), parse) == "ranked"
    before = _rejections("Rank")
    context = _Context("alice")
    with pytest.raises(Aborted):
        guard.run("Rank", rank, b"2", context, parse)
    assert context.aborted is not None and context.aborted[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert context.aborted[1].endswith("retry after 1000 ms")
    trailing = dict(context.trailing)
    assert trailing["retry-after-ms"] == "1000" and trailing["grpc-retry-pushback-ms"] == "1000"
    assert REQUEST_ID_KEY in trailing  # the request id still goes with the error
    assert parsed == [b"1"] and ranked == [b"1"]  # the refused call was never parsed nor ranked
    assert _rejections("Rank") == before + 1
    assert guard.run("Rank", rank, b"3", _Context("bob"), parse) == "ranked"  # bob has his own bucket


def test_the_guard_charges_track_per_event_before_the_handler_runs():
    settings = make_settings(quota_track_per_s=1, quota_track_burst=3)
    guard = Guard(4, quotas=quotas_from_settings(settings, clock=FakeClock()))  # no auth
    tracked: list[int] = []

    def parse(raw: bytes) -> Any:
        return SimpleNamespace(events=[object()] * int(raw))

    def track(request: Any, context: object) -> str:
        tracked.append(len(request.events))
        return "tracked"

    assert guard.run("Track", track, b"2", _Context(), parse) == "tracked"
    before = _rejections("Track")
    context = _Context()
    with pytest.raises(Aborted):
        guard.run("Track", track, b"2", context, parse)  # 1 event left, 2 sent
    assert context.aborted is not None and context.aborted[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(context.trailing)["retry-after-ms"] == "1000"
    assert tracked == [2] and _rejections("Track") == before + 1
    assert guard.run("Track", track, b"1", _Context(), parse) == "tracked"  # the one left still fits
    assert guard.run("Rank", lambda r, c: "ranked", b"", _Context()) == "ranked"  # Rank has no quota here
