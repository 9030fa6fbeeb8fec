"""``serve(settings, ranking_factory)``: run the server in the foreground, in one or N processes.

With ``settings.workers > 1`` the parent forks the workers *before* any gRPC server or channel exists
(gRPC's threads and sockets do not survive fork), as in grpc's examples/python/multiprocessing. Each
worker builds its own ranking with ``ranking_factory(index)`` and binds the same port with
SO_REUSEPORT, so the kernel spreads connections across processes and the GIL is no longer the
ceiling. The parent only forwards SIGTERM/SIGINT and waits; a worker whose parent dies unannounced
(SIGKILL) stops too. Worker ``i`` serves metrics on ``metrics_port + i``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from serving.grpc.server import DEFAULT_GRACE_S, start_server
from serving.hosts import bare_host
from serving.logs import configure_logging
from serving.ports import Ranking
from setlist import tracing
from setlist.errors import SetlistError
from setlist.settings import Settings

log = logging.getLogger(__name__)

# Called once per process with the worker index (0 when there is a single process), after the fork,
# so each worker builds its own models and connections and can own per-worker files (its journal).
RankingFactory = Callable[[int], Ranking]
TRACE_SERVICE = "setlist-serving"  # the traces' service.name (OTEL_SERVICE_NAME overrides it)
Process = multiprocessing.process.BaseProcess
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_POLL_S = 1.0


def serve(settings: Settings, ranking_factory: RankingFactory, grace_s: float = DEFAULT_GRACE_S) -> int:
    """Serve until SIGTERM/SIGINT, then drain for up to ``grace_s`` seconds. Returns an exit code."""
    configure_logging()
    if settings.workers <= 1:
        return _run_worker(settings, ranking_factory, grace_s, index=0, reuse_port=False)
    return _run_workers(settings, ranking_factory, grace_s)


def _run_worker(
    settings: Settings, ranking_factory: RankingFactory, grace_s: float, *, index: int, reuse_port: bool
) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if settings.metrics_port and index:
        settings = settings.model_copy(update={"metrics_port": settings.metrics_port + index})
    # in each process, after the fork: the span export thread would not survive one
    tracing.configure(settings, TRACE_SERVICE)
    try:
        ranking = ranking_factory(index)
    except SetlistError as exc:  # a declaration, setting or input the operator can fix: its sentence, no traceback
        log.error("could not build the ranking service: %s", exc, extra={"fields": {"worker": index}})
        return 1
    except Exception:  # one clear log line with the cause, and a non-zero exit for the supervisor
        log.exception("could not build the ranking service", extra={"fields": {"worker": index}})
        return 1
    # Models, feature tables and the imported libraries are some 400k long-lived objects; a full
    # collection walks all of them (~250 ms here, every request stalled behind the GIL: the p99 at
    # 200 req/s). Frozen, they are left out of collections; what requests allocate is still collected.
    gc.collect()
    gc.freeze()
    try:
        running = start_server(ranking, settings, reuse_port=reuse_port)
    except OSError as exc:  # a port taken since the start-up check: its sentence, no traceback
        log.error("could not start the server: %s", exc, extra={"fields": {"worker": index}})
        ranking.close()
        return 1
    log.info("worker ready", extra={"fields": {"worker": index, "pid": os.getpid(), "port": running.port}})
    stop.wait()
    log.info("shutting down", extra={"fields": {"worker": index, "grace_s": grace_s}})
    running.stop(grace=grace_s)
    tracing.shutdown()  # the last spans are exported before the process exits
    return 0


@contextlib.contextmanager
def _reserve_port(host: str, port: int) -> Iterator[int]:
    """Hold the port (resolving 0 to a real one) so that all workers bind the same number.

    The socket never listens, so the kernel routes no connection to it; SO_REUSEPORT lets the
    workers' listening sockets share the port with it and with each other."""
    host = bare_host(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0:
        raise RuntimeError("SO_REUSEPORT is unavailable; run with --workers 1")
    sock.bind((host, port))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _run_workers(settings: Settings, ranking_factory: RankingFactory, grace_s: float) -> int:
    ctx = multiprocessing.get_context("fork")  # fork explicitly: the factory may be a closure
    with _reserve_port(settings.host, settings.port) as port:
        worker_settings = settings.model_copy(update={"port": port})
        supervisor = os.getpid()
        procs = [
            ctx.Process(
                target=_worker_main,
                name=f"setlist-worker-{i}",
                args=(worker_settings, ranking_factory, grace_s, i, supervisor),
            )
            for i in range(settings.workers)
        ]
        stopping = threading.Event()

        def forward(signum: int, _frame: object) -> None:
            stopping.set()
            for proc in procs:
                if proc.pid is not None and proc.is_alive():
                    os.kill(proc.pid, signal.SIGTERM)  # each worker drains on its own

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for proc in procs:
            proc.start()
        if stopping.is_set():  # a signal that arrived while forking reached only the started ones
            forward(signal.SIGTERM, None)
        log.info(
            "workers started",
            extra={"fields": {"workers": settings.workers, "port": port, "pids": [p.pid for p in procs]}},
        )
        exit_code = 0
        # A worker that dies on its own is not restarted here: a half-sized server that looks healthy
        # is worse than a clean exit that the supervisor (systemd, Kubernetes) restarts.
        for done in _exited(procs):
            if done.exitcode != 0:
                exit_code = 1
            if not stopping.is_set():
                log.error(
                    "worker exited unexpectedly; stopping the others",
                    extra={"fields": {"pid": done.pid, "exitcode": done.exitcode}},
                )
                exit_code = 1
                forward(signal.SIGTERM, None)
        return exit_code


def _stop_with_parent(parent: int) -> str:
    """SIGTERM this worker when the supervisor dies without forwarding one (SIGKILL, a crash); returns how
    it watches ("kernel" or "poll").

    Left running, orphaned workers would go on answering on the shared port beside a restarted
    supervisor's workers, with their older model. SIGTERM drains them as a normal stop does."""
    if _ask_kernel(signal.SIGTERM):
        if os.getppid() != parent:  # the parent died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)
        return "kernel"

    def watch() -> None:  # no parent-death signal on this platform: look once a second
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="setlist-parent-watch", daemon=True).start()
    return "poll"


def _ask_kernel(signum: int) -> bool:
    """Linux's prctl(PR_SET_PDEATHSIG): the kernel sends ``signum`` when the forking thread exits."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _exited(procs: Sequence[Process]) -> Iterator[Process]:
    """Yield workers as they exit, until all have."""
    from multiprocessing.connection import wait

    pending = {proc.sentinel: proc for proc in procs}
    while pending:
        for sentinel in wait(list(pending)):
            proc = pending.pop(cast(int, sentinel))  # wait() hands back the sentinels it was given: ints
            proc.join()
            yield proc


def _worker_main(
    settings: Settings, ranking_factory: RankingFactory, grace_s: float, index: int, supervisor: int
) -> None:
    # The parent's handlers would forward to siblings from inside a worker; reset before anything runs.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    watch = _stop_with_parent(supervisor)
    log.info("watching the supervisor", extra={"fields": {"worker": index, "parent_watch": watch}})
    raise SystemExit(_run_worker(settings, ranking_factory, grace_s, index=index, reuse_port=True))
