"""The search text index: which genre a search's terms point at, built from the catalogue alone
(genre names, artists, titles). Training puts it in the candidate index, where Track reads it to steer
a live session's genre; the feature build reads the same index to steer the offline sessions that
training learns from, so a search means the same thing on both sides.

Offline, a search is what the event log stored of it (``setlist.querytext.stored``): the normalized
terms with the event's analytics consent, one keyed hash per term without. ``SearchGenres`` matches
the hashed terms against the index's terms hashed with the same key. That tells it no more than
Track knew when the search arrived: the genre the terms point at, and only for catalogue words; a
term outside the catalogue stays unreadable. Sessions are built for users with personalization
consent only, as online.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import pandas as pd

from setlist.querytext import hashed, is_hashed, vote
from setlist.querytext import terms as text_terms

#: a title word in more than this share of titles (and more than TITLE_COMMON_MIN of them) says
#: nothing about a genre ("the", "love", "part"): it is left out of the index
TITLE_COMMON_SHARE = 0.02
TITLE_COMMON_MIN = 5
#: distinct stored queries whose genre is remembered in one build (what users type is unbounded)
REMEMBERED_QUERIES = 100_000


def fit_terms(catalog: pd.DataFrame, genres: list[str]) -> dict[str, int]:
    """The search text index: each normalized term of the catalogue's genres, artists and titles →
    a genre.

    A genre's own name points at it; an artist's name at the genre most of their items have; a term
    shared by several (a word in two artists' names) at the genre of most items carrying it. Title
    words count like artists' but never outvote them, and the common ones (module constants) and
    bare numbers (years, sequel numbers) are left out: they would send a search anywhere."""
    known = {g: n for n, g in enumerate(genres)}
    votes: dict[str, dict[int, int]] = {}

    def count(words: Iterable[str], g: int, weight: int = 1) -> None:
        for term in words:
            votes.setdefault(term, {}).setdefault(g, 0)
            votes[term][g] += weight

    for name, g in known.items():
        if name != "unknown":
            count(text_terms(name), g, weight=1_000_000)  # a genre's name always means that genre
    primary = catalog["genre"].fillna("unknown").astype(str).map(known).fillna(known.get("unknown", 0)).astype(int)
    for col in ("artist", "genres"):
        if col in catalog.columns:
            for text, g in zip(catalog[col].to_numpy(), primary.to_numpy()):
                count(text_terms(text) if isinstance(text, str) else (), int(g), weight=1_000)
    if "title" in catalog.columns:
        titles = [text_terms(t) if isinstance(t, str) else [] for t in catalog["title"].to_numpy()]
        seen = Counter(w for words in titles for w in words)
        common = max(TITLE_COMMON_MIN, TITLE_COMMON_SHARE * sum(1 for words in titles if words))
        for words, g in zip(titles, primary.to_numpy()):
            count((w for w in words if seen[w] <= common and not w.isdigit()), int(g))
    return {t: max(v, key=lambda g: v[g]) for t, v in votes.items()}


class SearchGenres:
    """A stored search → the genre it points at ("" when none), for the offline session builder. Holds
    the index's terms hashed with the key, never the key itself (it travels to Spark executors)."""

    def __init__(self, index: Mapping[str, int], genres: list[str], key: bytes | None) -> None:
        self._plain = {term: genres[g] for term, g in index.items()}
        # without a key hashed searches match nothing: as in Track without one, this fails closed
        self._hashed = {hashed(term, key): g for term, g in self._plain.items()} if key else {}
        self._seen: dict[str, str] = {}  # the same few queries recur

    @classmethod
    def of(cls, catalog: pd.DataFrame, genres: list[str], key: bytes | None) -> SearchGenres:
        return cls(fit_terms(catalog, genres), genres, key)

    def __call__(self, stored: str | None) -> str:
        if not stored or not isinstance(stored, str):
            return ""
        known = self._seen.get(stored)
        if known is None:
            words = stored.split(" ")
            # a stored query is all plain terms or all hashed ones
            lookup = self._hashed if is_hashed(words[0]) else self._plain
            known = vote(words, lookup) or ""
            if len(self._seen) < REMEMBERED_QUERIES:
                self._seen[stored] = known
        return known
