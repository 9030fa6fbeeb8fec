"""Each user's nearest items found once (``setlist.embedding_top``): the table answers the embedding
source exactly as the search per request does, best first, with the seen items on top where those
are left out; a pool larger than the table falls back to the search; the table is skipped over its
memory budget and above the exact-search limit; and it survives save and load, memory-mapped."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from setlist.candidate_sources import GLOBAL_COHORT, SourceQuery
from setlist.candidates import CandidateIndex
from setlist.embedding_top import EmbeddingTop, item_dtype

ITEMS, USERS = 600, 40


def _index(exclude_seen: bool = False, seed: int = 0) -> CandidateIndex:
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(USERS, 8))
    users[[4, 9]] = 0.0  # no embedding learned: the source proposes nothing for them
    items = rng.normal(size=(ITEMS, 8))
    items[[7, 70, 300]] = 0.0  # never searched
    seen = sp.random(USERS, ITEMS, density=0.05, random_state=seed, format="csr")
    seen.data = np.arange(1, len(seen.data) + 1, dtype=np.float64)  # recency ranks, all in the profile
    return CandidateIndex(
        np.array([f"i{n}" for n in range(ITEMS)]),
        rng.integers(0, 3, ITEMS),
        ["a", "b", "c"],
        np.array([f"u{n}" for n in range(USERS)]),
        users,
        items,
        sp.csr_matrix((ITEMS, ITEMS), dtype=np.float32),
        {GLOBAL_COHORT: rng.permutation(ITEMS)},
        seen=seen,
        exclude_seen=exclude_seen,
    )


def _embeddings(index: CandidateIndex, user: str, n: int) -> np.ndarray:
    """The embedding source's items for ``user``, in the order it proposes them."""
    return index._embeddings(index._ask(SourceQuery(user)), n).idx


def _searched(index: CandidateIndex, user: str, n: int) -> np.ndarray:
    top = index.embedding_top
    index.embedding_top = None
    try:
        return _embeddings(index, user, n)
    finally:
        index.embedding_top = top


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_the_table_answers_as_the_search_does_best_first(exclude_seen):
    index = _index(exclude_seen)
    note = index.precompute_embedding_top(50, 1 << 30)
    assert note.startswith("per-user nearest items precomputed for 38 users")
    for u in range(USERS):
        user = f"u{u}"
        for n in (50, 20):  # the pool it was found for, and any smaller one (a prefix)
            got, want = _embeddings(index, user, n), _searched(index, user, n)
            assert sorted(got.tolist()) == sorted(want.tolist())
            if len(got):
                scores = index.item_factors[got] @ index.user_factors[u]
                assert np.all(np.diff(scores) <= 1e-6)  # best first
        seen = len(index.history(u)[0])
        expected = 0 if u in (4, 9) else 50 + (seen if exclude_seen else 0)
        assert len(index.embedding_top.row(u)) == expected
        # generate's unscored path proposes the very same items, table or search
        for n in (50, 80):
            asked = index._ask(SourceQuery(user))
            np.testing.assert_array_equal(index._embedding_ids(asked, n), index._embeddings(asked, n).idx)
    proposal = index._embeddings(index._ask(SourceQuery("u1")), 50)  # scores as the search gives them
    np.testing.assert_allclose(proposal.score, index.item_factors[proposal.idx] @ index.user_factors[1], rtol=1e-5)


def test_a_larger_pool_than_the_tables_searches_and_a_small_catalogue_is_whole():
    index = _index()
    index.precompute_embedding_top(30, 1 << 30)
    got = _embeddings(index, "u2", 80)
    assert len(got) == 80 and sorted(got.tolist()) == sorted(_searched(index, "u2", 80).tolist())
    index.precompute_embedding_top(10_000, 1 << 30)  # more than there is: every searchable item, once
    row = index.embedding_top.row(2)
    assert len(row) == ITEMS - 3 and not {7, 70, 300} & set(row.tolist())
    assert len(_embeddings(index, "u2", 20_000)) == ITEMS - 3


def test_generate_is_unchanged_by_the_table():
    index = _index()
    before = [index.generate(f"u{u}", ["i1"], GLOBAL_COHORT, {5}, 120) for u in range(USERS)]
    index.precompute_embedding_top(120, 1 << 30)
    for u, was in enumerate(before):
        now = index.generate(f"u{u}", ["i1"], GLOBAL_COHORT, {5}, 120)
        assert sorted(now.idx.tolist()) == sorted(was.idx.tolist())
        np.testing.assert_allclose(
            now.emb_score[np.argsort(now.idx)], was.emb_score[np.argsort(was.idx)], rtol=1e-5, atol=1e-6
        )


def test_the_table_is_skipped_over_its_budget_off_at_zero_and_above_the_exact_limit():
    index = _index()
    assert "over SETLIST_EMBEDDING_TOP_MAX_MB" in index.precompute_embedding_top(50, 1000)
    assert index.embedding_top is None
    assert "SETLIST_EMBEDDING_TOP_MAX_MB=0" in index.precompute_embedding_top(50, 0)
    index.search_with(100)  # 600 items: HNSW
    assert "HNSW" in index.precompute_embedding_top(50, 1 << 30) and index.embedding_top is None


def test_the_table_survives_save_and_load_memory_mapped(tmp_path):
    index = _index(exclude_seen=True)
    index.precompute_embedding_top(40, 1 << 30)
    index.save(tmp_path / "index")
    loaded = CandidateIndex.load(tmp_path / "index")
    top = loaded.embedding_top
    assert top is not None and top.n == 40 and isinstance(top.items, np.memmap)
    assert top.items.dtype == np.uint16
    saved = index.embedding_top
    assert saved is not None
    assert np.array_equal(top.indptr, saved.indptr) and np.array_equal(top.items, saved.items)
    for u in range(USERS):
        assert np.array_equal(_embeddings(loaded, f"u{u}", 40), _embeddings(index, f"u{u}", 40))

    plain = _index()
    plain.save(tmp_path / "plain")  # no table: none at load, the search serves
    assert CandidateIndex.load(tmp_path / "plain").embedding_top is None


def test_item_ids_take_the_smallest_type_that_holds_the_catalogue():
    assert item_dtype(65_535) == np.uint16 and item_dtype(65_536) == np.int32
    assert EmbeddingTop.size(np.array([3, 0, 2]), 100) == 5 * 2 + 4 * 8


def test_small_batches_by_rows_times_length_give_the_same_table(monkeypatch):
    from setlist import embedding_top

    index = _index(exclude_seen=True)
    index.precompute_embedding_top(30, 1 << 30)
    whole = index.embedding_top
    monkeypatch.setattr(embedding_top, "BATCH_CELLS", 70)  # about two users a batch, one for the longest rows
    index.precompute_embedding_top(30, 1 << 30)
    assert whole is not None and index.embedding_top is not None
    assert np.array_equal(index.embedding_top.indptr, whole.indptr)
    for u in range(USERS):
        assert sorted(index.embedding_top.row(u).tolist()) == sorted(whole.row(u).tolist())


def test_an_index_whose_users_have_no_embedding_saves_an_empty_table(tmp_path):
    index = _index()
    index = CandidateIndex(
        index.item_ids,
        index.item_genre,
        index.genres,
        index.user_ids,
        np.zeros_like(index.user_factors),
        index.item_factors,
        index.covis,
        index.cohorts,
    )
    assert index.precompute_embedding_top(50, 1 << 30).startswith("per-user nearest items precomputed for 0 users")
    index.save(tmp_path / "index")
    loaded = CandidateIndex.load(tmp_path / "index")
    assert loaded.embedding_top is not None and len(loaded.embedding_top.items) == 0
    assert len(loaded.generate("u1", [], GLOBAL_COHORT, set(), 50).idx) == 50  # popularity takes the share
