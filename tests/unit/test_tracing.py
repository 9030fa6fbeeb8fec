"""setlist.tracing: the spans a Rank and a Track leave, trace ids in the JSON logs, and nothing at all
when tracing is off. Spans go to the SDK's InMemorySpanExporter behind the same BatchSpanProcessor a
server uses; ``force_flush`` is the synchronisation."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from serving.bootstrap import Server
from serving.logs import JsonFormatter
from serving.types import RankQuery, TrackEvent
from setlist import tracing
from setlist.settings import Settings
from tests.fakes.dataplane import Dataplane

USER = "user-0"  # a user the fake models know: the personalized (model) path
RANK_STAGES = {"rank.user_rows", "rank.cache", "rank.candidates", "rank.features", "rank.score", "rank.cache_put"}

Finished = Callable[[], list[ReadableSpan]]


@pytest.fixture(autouse=True)
def _tracing_off_afterwards() -> Iterator[None]:
    yield
    tracing.shutdown()


@pytest.fixture
def spans() -> Finished:
    """Tracing on into memory; call the fixture's value for the spans finished so far."""
    exporter = InMemorySpanExporter()
    tracing.install(exporter, service_name="setlist-test")

    def finished() -> list[ReadableSpan]:
        assert tracing.force_flush(10)
        return list(exporter.get_finished_spans())

    return finished


@pytest.fixture
def plane(tmp_path: Path) -> Dataplane:
    return Dataplane.fresh(tmp_path, impressions_enabled=False, reload_interval_s=3600, cache_ttl_s=300)


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    out = {s.name: s for s in spans}
    assert len(out) == len(spans), f"a span name appears twice: {[s.name for s in spans]}"
    return out


def parent_of(s: ReadableSpan) -> int | None:
    return s.parent.span_id if s.parent is not None else None


def play(plane: Dataplane, event_id: str, user: str = USER) -> TrackEvent:
    return TrackEvent(event_id, user, "item-3", "play", int(plane.clock() * 1000), "s1")


def test_a_rank_is_one_trace_a_root_span_with_its_stages_as_children(
    plane: Dataplane, server: Server, spans: Finished
) -> None:
    result = server.rank(RankQuery(USER, 5, request_id="req-1"))
    assert result.arm != "popularity"  # the model path, so every stage ran
    got = by_name(spans())
    assert set(got) == {"rank", *RANK_STAGES}
    root = got["rank"]
    assert root.parent is None
    assert {s.context.trace_id for s in got.values()} == {root.context.trace_id}
    assert {parent_of(got[n]) for n in RANK_STAGES} == {root.context.span_id}
    attrs = dict(root.attributes or {})
    assert attrs["k"] == 5 and attrs["request_id"] == "req-1" and attrs["cache_hit"] is False
    assert attrs["variant"] == "champion" and attrs["served"] == "model" and attrs["model"] == result.model_version
    assert got["rank.candidates"].attributes["candidates"] > 0  # type: ignore[index]
    # never a user id, raw or pseudonymized
    pseudonym = server.service.pseudonym(USER)
    values = {str(v) for s in got.values() for v in (s.attributes or {}).values()}
    assert not any(USER in v or pseudonym in v for v in values)


def test_a_cache_hit_is_a_rank_span_without_the_ranking_stages(server: Server, spans: Finished) -> None:
    server.rank(RankQuery(USER, 5))
    before = len(spans())
    assert server.rank(RankQuery(USER, 5)).cache_hit
    got = by_name(spans()[before:])
    assert set(got) == {"rank", "rank.user_rows", "rank.cache"}
    assert got["rank"].attributes["cache_hit"] is True  # type: ignore[index]


def test_a_track_has_its_journal_append_and_session_push_as_children(
    plane: Dataplane, server: Server, spans: Finished
) -> None:
    assert server.track([play(plane, "e1"), play(plane, "e2")]).accepted == 2
    got = by_name(spans())
    assert set(got) == {"track", "track.journal", "track.session_push"}
    root = got["track"]
    assert root.parent is None
    assert parent_of(got["track.journal"]) == parent_of(got["track.session_push"]) == root.context.span_id
    assert {s.context.trace_id for s in got.values()} == {root.context.trace_id}
    assert dict(root.attributes or {}) == {"events": 2, "accepted": 2, "rejected": 0, "duplicates": 0}
    assert got["track.journal"].attributes == {"events": 2}


def test_a_failed_span_records_the_exception_class_but_not_its_message(spans: Finished) -> None:
    with pytest.raises(ValueError), tracing.span("job.step"):
        raise ValueError("a message that may quote user-0's input")
    (failed,) = spans()
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description == "ValueError"
    assert failed.attributes == {"error.type": "ValueError"}
    assert not failed.events  # no exception event, so no message or stack


def test_off_span_is_the_shared_no_op_and_creates_nothing(plane: Dataplane, server: Server) -> None:
    exporter = InMemorySpanExporter()
    tracing.install(exporter)
    tracing.shutdown()
    assert not tracing.enabled()
    assert tracing.span("rank") is tracing.NOOP and tracing.span("x", k=1) is tracing.NOOP
    with tracing.span("rank") as s:
        assert s is tracing.NOOP and not s.is_recording()
        assert not trace.get_current_span().get_span_context().is_valid  # nothing became current
        assert tracing.current_ids() is None
    assert tracing.rpc_span("svc/Rank", [("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]) is tracing.NOOP
    assert tracing.outgoing_metadata() == []
    server.rank(RankQuery(USER, 5))
    assert server.track([play(plane, "e1")]).accepted == 1
    assert tracing.force_flush()
    assert exporter.get_finished_spans() == ()


def test_configure_off_turns_tracing_off_and_console_writes_one_json_line_per_span(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert tracing.configure(Settings(tracing="console"), "setlist-test")
    with tracing.span("job.materialize", rows=3):
        with tracing.span("job.materialize.publish"):
            pass
    assert tracing.force_flush()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["name"] for line in lines] == ["job.materialize.publish", "job.materialize"]
    assert lines[1]["attributes"] == {"rows": 3}
    assert lines[1]["resource"]["attributes"]["service.name"] == "setlist-test"
    assert not tracing.configure(Settings(tracing="off"), "setlist-test")
    assert tracing.span("x") is tracing.NOOP


def test_a_bad_sample_ratio_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="trace_sample_ratio"):  # the settings object's bounds
        Settings(tracing="console", trace_sample_ratio=1.5)
    with pytest.raises(ValueError, match="SETLIST_TRACE_SAMPLE_RATIO"):
        tracing.install(InMemorySpanExporter(), sample_ratio=1.5)
    assert not tracing.enabled()


def test_sampling_follows_the_callers_decision_and_the_ratio_at_the_root() -> None:
    exporter = InMemorySpanExporter()
    tracing.install(exporter, sample_ratio=0.0)
    with tracing.span("rank") as root:
        assert not root.is_recording()
        assert tracing.current_ids() is not None  # the ids exist even when the trace is not kept
        assert tracing.span("rank.score") is tracing.NOOP  # its children cost nothing
    sampled = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    call = tracing.rpc_span("setlist.v1.RankingService/Rank", [("traceparent", sampled)])
    with tracing.span("rank") as child:
        assert child.is_recording()  # the caller kept its trace: so do we
    call.finish("OK")
    assert tracing.force_flush()
    assert {s.name for s in exporter.get_finished_spans()} == {"rank", "setlist.v1.RankingService/Rank"}


def test_rpc_span_continues_a_traceparent_and_is_current_until_finished(spans: Finished) -> None:
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    metadata = [("x-request-id", "r1"), ("traceparent", f"00-{trace_id}-{parent}-01")]
    call = tracing.rpc_span("setlist.v1.RankingService/Rank", metadata, request_id="r1")
    with tracing.span("rank"):
        pass
    ids = tracing.current_ids()
    call.finish("INTERNAL")
    call.finish("INTERNAL")  # idempotent
    assert tracing.current_ids() is None  # detached
    got = by_name(spans())
    server_span = got["setlist.v1.RankingService/Rank"]
    assert ids == (trace_id, f"{server_span.context.span_id:016x}")
    assert f"{server_span.context.trace_id:032x}" == trace_id and f"{parent_of(server_span):016x}" == parent
    assert server_span.kind is trace.SpanKind.SERVER and server_span.status.status_code is StatusCode.ERROR
    assert dict(server_span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "setlist.v1.RankingService",
        "rpc.method": "Rank",
        "request_id": "r1",
        "rpc.grpc.status": "INTERNAL",
    }
    assert parent_of(got["rank"]) == server_span.context.span_id
    assert tracing.outgoing_metadata() == []  # nothing current any more


def test_a_clients_mistake_leaves_the_server_span_status_unset(spans: Finished) -> None:
    tracing.rpc_span("setlist.v1.RankingService/Rank", None).finish("INVALID_ARGUMENT")
    (s,) = spans()
    assert s.status.status_code is StatusCode.UNSET and s.attributes["rpc.grpc.status"] == "INVALID_ARGUMENT"  # type: ignore[index]


def _json_line(message: str) -> dict:
    record = logging.LogRecord("setlist.serving", logging.INFO, __file__, 1, message, None, None)
    return json.loads(JsonFormatter().format(record))


def test_json_log_lines_carry_the_current_spans_ids(spans: Finished) -> None:
    assert "trace_id" not in _json_line("outside any span")
    with tracing.span("rank") as s:
        line = _json_line("inside")
        ctx = s.get_span_context()  # type: ignore[attr-defined]  # the OpenTelemetry span, when on
    assert line["trace_id"] == f"{ctx.trace_id:032x}" and line["span_id"] == f"{ctx.span_id:016x}"


def test_json_log_lines_have_no_trace_fields_when_tracing_is_off() -> None:
    with tracing.span("rank"):
        line = _json_line("inside a span that does not exist")
    assert "trace_id" not in line and "span_id" not in line


def test_outgoing_metadata_is_the_current_span_as_a_traceparent(spans: Finished) -> None:
    with tracing.span("client.call") as s:
        (key, value), *_ = tracing.outgoing_metadata()
        ctx = s.get_span_context()  # type: ignore[attr-defined]
    version, trace_id, span_id, flags = value.split("-")
    assert key == "traceparent" and (version, trace_id, span_id) == (
        "00",
        f"{ctx.trace_id:032x}",
        f"{ctx.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        (None, None),
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/ingest/v1/traces", "https://otel.example/ingest/v1/traces"),
    ],
)
def test_the_otlp_endpoint_is_a_base_url_or_the_full_traces_url(endpoint: str | None, url: str | None) -> None:
    assert tracing.traces_url(endpoint) == url


def test_console_exporter_writes_where_it_is_told() -> None:
    out = io.StringIO()
    tracing.install(tracing.console_exporter(out))
    with tracing.span("a"):
        pass
    assert tracing.force_flush()
    assert json.loads(out.getvalue())["name"] == "a"
