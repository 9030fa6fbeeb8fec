"""grpc.health.v1 status, driven by the ranking service's readiness.

Both the overall service ("") and setlist.v1.RankingService report NOT_SERVING until
``ranking.ready()`` is true (models and features loaded), and again for good once the ranking
reports a ``failure`` (its Track journal failed: it acknowledges no events, so traffic must move).
A small daemon thread polls ``ready()``, so the service needs no reference to gRPC; ``set_serving``
lets a bootstrap flip it directly as well.
On shutdown the status goes NOT_SERVING first, so load balancers stop routing before the drain.
"""

from __future__ import annotations

import logging
import threading

from grpc_health.v1 import health, health_pb2

from serving.grpc.proto import SERVICE_NAME
from serving.ports import Ranking

log = logging.getLogger(__name__)
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    def __init__(self, ranking: Ranking, poll_s: float = 0.25) -> None:
        # non-blocking: Watch streams are answered by callbacks and do not pin a worker thread each
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self._ranking = ranking
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._serving: bool | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._poll, name="setlist-readiness", daemon=True)
        self.set_serving(False)

    def start(self) -> None:
        self._thread.start()

    @property
    def serving(self) -> bool:
        return bool(self._serving)

    def set_serving(self, serving: bool) -> None:
        """Push a status now (Watch streams see it at once). The poller keeps the status equal to
        ``ranking.ready()``, so a lasting change belongs in ``ready()`` itself."""
        with self._lock:
            if self._stop.is_set() or serving == self._serving:
                return
            self._serving = serving
            status = _SERVING if serving else _NOT_SERVING
            for service in ("", SERVICE_NAME):
                self.servicer.set(service, status)
        log.info("health status changed", extra={"fields": {"serving": serving}})

    def _ready(self) -> bool:
        try:
            return bool(self._ranking.ready()) and not self._failed()
        except Exception:  # a failing readiness probe means "not ready", never a dead poller
            log.exception("ranking.ready() raised; reporting NOT_SERVING")
            return False

    def _failed(self) -> bool:
        # optional on a Ranking: fakes and the baseline engine have no journal that could fail
        failure = getattr(self._ranking, "failure", None)
        if failure is not None and self._serving:  # say why once, as the status flips
            log.error("reporting NOT_SERVING: %s", f"{type(failure).__name__}: {failure}")
        return failure is not None

    def _poll(self) -> None:
        # wait() returns early when shutdown() sets the event, so stopping never waits a full period
        while True:
            self.set_serving(self._ready())
            if self._stop.wait(self._poll_s):
                return

    def shutdown(self) -> None:
        """NOT_SERVING for good: later set_serving calls are ignored."""
        with self._lock:
            self._stop.set()
            self.servicer.enter_graceful_shutdown()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
