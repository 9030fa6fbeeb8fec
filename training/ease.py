"""EASE (Steck, 2019): a closed-form item-item linear model, as a baseline and as a candidate source.

B = I − P·diag(1/diag(P)), with P = (XᵀX + λI)⁻¹ and X the binary user × item matrix; a user's
scores are x_u·B. It needs a dense item × item matrix, so it runs only up to a catalog size set by
``SETLIST_EASE_MAX_ITEMS``. On sparse explicit-ratings logs it is far stronger than untuned ALS.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
    p = np.linalg.inv(gram)
    b = p / (-np.diag(p))
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


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
