"""EASE (Steck, 2019): a closed-form item-item linear model, as a baseline and as a candidate source.

B = I − P·diag(1/diag(P)), with P = (XᵀX + λI)⁻¹ and X the binary user × item matrix; a user's
scores are x_u·B. It needs a dense item × item matrix, so a larger catalogue gets it over its
``SETLIST_EASE_MAX_ITEMS`` most interacted items (where nearly all interactions are), and the rest of
the catalogue is left to the other candidate sources. On sparse explicit-ratings logs it is far
stronger than untuned ALS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

#: the fit's peak per pair of items covered (measured: a float64 matrix inverted in place, and the
#: float32 weights); it comes on top of what training holds for the events
BYTES_PER_PAIR = 19

#: weights kept for the candidate source in all (the dense B is too big to ship for large catalogs);
#: each item keeps at least ``MIN_NEIGHBOURS``, small catalogs keep every weight, so that the
#: served score is EASE's own
NEIGHBOUR_BUDGET = 2_000_000
MIN_NEIGHBOURS = 100


def fit_ease(interactions: sp.csr_matrix, lam: float) -> np.ndarray:
    """The dense item × item weights B (float32) for a user × item matrix of interactions."""
    x = interactions.copy().tocsr()
    x.data[:] = 1.0
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    # in place, so that the fit holds one float64 item × item matrix (8 bytes a pair) at a time
    # rather than four: 10,000 items are 0.8 GB each
    p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    del gram
    p /= -np.diag(p).copy()
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32)


def top_neighbours(b: np.ndarray, top: int | None = None) -> sp.csr_matrix:
    """Each item's ``top`` strongest weights by magnitude (default: from the budget), as a sparse
    item × item matrix. Negative weights are kept: EASE learns "users of A avoid B" as much as the
    opposite, and dropping them skews the score towards items with many neighbours."""
    n = b.shape[0]
    if top is None:
        top = max(MIN_NEIGHBOURS, NEIGHBOUR_BUDGET // max(n, 1))
    k = min(top, max(n - 1, 1))
    if n == 0:
        return sp.csr_matrix((0, 0), dtype=np.float32)
    cols = np.argpartition(-np.abs(b), k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(b, cols, axis=1)
    keep = vals != 0
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, n), dtype=np.float32)


@dataclass(frozen=True)
class Ease:
    """EASE over part of a catalogue: ``items`` are the catalogue positions it covers (ascending),
    ``weights`` their dense ``len(items)`` × ``len(items)`` B."""

    items: np.ndarray
    weights: np.ndarray
    catalogue: int
    #: catalogue items anyone interacted with (all of them when not said)
    touched: int | None = None
    #: neighbours each item keeps for the candidate source (``top_neighbours``' default when not said)
    per_item: int | None = None

    @property
    def covers_all(self) -> bool:
        """Whether every item anyone interacted with is covered (of the others EASE has nothing to say)."""
        return len(self.items) == (self.catalogue if self.touched is None else self.touched)

    def neighbours(self) -> sp.csr_matrix:
        """``top_neighbours`` in catalogue positions (catalogue × catalogue)."""
        m = top_neighbours(self.weights, self.per_item).tocoo()
        return sp.csr_matrix(
            (m.data, (self.items[m.row], self.items[m.col])), shape=(self.catalogue, self.catalogue), dtype=np.float32
        )

    def scores(self, history: np.ndarray) -> np.ndarray | None:
        """A user's score for every catalogue item (−inf outside the covered items) from the
        catalogue positions they interacted with; None when none of them is covered."""
        at = np.searchsorted(self.items, history)
        inside = at[(at < len(self.items)) & (self.items[np.minimum(at, len(self.items) - 1)] == history)]
        if not len(inside):
            return None
        out = np.full(self.catalogue, -np.inf)
        out[self.items] = self.weights[inside].sum(axis=0)
        return out


def fit_ease_head(interactions: sp.csr_matrix, lam: float, max_items: int) -> Ease | None:
    """EASE over the ``max_items`` items with the most users (every item with a user when they are no
    more); None when no item has one, or for ``max_items`` 0 (EASE turned off).

    An item nobody interacted with is a zero column: its weights are zero whether it is fitted or not,
    and fitting it only made the solve as large as the catalogue (a catalogue of 15,000 events of which
    3,354 had attendees took 45 s a fit instead of 2)."""
    n = interactions.shape[1]
    if n == 0 or max_items <= 0:
        return None
    users_per_item = np.diff(interactions.tocsc().indptr)
    touched = np.flatnonzero(users_per_item)
    if not len(touched):
        return None
    items = touched
    if len(touched) > max_items:
        items = np.sort(touched[np.argsort(-users_per_item[touched], kind="stable")[:max_items]])
    # the neighbours kept per item stay the budget's share of the catalogue (up to the limit), as
    # when every item was fitted: the share of the touched items alone kept 596 of Kaggle's events'
    # neighbours instead of 200, and the candidate source's recall@100 fell from 0.477 to 0.444
    per_item = max(MIN_NEIGHBOURS, NEIGHBOUR_BUDGET // max(min(n, max_items), 1))
    return Ease(items, fit_ease(interactions[:, items], lam), n, len(touched), per_item)


def ease_peak_bytes(items: int) -> int:
    """What fitting EASE over ``items`` items takes at its peak."""
    return BYTES_PER_PAIR * items * items
