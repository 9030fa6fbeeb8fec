"""Shared by the transport tests: an honest fake ``Ranking`` and fixtures for a real in-process server.

No tests live here. ``tests/integration/conftest.py`` registers ``serve_fake`` for the integration
layer only, so it stays out of the shared conftest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from serving.client import SetlistClient
from serving.errors import InvalidArgument
from serving.grpc.server import RunningServer, start_server
from serving.types import RankedItem, RankQuery, RankResult, Rejection, TrackEvent, TrackResult
from setlist.context import Vocabulary
from setlist.contract import EVENT_TYPES
from setlist.settings import Settings

MAX_K = 500
FAKE_KEYS = frozenset({"cache", "degraded", "device", "locale"})  # the context keys the fake reads


class FakeRanking:
    """k items with descending scores. Special users: ``crash`` raises an unexpected error and
    ``block`` waits on ``release`` (announcing itself on ``entered``) to hold a request in flight; so does a
    Track call with an event of user ``block``."""

    def __init__(self, ready: bool = True) -> None:
        self.is_ready = threading.Event()
        if ready:
            self.is_ready.set()
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.closed = threading.Event()
        self.queries: list[RankQuery] = []
        self.events: list[TrackEvent] = []
        self.log: list[str] = []  # order of notable happenings, for shutdown tests
        self._lock = threading.Lock()

    def rank(self, query: RankQuery) -> RankResult:
        with self._lock:
            self.queries.append(query)
        if not 1 <= query.k <= MAX_K:
            raise InvalidArgument(f"k must be between 1 and {MAX_K}, got {query.k}")
        if query.user_id == "crash":
            raise RuntimeError("boom: a bug in the ranking service")
        if query.user_id == "block":
            self.entered.release()
            self.release.wait(timeout=30)
            self.log.append("rank finished")
        excluded = set(query.exclude_item_ids)
        items = tuple(
            RankedItem(f"item-{i}", float(query.k - i), ("fake reason",) if query.explain else ())
            for i in range(query.k)
            if f"item-{i}" not in excluded
        )
        # a caller's slate: its "item-" ids in reverse, the others unknown
        slate = query.candidate_item_ids
        if slate:
            known = [i for i in reversed(slate) if i.startswith("item-") and i not in excluded][: query.k]
            items = tuple(RankedItem(i, float(len(known) - n)) for n, i in enumerate(known))
        return RankResult(
            items=items,
            model_version=f"fake-1/{os.getpid()}",
            cache_hit=query.context.get("cache") == "hit",
            degraded=query.context.get("degraded") == "yes",
            arm="A",
            # as the real service tells them back (the fake's own switches above are read, so not told)
            ignored_context_keys=Vocabulary.ignored({k: v for k, v in query.context.items() if k not in FAKE_KEYS}),
            unknown_item_ids=tuple(i for i in slate if not i.startswith("item-")),
        )

    def track(self, events: list[TrackEvent]) -> TrackResult:
        if any(e.user_id == "block" for e in events):
            self.entered.release()
            self.release.wait(timeout=30)
        with self._lock:
            self.events.extend(events)
        rejected = tuple(
            Rejection(e.event_id, f"unknown type {e.type!r}; allowed: {sorted(EVENT_TYPES)}", n)
            for n, e in enumerate(events)
            if e.type not in EVENT_TYPES
        )
        return TrackResult(accepted=len(events) - len(rejected), rejected=rejected)

    def ready(self) -> bool:
        return self.is_ready.is_set()

    def close(self) -> None:
        self.log.append("closed")
        self.closed.set()


def fake_factory(worker: int) -> FakeRanking:
    """For serving.grpc.workers.serve: each worker process builds its own fake."""
    return FakeRanking()


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "max_concurrency": 8}
    values.update(overrides)
    return Settings(**values)


ServeFake = Callable[..., tuple[RunningServer, SetlistClient, FakeRanking]]


@pytest.fixture
def serve_fake() -> Iterator[ServeFake]:
    """``serve_fake(ranking=None, **settings) -> (server, client, ranking)``; all stopped afterwards."""
    started: list[tuple[RunningServer, SetlistClient, FakeRanking]] = []

    def start(
        ranking: FakeRanking | None = None, ready_poll_s: float = 0.02, **overrides: Any
    ) -> tuple[RunningServer, SetlistClient, FakeRanking]:
        ranking = ranking or FakeRanking()
        server = start_server(ranking, make_settings(**overrides), ready_poll_s=ready_poll_s)
        client = SetlistClient(f"127.0.0.1:{server.port}", timeout=5.0)
        started.append((server, client, ranking))
        return server, client, ranking

    yield start
    for server, client, ranking in started:
        ranking.release.set()  # never leave a blocked request behind
        client.close()
        server.stop(grace=0.5)
