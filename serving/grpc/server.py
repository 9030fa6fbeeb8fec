"""Build and run one gRPC server around a ``Ranking``: the app service, health beside it, reflection,
the guard interceptor, optional TLS/mTLS, and the metrics endpoint.

``start_server`` returns at once with a :class:`RunningServer` (gRPC runs on its own threads): tests use
it in-process, and each worker process of serving.grpc.workers uses it too.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serving import metrics
from serving.grpc import quota_reload
from serving.grpc import servicer as transport
from serving.grpc.auth import TokenAuth
from serving.grpc.health import Readiness
from serving.grpc.interceptors import Guard
from serving.grpc.proto import SERVICE_NAME
from serving.grpc.quotas import quotas_from_settings
from serving.grpc.turns import Turns
from serving.ports import Ranking
from setlist.settings import Settings

log = logging.getLogger(__name__)

# Threads beyond max_concurrency: requests over the limit must reach the guard to be refused at once
# (a saturated pool would queue them), and health checks must find a thread under full load.
SPARE_THREADS = 8
DEFAULT_GRACE_S = 10.0
#: how long calls in flight on a connection past its maximum age may still run (Rank and Track
#: deadlines are far shorter)
CONNECTION_AGE_GRACE_S = 10.0


@dataclass
class RunningServer:
    port: int
    metrics_port: int | None
    readiness: Readiness
    _server: grpc.Server = field(repr=False)
    _guard: Guard = field(repr=False)
    _ranking: Ranking = field(repr=False)
    _metrics: tuple[metrics.MetricsServer, int] | None = field(default=None, repr=False)
    _health: grpc.Server | None = field(default=None, repr=False)  # the plaintext probe port, if any
    health_port: int | None = None
    _quota_reloader: quota_reload.QuotaReloader | None = field(default=None, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_serving(self, serving: bool) -> None:
        self.readiness.set_serving(serving)

    def stop(self, grace: float | None = DEFAULT_GRACE_S, close_ranking: bool = True) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, let in-flight ones finish within ``grace``
        seconds (then cancel them), and only then close the ranking. Safe to call twice."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = grace or 0.0  # None means "abort now" for gRPC as well
            self.readiness.shutdown()  # load balancers stop routing here first
            stopped = self._server.stop(grace)  # refuses new calls from now on
            # In-flight Rank/Track calls finish, then whatever is left (health Watch streams, which
            # would otherwise hold every shutdown for the whole grace period) is ended. A call that
            # gRPC accepted but no pool thread picked up yet is not counted; with the pool idle
            # that window is microseconds wide.
            self._guard.wait_idle(grace)
            self._server.stop(0)
            stopped.wait()
            if self._health is not None:  # probes saw NOT_SERVING during the drain
                self._health.stop(0).wait()
            if self._quota_reloader is not None:
                self._quota_reloader.stop()
            try:
                if close_ranking:
                    self._ranking.close()
            finally:
                metrics.stop_metrics_server(self._metrics)
                self._stopped.set()
                log.info("server stopped", extra={"fields": {"port": self.port}})

    def reload_quota_file(self) -> quota_reload.Outcome:
        """Look at the quota file now rather than at the next poll (what the watcher does every
        ``quota_file_poll_s``); "unchanged" when there is none to watch."""
        return self._quota_reloader.check() if self._quota_reloader is not None else "unchanged"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop() finished (True) or ``timeout`` passed (False)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(grace=1.0)


class InsecureServer(ValueError):
    """A production server was configured without TLS or tokens, and SETLIST_INSECURE does not say
    that this is intended."""


def require_secure_transport(settings: Settings) -> None:
    """The production profile serves over TLS with bearer tokens; raise InsecureServer (one line,
    naming what is missing) unless both are configured or ``settings.insecure`` opts out."""
    if not settings.on_servers or settings.insecure:
        return
    missing = [
        name
        for name, value in (("SETLIST_TLS_CERT", settings.tls_cert), ("SETLIST_TLS_KEY", settings.tls_key))
        if value is None
    ]
    if TokenAuth.from_settings(settings) is None:
        missing.append("SETLIST_AUTH_TOKENS")
    if missing:
        raise InsecureServer(
            f"the production profile serves only with TLS and bearer tokens, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} unset; set {'it' if len(missing) == 1 else 'them'}, "
            "or SETLIST_INSECURE=true for a plaintext server on a trusted network"
        )


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS when tls_cert and tls_key are set; mTLS (client certificates required) when tls_client_ca
    is set as well. None means plaintext."""
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key: mTLS runs on top of TLS")
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("TLS needs both tls_cert and tls_key (PEM files); only one is set")
    pair = (settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca is not None else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def build_server(
    ranking: Ranking, settings: Settings, *, reuse_port: bool = False, ready_poll_s: float = 0.25
) -> tuple[grpc.Server, Guard, Readiness, int, quota_reload.QuotaReloader | None]:
    """A configured, bound, not yet started server, with its guard, readiness, bound port and the
    quota file's watcher (not started; None when there is no file to watch)."""
    require_secure_transport(settings)
    threads = settings.max_concurrency + SPARE_THREADS
    auth = TokenAuth.from_settings(settings)
    seen = quota_reload.stamp(settings.quota_file) if settings.quota_file is not None else None
    quotas = quotas_from_settings(settings, auth)
    # Track is left out: its calls mostly wait on the journal's disk, where running together lets one
    # flush carry many calls' events
    turns = {"Rank": Turns("Rank", settings.rank_max_running, settings.rank_max_wait_ms / 1000)}
    track_limit = settings.track_max_concurrency or max(1, settings.max_concurrency // 2)
    guard = Guard(
        settings.max_concurrency,
        auth,
        quotas=quotas,
        turns=turns,
        limits={"Track": track_limit},
        reflection_streams=settings.reflection_max_streams,
    )
    reloader = (
        quota_reload.QuotaReloader(settings, auth, guard, seen)
        if settings.quota_file is not None and settings.quota_file_poll_s > 0
        else None
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="setlist-grpc"),
        interceptors=[guard],
        options=[
            # Only the multi-worker mode shares a port; a lone server must fail loudly on a port
            # that is taken instead of silently splitting traffic with whatever holds it.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            *connection_age_options(settings),
        ],
        # A hard backstop behind the guard: gRPC itself refuses calls (RESOURCE_EXHAUSTED) instead of
        # queueing without bound when even the spare threads are busy. Health Watch streams count too.
        maximum_concurrent_rpcs=2 * threads + 32,
    )
    transport.add_to_server(ranking, server)
    readiness = Readiness(ranking, poll_s=ready_poll_s)
    health_pb2_grpc.add_HealthServicer_to_server(readiness.servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpc's own message is only "Failed to bind"
        raise OSError(f"cannot listen on {address}: {exc} (is the port in use?)") from exc
    return server, guard, readiness, port, reloader


def connection_age_options(settings: Settings) -> list[tuple[str, int]]:
    """gRPC's options that end a connection at ``grpc_max_connection_age_s`` (none when it is 0). The
    client reconnects, and SO_REUSEPORT hashes the new connection afresh, so a few long-lived
    clients do not leave one worker with most of the calls (gRPC adds ±10% jitter to the age)."""
    if settings.grpc_max_connection_age_s <= 0:
        return []
    return [
        ("grpc.max_connection_age_ms", max(1, round(settings.grpc_max_connection_age_s * 1000))),
        ("grpc.max_connection_age_grace_ms", round(CONNECTION_AGE_GRACE_S * 1000)),
    ]


def health_server(readiness: Readiness, settings: Settings, reuse_port: bool = False) -> tuple[grpc.Server, int] | None:
    """grpc.health.v1 alone, in plaintext, on settings.health_port (None: no such server). Kubernetes'
    native gRPC probes cannot speak TLS; this port tells them SERVING or NOT_SERVING and nothing else."""
    if settings.health_port is None:
        return None
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="setlist-health"),
        # worker processes share the probe port as they share the main one; each answers for itself
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
    )
    health_pb2_grpc.add_HealthServicer_to_server(readiness.servicer, server)
    address = f"{settings.host}:{settings.health_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address} for health checks: {exc} (is the port in use?)") from exc
    return server, port


def start_server(
    ranking: Ranking, settings: Settings, *, reuse_port: bool = False, ready_poll_s: float = 0.25
) -> RunningServer:
    """Start serving ``ranking`` on settings.host:settings.port (0 picks a free port; see ``.port``).

    Metrics are served on settings.metrics_port (0 disables them). Returns without blocking.
    """
    server, guard, readiness, port, reloader = build_server(
        ranking, settings, reuse_port=reuse_port, ready_poll_s=ready_poll_s
    )
    health = health_server(readiness, settings, reuse_port)
    metrics_server = metrics.start_metrics_server(settings.metrics_port, settings.metrics_host or settings.host)
    server.start()
    if health is not None:
        health[0].start()
    readiness.start()
    if reloader is not None:
        reloader.start(settings.quota_file_poll_s)
    running = RunningServer(
        port=port,
        metrics_port=metrics_server[1] if metrics_server else None,
        readiness=readiness,
        _server=server,
        _guard=guard,
        _ranking=ranking,
        _metrics=metrics_server,
        _health=health[0] if health else None,
        health_port=health[1] if health else None,
        _quota_reloader=reloader,
    )
    log.info(
        "listening",
        extra={
            "fields": {
                "host": settings.host,
                "port": port,
                "metrics_port": running.metrics_port,
                "health_port": running.health_port,
                "tls": settings.tls_cert is not None,
                "mtls": settings.tls_client_ca is not None,
                "auth": settings.auth_tokens is not None,
                "max_concurrency": settings.max_concurrency,
                "rank_max_running": settings.rank_max_running,
                "quota_rank_per_s": settings.quota_rank_per_s or None,
                "quota_track_per_s": settings.quota_track_per_s or None,
                "quota_file": str(settings.quota_file) if settings.quota_file else None,
            }
        },
    )
    return running
