"""Candidate generation against straightforward dense reference computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from setlist.candidate_sources import GLOBAL_COHORT, SourceQuery
from setlist.candidates import CandidateIndex, _rank01, _rank_among


def _index(seed: int = 0, items: int = 400, users: int = 30) -> CandidateIndex:
    rng = np.random.default_rng(seed)
    dense = rng.random((items, items)) * (rng.random((items, items)) < 0.03)
    dense[3, :] = 0.0  # an item never co-visited with anything
    return CandidateIndex(
        np.array([f"i{n}" for n in range(items)]),
        rng.integers(0, 4, items),
        ["a", "b", "c", "d"],
        np.array([f"u{n}" for n in range(users)]),
        rng.normal(size=(users, 8)),
        rng.normal(size=(items, 8)),
        sp.csr_matrix(dense.astype(np.float32)),
        {GLOBAL_COHORT: rng.permutation(items)},
    )


def _with_factors(
    index: CandidateIndex,
    users: np.ndarray | None = None,
    items: np.ndarray | None = None,
    cohorts: dict[str, np.ndarray] | None = None,
) -> CandidateIndex:
    """The same index with other user or item factors or popularity lists (built again: the search
    arrays and popularity ranks derive from them)."""
    return CandidateIndex(
        index.item_ids,
        index.item_genre,
        index.genres,
        index.user_ids,
        index.user_factors if users is None else users,
        index.item_factors if items is None else items,
        index.covis,
        index.cohorts if cohorts is None else cohorts,
    )


def _with_live(index: CandidateIndex, live: np.ndarray) -> CandidateIndex:
    """The same index offering only the ``live`` items (a catalogue that turns over)."""
    return CandidateIndex(
        index.item_ids,
        index.item_genre,
        index.genres,
        index.user_ids,
        index.user_factors,
        index.item_factors,
        index.covis,
        index.cohorts,
        live=live,
    )


def test_session_covisitation_scores_equal_the_dense_row_sums():
    index = _index()
    rng = np.random.default_rng(1)
    for _ in range(50):
        rows = sorted(set(rng.integers(0, len(index.item_ids), rng.integers(1, 6)).tolist()))
        cols, sums = index._covis_scores(rows)
        dense = np.asarray(index.covis[rows].toarray().sum(axis=0)).ravel()
        assert np.array_equal(cols, np.flatnonzero(dense))
        np.testing.assert_allclose(sums, dense[cols], rtol=1e-6)
    assert len(index._covis_scores([3])[0]) == 0


def test_candidates_carry_the_covisitation_score_of_each_item():
    index = _index()
    last = ["i5", "i17", "i3"]
    c = index.generate("u2", last, GLOBAL_COHORT, set(), 120, genres=("b",))
    dense = np.asarray(index.covis[[5, 17, 3]].toarray().sum(axis=0)).ravel()
    np.testing.assert_allclose(c.covis_score, dense[c.idx], rtol=1e-6)
    assert (c.covis_score > 0).any() and (c.covis_score == 0).any()
    assert len(set(c.idx.tolist())) == len(c.idx) <= 120


def test_dropping_items_from_a_sorted_candidate_list_matches_isin():
    from setlist.candidates import _absent

    rng = np.random.default_rng(0)
    for _ in range(500):
        idx = np.unique(rng.integers(0, 200, rng.integers(0, 50)))
        drop = rng.integers(0, 220, rng.integers(0, 30))  # duplicates and items outside the list too
        np.testing.assert_array_equal(_absent(idx, drop), ~np.isin(idx, drop))


def test_membership_of_a_few_items_matches_isin():
    from setlist.candidates import _member

    rng = np.random.default_rng(1)
    for _ in range(500):
        idx = rng.permutation(np.unique(rng.integers(0, 200, rng.integers(0, 60))))
        few = rng.integers(0, 220, rng.integers(0, 8))  # any order, duplicates, items outside the list
        np.testing.assert_array_equal(_member(idx, few), np.isin(idx, few))


def test_top_stable_is_the_head_of_a_full_stable_sort():
    from setlist.candidate_sources import top_stable

    rng = np.random.default_rng(2)
    for _ in range(300):
        m = int(rng.integers(0, 60))
        # few distinct values, so ties straddle the cut
        scores = rng.integers(-3, 4, m).astype(np.float32) / 2
        for n in (0, 1, int(rng.integers(0, m + 1)), m, m + 5):
            np.testing.assert_array_equal(top_stable(scores, n), np.argsort(-scores, kind="stable")[:n])


def test_summing_by_sort_and_by_count_over_the_catalog_agree():
    from setlist.candidate_sources import sum_by_column

    rng = np.random.default_rng(3)
    for _ in range(100):
        cols = rng.integers(0, 50, rng.integers(0, 40))
        values = rng.integers(-2, 3, len(cols)).astype(np.float32)  # sums of exactly zero are dropped
        dense = np.bincount(cols, weights=values, minlength=50)
        by_sort = sum_by_column(cols, values, 10_000)  # few entries for the width: sorted
        by_count = sum_by_column(cols, values, 50)  # many: counted over every column
        for got_cols, got_sums in (by_sort, by_count):
            np.testing.assert_array_equal(got_cols, np.flatnonzero(dense))
            np.testing.assert_array_equal(got_sums, dense[got_cols].astype(np.float32))


def test_neighbour_scores_equal_the_dense_row_sums_for_short_and_long_histories():
    items = 3_000
    rng = np.random.default_rng(4)
    knn = sp.random(items, items, density=0.004, random_state=5, format="csr", dtype=np.float32)
    knn.data -= 0.5  # EASE keeps negative weights too
    index = _index()
    index.knn = knn
    for size in (1, 3, 40, 600):  # a short history is summed by a sort, a long one over the catalog
        rows = np.unique(rng.integers(0, items, size))
        cols, sums = index._knn_scores(rows)
        dense = np.asarray(knn[rows].toarray().sum(axis=0)).ravel()
        np.testing.assert_array_equal(cols, np.flatnonzero(dense))
        np.testing.assert_allclose(sums, dense[cols], rtol=1e-5, atol=1e-6)
    assert len(index._knn_scores(np.zeros(0, np.int64))[0]) == 0


def test_exact_embedding_search_returns_the_true_top_n():
    index = _index(seed=3)
    for u in range(len(index.user_ids)):
        uvec = index.user_factors[u]
        idx, scores = index._embedding_top(uvec, 50)
        full = index.item_factors @ uvec
        assert sorted(idx.tolist()) == sorted(np.argsort(-full, kind="stable")[:50].tolist())
        np.testing.assert_allclose(scores, full[idx], rtol=1e-6)
    assert len(index._embedding_top(index.user_factors[0], 10_000)[0]) == len(index.item_ids)


def test_search_with_builds_an_hnsw_index_only_above_the_exact_limit():
    index = _index(seed=4)
    assert index._ann is None  # never told: exact
    assert index.search_with(len(index.item_ids))._ann is None
    approx = index.search_with(len(index.item_ids) - 1)
    assert approx is index and index._ann is not None
    uvec = index.user_factors[0]
    idx, scores = index._embedding_top(uvec, 20)
    np.testing.assert_allclose(scores, index.item_factors[idx] @ uvec, rtol=1e-4)
    assert index.search_with(10_000)._ann is None  # back to exact when the limit rises


def test_exact_embedding_search_for_no_neighbours_is_empty():
    index = _index(seed=5)
    idx, scores = index._embedding_top(index.user_factors[0], 0)
    assert len(idx) == 0 and len(scores) == 0


def test_a_user_with_a_zero_embedding_gets_no_embedding_candidates():
    """ALS leaves a user with no positive interaction at zero: every item scores 0, and its "nearest
    items" would be an arbitrary slice of the catalogue."""
    index = _index(seed=6)
    users = index.user_factors.copy()
    users[2] = 0.0
    index = _with_factors(index, users=users)
    zero = index.propose("embeddings", SourceQuery(user_id="u2"), 50)
    assert len(zero.idx) == 0
    other = index.propose("embeddings", SourceQuery(user_id="u1"), 50)
    assert len(other.idx) == 50
    c = index.generate("u2", [], GLOBAL_COHORT, set(), 40)
    # popularity takes the embeddings' share, as for a user the index does not know
    assert not c.emb_score.any()
    assert c.idx.tolist() == index.cohorts[GLOBAL_COHORT][:40].tolist()


def test_items_with_zero_factors_are_left_out_of_the_embedding_search():
    """They score 0 for everyone: which of them a search reached would be down to tie-breaking."""
    index = _index(seed=8)
    factors = index.item_factors.copy()
    factors[[5, 17, 200]] = 0.0
    index = _with_factors(index, items=factors)
    uvec = index.user_factors[0]
    everything, scores = index._embedding_top(uvec, 10_000)
    assert sorted(everything.tolist()) == sorted(set(range(len(index.item_ids))) - {5, 17, 200})
    np.testing.assert_allclose(scores, index.item_factors[everything] @ uvec, rtol=1e-5, atol=1e-6)
    full = index.item_factors @ uvec
    full[[5, 17, 200]] = -np.inf
    top, _ = index._embedding_top(uvec, 30)
    assert sorted(top.tolist()) == sorted(np.argsort(-full, kind="stable")[:30].tolist())
    approx = index.search_with(10)  # the HNSW index maps its positions back to catalogue indices
    found, found_scores = approx._embedding_top(uvec, 30)
    assert not {5, 17, 200} & set(found.tolist())
    np.testing.assert_allclose(found_scores, index.item_factors[found] @ uvec, rtol=1e-4, atol=1e-5)


def test_the_als_baseline_leaves_a_user_with_a_zero_embedding_to_popularity():
    from training.evaluate import als_baseline, top_unseen

    index = _index(seed=9)
    factors = index.user_factors.copy()
    factors[4] = 0.0
    index = _with_factors(index, users=factors)
    rank = als_baseline(index)
    drop = np.array([0, 1], np.int64)
    assert rank(4, drop, GLOBAL_COHORT) is None  # evaluate falls back to popularity, as for an unknown user
    assert rank(None, drop, GLOBAL_COHORT) is None
    ranked = rank(3, drop, GLOBAL_COHORT)
    assert ranked is not None
    assert ranked.tolist() == top_unseen(index.item_factors @ index.user_factors[3], drop).tolist()


def test_an_index_with_live_items_proposes_only_those_and_keeps_them_through_save(tmp_path):
    plain = _index()
    live = np.zeros(len(plain.item_ids), bool)
    live[::3] = True
    index = _with_live(plain, live)
    for user, last, personalized in (("u1", ["i4", "i7"], True), ("u2", [], True), (None, [], False)):
        before = plain.generate(user, last, GLOBAL_COHORT, set(), 60, personalized)
        after = index.generate(user, last, GLOBAL_COHORT, set(), 60, personalized)
        assert len(after.idx) == 60 and live[after.idx].all(), "the pool is filled from the live items"
        assert not live[before.idx].all(), "the test means something only if the plain index proposes dead items"
    for source in ("embeddings", "cohort_popularity", "covisitation"):
        proposed = index.propose(source, SourceQuery("u1", ("i4", "i7"), GLOBAL_COHORT, ()), 30)
        assert live[proposed.idx].all()
    index.save(tmp_path / "index")
    loaded = CandidateIndex.load(tmp_path / "index")
    assert loaded.live is not None and np.array_equal(loaded.live, live)
    plain.save(tmp_path / "plain")
    assert CandidateIndex.load(tmp_path / "plain").live is None


def test_the_evaluation_leaves_out_dead_items_for_popularity_and_the_baselines():
    from training.evaluate import _dropped

    plain = _index()
    live = np.arange(len(plain.item_ids)) % 2 == 0
    index = _with_live(plain, live)
    assert set(_dropped(index, 0, {0, 1})) == {0} | set(np.flatnonzero(~live))
    assert set(_dropped(plain, 0, {0, 1})) == {0, 1}
    assert live[index.popularity(GLOBAL_COHORT)].all()


def test_the_choice_to_keep_the_sessions_items_is_saved_with_the_index(tmp_path):
    import json

    index = _index()
    assert index.excluded(["i4", "i7"], ["i9", "no-such-item"]) == {4, 7, 9}
    index.exclude_recent = False
    assert index.excluded(["i4", "i7"], ["i9"]) == {9}  # what was blocked or asked for stays out
    index.save(tmp_path / "keep")
    assert CandidateIndex.load(tmp_path / "keep").exclude_recent is False
    # an index trained before the choice was made left the session's items out
    meta = json.loads((tmp_path / "keep" / "meta.json").read_text())
    del meta["exclude_recent"]
    (tmp_path / "keep" / "meta.json").write_text(json.dumps(meta))
    assert CandidateIndex.load(tmp_path / "keep").exclude_recent is True


def test_a_cohort_training_did_not_keep_takes_the_nearest_one_it_did():
    # an import whose profiles gave countries and no devices keeps "gb|unknown"; a device-only log "unknown|tv"
    index = _index(seed=7)
    n = len(index.item_ids)
    lists = {key: np.roll(np.arange(n), k + 1) for k, key in enumerate(["gb|unknown", "unknown|tv", "en_US|mobile"])}
    index = _with_factors(index, cohorts={**index.cohorts, **lists})
    for asked, kept in [
        ("en_US|mobile", "en_US|mobile"),  # kept as asked
        ("gb|mobile", "gb|unknown"),  # the locale on any device
        ("en_GB|mobile", "gb|unknown"),  # the locale's country
        ("pt-GB|unknown", "gb|unknown"),
        ("de|tv", "unknown|tv"),  # the device in any locale
        ("de|mobile", GLOBAL_COHORT),  # nothing nearer: everyone's
        ("unknown|unknown", GLOBAL_COHORT),
    ]:
        assert index.kept_cohort(asked) == kept, asked
        assert index.popularity(asked) is index.cohorts[kept]
    # a cold user's answer is the kept cohort's list
    c = index.generate(None, [], "en_GB|tablet", set(), 30)
    assert c.idx.tolist() == lists["gb|unknown"][:30].tolist()


def test_a_callers_slate_is_described_as_the_index_describes_its_own_candidates():
    index = _index()
    rng = np.random.default_rng(4)
    for user, last, genres in (("u2", ["i5", "i17"], ("b",)), ("u9", [], ()), ("newcomer", ["i8"], ("", "c"))):
        own = index.generate(user, last, GLOBAL_COHORT, set(), 120, genres=genres)
        shuffled = rng.permutation(own.idx)  # the caller's order, kept
        slate = index.rescore(user, last, GLOBAL_COHORT, shuffled, 120, genres=genres)
        order = np.argsort(shuffled)
        back = np.argsort(own.idx)
        assert np.array_equal(slate.idx, shuffled)
        for field in ("emb_score", "covis_score", "n_sources", "pop_rank"):
            np.testing.assert_allclose(getattr(slate, field)[order], getattr(own, field)[back], rtol=1e-6)
        np.testing.assert_allclose(slate.knn()[order], own.knn()[back], rtol=1e-6)


@pytest.mark.parametrize("left_out", [set(), {5, 17, 42, 99, 160, 230}])
def test_a_few_of_the_index_candidates_as_a_slate_get_the_same_cross_features(left_out: set[int]):
    index = _index()
    own = index.generate("u2", ["i5", "i17"], GLOBAL_COHORT, left_out, 120, genres=("b",))
    worst = own.idx[-6:][::-1]  # the tail of the index's own list, sent back in another order
    slate = index.rescore("u2", ["i5", "i17"], GLOBAL_COHORT, worst, 120, genres=("b",), exclude=left_out)
    args = (np.arange(4, dtype=np.float32), "a", "b", ["i5", "i17"])
    mine = index.cross_features(slate, *args)
    theirs = index.cross_features(own, *args)[[int(np.flatnonzero(own.idx == i)[0]) for i in worst]]
    np.testing.assert_allclose(mine, theirs, rtol=1e-6)
    assert mine[:, 9:11].min() > 0.5  # ranked near the bottom of the index's list, not 0 to 1 among six


def test_slate_items_no_source_proposes_have_no_sources_and_their_own_scores():
    index = _index()
    pools, _, _ = index._pools(index._ask(SourceQuery("u2", ("i5",), GLOBAL_COHORT, ())), 40, ())
    outside = np.setdiff1d(np.arange(len(index.item_ids)), np.concatenate(pools))[:25]
    assert len(outside) == 25
    slate = index.rescore("u2", ["i5"], GLOBAL_COHORT, outside, 40)
    assert slate.personalized and np.array_equal(slate.idx, outside)
    assert (slate.n_sources == 0).all()
    uidx = index.user_index["u2"]
    np.testing.assert_allclose(slate.emb_score, index.item_factors[outside] @ index.user_factors[uidx], rtol=1e-5)
    dense = np.asarray(index.covis[[5]].toarray().sum(axis=0)).ravel()
    np.testing.assert_allclose(slate.covis_score, dense[outside], rtol=1e-6)


def test_a_slate_without_personalization_comes_in_cohort_popularity_order():
    index = _index()
    items = np.array([7, 300, 12, 41, 99])
    slate = index.rescore("u2", ["i5"], GLOBAL_COHORT, items, 40, personalized=False)
    assert not slate.personalized
    assert sorted(slate.idx.tolist()) == sorted(items.tolist())
    assert np.all(np.diff(slate.pop_rank) >= 0)
    unknown = index.rescore("nobody", [], GLOBAL_COHORT, items, 40)  # a cold start: popularity too
    assert not unknown.personalized and np.array_equal(unknown.idx, slate.idx)


def test_an_outside_items_rank_places_it_after_every_candidate_scoring_at_least_as_high():
    own_idx = np.array([40, 10, 30, 20, 50])
    own = np.array([0.9, 0.5, 0.5, 0.2, 0.0], np.float32)
    np.testing.assert_allclose(_rank_among(own_idx[::-1], own[::-1], own_idx, own), _rank01(own)[::-1])
    outside = np.array([1, 2, 3, 4])
    ranks = _rank_among(outside, np.array([2.0, 0.5, 0.1, -1.0], np.float32), own_idx, own)
    np.testing.assert_allclose(ranks, [0.0, 0.75, 1.0, 1.0])  # above all; after both 0.5s; after 0.2; below all
