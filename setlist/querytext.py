"""Search text: one normal form for what users type, and what of it may be stored.

A query is normalized the same way wherever it enters (Track, the importers) and wherever it is
matched (the search index built at training time, serving's session terms): Unicode NFKC, case
folded, split on anything that is not a letter or a digit, at most ``MAX_TERMS`` terms.

What users type can be personal (names, addresses), so the raw text never reaches storage, and
the normalized text is stored only with the event's explicit analytics consent. Without it the
stored form keeps one keyed hash per term: a search still counts as a search and repeats of a
term still match each other, but nobody can read the text back without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

T = TypeVar("T", bound=Hashable)

MAX_TERMS = 16
MAX_TERM_CHARS = 40
#: the stored form of a term kept without analytics consent starts with this (never a real term:
#: normalization removes punctuation)
HASHED_PREFIX = "#"
_SPLIT = re.compile(r"[^\w]+|_+")


def terms(text: str | None) -> list[str]:
    """The normalized terms of ``text``, in order, duplicates removed."""
    if not text:
        return []
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    out: list[str] = []
    for term in _SPLIT.split(folded):
        term = term[:MAX_TERM_CHARS]
        if term and term not in out:
            out.append(term)
        if len(out) == MAX_TERMS:
            break
    return out


def normalize(text: str | None) -> str:
    return " ".join(terms(text))


def hashed(term: str, key: bytes) -> str:
    return HASHED_PREFIX + hmac.new(key, term.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def stored(text: str | None, analytics: bool | None, key: bytes) -> str | None:
    """What is stored of a query: normalized with explicit analytics consent, else hashed term by
    term (consent unknown counts as no: this fails closed). ``None`` when nothing is left."""
    words = terms(text)
    if not words:
        return None
    if analytics is True:
        return " ".join(words)
    return " ".join(hashed(w, key) for w in words)


def is_hashed(stored_text: str) -> bool:
    return stored_text.startswith(HASHED_PREFIX)


def vote(words: Iterable[str], lookup: Mapping[str, T]) -> T | None:
    """What most of ``words`` point at in ``lookup`` (the earlier word breaks a tie), or None when
    none of them is there: the one rule by which a search picks its genre, online and offline."""
    votes: dict[T, int] = {}
    for word in words:
        hit = lookup.get(word)
        if hit is not None:
            votes[hit] = votes.get(hit, 0) + 1
    if not votes:
        return None
    return max(votes, key=lambda v: votes[v])  # max keeps the first of equal votes
