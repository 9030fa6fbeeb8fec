"""The candidate sources of ``CandidateIndex``, one method each (``CandidateSources``, which the
index mixes in), what a source is asked and answers, and the keys of the popularity lists.

Five sources: collaborative embeddings (exact inner product, or an HNSW index for catalogs above
``SETLIST_EXACT_SEARCH_MAX_ITEMS``), item neighbours of the user's history (EASE weights, where the
catalog is small enough to fit them), session co-visitation, popularity within the session's and the user's genres, and
popularity by cohort (locale × device), which is also the whole answer for cold-start users and users
without personalization consent. ``CandidateIndex.generate`` merges them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from setlist.embedding_top import EmbeddingTop

#: the most recent history items whose neighbours are summed per request (bounds the hot path)
HISTORY_LIMIT = 256
GLOBAL_COHORT = "*"


def _one_thread_faiss() -> Any:
    """faiss, held to one OpenMP thread in the calling thread: one query's search otherwise runs a
    team on every core that spins between calls (measured at 50,000 × 64 factors: 3.2 ms of CPU per
    search against 0.64 ms on one thread), and serving's parallelism comes from its workers. The
    setting is an OpenMP per-thread variable, so each calling thread sets it (about a microsecond)."""
    import faiss

    faiss.omp_set_num_threads(1)
    return faiss


def cohort_key(locale: str, device: str) -> str:
    return f"{locale or 'unknown'}|{device or 'unknown'}"


def nearer_cohorts(cohort: str) -> list[str]:
    """The cohorts to try, in order, for one training did not see: the locale on any device (an
    import whose profiles gave countries and no devices), the locale's country (a request's
    ``en_GB`` where those countries are ``gb``), then the device in any locale."""
    locale, _, device = cohort.partition("|")
    keys = [] if device == "unknown" else [cohort_key(locale, "unknown")]
    if len(parts := locale.replace("-", "_").split("_")) == 2 and (country := parts[1].lower()):
        keys += [cohort_key(country, device)] + ([] if device == "unknown" else [cohort_key(country, "unknown")])
    if locale != "unknown":
        keys.append(cohort_key("unknown", device))
    return keys


def genre_key(genre: str) -> str:
    return f"genre={genre}"


def top_stable(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest ``scores``, highest first and ties in position order: what
    ``np.argsort(-scores, kind="stable")[:n]`` gives, without sorting the whole array (a neighbour
    score spans tens of thousands of items on a long history, and only the first ``n`` are kept)."""
    m = len(scores)
    if n >= m:
        return np.argsort(-scores, kind="stable")
    if m <= 2 * n:  # keeping most of it: one sort is cheaper than the partition's five passes
        return np.argsort(-scores, kind="stable")[:n]
    if n <= 0:
        return np.zeros(0, np.int64)
    kth = np.partition(scores, m - n)[m - n]  # the n-th highest value
    above = np.flatnonzero(scores > kth)
    pick = np.concatenate([above, np.flatnonzero(scores == kth)[: n - len(above)]])
    pick.sort()  # position order, so the stable sort below breaks ties as the full one would
    return pick[np.argsort(-scores[pick], kind="stable")]


def gather_rows(m: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored (column, value) entries of ``rows`` of a CSR matrix, row after row, by its index
    pointers: scipy's fancy row indexing builds a whole new matrix, ~0.2 ms per Rank."""
    starts = m.indptr[rows]
    lengths = m.indptr[np.asarray(rows) + 1] - starts
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, m.indices.dtype), np.zeros(0, m.data.dtype)
    # each entry's offset: its row's start, plus its place within the row
    before = np.cumsum(lengths) - lengths
    at = np.repeat(starts - before, lengths) + np.arange(total)
    return m.indices[at], m.data[at]


def sum_by_column(cols: np.ndarray, values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``cols`` (ascending) and the sum of their ``values``, the zero sums left out.

    Few entries are grouped by a sort of themselves; many by a count over all ``width`` columns,
    which costs a pass over the catalog however few entries there are (the crossover measured at
    about an eighth of the catalog)."""
    if len(cols) * 8 < width:
        uniq, where = np.unique(cols, return_inverse=True)
        sums = np.bincount(where, weights=values, minlength=len(uniq))
    else:
        sums = np.bincount(cols, weights=values, minlength=width)
        uniq = np.flatnonzero(sums)
        sums = sums[uniq]
    keep = sums != 0
    return uniq[keep].astype(np.int64), sums[keep].astype(np.float32)


@dataclass(frozen=True)
class SourceQuery:
    """What a single source is asked (``CandidateIndex.propose``); ``generate`` asks them all."""

    user_id: str | None = None
    last_items: tuple[str, ...] = ()  # the session's most recent items, newest first
    cohort: str = GLOBAL_COHORT
    genres: tuple[str, ...] = ()


@dataclass(frozen=True)
class Proposal:
    """One source's answer: unique item indices and the source's own score of each (higher is
    better; sources score on different scales, so the merge counts sources rather than adding)."""

    idx: np.ndarray
    score: np.ndarray
    # every item the source scored (ascending) and its score: candidates read their feature here
    scored: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class _Asked:
    """A query resolved against the index once and shared by every source of a request."""

    uidx: int | None
    uvec: np.ndarray | None
    seen: np.ndarray  # every item the user interacted with
    recent: np.ndarray  # the history whose neighbours count
    last_idx: list[int]
    genres: tuple[str, ...]
    cohort: str


#: the candidate sources by name, each a method of ``CandidateSources`` (so of ``CandidateIndex``)
#: taking (``_Asked``, n)
SOURCES = {
    "embeddings": "_embeddings",
    "neighbours": "_neighbours",
    "covisitation": "_covisitation",
    "genre_popularity": "_genre_popularity",
    "cohort_popularity": "_cohort_popularity",
}


class CandidateSources:
    """The sources and the retrieval they share, as methods of ``CandidateIndex``, which holds the
    arrays below (see its constructor)."""

    item_factors: np.ndarray
    user_factors: np.ndarray
    embedded: np.ndarray  # per user: has a non-zero embedding
    item_index: dict[Any, int]
    user_index: dict[Any, int]
    covis: sp.csr_matrix
    cohorts: dict[str, np.ndarray]
    seen: sp.csr_matrix | None
    knn: sp.csr_matrix | None
    exclude_seen: bool
    live: np.ndarray | None  # items that may be proposed, where the catalogue turns over; None: all
    _ann: Any
    _searched: np.ndarray  # the items the embedding search covers (non-zero factors), ascending
    _search_factors: np.ndarray  # their factors, in that order
    embedding_top: EmbeddingTop | None  # each user's search, done once at training (or None)

    # --- retrieval ---------------------------------------------------------------------------
    def _build_ann(self):
        import faiss

        index = faiss.IndexHNSWFlat(self.item_factors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 256
        index.add(self._search_factors)
        return index

    def _embedding_top(self, uvec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items of highest inner product with ``uvec`` (in no particular order) and their
        scores: exact by faiss's brute-force search, which scans the factors once and keeps a heap
        (at 50,000 × 64 factors, 0.64 ms of CPU against 1.0–1.3 for NumPy's product and
        ``argpartition``, the same items), or through the HNSW index above the exact limit. Items with zero factors
        are never returned (``CandidateIndex``)."""
        faiss = _one_thread_faiss()
        query = np.ascontiguousarray(uvec[None, :], dtype=np.float32)
        n = min(n, len(self._searched))
        if n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self._ann is not None:
            scores, idx = self._ann.search(query, n)
        else:
            scores, idx = faiss.knn(query, self._search_factors, n, metric=faiss.METRIC_INNER_PRODUCT)
        keep = idx[0] >= 0
        return self._searched[idx[0][keep]].astype(np.int64), scores[0][keep]

    def _covis_scores(self, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Items co-visited with any of ``rows`` (ascending) and their summed scores (non-zero).

        Sums only the stored entries of those rows: summing the sparse rows into a dense vector over
        the whole catalog costs a few tenths of a millisecond per Rank at 50k items."""
        cols, data = gather_rows(self.covis, np.asarray(rows, np.int64))
        return sum_by_column(cols, data, self.covis.shape[1])

    def history(self, uidx: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(items the user interacted with, the most recent ``HISTORY_LIMIT`` of those whose
        neighbours count: the user's row of the matrix EASE was fitted on, skips left out)."""
        if uidx is None or self.seen is None or uidx >= self.seen.shape[0]:
            empty = np.zeros(0, np.int64)
            return empty, empty
        s, e = self.seen.indptr[uidx], self.seen.indptr[uidx + 1]
        items, order = self.seen.indices[s:e].astype(np.int64), self.seen.data[s:e]
        profile, order = items[order > 0], order[order > 0]
        if len(profile) > HISTORY_LIMIT:
            profile = profile[np.argsort(-order, kind="stable")[:HISTORY_LIMIT]]
        return items, np.sort(profile)

    def _knn_scores(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Items reached from ``rows`` (ascending) and their summed weights (non-zero)."""
        if self.knn is None or not len(rows):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        cols, data = gather_rows(self.knn, rows)
        return sum_by_column(cols, data, self.knn.shape[1])

    def kept_cohort(self, cohort: str) -> str:
        """``cohort`` where training kept a list for it; else the nearest one it did (too few events,
        or none: ``nearer_cohorts``), else everyone's."""
        if cohort in self.cohorts:
            return cohort
        return next((key for key in nearer_cohorts(cohort) if key in self.cohorts), GLOBAL_COHORT)

    def popularity(self, cohort: str) -> np.ndarray:
        """The most played items of the cohort, or of the nearest one training kept."""
        return self.cohorts[self.kept_cohort(cohort)]

    # --- the sources, one method each: (a resolved query, how many) -> a Proposal ----------------
    def _ask(self, q: SourceQuery, personalized: bool = True) -> _Asked:
        uidx = self.user_index.get(q.user_id) if personalized and q.user_id else None
        seen, recent = self.history(uidx)
        return _Asked(
            uidx,
            self.user_factors[uidx] if uidx is not None and self.embedded[uidx] else None,
            seen,
            recent,
            [self.item_index[i] for i in q.last_items if i in self.item_index],
            tuple(dict.fromkeys(g for g in q.genres if g)),
            q.cohort,
        )

    def _embeddings(self, a: _Asked, n: int) -> Proposal:
        """Collaborative: the items nearest the user's embedding (none for an unknown user, or one
        whose embedding is zero)."""
        if a.uvec is None:
            return Proposal(np.zeros(0, np.int64), np.zeros(0, np.float32))
        idx = self._embedding_table_row(a, n)
        if idx is not None:
            return Proposal(idx, self.item_factors[idx] @ a.uvec)
        return Proposal(*self._embedding_top(a.uvec, self._embedding_k(a, n)))

    def _embedding_ids(self, a: _Asked, n: int) -> np.ndarray:
        """``_embeddings``' items alone. ``generate`` scores its merged candidates itself, so an answer
        read from the precomputed table is not scored twice (a gather of ``n`` factor rows)."""
        if a.uvec is None:
            return np.zeros(0, np.int64)
        idx = self._embedding_table_row(a, n)
        return idx if idx is not None else self._embedding_top(a.uvec, self._embedding_k(a, n))[0]

    def _embedding_k(self, a: _Asked, n: int) -> int:
        return n + (len(a.seen) if self.exclude_seen else 0)  # the seen items on top, so dropping them leaves n

    def _embedding_table_row(self, a: _Asked, n: int) -> np.ndarray | None:
        """The user's nearest items from the table training precomputed; None without one, or when
        the table was found for a smaller pool than this one."""
        top, k = self.embedding_top, self._embedding_k(a, n)
        if top is None or a.uidx is None:
            return None
        row = top.row(a.uidx)
        if k <= len(row) or len(row) == len(self._searched):
            return row[:k].astype(np.int64)
        return None

    def _neighbours(self, a: _Asked, n: int) -> Proposal:
        """EASE item neighbours of the user's recent history."""
        cols, sums = self._knn_scores(a.recent)
        top = top_stable(sums, n)
        return Proposal(cols[top], sums[top], (cols, sums))

    def _covisitation(self, a: _Asked, n: int) -> Proposal:
        """Items played around the session's last items."""
        if not a.last_idx:
            return Proposal(np.zeros(0, np.int64), np.zeros(0, np.float32))
        cols, sums = self._covis_scores(a.last_idx)
        top = top_stable(sums, n)
        return Proposal(cols[top], sums[top], (cols, sums))

    def _genre_list(self, genre: str, n: int) -> np.ndarray | None:
        lst = self.cohorts.get(genre_key(genre))
        return None if lst is None else np.asarray(lst[:n], np.int64)

    def _genre_popularity(self, a: _Asked, n: int) -> Proposal:
        """The most played items of the session's and the user's genres (merged, first seen first)."""
        lists = [lst for g in a.genres if (lst := self._genre_list(g, n)) is not None]
        idx = np.fromiter(dict.fromkeys(np.concatenate(lists).tolist()) if lists else (), np.int64)[:n]
        return Proposal(idx, -np.arange(len(idx), dtype=np.float32))

    def _cohort_popularity(self, a: _Asked, n: int) -> Proposal:
        """The most played items of the request's cohort (locale × device), else of everyone."""
        idx = np.asarray(self.popularity(a.cohort)[:n], np.int64)
        return Proposal(idx, -np.arange(len(idx), dtype=np.float32))

    def propose(self, source: str, q: SourceQuery, n: int, exclude: Collection[int] = ()) -> Proposal:
        """One named source (``SOURCES``) on its own, without the items in ``exclude`` (and the
        user's seen items where the index leaves those out). ``generate`` merges the sources."""
        a = self._ask(q)
        p: Proposal = getattr(self, SOURCES[source])(a, n)
        drop = np.fromiter(exclude, np.int64, count=len(exclude))
        if self.exclude_seen:
            drop = np.concatenate([drop, a.seen])
        keep = ~np.isin(p.idx, drop)
        if self.live is not None:  # as ``generate``: a catalogue that turns over offers its live items only
            keep &= self.live[p.idx]
        return Proposal(p.idx[keep][:n], p.score[keep][:n])
