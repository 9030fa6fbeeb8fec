"""Traces across the wire: a caller's ``traceparent`` continued by a real gRPC server (the real
RankingService on faked stores), the access log line inside the call's span, and the OTLP/HTTP
exporter against a local collector stand-in."""

from __future__ import annotations

import http.server
import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from serving.grpc import proto
from serving.grpc.server import RunningServer, start_server
from serving.logs import ACCESS_LOG, JsonFormatter
from setlist import tracing
from setlist.settings import Settings
from tests.fakes.dataplane import Dataplane

TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),)
SERVICE = "setlist.v1.RankingService"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install(exporter, service_name="setlist-test")
    yield exporter
    tracing.shutdown()


@pytest.fixture
def running(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[tuple[RunningServer, Dataplane]]:
    plane = Dataplane.fresh(
        tmp_path, impressions_enabled=False, reload_interval_s=3600, host="127.0.0.1", port=0, metrics_port=0
    )
    with start_server(plane.build(), plane.settings, ready_poll_s=0.02) as server:
        yield server, plane


@pytest.fixture
def stub(running: tuple[RunningServer, Dataplane]) -> Iterator[object]:
    with grpc.insecure_channel(f"127.0.0.1:{running[0].port}") as channel:
        yield proto.ranking_pb2_grpc.RankingServiceStub(channel)


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    assert tracing.force_flush(10)
    return list(exporter.get_finished_spans())


def of_trace(spans: list[ReadableSpan], trace_id: str = TRACE_ID) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans if f"{s.context.trace_id:032x}" == trace_id}


def test_a_rank_with_a_traceparent_continues_the_callers_trace(stub, exporter: InMemorySpanExporter) -> None:
    m = proto.ranking_pb2
    reply = stub.Rank(m.RankRequest(user_id="user-0", k=5), metadata=TRACEPARENT, timeout=10)  # type: ignore[attr-defined]
    assert len(reply.items) == 5
    got = of_trace(finished(exporter))
    call = got[f"{SERVICE}/Rank"]
    assert f"{call.parent.span_id:016x}" == PARENT_ID and call.parent.is_remote  # type: ignore[union-attr]
    assert call.attributes["rpc.grpc.status"] == "OK"  # type: ignore[index]
    assert call.attributes["request_id"] == reply.request_id  # type: ignore[index]
    rank = got["rank"]
    assert rank.parent.span_id == call.context.span_id  # type: ignore[union-attr]
    stages = {n for n, s in got.items() if s.parent is not None and s.parent.span_id == rank.context.span_id}
    assert {"rank.user_rows", "rank.cache", "rank.candidates"} <= stages


def test_a_track_with_a_traceparent_continues_the_callers_trace(
    running: tuple[RunningServer, Dataplane], stub, exporter: InMemorySpanExporter
) -> None:
    m = proto.ranking_pb2
    ts = int(running[1].clock() * 1000)
    event = m.Event(event_id="e1", user_id="user-0", item_id="item-3", type="play", timestamp_ms=ts, session_id="s")
    reply = stub.Track(m.TrackRequest(events=[event]), metadata=TRACEPARENT, timeout=10)  # type: ignore[attr-defined]
    assert reply.accepted == 1
    got = of_trace(finished(exporter))
    assert {f"{SERVICE}/Track", "track", "track.journal", "track.session_push"} <= set(got)
    assert got["track"].parent.span_id == got[f"{SERVICE}/Track"].context.span_id  # type: ignore[union-attr]
    assert got["track.journal"].parent.span_id == got["track"].context.span_id  # type: ignore[union-attr]


def test_without_a_traceparent_each_call_starts_its_own_trace(stub, exporter: InMemorySpanExporter) -> None:
    m = proto.ranking_pb2
    for _ in range(2):
        stub.Rank(m.RankRequest(user_id="user-1", k=3), timeout=10)  # type: ignore[attr-defined]
    calls = [s for s in finished(exporter) if s.name == f"{SERVICE}/Rank"]
    assert len(calls) == 2 and all(s.parent is None for s in calls)
    assert calls[0].context.trace_id != calls[1].context.trace_id


def test_the_access_log_line_of_a_call_carries_its_trace_id(stub, exporter: InMemorySpanExporter) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger(ACCESS_LOG)
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)  # a refused call logs at INFO
    try:
        with pytest.raises(grpc.RpcError) as refused:
            stub.Rank(proto.ranking_pb2.RankRequest(user_id="user-0", k=0), metadata=TRACEPARENT, timeout=10)  # type: ignore[attr-defined]
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    call = of_trace(finished(exporter))[f"{SERVICE}/Rank"]
    assert line["code"] == "INVALID_ARGUMENT" and line["trace_id"] == TRACE_ID
    assert line["span_id"] == f"{call.context.span_id:016x}"


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector stand-in: keeps each POST's path and body, answers 200."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_otlp_exports_protobuf_to_the_collectors_traces_path() -> None:
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert tracing.configure(Settings(tracing="otlp", otlp_endpoint=endpoint), "setlist-test")
        with tracing.span("job.train", rows=10):
            pass
        assert tracing.force_flush(10)  # returns once the POST was answered
    finally:
        tracing.shutdown()
        httpd.shutdown()
        httpd.server_close()
    (path, body), *_ = received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    names = [s.name for scope in resource_spans.scope_spans for s in scope.spans]
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    assert names == ["job.train"] and service == "setlist-test"
