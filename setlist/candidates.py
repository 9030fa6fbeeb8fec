"""The candidate index: stage one of ranking, shared by training (which builds and evaluates it)
and serving (which loads it from the MLflow artifact).

Five sources are merged: collaborative embeddings (exact inner product for small catalogs, an
HNSW index for large ones), item neighbours of the user's history (EASE weights, where the catalog
is small enough to fit them), session co-visitation, popularity within the session's and the
user's genres, and popularity by cohort (locale × device), which is also the whole answer for
cold-start users and users without personalization consent.

Items the user has already interacted with are left out when the index says so: training decides
that from the data (ratings are given once; music is replayed).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from setlist.features import CROSS_NAMES

#: catalogs above this size use the approximate (HNSW) index
EXACT_LIMIT = 20_000
#: the most recent history items whose neighbours are summed per request (bounds the hot path)
HISTORY_LIMIT = 256
GLOBAL_COHORT = "*"


def cohort_key(locale: str, device: str) -> str:
    return f"{locale or 'unknown'}|{device or 'unknown'}"


def genre_key(genre: str) -> str:
    return f"genre={genre}"


def _rank01(scores: np.ndarray) -> np.ndarray:
    """0 for the best score of the request, towards 1 for the worst (ties share the better rank)."""
    n = len(scores)
    if n < 2:
        return np.zeros(n, np.float32)
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(n, np.float32)
    rank[order] = np.arange(n, dtype=np.float32) / (n - 1)
    return rank


@dataclass
class Candidates:
    idx: np.ndarray  # item indices, int64
    emb_score: np.ndarray  # user·item inner product (0 when the user has no embedding)
    covis_score: np.ndarray  # summed co-visitation with the session's last items
    n_sources: np.ndarray  # how many sources proposed the item
    pop_rank: np.ndarray  # rank in the cohort's popularity list, scaled to [0, 1]
    personalized: bool
    knn_score: np.ndarray | None = None  # summed item-neighbour weights from the user's history

    def knn(self) -> np.ndarray:
        return self.knn_score if self.knn_score is not None else np.zeros(len(self.idx), np.float32)


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


#: the candidate sources by name, each a method of ``CandidateIndex`` taking (``_Asked``, n)
SOURCES = {
    "embeddings": "_embeddings",
    "neighbours": "_neighbours",
    "covisitation": "_covisitation",
    "genre_popularity": "_genre_popularity",
    "cohort_popularity": "_cohort_popularity",
}


def _lookup(scored: tuple[np.ndarray, np.ndarray] | None, idx: np.ndarray) -> np.ndarray:
    """Each of ``idx``'s score in a source's (ascending items, scores), 0 where it has none."""
    out = np.zeros(len(idx), np.float32)
    if scored is None or not len(scored[0]):
        return out
    cols, sums = scored
    pos = np.minimum(np.searchsorted(cols, idx), len(cols) - 1)
    hit = cols[pos] == idx
    out[hit] = sums[pos[hit]]
    return out


class CandidateIndex:
    def __init__(
        self,
        item_ids: np.ndarray,
        item_genre: np.ndarray,
        genres: list[str],
        user_ids: np.ndarray,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        covis: sp.csr_matrix,
        cohorts: dict[str, np.ndarray],
        seen: sp.csr_matrix | None = None,
        knn: sp.csr_matrix | None = None,
        exclude_seen: bool = False,
    ) -> None:
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.item_genre = np.asarray(item_genre, dtype=np.int64)
        self.genres = list(genres)
        self.user_ids = np.asarray(user_ids, dtype=object)
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.covis = covis.tocsr().astype(np.float32)
        self.cohorts = cohorts
        # users × items; a stored value is the interaction's recency rank within the user (1 = oldest),
        # negated for items that are not part of the user's neighbour profile (see ``history``)
        self.seen = seen.tocsr() if seen is not None else None
        self.knn = knn.tocsr().astype(np.float32) if knn is not None else None
        self.exclude_seen = bool(exclude_seen)
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
        self.user_index = {u: n for n, u in enumerate(self.user_ids)}
        self.genre_index = {g: n for n, g in enumerate(self.genres)}
        self._ann = None
        if len(self.item_ids) > EXACT_LIMIT:
            self._ann = self._build_ann()
        n = len(self.item_ids)
        self._pop_rank = {c: self._rank_vector(lst, n) for c, lst in cohorts.items()}

    @staticmethod
    def _rank_vector(lst: np.ndarray, n: int) -> np.ndarray:
        rank = np.ones(n, dtype=np.float32)
        rank[lst] = np.arange(len(lst), dtype=np.float32) / max(len(lst), 1)
        return rank

    def _build_ann(self):
        import faiss

        index = faiss.IndexHNSWFlat(self.item_factors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 256
        index.add(self.item_factors)
        return index

    # --- retrieval ---------------------------------------------------------------------------
    def _embedding_top(self, uvec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self._ann is not None:
            scores, idx = self._ann.search(uvec[None, :], n)
            keep = idx[0] >= 0
            return idx[0][keep].astype(np.int64), scores[0][keep]
        scores = self.item_factors @ uvec
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        return top.astype(np.int64), scores[top]

    def _covis_scores(self, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Items co-visited with any of ``rows`` (ascending) and their summed scores (non-zero).

        Sums only the stored entries of those rows: summing the sparse rows into a dense vector over
        the whole catalog costs a few tenths of a millisecond per Rank at 50k items."""
        block = self.covis[rows]
        cols, where = np.unique(block.indices, return_inverse=True)
        sums = np.bincount(where, weights=block.data).astype(np.float32)
        keep = sums != 0
        return cols[keep].astype(np.int64), sums[keep]

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
        """Items reached from ``rows`` (ascending) and their summed weights. A bincount over the
        catalog, not a sort: its cost is the rows' stored weights plus one pass over the catalog,
        which stays small because only catalogs that fit EASE carry neighbours."""
        if self.knn is None or not len(rows):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        block = self.knn[rows]
        sums = np.bincount(block.indices, weights=block.data, minlength=self.knn.shape[1])
        cols = np.flatnonzero(sums)
        return cols.astype(np.int64), sums[cols].astype(np.float32)

    def popularity(self, cohort: str) -> np.ndarray:
        return self.cohorts.get(cohort, self.cohorts[GLOBAL_COHORT])

    # --- the sources, one method each: (a resolved query, how many) -> a Proposal ----------------
    def _ask(self, q: SourceQuery, personalized: bool = True) -> _Asked:
        uidx = self.user_index.get(q.user_id) if personalized and q.user_id else None
        seen, recent = self.history(uidx)
        return _Asked(
            uidx,
            self.user_factors[uidx] if uidx is not None else None,
            seen,
            recent,
            [self.item_index[i] for i in q.last_items if i in self.item_index],
            tuple(dict.fromkeys(g for g in q.genres if g)),
            q.cohort,
        )

    def _embeddings(self, a: _Asked, n: int) -> Proposal:
        """Collaborative: the items nearest the user's embedding (none for an unknown user)."""
        if a.uvec is None:
            return Proposal(np.zeros(0, np.int64), np.zeros(0, np.float32))
        # asks for the seen items on top, so dropping them still leaves n
        return Proposal(*self._embedding_top(a.uvec, n + (len(a.seen) if self.exclude_seen else 0)))

    def _neighbours(self, a: _Asked, n: int) -> Proposal:
        """EASE item neighbours of the user's recent history."""
        cols, sums = self._knn_scores(a.recent)
        top = np.argsort(-sums, kind="stable")[:n]
        return Proposal(cols[top], sums[top], (cols, sums))

    def _covisitation(self, a: _Asked, n: int) -> Proposal:
        """Items played around the session's last items."""
        if not a.last_idx:
            return Proposal(np.zeros(0, np.int64), np.zeros(0, np.float32))
        cols, sums = self._covis_scores(a.last_idx)
        top = np.argsort(-sums, kind="stable")[:n]
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
        return Proposal(p.idx[keep][:n], p.score[keep][:n])

    def generate(
        self,
        user_id: str | None,
        last_items: list[str],
        cohort: str,
        exclude: set[int],
        n: int,
        personalized: bool = True,
        genres: tuple[str, ...] = (),
    ) -> Candidates:
        """Up to ``n`` candidates, excluding item indices in ``exclude``."""
        pop = self.popularity(cohort)
        pop_rank = self._pop_rank.get(cohort, self._pop_rank[GLOBAL_COHORT])
        uidx = self.user_index.get(user_id) if personalized and user_id else None
        if uidx is None and not (personalized and last_items):
            idx = np.array([i for i in pop[: n + len(exclude)] if i not in exclude][:n], dtype=np.int64)
            z = np.zeros(len(idx), dtype=np.float32)
            return Candidates(idx, z, z.copy(), np.ones(len(idx), np.float32), pop_rank[idx], False)

        a = self._ask(SourceQuery(user_id, tuple(last_items), cohort, ()), personalized)
        emb_p, knn_p, covis_p = self._embeddings(a, n), self._neighbours(a, n), self._covisitation(a, n // 2)
        pools = [p.idx for p in (emb_p, knn_p, covis_p) if len(p.idx)]
        # one pool per genre, so an item's count below is the number of sources (and genres) proposing it
        lists = (self._genre_list(g, n // 2) for g in dict.fromkeys(g for g in genres if g))
        pools += [lst for lst in lists if lst is not None]
        pools.append(self._cohort_popularity(a, n // 2).idx)
        idx, counts = np.unique(np.concatenate(pools).astype(np.int64), return_counts=True)
        drop = np.fromiter(exclude, dtype=np.int64, count=len(exclude)) if exclude else np.zeros(0, np.int64)
        if self.exclude_seen and len(a.seen):
            drop = np.concatenate([drop, a.seen])
        if len(drop):
            keep = ~np.isin(idx, drop)
            idx, counts = idx[keep], counts[keep]
        n_sources = counts.astype(np.float32)
        emb = (self.item_factors[idx] @ a.uvec) if a.uvec is not None else np.zeros(len(idx), np.float32)
        covis, knn = _lookup(covis_p.scored, idx), _lookup(knn_p.scored, idx)
        # one source-agnostic order, so "the first 100 candidates" means the same everywhere
        order = np.argsort(-(n_sources * 10 + emb + covis + knn - pop_rank[idx]), kind="stable")[:n]
        idx, n_sources, emb, covis, knn = idx[order], n_sources[order], emb[order], covis[order], knn[order]
        return Candidates(idx, emb.astype(np.float32), covis, n_sources, pop_rank[idx], True, knn)

    def cross_features(
        self, c: Candidates, affinity: np.ndarray | None, top_genre: str, session_genre: str, last_items: list[str]
    ) -> np.ndarray:
        """The user×item block of the ranker's input, in CROSS_NAMES order."""
        g = self.item_genre[c.idx]
        out = np.zeros((len(c.idx), len(CROSS_NAMES)), dtype=np.float32)
        out[:, 0] = c.emb_score
        if affinity is not None and len(affinity) == len(self.genres):
            out[:, 1] = np.asarray(affinity, dtype=np.float32)[g]
        out[:, 2] = g == self.genre_index.get(top_genre, -1)
        out[:, 3] = g == self.genre_index.get(session_genre, -1)
        out[:, 4] = c.covis_score
        if last_items:
            last = {self.item_index[i] for i in last_items if i in self.item_index}
            out[:, 5] = np.fromiter((i in last for i in c.idx.tolist()), dtype=np.float32, count=len(c.idx))
        out[:, 6] = c.n_sources
        out[:, 7] = c.pop_rank
        out[:, 8] = c.knn()
        # Within-request ranks: raw EASE and ALS scores grow with the length of a user's history, so a
        # tree's global threshold on them means different things for different users; ranks do not.
        out[:, 9] = _rank01(out[:, 8])
        out[:, 10] = _rank01(c.emb_score)
        return out

    # --- persistence -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(
            path / "arrays.npz",
            item_ids=self.item_ids.astype(str),
            item_genre=self.item_genre,
            user_ids=self.user_ids.astype(str),
            user_factors=self.user_factors,
            item_factors=self.item_factors,
        )
        sp.save_npz(path / "covis.npz", self.covis)
        cohorts = {f"c{n}": v for n, v in enumerate(self.cohorts.values())}
        np.savez(path / "cohorts.npz", **cohorts)  # type: ignore[arg-type]  # numpy's stub: **kwargs as allow_pickle
        for name, matrix in (("seen", self.seen), ("knn", self.knn)):
            if matrix is not None:
                sp.save_npz(path / f"{name}.npz", matrix)
        (path / "meta.json").write_text(
            json.dumps({"genres": self.genres, "cohorts": list(self.cohorts), "exclude_seen": self.exclude_seen})
        )

    @classmethod
    def load(cls, path: Path) -> CandidateIndex:
        path = Path(path)
        arrays = np.load(path / "arrays.npz", allow_pickle=False)
        meta = json.loads((path / "meta.json").read_text())
        cohort_arrays = np.load(path / "cohorts.npz", allow_pickle=False)
        cohorts = {name: cohort_arrays[f"c{n}"] for n, name in enumerate(meta["cohorts"])}
        optional = {
            name: sp.load_npz(path / f"{name}.npz") if (path / f"{name}.npz").exists() else None
            for name in ("seen", "knn")
        }
        return cls(
            arrays["item_ids"],
            arrays["item_genre"],
            meta["genres"],
            arrays["user_ids"],
            arrays["user_factors"],
            arrays["item_factors"],
            sp.load_npz(path / "covis.npz"),
            cohorts,
            optional["seen"],
            optional["knn"],
            bool(meta.get("exclude_seen", False)),
        )
