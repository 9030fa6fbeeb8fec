"""Re-read the per-token quota file (``SETLIST_QUOTA_FILE``) when it changes, without a restart.

A thread looks at the file every ``quota_file_poll_s`` seconds. When its identity or contents'
stamp (inode, device, modification time, size) moved, it is read and checked exactly as at start-up;
a valid version replaces the guard's quotas at once, each caller keeping the units it had left (capped
at its new burst), and a version that does not read or check is rejected: the limits in force stay,
the reason is logged once, and ``setlist_quota_file_rejected`` stays 1 until a valid version arrives.
A rejected file is never half-applied, and a deleted one counts as rejected (a server never drops its
per-token limits because a file went missing).

Only the file is re-read: the default limits (``SETLIST_QUOTA_*``) and the token list
(``SETLIST_AUTH_TOKENS``) are environment settings, fixed for the life of the process, so a token must
be configured before the file can name it.

Polling, not inotify or a signal: a Kubernetes ConfigMap volume swaps a symlink and tells nobody, and
every replica and worker process watches for itself. Write the file by renaming a complete copy over
it (what ConfigMaps and most deployment tools do): a file read while an editor is half-way through
saving it is rejected, and then applied once the save completes and its stamp moves again.
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
from serving.grpc.quotas import Clock, quotas_from_settings
from setlist.errors import UsageError
from setlist.settings import Settings

log = logging.getLogger(__name__)

Outcome = Literal["unchanged", "applied", "rejected"]
Stamp = tuple[int, int, int, int] | None  # (inode, device, mtime ns, size); None: the file is not there


def stamp(path: Path) -> Stamp:
    """What tells one version of the file from another."""
    try:
        st = os.stat(path)  # follows the symlink a ConfigMap swaps
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size


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
        self._seen = seen
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one check at a time (the thread and a caller of check())
        metrics.QUOTA_FILE_REJECTED.set(0)

    def check(self) -> Outcome:
        """Look at the file once: re-read and apply it if it changed since the last look."""
        with self._lock:
            now = stamp(self._path)
            if now == self._seen:
                return "unchanged"
            self._seen = now
            current = self._guard.quotas
            shared = next((q.shared for q in current.values() if q.shared is not None), None)
            try:
                quotas = quotas_from_settings(self._settings, self._auth, clock=self._clock, shared=shared)
            except (UsageError, ValueError) as exc:
                metrics.QUOTA_FILE_RELOADS.labels("rejected").inc()
                metrics.QUOTA_FILE_REJECTED.set(1)
                log.error(
                    "the quota file changed and was rejected; the limits before the change stay in force: %s",
                    exc,
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
