"""OpenTelemetry traces for any Setlist process: the server's Rank and Track, and the batch jobs.

``configure(settings, service_name)`` sets the tracer up from ``SETLIST_TRACING``:

- ``off`` (the default): no tracer at all. :func:`span` returns one shared no-op object after a single
  check of a module global, so Rank's path costs a function call per stage and creates nothing;
- ``console``: spans as JSON, one object per line, on stderr (beside the JSON logs);
- ``otlp``: OTLP over HTTP to ``SETLIST_OTLP_ENDPOINT`` (a collector's base URL such as
  ``http://collector:4318`` gets ``/v1/traces`` appended), else wherever the standard
  ``OTEL_EXPORTER_OTLP_*`` variables say.

Either exporter runs behind a ``BatchSpanProcessor``: a request only queues its finished spans, a
background thread exports them, and a full queue drops spans rather than slow a request down. Traces
are sampled by ``SETLIST_TRACE_SAMPLE_RATIO`` at their root and follow their parent otherwise
(``ParentBased(TraceIdRatioBased)``), so a kept trace keeps all its spans and a caller's decision,
sent in a ``traceparent``, is honoured.

Attributes name counts, versions, arms and outcomes, never a user id (raw or pseudonymized) or a
token, as in the logs (serving.logs). A failed span records the exception's class, not its message
(messages may quote input).

The tracer provider is this module's own, not OpenTelemetry's global one, so that a process (or a
test, through :func:`install`) can configure it again.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from contextvars import Token
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from setlist.settings import Settings

#: the metadata keys (W3C trace context) a caller's trace continues through
PROPAGATED = ("traceparent", "tracestate")
#: gRPC codes that are the server's fault (OpenTelemetry's convention for server spans); a client's
#: mistake (INVALID_ARGUMENT, NOT_FOUND…) leaves the server span's status unset
SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})


class Span(Protocol):
    """What a ``with span(...) as s`` body may call: the OpenTelemetry span, or the no-op one."""

    def set_attribute(self, key: str, value: Any) -> None: ...

    def is_recording(self) -> bool: ...


class _Noop:
    """The one object :func:`span` and friends return when tracing is off: enters, exits and
    accepts attributes, doing nothing."""

    __slots__ = ()

    def __enter__(self) -> _Noop:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def is_recording(self) -> bool:
        return False

    def finish(self, code: str) -> None:
        return None


NOOP = _Noop()

# The tracer is the flag: None means off, and span() looks at nothing else first.
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_lock = threading.Lock()
_atexit_registered = False
_propagator = TraceContextTextMapPropagator()


def enabled() -> bool:
    return _tracer is not None


def span(name: str, **attributes: Any) -> AbstractContextManager[Span]:
    """``with span("rank.score", rows=500) as s:`` a child of whatever span is current (a root when
    none is). Off, this is the shared no-op object; attributes that are None are left out."""
    tracer = _tracer
    if tracer is None:
        return NOOP
    parent = trace.get_current_span()
    if not parent.is_recording() and parent.get_span_context().is_valid:
        # inside a trace the sampler left out: the SDK would make a non-recording child at a few
        # microseconds each; the no-op object is the same outcome for nothing (the parent's ids stay
        # current for the logs)
        return NOOP
    return _Recording(tracer, name, attributes)


class _Recording:
    """One span, current between ``__enter__`` and ``__exit__``: ``start_span`` and a context
    attach, without the SDK's two generator-based context managers around them."""

    __slots__ = ("_attributes", "_name", "_span", "_token", "_tracer")

    def __init__(self, tracer: trace.Tracer, name: str, attributes: Mapping[str, Any]) -> None:
        self._tracer, self._name, self._attributes = tracer, name, attributes

    def __enter__(self) -> trace.Span:
        attrs = {k: v for k, v in self._attributes.items() if v is not None} if self._attributes else None
        self._span = current = self._tracer.start_span(self._name, attributes=attrs)
        self._token = otel_context.attach(trace.set_span_in_context(current))
        return current

    def __exit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        if kind is not None:
            _failed(self._span, kind.__name__)
        otel_context.detach(self._token)
        self._span.end()


def _failed(current: trace.Span, kind: str) -> None:
    if current.is_recording():
        current.set_attribute("error.type", kind)
        current.set_status(Status(StatusCode.ERROR, kind))


def set_attributes(target: Span, **attributes: Any) -> None:
    """Attributes known only once the work is done (a count, an outcome); nothing when ``target``
    does not record (tracing off, or a trace the sampler left out). None values are left out."""
    if target.is_recording():
        for key, value in attributes.items():
            if value is not None:
                target.set_attribute(key, value)


class RpcSpan:
    """A server span around one RPC, current from :func:`rpc_span` until :meth:`finish`, so that
    everything logged in between (the access log line too) carries its ids."""

    __slots__ = ("_span", "_token")

    def __init__(self, current: trace.Span, token: Token[Context]) -> None:
        self._span: trace.Span = current
        self._token: Token[Context] | None = token

    def set_attribute(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def is_recording(self) -> bool:
        return self._span.is_recording()

    def finish(self, code: str) -> None:
        """End the span with the call's gRPC status name (``OK``, ``INTERNAL``…); idempotent."""
        if self._token is None:
            return
        if self._span.is_recording():
            self._span.set_attribute("rpc.grpc.status", code)
            if code in SERVER_ERRORS:
                self._span.set_status(Status(StatusCode.ERROR, code))
        otel_context.detach(self._token)
        self._token = None
        self._span.end()


def rpc_span(name: str, metadata: Iterable[tuple[str, Any]] | None, **attributes: Any) -> RpcSpan | _Noop:
    """Start a SERVER span for an incoming gRPC call named ``package.Service/Method`` and make it
    current. It continues the caller's trace when ``metadata`` (``(key, value)`` pairs) carries a W3C
    ``traceparent``, else it starts one. End it with ``.finish(code)`` on the same thread. Off: the
    no-op object."""
    tracer = _tracer
    if tracer is None:
        return NOOP
    carrier = {k: v for k, v in metadata or () if k in PROPAGATED and isinstance(v, str)}
    parent = _propagator.extract(carrier) if carrier else None
    service, _, method = name.rpartition("/")
    attrs = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
    attrs.update((k, v) for k, v in attributes.items() if v is not None)
    current = tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER, attributes=attrs)
    token = otel_context.attach(trace.set_span_in_context(current, parent))
    return RpcSpan(current, token)


def outgoing_metadata() -> list[tuple[str, str]]:
    """The ``traceparent`` (and ``tracestate``) of the current span, as gRPC metadata for a call
    that should continue this trace; empty when tracing is off or no span is current."""
    if _tracer is None:
        return []
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return sorted(carrier.items())


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the span current on this thread, for log lines; None when
    tracing is off or no span is current."""
    if _tracer is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)


# --- set-up -----------------------------------------------------------------------------------------
def configure(settings: Settings, service_name: str) -> bool:
    """Set tracing up as ``settings`` say (``tracing``, ``otlp_endpoint``, ``trace_sample_ratio``);
    returns whether it is on. Call it once per process, after any fork (a worker process calls it
    itself: the export thread does not survive a fork). ``off`` leaves (or turns) tracing off."""
    if settings.tracing == "off":
        shutdown()
        return False
    exporter: SpanExporter
    if settings.tracing == "console":
        exporter = console_exporter(sys.stderr)
    elif settings.tracing == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint))
    else:
        raise ValueError(f"SETLIST_TRACING must be off, console or otlp, got {settings.tracing!r}")
    install(exporter, service_name=service_name, sample_ratio=settings.trace_sample_ratio)
    return True


def console_exporter(out: Any) -> SpanExporter:
    """The SDK's console exporter, one compact JSON object per line (as the logs are) on ``out``."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    def line(s: ReadableSpan) -> str:
        return s.to_json(indent=None) + "\n"

    return ConsoleSpanExporter(out=out, formatter=line)


def traces_url(endpoint: str | None) -> str | None:
    """A collector's base URL gets OTLP/HTTP's traces path; a URL with a path is used as it is;
    None leaves the choice to the OTEL_EXPORTER_OTLP_* variables (default http://localhost:4318)."""
    if not endpoint:
        return None
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def install(
    exporter: SpanExporter,
    *,
    service_name: str = "setlist",
    sample_ratio: float = 1.0,
    batch: bool = True,
) -> TracerProvider:
    """Trace into ``exporter`` from now on, replacing any earlier set-up (which is flushed and shut
    down). The hook tests use with the SDK's InMemorySpanExporter; ``configure`` calls it too.
    ``batch=False`` exports each span as it ends (tests only; a server always batches)."""
    global _tracer, _provider, _atexit_registered
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if not 0.0 <= sample_ratio <= 1.0:
        raise ValueError(f"SETLIST_TRACE_SAMPLE_RATIO must be between 0 and 1, got {sample_ratio}")
    # OTEL_SERVICE_NAME, when set, names the service (the Resource reads it); else ours does
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        resource=Resource.create(attributes),
        shutdown_on_exit=False,  # shutdown() below runs at exit instead, once, whichever provider is current
    )
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    shutdown()
    with _lock:
        _provider = provider
        _tracer = provider.get_tracer("setlist")
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
    return provider


def force_flush(timeout_s: float = 30.0) -> bool:
    """Export every finished span now (True when all went out in time); True when off."""
    provider = _provider
    return True if provider is None else provider.force_flush(int(timeout_s * 1000))


def shutdown() -> None:
    """Turn tracing off: new spans are no-ops from now on; the finished ones are exported first."""
    global _tracer, _provider
    with _lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()  # flushes the batch processor, then closes the exporter
