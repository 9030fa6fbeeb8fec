"""The drills' load: a few threads sending Track batches the way a well-behaved client does. A call
that fails is sent again, the same batch with the same event ids, after a short backoff, until it is
acknowledged or the drill ends; only then does the thread make its next batch. Everything the
report needs is tallied: calls, failed calls, every event id sent, which were acknowledged and when.

The scenario waits on the tally (``Load.wait`` with a predicate and a deadline), never on the clock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from serving.client import ClientError, SetlistClient, new_event
from serving.types import TrackEvent

STREAMS = 4  # concurrent clients: enough to form group commits and to reach both workers
BATCH = 10  # events per Track call
TIMEOUT_S = 2.0  # per call: a healthy server answers in milliseconds
MIN_BACKOFF_S = 0.02
# Short, so the first acknowledgement after a fault ends is seen within this much of being possible:
# the recovery time is measured to it.
MAX_BACKOFF_S = 0.2


@dataclass
class Tally:
    requests: int = 0  # Track calls made, retries included
    failed: int = 0  # calls that raised (refused, timed out, no server)
    rejected: int = 0  # events the server rejected as invalid: not acknowledged, never retried
    sent: list[str] = field(default_factory=list)  # every event id sent, once however often retried
    acked: list[str] = field(default_factory=list)  # event ids acknowledged
    acks: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, events) per acknowledged call
    # each failed call: (monotonic start, monotonic end, status code, message, its batch's first event id)
    failed_calls: list[tuple[float, float, str, str, str]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # failed calls by status code

    def acked_since(self, t: float) -> int:
        """Events acknowledged at or after ``t``."""
        return sum(n for at, n in self.acks if at >= t)

    def failed_since(self, t: float) -> int:
        return sum(1 for _, at, *_ in self.failed_calls if at >= t)

    def first_ack_after(self, t: float) -> float | None:
        """Seconds from ``t`` to the first acknowledgement at or after it; None if there was none."""
        after = [at for at, _ in self.acks if at >= t]
        return min(after) - t if after else None


def acked(n: int) -> Callable[[Tally], bool]:
    return lambda t: len(t.acked) >= n


def acked_since(since: float, n: int) -> Callable[[Tally], bool]:
    return lambda t: t.acked_since(since) >= n


def failed_since(since: float, n: int) -> Callable[[Tally], bool]:
    return lambda t: t.failed_since(since) >= n


class _Connection:
    """One thread's client. A channel that lost its server backs off its reconnects for up to
    minutes; a client that sees UNAVAILABLE opens a new channel instead, which connects at once."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.client = SetlistClient(target)

    def reconnect(self) -> None:
        self.client.close()
        self.client = SetlistClient(self.target)

    def close(self) -> None:
        self.client.close()


class Load:
    """``streams`` threads sending Track batches to ``target`` from ``start`` until ``finish``."""

    def __init__(
        self,
        target: str,
        users: Sequence[str],
        items: Sequence[str],
        *,
        streams: int = STREAMS,
        batch: int = BATCH,
        timeout_s: float = TIMEOUT_S,
        session: str = "chaos",
    ) -> None:
        self.target, self.users, self.items = target, list(users), list(items)
        self.batch, self.timeout_s, self.session = batch, timeout_s, session
        self.tally = Tally()
        self._cv = threading.Condition()
        self._draining = threading.Event()  # make no new batches
        self._halt = threading.Event()  # make no more calls at all
        self._threads = [
            threading.Thread(target=self._stream, args=(i,), name=f"chaos-load-{i}", daemon=True)
            for i in range(streams)
        ]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def wait(self, predicate: Callable[[Tally], bool], timeout_s: float) -> bool:
        """Block until ``predicate(tally)`` holds (True) or ``timeout_s`` passes (False)."""
        with self._cv:
            return self._cv.wait_for(lambda: predicate(self.tally), timeout_s)

    def finish(self, drain_s: float, timeout_s: float | None = None) -> bool:
        """Make no new batches; keep retrying those not acknowledged yet (each call now waiting
        ``timeout_s``, if given) for up to ``drain_s``; then stop. True if every batch was acknowledged."""
        if timeout_s is not None:
            self.timeout_s = timeout_s
        self._draining.set()
        deadline = time.monotonic() + drain_s
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0.0))
        drained = not any(t.is_alive() for t in self._threads)
        self.stop()
        return drained

    def stop(self) -> None:
        """Stop at once; a call in flight ends within its own timeout."""
        self._draining.set()
        self._halt.set()
        for t in self._threads:
            if t.ident is not None:
                t.join()

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the client threads -------------------------------------------------------------------
    def _stream(self, index: int) -> None:
        conn = _Connection(self.target)
        try:
            n = 0
            while not self._draining.is_set():
                batch = self._batch(index, n)
                n += 1
                with self._cv:
                    self.tally.sent.extend(e.event_id for e in batch)
                if not self._deliver(conn, batch):
                    return
        finally:
            conn.close()

    def _batch(self, index: int, n: int) -> list[TrackEvent]:
        first = index * 13 + n * self.batch  # streams spread over users and items
        users = [self.users[(first + i) % len(self.users)] for i in range(self.batch)]
        # One new listener per batch: the world's users are soon known to the server, which then
        # writes no identities; new ones keep the identity map (PostgreSQL in production) in use.
        users[0] = f"{self.session}-listener-{uuid.uuid4().hex[:12]}"
        return [
            new_event(
                user,
                self.items[(first + i) % len(self.items)],
                "play",
                session_id=f"{self.session}-{index}",
                value=0.9,
            )
            for i, user in enumerate(users)
        ]

    def _deliver(self, conn: _Connection, batch: list[TrackEvent]) -> bool:
        """Send ``batch`` until it is acknowledged (True) or the load is halted (False)."""
        backoff = MIN_BACKOFF_S
        while not self._halt.is_set():
            started = time.monotonic()
            try:
                _, rejections = conn.client.track(batch, timeout=self.timeout_s)
            except ClientError as exc:
                ended = time.monotonic()
                with self._cv:
                    self.tally.requests += 1
                    self.tally.failed += 1
                    self.tally.failed_calls.append((started, ended, exc.code.name, exc.message, batch[0].event_id))
                    self.tally.errors[exc.code.name] += 1
                    self._cv.notify_all()
                if exc.code == grpc.StatusCode.UNAVAILABLE:
                    conn.reconnect()
                self._halt.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            refused = {r.event_id for r in rejections}
            ids = [e.event_id for e in batch if e.event_id not in refused]
            with self._cv:
                self.tally.requests += 1
                self.tally.rejected += len(refused)
                self.tally.acked.extend(ids)
                self.tally.acks.append((time.monotonic(), len(ids)))
                self._cv.notify_all()
            return True
        return False
