"""Each stage of Rank (serving.rank_stages) on a small hand-built context: no server, no Feast."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from serving import rank_stages as stages
from serving.types import RankQuery
from serving.user_features import UserRows
from setlist.blend import scorer
from setlist.candidate_sources import GLOBAL_COHORT, cohort_key
from setlist.candidates import CandidateIndex
from setlist.features import SESSION_GAP_S
from tests.contracts import COHORT, NOW, tiny_booster, tiny_index, tiny_request, tiny_variant


@pytest.fixture(scope="module")
def ctx(features) -> stages.RankContext:
    variant = tiny_variant(features, tiny_index(), tiny_booster(features, 20, 2.0))
    return stages.RankContext(tiny_request(), variant, stages.Inputs.of(features), 40)


def _rows(consent: bool = True, updated_ms: int | None = None) -> UserRows:
    session = {
        "session_id": "s",
        "session_last_items": ["i4"],
        "session_blocked_items": ["i7"],
        "session_genre": "rock",
        "session_length": 3,
        "session_skip_rate": 0.5,
        "session_updated_ms": int(NOW.timestamp() * 1000) if updated_ms is None else updated_ms,
    }
    return UserRows({"consent_personalization": consent}, {"user_top_genre": "jazz"}, session, "v1")


def test_request_excludes_recent_blocked_and_asked_for_items_and_reads_consent_and_arm():
    q = RankQuery("raw-id", 5, exclude_item_ids=("i30",))
    r = stages.request(q, "u3", _rows(), NOW, "mobile", "en_US", "model")
    assert r.exclude == ("i7", "i30") and r.last_items == ("i4",)  # the recent items: as the index says
    assert r.genres == ("rock", "jazz") and r.personal and r.k == 5
    assert not stages.request(q, "u3", _rows(consent=False), NOW, "mobile", "en_US", "model").personal
    assert not stages.request(q, "u3", _rows(), NOW, "mobile", "en_US", "popularity").personal


def test_request_reads_a_session_past_its_gap_as_over_but_keeps_its_recent_items():
    old = int(NOW.timestamp() * 1000) - (SESSION_GAP_S + 60) * 1000
    r = stages.request(RankQuery("raw-id", 5), "u3", _rows(updated_ms=old), NOW, "mobile", "en_US", "model")
    assert r.genres[0] == "" and r.last_items == ("i4",) and "i7" in r.exclude


def test_candidates_leave_out_the_excluded_and_respect_the_pool(ctx):
    c = stages.candidates(replace(ctx, request=tiny_request(exclude=("i0", "i1", "i2"))))
    ids = set(ctx.variant.bundle.index.item_ids[c.idx].tolist())
    assert c.personalized and 0 < len(c.idx) <= ctx.pool
    assert not ids & {"i0", "i1", "i2", "i4", "i9"}
    popular = stages.candidates(replace(ctx, request=tiny_request(personal=False)))
    assert not popular.personalized and ctx.cohort == COHORT
    np.testing.assert_array_equal(
        popular.idx,
        [
            i
            for i in ctx.variant.bundle.index.popularity(COHORT)
            if ctx.variant.bundle.index.item_ids[i] not in ("i4", "i9")
        ][:40],
    )


def test_the_sessions_own_items_are_candidates_where_the_index_keeps_them(ctx, features):
    # trained on a log whose sessions stay with their items (Reddit's posts): what the session
    # played may be offered again; what it blocked and what the client left out may not
    keeping = tiny_variant(features, tiny_index(exclude_recent=False), tiny_booster(features, 20, 2.0))
    keep = replace(ctx, variant=keeping, request=tiny_request(exclude=("i0",)))
    ids = set(keeping.bundle.index.item_ids[stages.candidates(keep).idx].tolist())
    assert {"i4", "i9"} & ids and "i0" not in ids
    left_out = stages.candidates(replace(ctx, request=tiny_request(exclude=("i0",))))
    assert not {"i4", "i9", "i0"} & set(ctx.variant.bundle.index.item_ids[left_out.idx].tolist())


def test_features_place_every_block_in_the_models_columns(ctx):
    c = stages.candidates(ctx)
    X = stages.features(ctx, c)
    layout = ctx.variant.bundle.layout
    names = list(layout.names)
    assert X.shape == (len(c.idx), len(names)) and X.dtype == np.float32
    assert (X[:, names.index("user_plays_7d")] == 3.0).all()
    assert np.isnan(X[:, names.index("user_plays_30d")]).all()  # absent from the profile row
    assert (X[:, names.index("session_length")] == 2).all()
    item_cols = [names.index(n) for n in ctx.variant.items.names]
    np.testing.assert_array_equal(X[:, item_cols], ctx.variant.items.matrix[c.idx])
    np.testing.assert_array_equal(X[:, names.index("x_embedding_score")], c.emb_score)
    hour = X[:, names.index("ctx_hour_sin")]
    assert np.allclose(hour, hour[0]) and X[0, names.index("ctx_device_mobile")] == 1.0


def test_features_refuse_a_model_without_a_layout(ctx):
    bare = replace(ctx, variant=replace(ctx.variant, bundle=replace(ctx.variant.bundle, layout=None)))
    with pytest.raises(RuntimeError, match="without a feature layout"):
        stages.features(bare, stages.candidates(bare))


def test_score_is_the_boosters_blended_scorer(ctx):
    X = stages.features(ctx, stages.candidates(ctx))
    np.testing.assert_array_equal(stages.score(ctx, X), scorer(ctx.variant.bundle.booster)(X))


def test_top_k_orders_by_score_and_keeps_candidate_order_on_ties():
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.5], np.float32)
    np.testing.assert_array_equal(stages.top_k(scores, 4), [3, 1, 2, 4])
    np.testing.assert_array_equal(stages.top_k(scores, 50), [3, 1, 2, 4, 0])
    assert len(stages.top_k(np.zeros(0, np.float32), 5)) == 0


def test_a_newcomers_slate_weaves_the_searched_genre_by_score_into_cohort_popularity():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], np.float32)
    in_genre = np.array([False, True, False, True, True, False])
    pop_rank = np.array([0.5, 0.1, 0.2, 0.0, 0.3, 0.0], np.float32)
    # genre items best by score (1, 3, 4) on every other slot from the first; the rest by cohort
    # popularity (5, 2, 0)
    np.testing.assert_array_equal(stages.top_k_newcomer(scores, in_genre, pop_rank, 4, 0.5), [1, 5, 3, 2])
    # the genre's share is a cap: at most ceil(0.25·4) = 1 of it while the rest lasts
    np.testing.assert_array_equal(stages.top_k_newcomer(scores, in_genre, pop_rank, 4, 0.25), [1, 5, 2, 0])
    # when the rest runs out the genre fills the slate, and the other way round
    np.testing.assert_array_equal(stages.top_k_newcomer(scores, in_genre, pop_rank, 6, 0.15), [1, 5, 2, 0, 3, 4])
    none = np.zeros(6, bool)
    np.testing.assert_array_equal(stages.top_k_newcomer(scores, none, pop_rank, 3, 0.5), [3, 5, 1])  # ties: the score
    assert len(stages.top_k_newcomer(np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0), 5, 0.3)) == 0


def test_a_user_with_no_profile_and_nothing_played_gets_the_woven_slate_others_the_models_order(ctx):
    index = ctx.variant.bundle.index
    new = replace(ctx, request=tiny_request(k=6, profile={}), new_user_genre_cap=0.5)
    c = stages.candidates(new)  # with the session's items: they steer, as for anyone
    top = stages.top_k(stages.score(new, stages.features(new, c)), 6)
    assert [i.item_id for i in stages.model_ranking(new, c)] == index.item_ids[c.idx[top]].tolist()
    new = replace(new, request=replace(new.request, last_items=()))  # searched "rock", nothing played yet
    scores = stages.score(new, stages.features(new, c))
    rock = index.item_genre[c.idx] == index.genre_index["rock"]
    assert 3 <= rock.sum() < len(c.idx) - 3  # both sides can fill their slots
    shown = [index.item_index[i.item_id] for i in stages.model_ranking(new, c)]
    pos = {int(i): n for n, i in enumerate(c.idx)}
    in_genre = [bool(rock[pos[i]]) for i in shown]
    assert in_genre == [True, False] * 3  # every other slot, the genre's first
    genre_best = [int(c.idx[j]) for j in np.argsort(-scores, kind="stable") if rock[j]][:3]
    assert shown[0::2] == genre_best  # the genre's items: the model's best
    others = [j for j in range(len(c.idx)) if not rock[j]]
    assert shown[1::2] == [int(c.idx[j]) for j in sorted(others, key=lambda j: (c.pop_rank[j], -scores[j]))][:3]
    known = replace(ctx, request=tiny_request(k=6), new_user_genre_cap=0.5)
    c = stages.candidates(known)
    top = stages.top_k(stages.score(known, stages.features(known, c)), 6)
    assert [i.item_id for i in stages.model_ranking(known, c)] == index.item_ids[c.idx[top]].tolist()


def test_explain_only_when_asked_and_one_reason_list_per_returned_item(ctx):
    c = stages.candidates(ctx)
    X = stages.features(ctx, c)
    top = stages.top_k(stages.score(ctx, X), 5)
    assert stages.explain(ctx, X, c, top) == [()] * 5
    why = stages.explain(replace(ctx, request=tiny_request(explain=True)), X, c, top)
    assert len(why) == 5 and all(w and all(isinstance(s, str) and s for s in w) for w in why)


def test_model_ranking_is_the_stages_in_order(ctx):
    c = stages.candidates(ctx)
    scores = stages.score(ctx, stages.features(ctx, c))
    top = stages.top_k(scores, ctx.request.k)
    items = stages.model_ranking(ctx, c)
    assert [i.item_id for i in items] == ctx.variant.bundle.index.item_ids[c.idx[top]].tolist()
    assert [i.score for i in items] == pytest.approx(scores[top].tolist())


def test_popularity_ranking_says_whose_popularity(ctx):
    local = replace(ctx, request=tiny_request(k=3, personal=False, explain=True))
    items = stages.popularity_ranking(local, stages.candidates(local))
    assert [i.score for i in items] == pytest.approx([1.0, 0.5, 1 / 3])
    assert items[0].reasons == ("popular with your region and device",)
    far = replace(local, request=replace(local.request, locale="xx_XX"))
    assert far.cohort not in far.variant.bundle.index.cohorts and far.cohort != GLOBAL_COHORT
    assert stages.popularity_ranking(far, stages.candidates(far))[0].reasons == ("popular with everyone",)


def test_row_vector_is_nan_where_a_value_is_missing():
    np.testing.assert_array_equal(
        stages.row_vector({"a": 1, "b": None}, ("a", "b", "c")), np.array([1, np.nan, np.nan], np.float32)
    )
    assert np.isnan(stages.row_vector(None, ("a", "b"))).all()


def test_the_request_block_is_computed_once_per_device_hour_and_weekday(ctx, monkeypatch):
    inputs = stages.Inputs.of(ctx.inputs.features)
    row = inputs.request_row("mobile", 21, 5)
    np.testing.assert_array_equal(row, np.asarray(inputs.features.request_values("mobile", 21, 5), np.float32))
    assert inputs.request_row("mobile", 21, 5) is row and not row.flags.writeable
    other = inputs.request_row("desktop", 9, 1)
    np.testing.assert_array_equal(other, np.asarray(inputs.features.request_values("desktop", 9, 1), np.float32))
    monkeypatch.setattr(stages, "REQUEST_ROWS_MAX", 2)  # full: emptied rather than grown
    inputs.request_row("tv", 0, 0)
    assert len(inputs._request_rows) == 1


def test_a_cold_start_from_a_nearer_cohort_says_which(features):
    # training kept the request's locale on no device only (an import whose profiles gave countries)
    base = tiny_index()
    cohorts = dict(base.cohorts)
    kept = cohort_key(tiny_request().locale, "unknown")
    cohorts[kept] = cohorts.pop(cohort_key(tiny_request().locale, tiny_request().device))
    index = CandidateIndex(
        base.item_ids, base.item_genre, base.genres, base.user_ids, base.user_factors, base.item_factors,
        base.covis, cohorts, seen=base.seen, knn=base.knn,
    )  # fmt: skip
    variant = tiny_variant(features, index, tiny_booster(features, 20, 2.0))
    request = tiny_request(k=3, personal=False, explain=True)
    local = stages.RankContext(request, variant, stages.Inputs.of(features), 40)
    items = stages.popularity_ranking(local, stages.candidates(local))
    assert items[0].reasons == ("popular with your region",)
    assert [i.item_id for i in items] == index.item_ids[cohorts[kept][:3]].tolist()


def test_a_slate_in_popularity_order_says_which_items_are_outside_the_cohorts_list(features):
    # a real catalogue outgrows the cohort's list (training keeps its head): a slate may reach past it
    base = tiny_index()
    key = cohort_key(tiny_request().locale, tiny_request().device)
    cohorts = {**base.cohorts, key: base.cohorts[key][:3]}
    index = CandidateIndex(
        base.item_ids, base.item_genre, base.genres, base.user_ids, base.user_factors, base.item_factors,
        base.covis, cohorts, seen=base.seen, knn=base.knn,
    )  # fmt: skip
    variant = tiny_variant(features, index, tiny_booster(features, 20, 2.0))
    inside, outside = index.item_ids[cohorts[key][[2, 0]]].tolist(), index.item_ids[cohorts[key][-1] + 1 :][:2].tolist()
    assert not set(outside) & set(index.item_ids[cohorts[key]].tolist())
    request = replace(
        tiny_request(k=4, personal=False, explain=True), slate=(outside[0], inside[0], outside[1], inside[1])
    )
    local = stages.RankContext(request, variant, stages.Inputs.of(features), 40)
    items = stages.popularity_ranking(local, stages.candidates(local))
    assert [i.item_id for i in items] == [inside[1], inside[0], *outside]  # the list's order, then the caller's
    assert [i.reasons for i in items] == [("popular with your region and device",)] * 2 + [
        ("not among what is popular with your region and device",)
    ] * 2
    plain = stages.popularity_ranking(replace(local, request=replace(request, explain=False)), stages.candidates(local))
    assert [i.item_id for i in plain] == [i.item_id for i in items] and all(i.reasons == () for i in plain)


def test_the_request_block_is_computed_on_the_clock_the_model_was_trained_on(ctx, features):
    # NOW is Monday 20:30 UTC: 02:00 on Tuesday in Kolkata, where a model trained there learned its hours
    names = ctx.variant.bundle.layout.names
    request = [n for n in features.inputs("request") if n in names]
    assert request  # the built-in ranker reads the hour and the weekend
    c = stages.candidates(ctx)

    def block(zone) -> dict[str, float]:
        local = replace(ctx, variant=replace(ctx.variant, bundle=replace(ctx.variant.bundle, zone=zone)))
        X = stages.features(local, c)
        assert np.all(X[:, [names.index(n) for n in request]] == X[0, [names.index(n) for n in request]])
        return {n: float(X[0, names.index(n)]) for n in request}

    def expected(hour: int, weekday: int) -> dict[str, float]:
        values = dict(zip(features.inputs("request"), features.request_values(ctx.request.device, hour, weekday)))
        return {n: pytest.approx(values[n], abs=1e-6) for n in request}

    assert ctx.variant.bundle.zone is UTC
    assert block(UTC) == expected(20, 0)
    assert block(ZoneInfo("Asia/Kolkata")) == expected(2, 1)
    assert block(ZoneInfo("Asia/Kolkata")) != block(UTC)
