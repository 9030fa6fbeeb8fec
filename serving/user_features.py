"""Per-request user reads (consent, profile, session) behind a breaker.

When the online store fails, requests fall back to the user's last-known rows (or none) and are
marked degraded. After a few consecutive failures (``SETLIST_ONLINE_BREAKER_FAILURES``) the store is
left alone for a short cool-down, so a dead store costs a few timeouts, not one per request, while a
single slow reply (a network blip, a pause) degrades only the request that met it; then one request
probes the store again. On a Redis Cluster
(the cluster profile) each master has a breaker of its own: a dead master degrades the users whose
rows it holds, and the users of the other masters keep their personalized answers.

The timeout is the store client's own: on Redis, serving's per-request client waits
``SETLIST_ONLINE_TIMEOUT_MS`` (one timeout per read on a hung Redis, two on a cluster's hung master,
where the retry is what follows a failover); the embedded SQLite store is local and has none, so a
slow disk slows Rank rather than degrading it. There is no per-request deadline here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from feature_repo.online import OnlineFeatures
from serving.breaker import Breaker

if TYPE_CHECKING:
    from setlist.eventlog import Erased

log = logging.getLogger("setlist.serving.features")
VIEWS = ("user_consent", "user_profile", "session")


@dataclass(frozen=True)
class UserRows:
    consent: dict[str, Any] | None
    profile: dict[str, Any] | None
    session: dict[str, Any] | None
    version: str  # changes whenever any of the rows changes
    degraded: bool = False


class UserFeatureReader:
    def __init__(
        self,
        online: OnlineFeatures,
        cooldown_s: float = 1.0,
        remember: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        failures_to_open: int = 1,
    ) -> None:
        self.online = online
        # the whole store's; a cluster's masters get one each
        self.breaker = Breaker(cooldown_s, clock, failures_to_open)
        self._cooldown_s, self._clock, self._failures_to_open = cooldown_s, clock, failures_to_open
        self._shards: dict[str, Breaker] = {}
        # decided once: only a Redis Cluster client knows slots (test doubles have no client at all)
        client = getattr(online, "redis_client", None)
        self._shard_of = online.shard if client is not None and hasattr(client, "keyslot") else None
        self._last: OrderedDict[str, UserRows] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()
        # consent flags this process took and the store has not (a withdrawal held by Track while the
        # store refused writes): they win over the rows read, which may still say yes
        self._withheld: dict[str, dict[str, bool]] = {}
        self._withheld_generation = -1
        self._withholding = threading.Lock()

    def _breaker(self, user: str) -> Breaker:
        shard = self._shard_of(VIEWS[0], user) if self._shard_of is not None else None
        if shard is None:
            return self.breaker
        with self._lock:
            breaker = self._shards.get(shard)
            if breaker is None:
                breaker = self._shards[shard] = Breaker(self._cooldown_s, self._clock, self._failures_to_open)
            return breaker

    def read(self, user: str) -> UserRows:
        breaker = self._breaker(user)
        if breaker.allow():
            try:
                rows = self.online.read_views(VIEWS, user)
            except Exception as exc:
                breaker.failure()
                log.warning("online store read failed, degrading: %s", type(exc).__name__)
            else:
                breaker.success()
                stamps = "/".join("-" if ts is None else str(int(ts.timestamp() * 1000)) for ts, _ in rows)
                result = UserRows(rows[0][1], rows[1][1], rows[2][1], stamps)
                self._remember_rows(user, result)
                return self._held(user, result)
        with self._lock:
            known = self._last.get(user)
        if known is not None:
            return self._held(user, UserRows(known.consent, known.profile, known.session, "degraded", degraded=True))
        return UserRows(None, None, None, "degraded", degraded=True)

    def withhold(self, generation: int, flags: dict[str, dict[str, bool]]) -> None:
        """Replace the consent flags that win over the store's rows (``Tracker.held_flags``), unless these
        are of an older generation than those in force (two threads settling at once)."""
        if generation == self._withheld_generation:
            return  # the usual case, every Track: nothing changed
        with self._withholding:
            if generation > self._withheld_generation:
                self._withheld_generation, self._withheld = generation, flags  # reads take the reference, no lock

    def withheld(self, user: str) -> bool:
        return user in self._withheld

    def _held(self, user: str, rows: UserRows) -> UserRows:
        flags = self._withheld.get(user) if self._withheld else None
        if not flags:
            return rows
        return replace(rows, consent={**(rows.consent or {}), **flags}, version=f"{rows.version}|held")

    def _remember_rows(self, user: str, rows: UserRows) -> None:
        with self._lock:
            self._last[user] = rows
            self._last.move_to_end(user)
            if len(self._last) > self._remember:
                self._last.popitem(last=False)

    def forget_erased(self, erased: Erased) -> None:
        """Forget the last-known rows of every erased user among those remembered."""
        with self._lock:
            for user in erased.among(list(self._last)):
                del self._last[user]
        self.online.forget_erased(erased)  # the Redis keys it remembers name the pseudonym

    def forget(self, user: str) -> None:
        with self._lock:
            self._last.pop(user, None)
