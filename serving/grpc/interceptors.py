"""The one guard around every RankingService call: request id, deadline, auth, quotas, load control,
error mapping, metrics and the access log.

This is the single place where serving.errors become gRPC status codes (``ServingError.code`` names
the status). Anything else a handler raises becomes INTERNAL with a short message; its traceback is
logged here, once, and the process keeps serving. Health and reflection calls pass through untouched:
a probe must be answered even when the service is saturated or the caller has no token. Reflection is
bounded all the same: each of its streams holds a worker thread for as long as the client keeps it open.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from serving import metrics
from serving.deadline import call_deadline
from serving.errors import DeadlineExceeded, InvalidArgument, Overloaded, QuotaExceeded, ServingError
from serving.grpc.auth import TokenAuth
from serving.grpc.proto import SERVICE_NAME
from serving.grpc.quotas import Quota
from serving.grpc.turns import Shed, Turns
from serving.logs import ACCESS_LOG
from setlist import tracing

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOG)

REQUEST_ID_KEY = "x-request-id"
REFLECTION_PREFIX = "/grpc.reflection."
SLOW_CALL_S = 0.010
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STATUS = {code.name: code for code in grpc.StatusCode}

# The servicer reads the id of the call it is handling from here: the guard and the handler run
# synchronously in the same worker thread, so a ContextVar is exact and needs no plumbing.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

Behavior = Callable[[Any, grpc.ServicerContext], Any]


def status_for(error: ServingError) -> grpc.StatusCode:
    """The mapping: a ServingError's ``code`` names its status; an unknown name is INTERNAL."""
    return _STATUS.get(error.code, grpc.StatusCode.INTERNAL)


def request_id_from(metadata: Any) -> str:
    """The caller's x-request-id when it is a sane token (it ends up in logs), else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _SAFE_REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


class Guard(grpc.ServerInterceptor):
    def __init__(
        self,
        max_concurrency: int,
        auth: TokenAuth | None = None,
        service: str = SERVICE_NAME,
        quotas: Mapping[str, Quota] | None = None,
        turns: Mapping[str, Turns] | None = None,
        limits: Mapping[str, int] | None = None,
        reflection_streams: int = 4,
    ) -> None:
        """``limits``: an RPC's own cap on its admitted calls, within ``max_concurrency`` (a flood of
        Track calls then leaves room for Rank); ``reflection_streams``: reflection streams open at once."""
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._limit = max_concurrency
        # Non-blocking acquire: a request over the limit is refused at once instead of queueing,
        # so an overloaded server sheds load with RESOURCE_EXHAUSTED rather than growing latency.
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._rpc_slots = {
            rpc: (min(n, max_concurrency), threading.BoundedSemaphore(min(n, max_concurrency)))
            for rpc, n in (limits or {}).items()
        }
        self._reflection_limit = reflection_streams
        self._reflection_slots = threading.BoundedSemaphore(max(1, reflection_streams))
        self._auth = auth
        self._quotas = dict(quotas or {})  # by RPC name; an RPC without one is not limited
        # by RPC name, with its gauge of waiting calls and histogram of waits (label lookups, once);
        # an RPC without turns runs every admitted call at once
        self._turns = {
            rpc: (t, metrics.RPC_WAITING.labels(rpc), metrics.RPC_WAIT.labels(rpc)) for rpc, t in (turns or {}).items()
        }
        self._prefix = f"/{service}/"
        self._active = 0  # calls inside run(), admitted or not; for draining
        self._idle = threading.Condition()

    @property
    def quotas(self) -> Mapping[str, Quota]:
        """The quotas calls are charged to now, by RPC name."""
        return self._quotas

    def set_quotas(self, quotas: Mapping[str, Quota]) -> None:
        """Charge calls to ``quotas`` from now on (the quota file changed). One reference swap: a call
        reads the mapping once, so it is charged to the old quotas or the new ones, never a mix."""
        self._quotas = dict(quotas)

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no Rank/Track call is running (True), or ``timeout`` passes (False).

        Shutdown drains with this rather than with the server's grace alone: gRPC's grace also waits
        for long-lived health Watch streams, which would hold every shutdown for the full period."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is not None and handler.stream_stream is not None and details.method.startswith(REFLECTION_PREFIX):
            return self._bounded_reflection(handler)
        if handler is None or handler.unary_unary is None or not details.method.startswith(self._prefix):
            return handler
        rpc = details.method[len(self._prefix) :]
        behavior, parse = handler.unary_unary, handler.request_deserializer

        def guarded(raw: bytes, context: grpc.ServicerContext) -> Any:
            return self.run(rpc, behavior, raw, context, parse)

        # The guard takes the raw bytes and parses them itself: a message that does not decode is the
        # caller's mistake (INVALID_ARGUMENT, one access-log line), where gRPC would answer INTERNAL
        # and log a traceback per bad message; and nobody's bytes are parsed before auth passed.
        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=None, response_serializer=handler.response_serializer
        )

    def _bounded_reflection(self, handler: Any) -> Any:
        """The reflection stream, refused (RESOURCE_EXHAUSTED) when ``reflection_streams`` are open already:
        it needs no token, and a hundred idle streams would otherwise hold every worker thread."""
        behavior = handler.stream_stream
        slots, limit = self._reflection_slots, self._reflection_limit

        def bounded(requests: Any, context: grpc.ServicerContext) -> Any:
            if limit < 1 or not slots.acquire(blocking=False):
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"at most {limit} reflection streams are served at once (SETLIST_REFLECTION_MAX_STREAMS); "
                    "close one and retry",
                )
            try:
                yield from behavior(requests, context)
            finally:
                slots.release()

        return grpc.stream_stream_rpc_method_handler(
            bounded, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )

    def run(
        self,
        rpc: str,
        behavior: Behavior,
        request: Any,
        context: grpc.ServicerContext,
        parse: Callable[[bytes], Any] | None = None,
    ) -> Any:
        start = time.perf_counter()
        with self._idle:
            self._active += 1
        metadata = context.invocation_metadata()
        request_id = request_id_from(metadata)
        token = current_request_id.set(request_id)
        left = context.time_remaining()  # None: the client set no deadline
        deadline_token = call_deadline.set(None if left is None else time.monotonic() + left)
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        # the call's SERVER span (continuing a caller's traceparent), current until the access log
        # line is written; the no-op object when tracing is off
        call_span = tracing.rpc_span(self._prefix[1:] + rpc, metadata, request_id=request_id)
        code, error_kind, acquired, turn, own = "OK", "", False, None, None
        try:
            if left is not None and left <= 0:
                raise DeadlineExceeded("the call's deadline expired before work started")
            client = self._auth.check(rpc, metadata) if self._auth is not None else None  # None: no auth
            quota = self._quotas.get(rpc)
            if quota is not None and quota.cost is None:
                quota.charge(client)  # per call: before a slot is taken or a byte parsed
            if not self._slots.acquire(blocking=False):
                raise Overloaded(f"server is at its limit of {self._limit} concurrent requests; retry with backoff")
            acquired = True
            metrics.RPC_IN_FLIGHT.inc()
            cap = self._rpc_slots.get(rpc)
            if cap is not None:
                if not cap[1].acquire(blocking=False):
                    raise Overloaded(
                        f"{rpc} is at its limit of {cap[0]} concurrent calls, which keeps room for the others; "
                        "retry with backoff"
                    )
                own = cap[1]
            if parse is not None:
                request = _parse(rpc, parse, request)
            if quota is not None and quota.cost is not None:
                quota.charge(client, quota.cost(request))  # per event: counted, not yet journaled
            line = self._turns.get(rpc)
            if line is not None:
                turns, waiting, waits = line
                waiting.inc()
                try:
                    waited = turns.enter(context.time_remaining())
                finally:
                    waiting.dec()
                turn = turns, time.perf_counter()
                waits.observe(waited)
            return behavior(request, context)
        except ServingError as exc:
            status = status_for(exc)
            code, error_kind = status.name, type(exc).__name__
            if isinstance(exc, QuotaExceeded):
                metrics.record_quota_rejection(rpc)
            elif isinstance(exc, Shed):
                metrics.RPC_SHED.labels(rpc).inc()
            extra = exc.trailing_metadata()
            if extra:  # replaces what was set above, so the request id goes again
                context.set_trailing_metadata(((REQUEST_ID_KEY, request_id), *extra))
            context.abort(status, str(exc) or type(exc).__name__)  # raises; the finally still runs
        except Exception as exc:
            if _aborted(context):  # context.abort() was called below us: already answered
                code = _code_name(context)
                raise
            code, error_kind = "INTERNAL", type(exc).__name__
            log.exception("unexpected error in %s", rpc, extra={"fields": {"request_id": request_id, "rpc": rpc}})
            context.abort(grpc.StatusCode.INTERNAL, f"internal error (request_id {request_id})")
        finally:
            if turn is not None:
                turn[0].leave(time.perf_counter() - turn[1])
            if own is not None:
                own.release()
            if code == "OK":
                code = _left(context)
            if acquired:
                self._slots.release()
                metrics.RPC_IN_FLIGHT.dec()
            current_request_id.reset(token)
            call_deadline.reset(deadline_token)
            try:
                self._record(rpc, code, error_kind, request_id, time.perf_counter() - start)
            finally:
                call_span.finish(code)
            with self._idle:
                self._active -= 1
                if self._active == 0:
                    self._idle.notify_all()

    @staticmethod
    def _record(rpc: str, code: str, error_kind: str, request_id: str, seconds: float) -> None:
        metrics.RPC_LATENCY.labels(rpc).observe(seconds)
        metrics.RPC_REQUESTS.labels(rpc, code).inc()
        if code != "OK":
            metrics.RPC_ERRORS.labels(rpc, code).inc()
        # Successful fast calls log at DEBUG: a JSON line per call costs ~0.1 ms, a tenth of the
        # cache-hit budget. Errors and slow calls (over the Rank p99 target) always show at INFO.
        level = logging.DEBUG if code == "OK" and seconds < SLOW_CALL_S else logging.INFO
        if access_log.isEnabledFor(level):
            fields = {"request_id": request_id, "rpc": rpc, "code": code, "latency_ms": round(seconds * 1000, 3)}
            if error_kind:
                fields["error"] = error_kind  # the class, not the message: messages may quote input
            access_log.log(level, "rpc", extra={"fields": fields})


def _parse(rpc: str, parse: Callable[[bytes], Any], raw: bytes) -> Any:
    try:
        return parse(raw)
    except Exception:  # DecodeError, or worse for adversarial input: all of it is a bad request
        raise InvalidArgument(f"the request body is not a valid {rpc}Request message") from None


def _left(context: grpc.ServicerContext) -> str:
    """OK, or how the caller left while the call ran (cancelled, or its deadline passed): it never got the
    answer, so the access log and the error counters must not say OK. Never raises (slots are released after)."""
    try:
        if context.is_active():
            return "OK"
        left = context.time_remaining()
    except Exception:
        return "OK"
    return "DEADLINE_EXCEEDED" if left is not None and left <= 0 else "CANCELLED"


def _aborted(context: grpc.ServicerContext) -> bool:
    code = context.code()
    return code is not None and code != grpc.StatusCode.OK


def _code_name(context: grpc.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
