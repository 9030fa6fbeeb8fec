"""Rank on the caller's own slate (RankRequest.candidate_item_ids): the served model orders exactly
those items, what the user or the caller left out stays out, ids the models do not know come back
named rather than dropped, and the slate is part of the cache key."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.bootstrap import Server
from serving.errors import InvalidArgument
from serving.types import RankQuery, TrackEvent
from tests.fakes.dataplane import Dataplane

USER = "user-0"
SLATE = ("item-9", "item-2", "item-31", "item-17", "item-44", "item-5", "item-23")


@pytest.fixture
def plane(tmp_path: Path) -> Dataplane:
    return Dataplane.fresh(
        tmp_path, impressions_enabled=False, reload_interval_s=3600, cache_ttl_s=300, max_candidate_ids=10
    )


def ids(result) -> list[str]:
    return [i.item_id for i in result.items]


def event(plane: Dataplane, event_id: str, item: str, type: str = "play") -> TrackEvent:
    return TrackEvent(
        event_id=event_id,
        user_id=USER,
        item_id=item,
        type=type,
        timestamp_ms=int(plane.clock() * 1000),
        session_id="s1",
        context={"consent_personalization": "true", "consent_analytics": "true"},
    )


def test_the_model_orders_exactly_the_callers_items(server: Server) -> None:
    result = server.rank(RankQuery(USER, 5, candidate_item_ids=SLATE))
    assert len(result.items) == 5 and set(ids(result)) <= set(SLATE)
    scores = [i.score for i in result.items]
    assert scores == sorted(scores, reverse=True)
    whole = server.rank(RankQuery(USER, 50, candidate_item_ids=SLATE))
    assert sorted(ids(whole)) == sorted(SLATE) and whole.unknown_item_ids == ()
    assert ids(whole)[:5] == ids(result)


def test_ids_the_models_do_not_know_are_named_in_the_order_given_and_not_ranked(server: Server) -> None:
    slate = ("brand-new-2", "item-9", "brand-new-1", "item-2")
    result = server.rank(RankQuery(USER, 10, candidate_item_ids=slate))
    assert sorted(ids(result)) == ["item-2", "item-9"]
    assert result.unknown_item_ids == ("brand-new-2", "brand-new-1")
    hit = server.rank(RankQuery(USER, 10, candidate_item_ids=slate))
    assert hit.cache_hit and hit.unknown_item_ids == result.unknown_item_ids and hit.items == result.items
    nothing = server.rank(RankQuery(USER, 10, candidate_item_ids=("brand-new-1",)))
    assert nothing.items == () and nothing.unknown_item_ids == ("brand-new-1",)


def test_unknown_ids_the_user_blocked_or_the_caller_left_out_are_not_told_back(
    plane: Dataplane, server: Server
) -> None:
    server.track([event(plane, "e1", "brand-new-1", "not_interested")])
    slate = ("item-2", "brand-new-1", "brand-new-2", "brand-new-3")
    result = server.rank(RankQuery(USER, 10, candidate_item_ids=slate, exclude_item_ids=("brand-new-2",)))
    assert ids(result) == ["item-2"] and result.unknown_item_ids == ("brand-new-3",)


def test_a_repeated_id_counts_once_and_shares_the_cache_entry(server: Server) -> None:
    first = server.rank(RankQuery(USER, 10, candidate_item_ids=("item-2", "item-9", "item-2", "new-1", "new-1")))
    assert sorted(ids(first)) == ["item-2", "item-9"] and first.unknown_item_ids == ("new-1",)
    again = server.rank(RankQuery(USER, 10, candidate_item_ids=("item-2", "item-9", "new-1")))
    assert again.cache_hit and again.items == first.items


def test_ids_joined_by_a_separator_do_not_share_a_key_with_the_ids_apart(server: Server) -> None:
    joined = server.rank(RankQuery(USER, 10, candidate_item_ids=("item-2\x1fitem-9",)))
    assert joined.items == () and joined.unknown_item_ids == ("item-2\x1fitem-9",)
    apart = server.rank(RankQuery(USER, 10, candidate_item_ids=("item-2", "item-9")))
    assert not apart.cache_hit and sorted(ids(apart)) == ["item-2", "item-9"] and apart.unknown_item_ids == ()
    excluded = server.rank(RankQuery(USER, 10, exclude_item_ids=("item-2\x1fitem-9",)))
    assert not server.rank(RankQuery(USER, 10, exclude_item_ids=("item-2", "item-9"))).cache_hit
    assert not excluded.cache_hit


def test_left_out_items_stay_out_but_recent_ones_may_be_ordered(plane: Dataplane, server: Server) -> None:
    server.track([event(plane, "e1", "item-9"), event(plane, "e2", "item-44", "not_interested")])
    own = server.rank(RankQuery(USER, 200))
    assert "item-9" not in ids(own)  # the server's own candidates leave the session's recent items out
    result = server.rank(RankQuery(USER, 50, candidate_item_ids=SLATE, exclude_item_ids=("item-5",)))
    assert "item-9" in ids(result)  # the caller chose it
    assert "item-44" not in ids(result)  # the user blocked it
    assert "item-5" not in ids(result) and "item-5" not in result.unknown_item_ids  # the caller left it out
    assert len(result.items) == len(SLATE) - 2


def test_the_slate_and_its_order_are_in_the_cache_key(server: Server) -> None:
    first = server.rank(RankQuery(USER, 3, candidate_item_ids=SLATE))
    assert server.rank(RankQuery(USER, 3, candidate_item_ids=SLATE)).cache_hit
    assert not server.rank(RankQuery(USER, 3, candidate_item_ids=SLATE[::-1])).cache_hit
    assert not server.rank(RankQuery(USER, 3, candidate_item_ids=SLATE[:4])).cache_hit
    own = server.rank(RankQuery(USER, 3))
    assert not own.cache_hit and not first.cache_hit


def test_without_personalization_the_slate_comes_in_popularity_order(server: Server) -> None:
    result = server.rank(RankQuery("someone-new", 50, candidate_item_ids=SLATE))
    assert result.arm == "popularity" and sorted(ids(result)) == sorted(SLATE)
    popular = ids(server.rank(RankQuery("someone-else-new", 200)))
    in_pool = [i for i in popular if i in SLATE]
    assert ids(result)[: len(in_pool)] == in_pool  # the cohort's order, as the server's own list has it


@pytest.mark.parametrize(
    ("slate", "message"),
    [
        (tuple(f"item-{n}" for n in range(11)), "11 candidate_item_ids; at most 10 allowed"),
        (("item-1", ""), r"candidate_item_ids\[1\] is empty"),
        (("item-1", " \t"), r"candidate_item_ids\[1\] is blank \(only whitespace\)"),
        (("item-1", "x" * 257), r"candidate_item_ids\[1\] is 257 characters; at most 256 allowed"),
    ],
)
def test_a_bad_slate_is_refused_with_a_reason(server: Server, slate: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        server.rank(RankQuery(USER, 5, candidate_item_ids=slate))


def test_a_padded_slate_id_is_taken_as_sent_like_a_tracked_one(server: Server) -> None:
    padded = f" {SLATE[0]} "
    result = server.rank(RankQuery(USER, 5, candidate_item_ids=(padded, SLATE[1])))
    assert result.unknown_item_ids == (padded,) and ids(result) == [SLATE[1]]


def test_an_exclusion_longer_than_any_item_id_is_refused(server: Server) -> None:
    with pytest.raises(InvalidArgument, match=r"exclude_item_ids\[1\] is 257 characters; at most 256 allowed"):
        server.rank(RankQuery(USER, 5, exclude_item_ids=("item-1", "x" * 257)))
    assert server.rank(RankQuery(USER, 5, exclude_item_ids=("item-1", "x" * 256))).items


def test_the_impression_of_a_slate_request_is_marked(plane: Dataplane, server: Server) -> None:
    server.rank(RankQuery(USER, 3, candidate_item_ids=SLATE))
    server.rank(RankQuery(USER, 3))
    assert [r.caller_slate for r in plane.impressions.records] == [True, False]
