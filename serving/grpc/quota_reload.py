"""Re-read the per-token quota file (``SETLIST_QUOTA_FILE``) when it changes, without a restart.

A thread looks at the file every ``quota_file_poll_s`` seconds. When its stamp (inode, device,
modification and change times, size) moved and then held still for one more look, it is read and
checked exactly as at start-up; a valid version replaces the guard's quotas at once, each caller
keeping the units it had left (capped at its new burst; a token whose limit did not change keeps its
very bucket), and a version that does not read or check is rejected: the limits in force stay,
the reason is logged once, and ``setlist_quota_file_rejected`` stays 1 until a valid version arrives.
A rejected file is never half-applied, and a deleted one counts as rejected (a server never drops its
per-token limits because a file went missing).

Only the file is re-read: the default limits (``SETLIST_QUOTA_*``) and the token list
(``SETLIST_AUTH_TOKENS``) are environment settings, fixed for the life of the process, so a token must
be configured before the file can name it.

Polling, not inotify or a signal: a Kubernetes ConfigMap volume swaps a symlink and tells nobody, and
every replica and worker process watches for itself. A change applies one to two polls after it is
written: waiting for the stamp to hold still keeps a file that is still being written (a truncated YAML
document is often valid YAML) from being applied half-way, and a file whose stamp moves while it is read
waits for the next look. Writing it by renaming a complete copy over it (what ConfigMaps and most
deployment tools do) is safest all the same.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Literal

from serving import metrics
from serving.grpc.auth import TokenAuth
from serving.grpc.interceptors import Guard
from serving.grpc.quotas import Clock, Quota, quotas_from_settings
from setlist.errors import UsageError
from setlist.settings import Settings

log = logging.getLogger(__name__)

Outcome = Literal["unchanged", "settling", "applied", "rejected"]
#: (inode, device, mtime ns, ctime ns, size); None: the file is not there. The change time moves on a
#: chmod too, so a file that could not be read is read again once its permissions are fixed.
Stamp = tuple[int, int, int, int, int] | None


def stamp(path: Path) -> Stamp:
    """What tells one version of the file from another."""
    try:
        st = os.stat(path)  # follows the symlink a ConfigMap swaps
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, st.st_size


class QuotaReloader:
    """Watches ``settings.quota_file`` for one server (its ``guard``) and applies each valid change."""

    def __init__(
        self, settings: Settings, auth: TokenAuth | None, guard: Guard, seen: Stamp, *, clock: Clock | None = None
    ) -> None:
        """``seen``: the stamp of the version the guard's quotas were built from, taken before it was
        read (so that a change during that read is not missed)."""
        if settings.quota_file is None:
            raise ValueError("QuotaReloader needs settings.quota_file")
        self._settings = settings
        self._path = Path(settings.quota_file)
        self._auth = auth
        self._guard = guard
        self._clock = clock
        self._seen = seen  # the version in force, or the last one rejected
        self._pending: Stamp | tuple[()] = ()  # a newer stamp seen at the last look, not yet settled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one check at a time (the thread and a caller of check())
        metrics.QUOTA_FILE_REJECTED.set(0)

    def check(self) -> Outcome:
        """Look at the file once: "settling" when its stamp moved since the last look (the next look
        reads it if it holds still), else read it and apply or reject it if it changed."""
        with self._lock:
            now = stamp(self._path)
            if now == self._seen:
                self._pending = ()
                return "unchanged"
            if now != self._pending:
                self._pending = now
                return "settling"
            current = self._guard.quotas
            held = next((q for q in current.values() if q.shared is not None), None)
            shared, breaker = (held.shared, held.breaker) if held is not None else (None, None)
            quotas: dict[str, Quota] = {}
            error: Exception | None = None
            try:
                quotas = quotas_from_settings(
                    self._settings, self._auth, clock=self._clock, shared=shared, breaker=breaker
                )
            except (UsageError, ValueError) as exc:
                error = exc
            if stamp(self._path) != now:  # written to while it was read: look again
                self._pending = ()
                return "settling"
            self._seen, self._pending = now, ()
            if error is not None:
                metrics.QUOTA_FILE_RELOADS.labels("rejected").inc()
                metrics.QUOTA_FILE_REJECTED.set(1)
                log.error(
                    "the quota file changed and was rejected; the limits before the change stay in force: %s",
                    error,
                    extra={"fields": {"quota_file": str(self._path)}},
                )
                return "rejected"
            for rpc, quota in quotas.items():
                if rpc in current:
                    quota.carry_from(current[rpc])
            self._guard.set_quotas(quotas)
            metrics.QUOTA_FILE_RELOADS.labels("applied").inc()
            metrics.QUOTA_FILE_REJECTED.set(0)
            log.info(
                "quota file applied",
                extra={"fields": {"quota_file": str(self._path), "limited_rpcs": sorted(quotas)}},
            )
            return "applied"

    def start(self, poll_s: float) -> None:
        """Check every ``poll_s`` seconds on a daemon thread until stop()."""
        if poll_s <= 0:
            raise ValueError(f"poll_s must be positive, got {poll_s}")
        self._thread = threading.Thread(target=self._run, args=(poll_s,), name="setlist-quota-file", daemon=True)
        self._thread.start()

    def _run(self, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            try:
                self.check()
            except Exception:  # a bug here must not end the watching for the life of the server
                log.exception("checking the quota file failed; trying again in %s s", poll_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
