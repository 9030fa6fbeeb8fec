"""EASE over the most interacted items of a catalogue larger than SETLIST_EASE_MAX_ITEMS."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from training.ease import fit_ease, fit_ease_head, top_neighbours
from training.evaluate import ease_baseline


def _interactions(seed: int = 0, users: int = 300, items: int = 60) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    # a long tail: item k is taken with a probability falling with k, then the columns shuffled so
    # that the most taken items are not simply the first ones
    p = 0.6 / (1 + np.arange(items)) ** 0.7
    x = (rng.uniform(size=(users, items)) < p).astype(np.float32)
    return sp.csr_matrix(x[:, rng.permutation(items)])


def test_a_catalogue_within_the_limit_gets_ease_over_every_item():
    x = _interactions()
    ease = fit_ease_head(x, 5.0, max_items=60)
    assert ease is not None and ease.covers_all
    np.testing.assert_array_equal(ease.items, np.arange(60))
    np.testing.assert_array_equal(ease.weights, fit_ease(x, 5.0))
    assert (ease.neighbours() != top_neighbours(fit_ease(x, 5.0))).nnz == 0


def test_a_larger_catalogue_gets_ease_over_its_items_with_the_most_users():
    x = _interactions()
    ease = fit_ease_head(x, 5.0, max_items=20)
    assert ease is not None and not ease.covers_all and ease.catalogue == 60
    users_per_item = np.asarray((x > 0).sum(axis=0)).ravel()
    assert set(ease.items) == set(np.argsort(-users_per_item, kind="stable")[:20])
    np.testing.assert_array_equal(ease.weights, fit_ease(x[:, ease.items], 5.0))
    # neighbours and scores are in catalogue positions, and only among the covered items
    knn = ease.neighbours()
    assert knn.shape == (60, 60) and knn.nnz > 0
    rows, cols = knn.nonzero()
    assert set(rows) <= set(ease.items) and set(cols) <= set(ease.items)
    outside = np.setdiff1d(np.arange(60), ease.items)
    history = np.array([ease.items[0], ease.items[3], outside[0]])
    scores = ease.scores(history)
    assert scores is not None and np.isneginf(scores[outside]).all()
    np.testing.assert_allclose(scores[ease.items], ease.weights[[0, 3]].sum(axis=0), rtol=1e-6)
    assert ease.scores(outside[:3]) is None  # nothing covered: the baseline falls back


def test_the_ease_baseline_ranks_only_covered_items_and_leaves_out_the_dropped():
    x = _interactions(seed=1)
    ease = fit_ease_head(x, 5.0, max_items=25)
    assert ease is not None
    rank = ease_baseline(ease, x)
    user = int(np.argmax(np.diff(x.indptr)))
    seen = x.indices[x.indptr[user] : x.indptr[user + 1]]
    top = rank(user, seen, "global")
    assert top is not None and len(top) and set(top) <= set(ease.items) - set(seen)
    scores = ease.scores(seen)
    assert scores is not None
    assert (np.diff(scores[top]) <= 0).all()  # best first


def test_ease_can_be_turned_off():
    assert fit_ease_head(_interactions(), 5.0, max_items=0) is None


def test_items_nobody_interacted_with_are_left_out_of_the_fit_and_never_recommended():
    # an items file describing far more than the log touches (Kaggle's events.csv): their columns are
    # zero, so fitting them changes no weight, only the size of the solve
    x = _interactions(seed=2)
    wide = sp.hstack([x, sp.csr_matrix((x.shape[0], 40), dtype=np.float32)]).tocsr()
    ease = fit_ease_head(wide, 5.0, max_items=1_000)
    assert ease is not None and ease.catalogue == 100 and ease.touched == 60 and ease.covers_all
    np.testing.assert_array_equal(ease.items, np.arange(60))
    np.testing.assert_allclose(ease.weights, fit_ease(x, 5.0), rtol=1e-5, atol=1e-7)
    scores = ease.scores(np.array([0, 1]))
    assert scores is not None and np.isneginf(scores[60:]).all()
    # the head is taken among the touched items
    head = fit_ease_head(wide, 5.0, max_items=10)
    assert head is not None and not head.covers_all and set(head.items) <= set(range(60)) and len(head.items) == 10
    assert fit_ease_head(sp.csr_matrix((5, 8), dtype=np.float32), 5.0, max_items=10) is None


def test_each_item_keeps_the_catalogues_share_of_neighbours_not_the_touched_items(monkeypatch):
    # fitting only the touched items must not widen each item's neighbour list: Kaggle's events kept
    # 596 instead of 200, and the candidate source's recall fell
    import training.ease as ease_module

    monkeypatch.setattr(ease_module, "NEIGHBOUR_BUDGET", 600)
    monkeypatch.setattr(ease_module, "MIN_NEIGHBOURS", 5)
    x = _interactions(seed=3)
    wide = sp.hstack([x, sp.csr_matrix((x.shape[0], 40), dtype=np.float32)]).tocsr()
    ease = fit_ease_head(wide, 5.0, max_items=1_000)
    assert ease is not None and ease.per_item == 600 // 100
    per_row = np.diff(ease.neighbours().indptr)
    assert per_row.max() == 6 and per_row[60:].sum() == 0
