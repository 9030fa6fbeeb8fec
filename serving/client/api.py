"""A small Python client for setlist.v1.RankingService (``python -m serving.client`` is its CLI).

Results come back as serving.types objects plus what only the wire knows (request id, client-side
latency); failures raise :class:`ClientError` with the status code and the server's message, and
:class:`QuotaExceededError` (a ClientError) when the token's quota is spent, with ``retry_after_ms``,
and :class:`ServerBusyError` when the server refused the call because its turn would not come in time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.errors import REFUSED_KEY
from serving.grpc import proto
from serving.types import RankedItem, Rejection, TrackEvent

Pem = str | Path | bytes


@dataclass(frozen=True)
class RankReply:
    items: tuple[RankedItem, ...]
    model_version: str
    cache_hit: bool
    degraded: bool
    arm: str
    request_id: str
    latency_ms: float  # measured by the client: the whole call, network and serialization included
    ignored_context_keys: tuple[str, ...] = ()  # context keys the server does not read (a typo?)
    unknown_item_ids: tuple[str, ...] = ()  # your candidates the served models do not know: not ranked


class ClientError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class RetryLaterError(ClientError):
    """RESOURCE_EXHAUSTED with the server's hint: ``retry_after_ms`` (from ``retry-after-ms``), or None
    when waiting cannot help."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after_ms: int | None) -> None:
        super().__init__(code, message)
        self.retry_after_ms = retry_after_ms


class QuotaExceededError(RetryLaterError):
    """This token's quota is spent. ``retry_after_ms``: how long until the same call would fit; None
    when one call asks for more than the whole burst (send fewer Track events per call)."""


class ServerBusyError(RetryLaterError):
    """The server is busy: the call's turn to run would not have come in time. ``retry_after_ms``: the
    server's estimate of how long the calls ahead of it take to clear."""


def _pem(value: Pem | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


def new_event(
    user_id: str,
    item_id: str,
    type: str,
    session_id: str = "",
    value: float | None = None,
    context: Mapping[str, str] | None = None,
    query: str = "",
) -> TrackEvent:
    """An event happening now, with a fresh uuid4 event id (``query``: a search's text, or the
    product feature a ``feature_use`` used; their ``item_id`` is empty)."""
    return TrackEvent(
        event_id=str(uuid.uuid4()),
        user_id=user_id,
        item_id=item_id,
        type=type,
        timestamp_ms=int(time.time() * 1000),
        session_id=session_id,
        context=dict(context or {}),
        value=value,
        query=query,
    )


class SetlistClient:
    def __init__(
        self,
        target: str,
        token: str | None = None,
        tls_ca: Pem | None = None,
        timeout: float = 2.0,
        *,
        tls_cert: Pem | None = None,
        tls_key: Pem | None = None,
        server_name: str | None = None,
    ) -> None:
        """``tls_ca`` (PEM path or bytes) turns TLS on; ``tls_cert``/``tls_key`` add a client
        certificate for mTLS; ``server_name`` overrides the name the server certificate must match."""
        options: list[tuple[str, Any]] = []
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls_ca is not None or tls_cert is not None:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_pem(tls_ca), private_key=_pem(tls_key), certificate_chain=_pem(tls_cert)
            )
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self.target = target
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._stub = proto.ranking_pb2_grpc.RankingServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    # --- RankingService -------------------------------------------------------------------
    def rank(
        self,
        user_id: str,
        k: int = 10,
        context: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
        explain: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
        candidates: Sequence[str] = (),
    ) -> RankReply:
        """``candidates``: your own slate to order (RankRequest.candidate_item_ids); empty: the server's."""
        m = proto.ranking_pb2
        request = m.RankRequest(
            user_id=user_id,
            k=k,
            context=dict(context or {}),
            exclude_item_ids=list(exclude),
            explain=explain,
            candidate_item_ids=list(candidates),
        )
        metadata = self._metadata + ((("x-request-id", request_id),) if request_id else ())
        start = time.perf_counter()
        try:
            response = self._stub.Rank(request, timeout=timeout or self.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        latency_ms = (time.perf_counter() - start) * 1000
        return RankReply(
            items=tuple(RankedItem(i.item_id, i.score, tuple(i.reasons)) for i in response.items),
            model_version=response.model_version,
            cache_hit=response.cache_hit,
            degraded=response.degraded,
            arm=response.arm,
            request_id=response.request_id,
            latency_ms=latency_ms,
            ignored_context_keys=tuple(response.ignored_context_keys),
            unknown_item_ids=tuple(response.unknown_item_ids),
        )

    def track(
        self,
        events: Iterable[TrackEvent],
        timeout: float | None = None,
    ) -> tuple[int, tuple[Rejection, ...]]:
        """Send events; returns (accepted count, rejections)."""
        m = proto.ranking_pb2
        request = m.TrackRequest(events=[_event_pb(e) for e in events])
        try:
            response = self._stub.Track(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return response.accepted, tuple(Rejection(r.event_id, r.reason, r.index) for r in response.rejected)

    # --- grpc.health.v1 -------------------------------------------------------------------
    def health(self, service: str = "", timeout: float | None = None) -> str:
        """SERVING, NOT_SERVING or SERVICE_UNKNOWN (no such service name on the server)."""
        try:
            response = self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout or self.timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            raise _error(exc) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def connect(self, timeout: float = 2.0) -> bool:
        """Open the connection now (True), or report that it could not be opened within ``timeout``
        (False), so that the first call's latency is the call's, not the TCP and HTTP/2 set-up's."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        return True

    def wait_ready(self, timeout: float = 10.0, service: str = "") -> bool:
        """Block until the server reports SERVING (True) or ``timeout`` seconds pass (False).

        Uses the health Watch stream, so the server pushes the change; it waits for the connection
        too (wait_for_ready), and reconnects with backoff if the stream breaks."""
        deadline = time.monotonic() + timeout
        backoff = 0.02
        while (remaining := deadline - time.monotonic()) > 0:
            call = self._health.Watch(
                health_pb2.HealthCheckRequest(service=service), timeout=remaining, wait_for_ready=True
            )
            try:
                for update in call:
                    if update.status == health_pb2.HealthCheckResponse.SERVING:
                        return True
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    return False
            finally:
                call.cancel()
            # the stream ended or broke (a server restarting): retry, without spinning
            time.sleep(min(backoff, max(deadline - time.monotonic(), 0)))
            backoff = min(backoff * 2, 1.0)
        return False

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SetlistClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _event_pb(event: TrackEvent) -> Any:
    m = proto.ranking_pb2
    msg = m.Event(
        event_id=event.event_id,
        user_id=event.user_id,
        item_id=event.item_id,
        type=event.type,
        timestamp_ms=event.timestamp_ms,
        session_id=event.session_id,
        context=dict(event.context),
        query=event.query,
    )
    if event.value is not None:
        msg.value = event.value
    return msg


def _error(exc: grpc.RpcError) -> ClientError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and isinstance(exc, grpc.Call):
        # a quota refusal carries the pushback (-1 when retrying cannot help), and so does a busy
        # server's, marked as such; the concurrency limit's refusal carries none
        trailing = {k: v for k, v in exc.trailing_metadata() or () if isinstance(v, str)}
        if "grpc-retry-pushback-ms" in trailing:
            after = trailing.get("retry-after-ms", "")
            kind = ServerBusyError if trailing.get(REFUSED_KEY) == "busy" else QuotaExceededError
            return kind(code, details, int(after) if after.isdigit() else None)
    return ClientError(code, details)
