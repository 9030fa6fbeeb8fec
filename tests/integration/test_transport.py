"""The gRPC transport against a real server on a free port, with a fake Ranking behind it."""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from serving import deadline, metrics
from serving.client import ClientError, ServerBusyError, new_event
from serving.errors import InvalidArgument
from serving.grpc import proto
from serving.grpc.interceptors import Guard
from tests.fakes.transport import FakeRanking
from tests.servers import free_port

WAIT = 10.0  # upper bound for waits on events that should happen at once


def _stub(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return channel, proto.ranking_pb2_grpc.RankingServiceStub(channel)


def test_rank_roundtrip(serve_fake):
    _, client, fake = serve_fake()
    reply = client.rank(
        "user-1",
        k=5,
        context={"device": "mobile", "cache": "hit"},
        exclude=["item-1"],
        explain=True,
        request_id="req-123",
    )
    assert [i.item_id for i in reply.items] == ["item-0", "item-2", "item-3", "item-4"]
    assert [i.score for i in reply.items] == sorted((i.score for i in reply.items), reverse=True)
    assert reply.items[0].reasons == ("fake reason",)
    assert (reply.model_version.startswith("fake-1"), reply.cache_hit, reply.degraded, reply.arm) == (
        True,
        True,
        False,
        "A",
    )
    assert reply.request_id == "req-123" and reply.latency_ms > 0
    query = fake.queries[-1]
    assert (query.user_id, query.k, query.context, query.exclude_item_ids, query.explain, query.request_id) == (
        "user-1",
        5,
        {"device": "mobile", "cache": "hit"},
        ("item-1",),
        True,
        "req-123",
    )


def test_a_callers_slate_goes_to_the_service_and_its_unknown_ids_come_back(serve_fake):
    _, client, fake = serve_fake()
    reply = client.rank("user-1", k=2, candidates=["item-7", "new-1", "item-3", "item-9", "new-0"])
    assert fake.queries[-1].candidate_item_ids == ("item-7", "new-1", "item-3", "item-9", "new-0")
    assert [i.item_id for i in reply.items] == ["item-9", "item-3"]
    assert reply.unknown_item_ids == ("new-1", "new-0")
    plain = client.rank("user-1", k=2)
    assert fake.queries[-1].candidate_item_ids == () and plain.unknown_item_ids == ()


def test_request_id_generated_and_in_trailing_metadata(serve_fake):
    server, _, _ = serve_fake()
    channel, stub = _stub(server)
    with channel:
        request = proto.ranking_pb2.RankRequest(user_id="u", k=1)
        response, call = stub.Rank.with_call(request, metadata=[("x-request-id", "not a safe id " * 20)])
        trailing = dict(call.trailing_metadata())
        assert len(response.request_id) == 32 and trailing["x-request-id"] == response.request_id
        with pytest.raises(grpc.RpcError) as err:  # errors carry the id too, for support tickets
            stub.Rank(proto.ranking_pb2.RankRequest(user_id="u", k=0), metadata=[("x-request-id", "abc-1")])
        assert dict(err.value.trailing_metadata())["x-request-id"] == "abc-1"


def test_track_roundtrip_keeps_value_unset_apart_from_zero(serve_fake):
    _, client, fake = serve_fake()
    played = new_event("user-1", "item-1", "play", session_id="s1", value=0.0, context={"device": "tv"})
    skipped = new_event("user-1", "item-2", "skip")
    odd = new_event("user-1", "item-3", "teleport", value=0.5)
    accepted, rejected = client.track([played, skipped, odd])
    assert accepted == 2
    assert [r.event_id for r in rejected] == [odd.event_id] and "teleport" in rejected[0].reason
    assert rejected[0].index == 2  # its position in the request crosses the wire too
    assert fake.events == [played, skipped, odd]  # every field survives the wire, value None included


def test_invalid_argument_maps_to_status_with_message(serve_fake):
    _, client, _ = serve_fake()
    with pytest.raises(ClientError) as err:
        client.rank("user-1", k=0)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message == "k must be between 1 and 500, got 0"


def test_unexpected_error_is_internal_and_server_keeps_serving(serve_fake, caplog):
    _, client, _ = serve_fake()
    with pytest.raises(ClientError) as err:
        client.rank("crash", k=3)
    assert err.value.code == grpc.StatusCode.INTERNAL
    assert "boom" not in err.value.message and "request_id" in err.value.message
    tracebacks = [r for r in caplog.records if r.exc_info and r.name == "serving.grpc.interceptors"]
    assert len(tracebacks) == 1
    assert all("crash" not in r.getMessage() for r in caplog.records)  # user ids stay out of logs
    assert len(client.rank("user-1", k=3).items) == 3


def test_overload_answers_resource_exhausted_at_once(serve_fake):
    server, client, fake = serve_fake(max_concurrency=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        blocked = [pool.submit(client.rank, "block", 1) for _ in range(2)]
        for _ in blocked:
            assert fake.entered.acquire(timeout=WAIT)  # both slots are now taken
        with pytest.raises(ClientError) as err:
            client.rank("user-1", k=1)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 2" in err.value.message
        assert client.health() == "SERVING"  # probes are not subject to the limit
        fake.release.set()
        assert [len(f.result(timeout=WAIT).items) for f in blocked] == [1, 1]
    assert len(client.rank("user-1", k=1).items) == 1  # slots were given back


def test_track_calls_past_their_own_limit_are_refused_and_rank_keeps_its_room(serve_fake):
    server, client, fake = serve_fake(max_concurrency=4, track_max_concurrency=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        blocked = [pool.submit(client.track, [new_event("block", "i1", "play", value=1.0)]) for _ in range(2)]
        for _ in blocked:
            assert fake.entered.acquire(timeout=WAIT)  # Track's two slots are taken; two of four remain
        with pytest.raises(ClientError) as err:
            client.track([new_event("user-1", "i1", "play", value=1.0)])
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "Track is at its limit of 2" in err.value.message
        assert len(client.rank("user-1", k=2).items) == 2  # Rank is admitted beside them
        fake.release.set()
        assert [f.result(timeout=WAIT)[0] for f in blocked] == [1, 1]
    assert client.track([new_event("user-1", "i1", "play", value=1.0)])[0] == 1  # slots given back


def test_track_takes_half_the_admission_limit_by_default(serve_fake):
    server, client, fake = serve_fake(max_concurrency=2)
    with ThreadPoolExecutor(max_workers=1) as pool:
        blocked = pool.submit(client.track, [new_event("block", "i1", "play", value=1.0)])
        assert fake.entered.acquire(timeout=WAIT)
        with pytest.raises(ClientError) as err:
            client.track([new_event("user-1", "i1", "play", value=1.0)])
        assert "Track is at its limit of 1" in err.value.message
        assert len(client.rank("user-1", k=1).items) == 1
        fake.release.set()
        assert blocked.result(timeout=WAIT)[0] == 1


def _reflection_stream(channel: grpc.Channel, done: threading.Event):
    """An open reflection stream: one request answered, then the stream held open until ``done``."""

    def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        done.wait(WAIT)

    return reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(requests(), timeout=WAIT)


def test_idle_reflection_streams_are_bounded_and_leave_the_service_answering(serve_fake):
    server, client, _ = serve_fake(max_concurrency=2, reflection_max_streams=2)
    done = threading.Event()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        held = [_reflection_stream(channel, done) for _ in range(2)]
        for stream in held:  # each answered its first request and stays open
            assert next(stream).list_services_response.service
        refused = _reflection_stream(channel, done)
        with pytest.raises(grpc.RpcError) as err:
            next(refused)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 2 reflection streams" in err.value.details()
        assert len(client.rank("user-1", k=1).items) == 1 and client.health() == "SERVING"
        done.set()
        for stream in held:
            assert list(stream) == []  # the client closed its side: the stream ends, its slot comes back
        again = _reflection_stream(channel, threading.Event())
        assert next(again).list_services_response.service
        again.cancel()


def test_reflection_can_be_turned_away(serve_fake):
    server, _, _ = serve_fake(reflection_max_streams=0)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            next(_reflection_stream(channel, threading.Event()))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_health_follows_readiness(serve_fake):
    fake = FakeRanking(ready=False)
    _, client, _ = serve_fake(fake)
    assert client.health() == "NOT_SERVING"
    assert client.health("setlist.v1.RankingService") == "NOT_SERVING"
    assert client.health("no.such.Service") == "SERVICE_UNKNOWN"
    fake.is_ready.set()
    assert client.wait_ready(timeout=WAIT)  # the Watch stream pushes the change
    assert client.health() == client.health("setlist.v1.RankingService") == "SERVING"


def test_wait_ready_times_out_when_never_ready(serve_fake):
    _, client, _ = serve_fake(FakeRanking(ready=False))
    assert client.wait_ready(timeout=0.3) is False


def test_reflection_lists_services(serve_fake):
    server, _, _ = serve_fake()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="setlist.v1.RankingService"),
        ]
        listed, symbol = list(stub.ServerReflectionInfo(iter(requests), timeout=WAIT))
    names = {s.name for s in listed.list_services_response.service}
    assert {"setlist.v1.RankingService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    assert symbol.file_descriptor_response.file_descriptor_proto  # grpcurl can describe the API


def test_metrics_endpoint_serves_histograms(serve_fake):
    port = free_port()
    server, client, _ = serve_fake(metrics_port=port)
    assert server.metrics_port == port
    client.rank("user-1", k=2)
    with pytest.raises(ClientError):
        client.rank("user-1", k=0)
    metrics.set_model_version("setlist-ranker", "3")
    metrics.set_model_version("setlist-ranker", "4")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT).read().decode()
    assert 'setlist_rpc_latency_seconds_bucket{le="0.00025",rpc="Rank"}' in body
    assert 'setlist_rpc_errors_total{code="INVALID_ARGUMENT",rpc="Rank"}' in body
    for name in (
        "setlist_rpc_requests_total",
        "setlist_cache_hits_total",
        "setlist_cache_miss_latency_seconds",
        "setlist_candidates_bucket",
        "setlist_feature_freshness_seconds",
        "setlist_degraded_responses_total",
        "setlist_rpc_in_flight",
    ):
        assert name in body
    assert 'setlist_model_version_info{model="setlist-ranker",version="4"} 1.0' in body
    assert 'version="3"' not in body  # only the live version is exported


def test_graceful_stop_drains_in_flight_then_closes(serve_fake):
    server, client, fake = serve_fake()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, ThreadPoolExecutor(2) as pool:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=WAIT)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        in_flight = pool.submit(client.rank, "block", 2)
        assert fake.entered.acquire(timeout=WAIT)
        stopping = pool.submit(server.stop, 5.0)
        # the stop has begun once the server says NOT_SERVING (before it refuses calls and drains)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not fake.closed.is_set()
        fake.release.set()
        assert len(in_flight.result(timeout=WAIT).items) == 2
        stopping.result(timeout=WAIT)
    assert fake.log == ["rank finished", "closed"]  # close() only after the drain
    with pytest.raises(ClientError) as err:
        client.rank("user-1", k=1, timeout=1.0)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_stop_cancels_what_outlasts_the_grace_period(serve_fake):
    server, client, fake = serve_fake()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(client.rank, "block", 1)
        assert fake.entered.acquire(timeout=WAIT)
        server.stop(grace=0.2)
        with pytest.raises(ClientError) as err:
            in_flight.result(timeout=WAIT)
        assert err.value.code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
        assert fake.closed.is_set()
        fake.release.set()


class Aborted(Exception):
    """What the fake context's abort raises."""


class _Context:
    """Just enough of grpc.ServicerContext for the guard's own unit tests."""

    def __init__(self, remaining: float | None, active: bool = True) -> None:
        self.remaining, self.aborted, self.active = remaining, None, active

    def invocation_metadata(self):
        return ()

    def set_trailing_metadata(self, md):
        self.trailing = md

    def time_remaining(self):
        return self.remaining

    def is_active(self):
        return self.active

    def code(self):
        return self.aborted[0] if self.aborted else None

    def abort(self, code, details):
        self.aborted = (code, details)
        raise Aborted()  # grpc's abort raises too, so nothing after it runs


def test_guard_refuses_work_after_the_deadline():
    called = threading.Event()
    context = _Context(remaining=0.0)
    with pytest.raises(Aborted):
        Guard(4).run("Rank", lambda req, ctx: called.set(), object(), context)
    assert context.aborted[0] == grpc.StatusCode.DEADLINE_EXCEEDED and not called.is_set()


class _LeavingContext(_Context):
    """A call whose caller leaves while it runs: cancelled, or its deadline passing."""

    def __init__(self, remaining_after: float) -> None:
        super().__init__(remaining=1.0)
        self.remaining_after = remaining_after

    def leave(self) -> None:
        self.active, self.remaining = False, self.remaining_after


@pytest.mark.parametrize(("remaining_after", "code"), [(0.5, "CANCELLED"), (0.0, "DEADLINE_EXCEEDED")])
def test_a_call_its_caller_left_is_not_recorded_as_ok(remaining_after, code):
    context = _LeavingContext(remaining_after)
    before = {
        c: REGISTRY.get_sample_value("setlist_rpc_requests_total", {"rpc": "Track", "code": c}) or 0.0
        for c in ("OK", code)
    }
    Guard(4).run("Track", lambda req, ctx: ctx.leave(), object(), context)
    after = {
        c: REGISTRY.get_sample_value("setlist_rpc_requests_total", {"rpc": "Track", "code": c}) or 0.0
        for c in ("OK", code)
    }
    assert after[code] == before[code] + 1 and after["OK"] == before["OK"]


def test_guard_maps_every_serving_error_by_code():
    context = _Context(remaining=5.0)

    def behavior(req, ctx):
        raise InvalidArgument("user_id must not be empty")

    with pytest.raises(Aborted):
        Guard(4).run("Rank", behavior, object(), context)
    assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT, "user_id must not be empty")


def test_the_guard_hands_the_calls_deadline_to_the_data_plane_for_the_call_only():
    seen: list[float | None] = []
    Guard(4).run("Track", lambda req, ctx: seen.append(deadline.remaining()), object(), _Context(remaining=2.0))
    assert seen[0] is not None and 1.0 < seen[0] <= 2.0
    Guard(4).run("Track", lambda req, ctx: seen.append(deadline.remaining()), object(), _Context(remaining=None))
    assert seen[1] is None  # no deadline from the client: the journal's own bound applies
    assert deadline.remaining() is None  # nothing leaks out of the call


def _sample(name: str, rpc: str) -> float:
    return REGISTRY.get_sample_value(name, {"rpc": rpc}) or 0.0


def test_rank_calls_past_the_running_limit_wait_their_turn(serve_fake):
    _, client, fake = serve_fake(rank_max_running=1, rank_max_wait_ms=WAIT * 1000)
    waits = _sample("setlist_rpc_wait_seconds_count", "Rank")
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(client.rank, "block", 1)
        assert fake.entered.acquire(timeout=WAIT)
        waiting = pool.submit(client.rank, "user-1", 1)
        stop = time.monotonic() + WAIT
        while _sample("setlist_rpc_waiting", "Rank") < 1:  # in line, not running
            assert time.monotonic() < stop, "the second call never queued"
            time.sleep(0)
        assert client.track([new_event("user-1", "item-1", "play")]) == (1, ())  # Track has no turns
        assert len(fake.queries) == 1
        fake.release.set()
        assert len(waiting.result(timeout=WAIT).items) == len(running.result(timeout=WAIT).items) == 1
    assert _sample("setlist_rpc_wait_seconds_count", "Rank") == waits + 2


def test_a_rank_call_whose_turn_would_come_too_late_is_refused_as_busy(serve_fake):
    _, client, fake = serve_fake(rank_max_running=1, rank_max_wait_ms=0)
    shed = _sample("setlist_rpc_shed_total", "Rank")
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(client.rank, "block", 1)
        assert fake.entered.acquire(timeout=WAIT)
        with pytest.raises(ServerBusyError) as refused:
            client.rank("user-1", k=1)
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "1 Rank calls running" in refused.value.message
        assert refused.value.retry_after_ms is not None and refused.value.retry_after_ms >= 1
        assert client.health() == "SERVING"
        fake.release.set()
        assert len(running.result(timeout=WAIT).items) == 1
    assert _sample("setlist_rpc_shed_total", "Rank") == shed + 1
    assert len(client.rank("user-1", k=1).items) == 1  # the turn was given back
