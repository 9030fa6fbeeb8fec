"""RankingService through serving.bootstrap.build with every dependency faked (tests/fakes/dataplane).

Only the service's public API (rank, track, ready) is used: its internals are free to change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from serving import metrics
from serving.bootstrap import Server
from serving.cache import MemoryCache
from serving.errors import InvalidArgument
from serving.types import RankQuery, TrackEvent
from serving.user_features import UserFeatureReader
from tests.fakes.dataplane import Dataplane, user_ids

USER = "user-0"
COOLDOWN = 5.0


@pytest.fixture
def plane(tmp_path: Path) -> Dataplane:
    return Dataplane.fresh(tmp_path, impressions_enabled=False, reload_interval_s=3600, cache_ttl_s=300)


def ids(result) -> list[str]:
    return [i.item_id for i in result.items]


def play(plane: Dataplane, event_id: str, user: str = USER, item: str = "item-3", **kw: object) -> TrackEvent:
    fields: dict = dict(
        event_id=event_id,
        user_id=user,
        item_id=item,
        type="play",
        timestamp_ms=int(plane.clock() * 1000),
        session_id="s1",
    )
    fields.update(kw)
    return TrackEvent(**fields)


@pytest.mark.parametrize("k", [1, 7, 25])
def test_rank_returns_k_distinct_items_from_the_served_model(plane: Dataplane, server: Server, k: int) -> None:
    assert server.ready()
    result = server.rank(RankQuery(USER, k))
    champion = plane.registry.bundles[plane.registry.aliases["champion"]]
    assert len(result.items) == k and len(set(ids(result))) == k
    assert set(ids(result)) <= {str(i) for i in champion.index.item_ids}
    scores = [i.score for i in result.items]
    assert scores == sorted(scores, reverse=True)
    assert result.model_version == champion.version
    assert not result.degraded and not result.cache_hit


def test_a_user_the_models_do_not_know_gets_popular_items(server: Server) -> None:
    result = server.rank(RankQuery("someone-new", 5))
    assert len(result.items) == 5 and result.arm == "popularity"


def test_excluded_items_are_never_returned(server: Server) -> None:
    first = server.rank(RankQuery(USER, 6))
    again = server.rank(RankQuery(USER, 6, exclude_item_ids=tuple(ids(first))))
    assert len(again.items) == 6
    assert not set(ids(again)) & set(ids(first))
    assert not again.cache_hit  # the exclusions are part of the cache key


def test_the_second_identical_request_is_a_cache_hit(plane: Dataplane, server: Server) -> None:
    first = server.rank(RankQuery(USER, 5, context={"device": "mobile"}))
    second = server.rank(RankQuery(USER, 5, context={"device": "mobile"}))
    assert not first.cache_hit and second.cache_hit
    assert second.items == first.items and second.model_version == first.model_version
    assert not server.rank(RankQuery(USER, 5, context={"device": "desktop"})).cache_hit
    assert [a[0] for n, a in plane.metrics.calls if n == "record_cache"] == [False, True, False]


def test_the_in_process_caches_size_is_watched_as_it_fills(plane: Dataplane, server: Server) -> None:
    (entries,) = [a[0] for n, a in plane.metrics.calls if n == "watch_cache"]
    assert entries() == 0
    server.rank(RankQuery(USER, 5, context={"device": "mobile"}))
    server.rank(RankQuery(USER, 5, context={"device": "mobile"}))  # a hit adds nothing
    server.rank(RankQuery("user-1", 5))
    assert entries() == 2


def test_a_cached_ranking_ends_with_its_models_local_hour(plane: Dataplane) -> None:
    # a model trained on India's clock (+05:30) turns its hour at :30 UTC: an entry of 12:28 UTC (17:58 there)
    # may not answer at 12:31 (18:01), within its TTL and its UTC hour as it is
    pair = plane.registry.aliases["champion"]
    kolkata = timezone(timedelta(hours=5, minutes=30))
    plane.registry.bundles[pair] = replace(plane.registry.bundles[pair], zone=kolkata)
    server = plane.build()
    try:
        assert datetime.fromtimestamp(plane.clock(), UTC).minute == 0 and plane.settings.cache_ttl_s >= 300
        plane.clock.advance(28 * 60)
        assert not server.rank(RankQuery(USER, 5)).cache_hit
        plane.clock.advance(60)
        assert server.rank(RankQuery(USER, 5)).cache_hit  # 12:29 UTC, 17:59 in Kolkata
        plane.clock.advance(2 * 60)
        assert not server.rank(RankQuery(USER, 5)).cache_hit  # 12:31 UTC, 18:01
        assert server.rank(RankQuery(USER, 5)).cache_hit
    finally:
        server.close()


def test_the_cache_size_gauge_reads_its_source_when_scraped() -> None:
    size = [3]
    metrics.watch_cache(lambda: size[0])
    assert REGISTRY.get_sample_value("setlist_cache_entries") == 3
    size[0] = 7
    assert REGISTRY.get_sample_value("setlist_cache_entries") == 7


def test_track_invalidates_that_users_cached_ranking_only(plane: Dataplane, server: Server) -> None:
    other = user_ids(2)[1]
    for user in (USER, other):
        server.rank(RankQuery(user, 5))
        assert server.rank(RankQuery(user, 5)).cache_hit
    assert server.track([play(plane, "e1")]).accepted == 1
    assert not server.rank(RankQuery(USER, 5)).cache_hit
    assert server.rank(RankQuery(other, 5)).cache_hit


def test_a_retried_track_is_acknowledged_but_changes_nothing_downstream(plane: Dataplane, server: Server) -> None:
    first = server.track([play(plane, "e1")])
    assert first.accepted == 1 and not first.duplicates
    server.rank(RankQuery(USER, 5))
    assert server.rank(RankQuery(USER, 5)).cache_hit
    retry = server.track([play(plane, "e1")])  # the client timed out and sent the same event again
    assert retry.accepted == 1 and retry.duplicates == {"e1"}
    assert server.rank(RankQuery(USER, 5)).cache_hit  # nothing new happened: the ranking stands


def test_unknown_devices_and_locales_become_other_in_cache_keys_and_impressions(
    plane: Dataplane, server: Server
) -> None:
    huge = server.rank(RankQuery(USER, 5, context={"device": "x" * 200, "locale": "y" * 250}))
    # any other unknown value is the same bucket: it shares the cached entry instead of adding one
    assert server.rank(RankQuery(USER, 5, context={"device": "phone", "locale": "en_US; DROP"})).cache_hit
    server.rank(RankQuery(USER, 5, context={"device": "tablet", "locale": "pt_BR"}))
    server.rank(RankQuery(USER, 5))
    seen = [(r.device, r.locale) for r in plane.impressions.records]
    assert seen == [("other", "other"), ("other", "other"), ("tablet", "pt_BR"), ("unknown", "unknown")]
    assert not huge.cache_hit and len(huge.items) == 5


def test_a_context_beyond_a_track_events_bounds_is_refused_with_the_bound(server: Server) -> None:
    with pytest.raises(InvalidArgument, match=r"^context: 'device' is 3000000 characters; at most 256$"):
        server.rank(RankQuery(USER, 5, context={"device": "x" * 3_000_000}))
    with pytest.raises(InvalidArgument, match=r"^context: 10000 keys; at most 32$"):
        server.rank(RankQuery(USER, 5, context={f"k{i}": "v" for i in range(10_000)}))


def test_an_empty_and_a_blank_user_id_are_told_apart(server: Server) -> None:
    with pytest.raises(InvalidArgument, match=r"^user_id is empty$"):
        server.rank(RankQuery("", 5))
    with pytest.raises(InvalidArgument, match=r"^user_id is blank \(only whitespace\)$"):
        server.rank(RankQuery(" \t", 5))


def test_context_keys_rank_does_not_read_are_told_back_on_a_miss_and_a_hit(server: Server) -> None:
    sent = {"devcie": "mobile", "locale": "en_US", "app_version": "7.1"}
    first = server.rank(RankQuery(USER, 5, context=sent))
    again = server.rank(RankQuery(USER, 5, context=sent))
    assert again.cache_hit and first.ignored_context_keys == again.ignored_context_keys == ("app_version", "devcie")
    assert server.rank(RankQuery(USER, 5, context={"device": "mobile", "locale": "en_US"})).ignored_context_keys == ()


def test_a_cached_entry_of_another_shape_is_a_miss_not_an_error(plane: Dataplane) -> None:
    class OldFormat(MemoryCache):
        """Keeps entries as an earlier release might have left them in a shared cache."""

        def put(self, *args: Any) -> None:
            super().put(*args[:-1], {"items": [["item-1", 0.5]], "model_version": 1})

    server = plane.build(cache=OldFormat(100, 300, clock=plane.clock))
    try:
        server.rank(RankQuery(USER, 5))
        again = server.rank(RankQuery(USER, 5))
        assert not again.cache_hit and len(again.items) == 5
    finally:
        server.close()


def test_a_timed_out_user_read_degrades_and_the_breaker_probes_after_the_cool_down(plane: Dataplane) -> None:
    server = plane.build(reader=UserFeatureReader(plane.online, cooldown_s=COOLDOWN, clock=plane.clock))
    try:
        server.rank(RankQuery(USER, 5))
        assert server.rank(RankQuery(USER, 5)).cache_hit
        plane.online.fail = TimeoutError("online store read timed out")
        degraded = server.rank(RankQuery(USER, 5))
        assert degraded.degraded and not degraded.cache_hit  # a fallback is never answered from the cache
        assert len(degraded.items) == 5
        assert "record_degraded" in plane.metrics.names()

        plane.online.fail = None
        reads = plane.online.reads["session"]
        plane.clock.advance(COOLDOWN * 0.9)
        assert server.rank(RankQuery(USER, 5)).degraded  # the breaker is open: the store is left alone
        assert plane.online.reads["session"] == reads
        plane.clock.advance(COOLDOWN * 0.2)
        healthy = server.rank(RankQuery(USER, 5))
        assert not healthy.degraded and plane.online.reads["session"] == reads + 1
    finally:
        server.close()


def test_the_server_takes_its_breaker_from_settings(plane: Dataplane) -> None:
    plane.settings = plane.settings.model_copy(
        update={"online_breaker_failures": 2, "online_breaker_cooldown_s": COOLDOWN}
    )
    server = plane.build()
    try:
        server.rank(RankQuery(USER, 5))
        plane.online.fail = TimeoutError("online store read timed out")
        reads = plane.online.reads["user_consent"]
        # two consecutive failures open it: each of the first two requests tries the store
        assert server.rank(RankQuery(USER, 5)).degraded and server.rank(RankQuery(USER, 5)).degraded
        assert plane.online.reads["user_consent"] == reads + 2
        assert server.rank(RankQuery(USER, 5)).degraded
        assert plane.online.reads["user_consent"] == reads + 2  # open: left alone
        plane.online.fail = None
        plane.clock.advance(COOLDOWN * 1.1)
        assert not server.rank(RankQuery(USER, 5)).degraded
    finally:
        server.close()


def test_track_accepts_good_events_and_rejects_bad_ones_with_reasons(plane: Dataplane, server: Server) -> None:
    future = int((plane.clock() + 3600) * 1000) + 7  # to the millisecond, as a client stamps it
    events = [
        play(plane, "good"),
        play(plane, "typo", type="plya"),
        play(plane, "no-item", item=""),
        play(plane, "late", timestamp_ms=future),
        play(plane, "good"),
        play(plane, "blank", user="   "),
    ]
    result = server.track(events)
    assert result.accepted == 1
    reasons = {r.event_id: r.reason for r in result.rejected}
    assert set(reasons) == {"typo", "no-item", "late", "good", "blank"}
    assert reasons["typo"].startswith("unknown_type") and "plya" in reasons["typo"]
    assert reasons["no-item"] == "missing_id: item_id is empty"
    assert reasons["blank"] == "missing_id: user_id is blank (only whitespace)"
    stamp = datetime.fromtimestamp(future / 1000, tz=UTC).isoformat(timespec="milliseconds")
    assert reasons["late"] == f"future_timestamp: {stamp} is more than 300 s after now"
    assert reasons["good"].startswith("duplicate_event_id")
    assert [r["event_id"] for r in plane.journal.rows] == ["good"]  # acknowledged means journaled
    assert plane.journal.rows[0]["user_id"] != USER  # raw ids never reach storage
    session = plane.online.rows["session"][plane.journal.rows[0]["user_id"]][1]
    assert "item-3" in session["session_last_items"]  # the next Rank sees the play


def test_track_with_nothing_acceptable_says_why(plane: Dataplane, server: Server) -> None:
    with pytest.raises(InvalidArgument, match="unknown_type"):
        server.track([play(plane, "x", type="listen")])
    with pytest.raises(InvalidArgument):
        server.track([])
    assert plane.journal.rows == []


def test_unavailable_says_why_no_champion_is_served(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.errors import NotReady

    def loading(_q: RankQuery) -> None:
        raise NotReady("models and features are still loading")

    monkeypatch.setattr(server.service, "rank", loading)
    monkeypatch.setattr(
        server.models, "waiting_for", "the champion ('3', '3') was refused: its service is gone", raising=False
    )
    # not "still loading": nothing is, the server waits for a champion it may serve
    with pytest.raises(NotReady, match=r"^not serving yet: the champion \('3', '3'\) was refused: its service is gone"):
        server.rank(RankQuery(USER, 5))
    monkeypatch.setattr(server.models, "waiting_for", None, raising=False)
    with pytest.raises(NotReady, match=r"still loading$"):
        server.rank(RankQuery(USER, 5))
