"""The stages of one Rank, in order: candidates → user and item features → score → top-k → explain.

Each stage is a plain function of a ``RankContext`` (and what the stage before it returned), so the
service, the bench (bench/stages.py) and the tests run the same code. serving.service orchestrates:
it builds the context, calls the stages, and owns the cache, routing, metrics and fallbacks.

No pandas, DataFrames, DMatrix or registry lookups here: user rows come in the context, item rows
from the variant's in-process table, the matrix is built in NumPy and scored with
``inplace_predict``. Only ``explain`` builds a DMatrix, for the k returned rows, when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from serving.explain import reasons
from serving.live import Variant
from serving.types import RankedItem, RankQuery
from serving.user_features import UserRows
from setlist.candidate_sources import GLOBAL_COHORT, cohort_key
from setlist.candidates import Candidates
from setlist.features import USER_TOP_GENRE, USER_VECTOR, effective_session
from setlist.featureset import FeatureSet
from setlist.request_time import hour_weekday
from setlist.tracing import span

Ranker = Callable[["RankContext", Candidates], tuple[RankedItem, ...]]
REQUEST_ROWS_MAX = 4096


@dataclass(frozen=True, slots=True)
class Inputs:
    """Which declared inputs each per-request block reads: every one, once per request, whatever
    the variant (each model then takes its own columns through its ``Layout``). Resolved at start-up."""

    features: FeatureSet
    user: tuple[str, ...]
    session: tuple[str, ...]
    # A request block is a function of (device, hour, weekday) alone, by its declaration's contract,
    # and the device is bounded by ``Vocabulary``: a few hundred rows at most, computed once each
    # instead of calling every declared function on every Rank (~30 µs).
    _request_rows: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, features: FeatureSet) -> Inputs:
        return cls(features, features.inputs("user"), features.inputs("session"))

    def request_row(self, device: str, hour: int, weekday: int) -> np.ndarray:
        """The request block of one request (read-only: it is shared by every request alike)."""
        key = (device, hour, weekday)
        row = self._request_rows.get(key)
        if row is None:
            if len(self._request_rows) >= REQUEST_ROWS_MAX:  # a safety net: Vocabulary bounds the devices
                self._request_rows.clear()
            row = np.asarray(self.features.request_values(device, hour, weekday), np.float32)
            row.flags.writeable = False
            self._request_rows[key] = row
        return row


@dataclass(frozen=True, slots=True)
class Request:
    """What one Rank request knows about its user, before any model is involved."""

    user: str  # the pseudonym
    k: int
    explain: bool
    device: str
    locale: str
    now: datetime
    profile: Mapping[str, Any]  # the user's profile row ({} when none)
    session: Mapping[str, Any]  # the session row as it reads at ``now`` (effective_session)
    last_items: tuple[str, ...]  # the session's most recent items
    exclude: tuple[str, ...]  # item ids never to return: blocked, asked for (and ``last_items``, as the index says)
    genres: tuple[str, str]  # (session genre, user's top genre); "" when unknown
    personal: bool  # model arm and personalization consent
    slate: tuple[str, ...] = ()  # the caller's own candidates, each once, in its order (empty: the index's)


def request(q: RankQuery, user: str, rows: UserRows, now: datetime, device: str, locale: str, strategy: str) -> Request:
    """The request facts the stages read, from the query and the user's online rows."""
    session = effective_session(rows.session, int(now.timestamp() * 1000))
    last = tuple(session["session_last_items"])
    blocked = tuple(session["session_blocked_items"])
    # fails closed: no consent row known (a degraded read, a push that failed) is no consent
    consent = rows.consent is not None and bool(rows.consent.get("consent_personalization") or False)
    profile = rows.profile or {}
    genres = (str(session["session_genre"] or ""), str(profile.get(USER_TOP_GENRE) or ""))
    return Request(
        user,
        q.k,
        q.explain,
        device,
        locale,
        now,
        profile,
        session,
        last,
        (*blocked, *q.exclude_item_ids),
        genres,
        consent and strategy == "model",
        q.candidate_item_ids,  # each id once (the service made sure)
    )


@dataclass(frozen=True, slots=True)
class RankContext:
    """One request on one variant: a failed variant is retried as ``replace(ctx, variant=...)``."""

    request: Request
    variant: Variant
    inputs: Inputs
    pool: int  # how many candidates to generate (settings.candidate_pool)
    # the share of a first slate the searched genre may fill for a user with no top genre and no item in
    # their session yet, the rest being the cohort's popular items (settings.new_user_genre_cap)
    new_user_genre_cap: float = 1.0

    @property
    def cohort(self) -> str:
        return cohort_key(self.request.locale, self.request.device)


def row_vector(row: Mapping[str, Any] | None, names: tuple[str, ...]) -> np.ndarray:
    """A stored row as float32 in ``names`` order, NaN where a value is missing (as in training)."""
    if not row:
        return np.full(len(names), np.nan, np.float32)
    return np.array([np.nan if row.get(n) is None else float(row[n]) for n in names], np.float32)


# --- the stages -----------------------------------------------------------------------------------
def candidates(ctx: RankContext) -> Candidates:
    """Stage 1: up to ``ctx.pool`` items from the variant's candidate index, without the excluded
    ones; not personalized (cohort popularity only) without consent or on a popularity arm."""
    r, index = ctx.request, ctx.variant.bundle.index
    exclude = index.excluded(r.last_items, r.exclude)
    if r.slate:
        # the caller chose the items: only what it or the user left out goes (blocked, exclude_item_ids),
        # not the session's recent or seen items, which the index would leave out of its own proposals
        gone = set(r.exclude)
        known = [index.item_index[i] for i in r.slate if i in index.item_index and i not in gone]
        return index.rescore(
            r.user,
            list(r.last_items),
            ctx.cohort,
            np.array(known, dtype=np.int64),
            ctx.pool,
            personalized=r.personal,
            genres=r.genres if r.personal else (),
            exclude=exclude,  # the request's own list, which the slate's ranks are taken among
        )
    return index.generate(
        r.user,
        list(r.last_items),
        ctx.cohort,
        exclude,
        ctx.pool,
        personalized=r.personal,
        genres=r.genres if r.personal else (),
    )


def features(ctx: RankContext, c: Candidates) -> np.ndarray:
    """Stage 2: the ranker's (candidates × inputs) matrix: user, session and request rows broadcast,
    item rows from the in-process table, the user×item block from the candidate index."""
    r, v = ctx.request, ctx.variant
    layout = v.bundle.layout
    if layout is None:
        raise RuntimeError(f"model {v.bundle.version} was loaded without a feature layout")
    aff = r.profile.get(USER_VECTOR)
    cross = v.bundle.index.cross_features(
        c, None if aff is None else np.asarray(aff, np.float32), r.genres[1], r.genres[0], list(r.last_items)
    )
    request_row = ctx.inputs.request_row(r.device, *hour_weekday(r.now, v.bundle.zone))
    return layout.assemble(
        row_vector(r.profile, ctx.inputs.user),
        row_vector(r.session, ctx.inputs.session),
        request_row,
        v.items.matrix[c.idx],
        cross,
    )


def score(ctx: RankContext, X: np.ndarray) -> np.ndarray:
    """Stage 3: one score per candidate, higher is better (setlist.blend: the EASE-boosted ranker)."""
    return ctx.variant.bundle.score(X)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Stage 4: positions of the ``k`` best scores, best first. A full stable sort (~20 µs for 500):
    equal scores keep candidate order, as in training's evaluation, and a ranker boosted from EASE
    scores many items without neighbours alike."""
    return np.argsort(-scores, kind="stable")[: min(k, len(scores))]


def top_k_newcomer(scores: np.ndarray, in_genre: np.ndarray, pop_rank: np.ndarray, k: int, share: float) -> np.ndarray:
    """The first slate of a user with no top genre (no profile) and nothing played: at most ``ceil(share·k)``
    items of the genre their search pointed at (``in_genre``), best by the model, taking every other
    slot from the rest in their cohort's popularity order (``pop_rank``, the model breaking ties);
    either side fills the slate when the other runs short.

    The ranker learned on users with a history: for a newcomer the whole user block is missing, and
    its order is worse than plain cohort popularity, while a search is a noisy hint (docs/onboarding.md).
    Cohort popularity alone is the control arm's slate; the searched genre woven into it is what
    the search adds."""
    n = min(k, len(scores))
    by_score = np.argsort(-scores, kind="stable")
    genre = by_score[in_genre[by_score]]
    rest = np.lexsort((-scores, pop_rank))  # popularity first, the model's score breaks ties
    rest = rest[~in_genre[rest]]
    limit = max(1, int(np.ceil(share * k)))
    out: list[int] = []
    g = r = 0
    while len(out) < n:
        # the genre's turn on every other slot while under its limit, or when the rest has run out
        genre_turn = g < len(genre) and ((g < limit and g <= r) or r >= len(rest))
        if genre_turn:
            out.append(int(genre[g]))
            g += 1
        else:
            out.append(int(rest[r]))
            r += 1
    return np.array(out, dtype=np.int64)


def explain(ctx: RankContext, X: np.ndarray, c: Candidates, top: np.ndarray) -> list[tuple[str, ...]]:
    """Stage 5: why each returned item, only when asked (the one DMatrix, over k rows)."""
    if not ctx.request.explain:
        return [()] * len(top)
    v = ctx.variant
    return reasons(v.bundle.booster, X[top], [str(v.items.genres[i]) for i in c.idx[top]])


# --- the two rankers over candidates ---------------------------------------------------------------
def unknown_items(ctx: RankContext) -> tuple[str, ...]:
    """The caller's candidates the variant's index does not know, in the order given; what the user
    blocked or the caller left out is not told back either (the caller would show it)."""
    item_index, gone = ctx.variant.bundle.index.item_index, set(ctx.request.exclude)
    return tuple(i for i in ctx.request.slate if i not in item_index and i not in gone)


def model_ranking(ctx: RankContext, c: Candidates) -> tuple[RankedItem, ...]:
    """Stages 2–5 on personalized candidates: the variant's model decides the order."""
    with span("rank.features"):
        X = features(ctx, c)
    with span("rank.score"):
        scores = score(ctx, X)
    index = ctx.variant.bundle.index
    r = ctx.request
    if ctx.new_user_genre_cap < 1.0 and not r.genres[1] and not r.last_items:  # no top genre, nothing played yet
        in_genre = index.item_genre[c.idx] == index.genre_index.get(r.genres[0], -1)
        top = top_k_newcomer(scores, in_genre, c.pop_rank, r.k, ctx.new_user_genre_cap)
    else:
        top = top_k(scores, ctx.request.k)
    ids = index.item_ids[c.idx[top]]
    why = explain(ctx, X, c, top)
    return tuple(RankedItem(str(i), float(s), w) for i, s, w in zip(ids, scores[top], why, strict=True))


def _cohort_words(kept: str) -> str:
    """Whose popularity a cold start was shown: the cohort's, or the nearest one training kept."""
    locale, _, device = kept.partition("|")
    named = [w for w, v in (("your region", locale), ("your device", device)) if v and v != "unknown"]
    return "everyone" if kept == GLOBAL_COHORT or not named else " and ".join(named).replace("and your", "and")


def popularity_ranking(ctx: RankContext, c: Candidates) -> tuple[RankedItem, ...]:
    """Cold-start users, users without personalization consent and popularity arms: the candidates'
    own (cohort popularity) order, scored 1, 1/2, 1/3… so scores still order the list."""
    index = ctx.variant.bundle.index
    shown = c.idx[: ctx.request.k]
    if not ctx.request.explain:
        whys: list[tuple[str, ...]] = [()] * len(shown)
    else:
        who = _cohort_words(index.kept_cohort(ctx.cohort))
        # a caller's slate may hold items outside the cohort's list (rank 1): they follow in the caller's order
        outside = c.pop_rank[: len(shown)] >= 1.0 if ctx.request.slate else np.zeros(len(shown), bool)
        whys = [(f"not among what is popular with {who}",) if o else (f"popular with {who}",) for o in outside]
    return tuple(
        RankedItem(str(index.item_ids[i]), float(1.0 / (1 + n)), why)
        for n, (i, why) in enumerate(zip(shown, whys, strict=True))
    )
