"""Each known user's nearest items by the embeddings, found once when the model is registered.

The embedding source's answer depends only on the user's trained vector and history, never on the
request: searching 50,000 × 64 item factors for it on every cache-miss Rank cost ~0.6 ms of the
~1.6 ms candidate stage (measured at the bench's full scale, caches cold). Found for every user in
one batched search at training (seconds), it becomes one row of a table: a slice, ordered best
first, so that any prefix is the top of that length.

Rows are item indices of the catalogue in the smallest unsigned type that holds them (uint16 up to
65,535 items: 1 KB a user at a pool of 500), stored as ``.npy`` files and memory-mapped at load, so
the pages are read on first use and shared with the page cache. The table is only built where the
index searches exactly (``SETLIST_EXACT_SEARCH_MAX_ITEMS``) and when it fits
``SETLIST_EMBEDDING_TOP_MAX_MB``; otherwise Rank searches per request, as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INDPTR_FILE = "embedding_top_indptr.npy"
ITEMS_FILE = "embedding_top_items.npy"
#: users per batched search, and the most (users × row length) one batch may ask for: ~12 MB of
#: scores and ids, however long the longest rows (users with thousands of seen items) are
BATCH_USERS = 2048
BATCH_CELLS = 2048 * 500


def item_dtype(n_items: int) -> np.dtype:
    return np.dtype(np.uint16) if n_items <= np.iinfo(np.uint16).max else np.dtype(np.int32)


@dataclass(frozen=True)
class EmbeddingTop:
    """``items[indptr[u]:indptr[u + 1]]``: user ``u``'s nearest items, best first; empty for a user
    whose embedding is zero. ``n``: the pool it was found for (a row holds ``n`` plus the user's seen
    items when the index leaves those out, or the whole searchable catalogue if that is fewer)."""

    n: int
    indptr: np.ndarray
    items: np.ndarray

    def row(self, uidx: int) -> np.ndarray:
        return self.items[self.indptr[uidx] : self.indptr[uidx + 1]]

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.items.nbytes)

    @staticmethod
    def size(lengths: np.ndarray, n_items: int) -> int:
        """Bytes a table with rows of ``lengths`` would take."""
        return int(lengths.sum()) * item_dtype(n_items).itemsize + (len(lengths) + 1) * 8

    @classmethod
    def compute(
        cls,
        user_factors: np.ndarray,
        search_factors: np.ndarray,
        searched: np.ndarray,
        lengths: np.ndarray,
        n: int,
        n_items: int,
    ) -> EmbeddingTop:
        """Search ``search_factors`` (the items ``searched``, ascending catalogue indices) for each user's
        ``lengths[u]`` best items by inner product."""
        import faiss

        # a batch job: every core this process may use (a per-thread setting)
        faiss.omp_set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        lengths = np.minimum(np.asarray(lengths, np.int64), len(searched))
        rows: list[np.ndarray] = [np.zeros(0, np.int64)] * len(lengths)
        users = np.flatnonzero(lengths > 0)
        users = users[np.argsort(lengths[users], kind="stable")]  # so a batch's rows are alike in length
        start = 0
        while start < len(users):
            end = min(start + BATCH_USERS, len(users))
            end = min(end, start + max(1, BATCH_CELLS // int(lengths[users[end - 1]])))
            batch = users[start:end]
            query = np.ascontiguousarray(user_factors[batch], dtype=np.float32)
            _, found = faiss.knn(query, search_factors, int(lengths[batch[-1]]), metric=faiss.METRIC_INNER_PRODUCT)
            for row, u in zip(found, batch, strict=True):
                take = row[: lengths[u]]
                rows[u] = searched[take[take >= 0]]  # faiss pads with -1 what it could not rank (NaN factors)
            start = end
        indptr = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        items = np.concatenate(rows).astype(item_dtype(n_items)) if len(rows) else np.zeros(0, item_dtype(n_items))
        return cls(n, indptr, items)

    def save(self, path: Path) -> None:
        np.save(Path(path) / INDPTR_FILE, self.indptr)
        np.save(Path(path) / ITEMS_FILE, self.items)

    @classmethod
    def load(cls, path: Path, n: int) -> EmbeddingTop | None:
        """The saved table, memory-mapped; None if the index was saved without one."""
        path = Path(path)
        if not (path / INDPTR_FILE).exists():
            return None
        return cls(n, np.load(path / INDPTR_FILE, mmap_mode="r"), np.load(path / ITEMS_FILE, mmap_mode="r"))
