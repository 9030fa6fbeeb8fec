"""The candidate index: stage one of ranking, shared by training (which builds and evaluates it)
and serving (which loads it from the MLflow artifact).

``generate`` merges the five candidate sources (``setlist.candidate_sources``: collaborative
embeddings, item neighbours, session co-visitation, genre and cohort popularity) into one list,
and ``cross_features`` turns that list into the user×item block of the ranker's input.

Items the user has already interacted with are left out when the index says so: training decides
that from the data (ratings are given once; music is replayed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from setlist.candidate_sources import CandidateSources, Proposal, SourceQuery, _Asked, top_stable
from setlist.embedding_top import INDPTR_FILE, EmbeddingTop
from setlist.features import CROSS_NAMES
from setlist.querytext import vote

log = logging.getLogger("setlist.candidates")


def _rank01(scores: np.ndarray) -> np.ndarray:
    """0 for the best score of the request, towards 1 for the worst (ties share the better rank)."""
    n = len(scores)
    if n < 2:
        return np.zeros(n, np.float32)
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(n, np.float32)
    rank[order] = np.arange(n, dtype=np.float32) / (n - 1)
    return rank


def _rank_among(idx: np.ndarray, scores: np.ndarray, own_idx: np.ndarray, own_scores: np.ndarray) -> np.ndarray:
    """The ``_rank01`` of items ``idx`` (scoring ``scores``) among a request's own candidates: an item
    that is one of them keeps its very rank there; another one ranks below every candidate that
    scores at least as high (it came after them in the merged order)."""
    n = len(own_idx)
    if n < 2:
        return np.zeros(len(idx), np.float32)
    out = (n - np.searchsorted(np.sort(own_scores), scores, side="left")) / (n - 1)
    sorter = np.argsort(own_idx, kind="stable")
    pos = np.minimum(np.searchsorted(own_idx, idx, sorter=sorter), n - 1)
    member = own_idx[sorter[pos]] == idx
    out[member] = _rank01(own_scores)[sorter[pos[member]]]
    return np.minimum(out, 1.0).astype(np.float32)


def _absent(sorted_idx: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Mask of ``sorted_idx`` (ascending, unique) entries not in ``drop``: a binary search per dropped
    item, where ``np.isin`` sorts both arrays on every Rank."""
    keep = np.ones(len(sorted_idx), bool)
    if not len(sorted_idx):
        return keep
    pos = np.minimum(np.searchsorted(sorted_idx, drop), len(sorted_idx) - 1)
    keep[pos[sorted_idx[pos] == drop]] = False
    return keep


def _member(idx: np.ndarray, few: np.ndarray) -> np.ndarray:
    """Mask of ``idx`` entries that are in ``few`` (a handful, any order): a binary search of each
    entry, where a broadcast comparison builds and reduces a len(idx) × len(few) matrix."""
    if not len(few):
        return np.zeros(len(idx), bool)
    few = np.sort(few)
    pos = np.searchsorted(few, idx)
    pos[pos == len(few)] = 0
    return few[pos] == idx


@dataclass
class Candidates:
    idx: np.ndarray  # item indices, int64
    emb_score: np.ndarray  # user·item inner product (0 when the user has no embedding)
    covis_score: np.ndarray  # summed co-visitation with the session's last items
    n_sources: np.ndarray  # how many sources proposed the item
    pop_rank: np.ndarray  # rank in the cohort's popularity list, scaled to [0, 1]
    personalized: bool
    knn_score: np.ndarray | None = None  # summed item-neighbour weights from the user's history
    # a caller's slate: (neighbour, embedding) ranks among the candidates the index would have offered;
    # None: the ranks are taken among these candidates themselves
    ranks: tuple[np.ndarray, np.ndarray] | None = None

    def knn(self) -> np.ndarray:
        return self.knn_score if self.knn_score is not None else np.zeros(len(self.idx), np.float32)


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


class CandidateIndex(CandidateSources):
    """Stage one's fitted arrays (users, items, co-visitation, neighbours, popularity lists), the
    sources over them (``CandidateSources``), their merge (``generate``) and its persistence."""

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
        terms: dict[str, int] | None = None,
        live: np.ndarray | None = None,
        exclude_recent: bool = True,
    ) -> None:
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.item_genre = np.asarray(item_genre, dtype=np.int64)
        self.genres = list(genres)
        self.user_ids = np.asarray(user_ids, dtype=object)
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        # a user the embeddings learned nothing about (no positive interaction in training: ALS leaves
        # them at zero) scores every item 0, and "the nearest items" would be an arbitrary slice
        self.embedded = np.any(self.user_factors != 0, axis=1)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        # Items the embeddings learned nothing about are at zero too and score 0 for everyone: a user
        # with fewer positive scores than the pool would reach into them and pick an arbitrary few
        # (which few depended on the search's tie-breaking), so the embedding search leaves them out.
        self._searched = np.flatnonzero(np.any(self.item_factors != 0, axis=1))
        self._search_factors = (
            self.item_factors
            if len(self._searched) == len(self.item_factors)
            else np.ascontiguousarray(self.item_factors[self._searched])
        )
        self.covis = covis.tocsr().astype(np.float32)
        # users × items; a stored value is the interaction's recency rank within the user (1 = oldest),
        # negated for items that are not part of the user's neighbour profile (see ``history``)
        self.seen = seen.tocsr() if seen is not None else None
        self.knn = knn.tocsr().astype(np.float32) if knn is not None else None
        self.exclude_seen = bool(exclude_seen)
        # the session's last items are no candidates (a player does not offer what it just played),
        # unless the data says users stay with their items (``training.splits.recent_repeat_share``)
        self.exclude_recent = bool(exclude_recent)
        # the search text index: a normalized term (setlist.querytext) → the genre it points at
        self.terms: dict[str, int] = dict(terms or {})
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
        self.user_index = {u: n for n, u in enumerate(self.user_ids)}
        self.genre_index = {g: n for n, g in enumerate(self.genres)}
        self._ann = None  # exact search until ``search_with`` says the catalog is too large for it
        self.embedding_top = None  # until ``precompute_embedding_top`` (at training) or ``load``
        # how training counted the popularity lists (its windows' lengths), kept with a live filter so
        # that a later training can fit them again over its own training part to score this index fairly
        self.popularity_refit: dict[str, float | bool | None] | None = None
        self.set_popularity(cohorts, live)

    def set_popularity(self, cohorts: dict[str, np.ndarray], live: np.ndarray | None) -> None:
        """The popularity lists and their rank vectors. ``live``: where training found the catalogue
        turning over (news: a story lives a day or two), the only items proposed; None: every item."""
        self.live = np.asarray(live, dtype=bool) if live is not None else None
        if self.live is not None:  # so that popularity's share is all live, and answers a newcomer alone
            cohorts = {c: lst[self.live[lst]] for c, lst in cohorts.items()}
        self.cohorts = cohorts
        n = len(self.item_ids)
        self._pop_rank = {c: self._rank_vector(lst, n) for c, lst in cohorts.items()}

    def search_with(self, exact_max_items: int) -> CandidateIndex:
        """Search the embeddings exactly up to ``exact_max_items`` items, else through an HNSW index
        (built here: seconds at 50,000 items; not when a table of each user's nearest items answers
        them, ``precompute_embedding_top``). An index never told searches exactly."""
        import faiss  # noqa: F401  # both searches use it: loaded with the model, not by the first Rank (~0.16 s)

        large = len(self.item_ids) > exact_max_items
        if large and self._ann is None and self.embedding_top is None:  # the table answers known users
            self._ann = self._build_ann()
        elif not large:
            self._ann = None
        return self

    def precompute_embedding_top(self, n: int, max_bytes: int) -> str:
        """Search every user's nearest ``n`` items (plus their seen items where those are left out)
        once, so that Rank reads a row instead of searching (``setlist.embedding_top``). Skipped above
        the exact-search limit or when the table would exceed ``max_bytes`` (0 turns it off). Returns
        one line saying what was done."""
        self.embedding_top = None
        if max_bytes <= 0:
            return "per-user nearest items not precomputed (SETLIST_EMBEDDING_TOP_MAX_MB=0): Rank searches"
        if self._ann is not None:
            return (
                f"per-user nearest items not precomputed: {len(self.item_ids):,} items are searched through "
                "HNSW (above SETLIST_EXACT_SEARCH_MAX_ITEMS)"
            )
        lengths = np.full(len(self.user_ids), n, np.int64)
        if self.exclude_seen and self.seen is not None:  # as ``_embeddings`` asks: the seen items on top
            seen = np.diff(self.seen.indptr)[: len(lengths)]
            lengths[: len(seen)] += seen
        lengths[~self.embedded] = 0
        size = EmbeddingTop.size(np.minimum(lengths, len(self._searched)), len(self.item_ids))
        if size > max_bytes:
            return (
                f"per-user nearest items not precomputed: {size / 2**20:,.0f} MB for {int(self.embedded.sum()):,} "
                f"users is over SETLIST_EMBEDDING_TOP_MAX_MB ({max_bytes / 2**20:,.0f}); Rank searches"
            )
        users = int(np.count_nonzero(lengths))
        self.embedding_top = EmbeddingTop.compute(
            self.user_factors,
            self._search_factors,
            self._searched,
            lengths,
            n,
            len(self.item_ids),
        )
        return (
            f"per-user nearest items precomputed for {users:,} users "
            f"({self.embedding_top.nbytes / 2**20:,.1f} MB): Rank reads them instead of searching"
        )

    @staticmethod
    def _rank_vector(lst: np.ndarray, n: int) -> np.ndarray:
        rank = np.ones(n, dtype=np.float32)
        rank[lst] = np.arange(len(lst), dtype=np.float32) / max(len(lst), 1)
        return rank

    def search_genre(self, terms: list[str] | tuple[str, ...]) -> str:
        """The genre a search's terms point at (the one most terms match; the earlier term breaks a
        tie), or "" when none matches."""
        g = vote(terms, self.terms)
        return "" if g is None else self.genres[g]

    def excluded(self, last_items: Iterable[str], others: Iterable[str]) -> set[int]:
        """The item indices a request leaves out: the session's last items (unless this index keeps
        them), and ``others`` (blocked, asked to be left out), where the index knows them."""
        ids = (*last_items, *others) if self.exclude_recent else tuple(others)
        return {self.item_index[i] for i in ids if i in self.item_index}

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
        kept = self.kept_cohort(cohort)
        pop, pop_rank = self.cohorts[kept], self._pop_rank[kept]
        if self._popularity_only(user_id, last_items, personalized, genres):
            idx = np.array([i for i in pop[: n + len(exclude)] if i not in exclude][:n], dtype=np.int64)
            z = np.zeros(len(idx), dtype=np.float32)
            return Candidates(idx, z, z.copy(), np.ones(len(idx), np.float32), pop_rank[idx], False)

        a = self._ask(SourceQuery(user_id, tuple(last_items), cohort, ()), personalized)
        return self._merge(a, *self._pools(a, n, genres), exclude, n, pop_rank)

    def _popularity_only(
        self, user_id: str | None, last_items: list[str], personalized: bool, genres: tuple[str, ...]
    ) -> bool:
        """Nothing to personalize with: a user the index does not know, no session and no search (a new
        user's first clicks, co-visitation, or searched genre personalize from the first Rank)."""
        known = personalized and bool(user_id) and user_id in self.user_index
        return not known and not (personalized and (last_items or any(genres)))

    def _merge(
        self,
        a: _Asked,
        pools: list[np.ndarray],
        knn_p: Proposal,
        covis_p: Proposal,
        exclude: set[int],
        n: int,
        pop_rank: np.ndarray,
    ) -> Candidates:
        """The sources' proposals as one list of at most ``n``, in one source-agnostic order."""
        idx, counts = np.unique(np.concatenate(pools).astype(np.int64), return_counts=True)
        if self.live is not None:
            alive = self.live[idx]
            idx, counts = idx[alive], counts[alive]
        drop = np.fromiter(exclude, dtype=np.int64, count=len(exclude)) if exclude else np.zeros(0, np.int64)
        if self.exclude_seen and len(a.seen):
            drop = np.concatenate([drop, a.seen])
        if len(drop):
            keep = _absent(idx, drop)
            idx, counts = idx[keep], counts[keep]
        n_sources = counts.astype(np.float32)
        emb = (self.item_factors[idx] @ a.uvec) if a.uvec is not None else np.zeros(len(idx), np.float32)
        covis, knn = _lookup(covis_p.scored, idx), _lookup(knn_p.scored, idx)
        # one source-agnostic order, so "the first 100 candidates" means the same everywhere
        order = top_stable(n_sources * 10 + emb + covis + knn - pop_rank[idx], n)
        idx, n_sources, emb, covis, knn = idx[order], n_sources[order], emb[order], covis[order], knn[order]
        return Candidates(idx, emb.astype(np.float32), covis, n_sources, pop_rank[idx], True, knn)

    def _pools(self, a: _Asked, n: int, genres: tuple[str, ...]) -> tuple[list[np.ndarray], Proposal, Proposal]:
        """What each source proposes for a request of ``n`` candidates, and the two scored ones."""
        knn_p, covis_p = self._neighbours(a, n), self._covisitation(a, n // 2)
        pools = [p for p in (self._embedding_ids(a, n), knn_p.idx, covis_p.idx) if len(p)]
        # one pool per genre, so an item's count below is the number of sources (and genres) proposing it
        lists = (self._genre_list(g, n // 2) for g in dict.fromkeys(g for g in genres if g))
        pools += [lst for lst in lists if lst is not None]
        # a known user the embeddings learned nothing about takes the embeddings' share from popularity;
        # so does every user where the catalogue turns over: the other sources, fitted on items now
        # mostly gone, lose most of their proposals to the live filter
        share = n if (a.uidx is not None and a.uvec is None) or self.live is not None else n // 2
        pools.append(self._cohort_popularity(a, share).idx)
        return pools, knn_p, covis_p

    def rescore(
        self,
        user_id: str | None,
        last_items: list[str],
        cohort: str,
        idx: np.ndarray,
        n: int,
        personalized: bool = True,
        genres: tuple[str, ...] = (),
        exclude: set[int] | None = None,
    ) -> Candidates:
        """The items ``idx`` (a caller's own slate, in its order) as ``generate`` would have described
        them on a request of ``n`` candidates leaving out ``exclude``: each source's score, how many
        sources would have proposed the item (0 where none would have: the ranker then sees an item its
        training never offered it) and its cohort popularity. Not personalized, they come in cohort
        popularity order."""
        idx = np.asarray(idx, dtype=np.int64)
        pop_rank = self._pop_rank[self.kept_cohort(cohort)]
        if self._popularity_only(user_id, last_items, personalized, genres):
            idx = idx[np.argsort(pop_rank[idx], kind="stable")]
            z = np.zeros(len(idx), dtype=np.float32)
            return Candidates(idx, z, z.copy(), np.ones(len(idx), np.float32), pop_rank[idx], False)
        a = self._ask(SourceQuery(user_id, tuple(last_items), cohort, ()), personalized)
        pools, knn_p, covis_p = self._pools(a, n, genres)
        n_sources = np.zeros(len(idx), np.float32)
        for pool in pools:
            n_sources += _member(idx, np.unique(pool))
        emb = ((self.item_factors[idx] @ a.uvec) if a.uvec is not None else np.zeros(len(idx))).astype(np.float32)
        covis, knn = _lookup(covis_p.scored, idx), _lookup(knn_p.scored, idx)
        # the within-request ranks are taken among the candidates this index would have offered, as
        # the ranker learned them, not among the slate's few items
        own = self._merge(a, pools, knn_p, covis_p, exclude or set(), n, pop_rank)
        ranks = (_rank_among(idx, knn, own.idx, own.knn()), _rank_among(idx, emb, own.idx, own.emb_score))
        return Candidates(idx, emb, covis, n_sources, pop_rank[idx], True, knn, ranks)

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
            last = np.fromiter({self.item_index[i] for i in last_items if i in self.item_index}, np.int64)
            out[:, 5] = _member(c.idx, last)
        out[:, 6] = c.n_sources
        out[:, 7] = c.pop_rank
        out[:, 8] = c.knn()
        # Within-request ranks: raw EASE and ALS scores grow with the length of a user's history, so a
        # tree's global threshold on them means different things for different users; ranks do not.
        if c.ranks is None:
            out[:, 9] = _rank01(out[:, 8])
            out[:, 10] = _rank01(c.emb_score)
        else:
            out[:, 9], out[:, 10] = c.ranks
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
        if self.live is not None:
            np.save(path / "live.npy", self.live)
        if self.embedding_top is not None:
            self.embedding_top.save(path)
        (path / "meta.json").write_text(
            json.dumps(
                {
                    "genres": self.genres,
                    "cohorts": list(self.cohorts),
                    "exclude_seen": self.exclude_seen,
                    "exclude_recent": self.exclude_recent,
                    "terms": self.terms,
                    "embedding_top_n": self.embedding_top.n if self.embedding_top is not None else None,
                    "popularity_refit": self.popularity_refit,
                }
            )
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
        n_users = len(arrays["user_ids"])
        if optional["seen"] is not None and optional["seen"].shape[0] != n_users:
            # rows are read by user position: a matrix of another length would exclude another user's items
            _misaligned(path / "seen.npz", optional["seen"].shape[0], n_users)
            optional["seen"] = None
        index = cls(
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
            meta.get("terms"),  # absent from indexes trained before search existed
            np.load(path / "live.npy") if (path / "live.npy").exists() else None,
            bool(meta.get("exclude_recent", True)),  # indexes trained before the choice left them out
        )
        index.popularity_refit = meta.get("popularity_refit")
        if meta.get("embedding_top_n") is not None:  # absent from indexes trained before the table
            table = EmbeddingTop.load(path, int(meta["embedding_top_n"]))
            if table is not None and (len(table.indptr) - 1 != n_users or int(table.indptr[-1]) != len(table.items)):
                _misaligned(path / INDPTR_FILE, len(table.indptr) - 1, n_users)
                table = None  # searched per request instead: the same answers, more CPU
            index.embedding_top = table
        return index


def _misaligned(path: Path, rows: int, users: int) -> None:
    log.warning(
        "%s (%d rows) does not match the model's %d users or its own parts: not used. An erasure cut short "
        "while rewriting the model leaves this: run it again (make erase); else training again rebuilds it",
        path,
        rows,
        users,
    )
