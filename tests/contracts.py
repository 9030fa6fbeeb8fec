"""Reusable contracts every candidate source and every ranker must meet, and a tiny in-memory world.

In the spirit of lenskit's ``testing`` components: a test module subclasses ``SourceContract`` or
``RankerContract`` and provides the ``source`` or ``ranker`` fixture (parametrize it over every
implementation), and each contract test runs for each. A new source or ranker is covered by adding
it to that parametrization.

The suite lives under tests/, not in the ``setlist`` package: sources and rankers are written by
this project's engineers, inside this repository, and the suite needs pytest, which the serving
image does not install.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp
import xgboost as xgb

from serving import rank_stages as stages
from serving.item_table import ItemTable
from serving.live import Variant
from serving.rollout.models import ModelBundle
from serving.types import RankedItem
from setlist.blend import MARGIN_FEATURE, margin_basis, set_blend
from setlist.candidate_sources import GLOBAL_COHORT, SourceQuery, cohort_key, genre_key
from setlist.candidates import CandidateIndex
from setlist.feature_layout import Layout
from setlist.featureset import FeatureSet

ITEMS, USERS, GENRES = 60, 20, ("rock", "jazz", "folk")
COHORT = cohort_key("en_US", "mobile")
NOW = datetime(2026, 11, 2, 20, 30, tzinfo=UTC)


# --- a tiny world: catalog, interactions, a booster, a variant -------------------------------------
def tiny_index(seed: int = 0, exclude_seen: bool = False, exclude_recent: bool = True) -> CandidateIndex:
    """60 items in 3 genres, 20 users with histories; every source has something to propose."""
    rng = np.random.default_rng(seed)
    genre = np.arange(ITEMS) % len(GENRES)

    def sparse(rows: int, p: float) -> sp.csr_matrix:
        return sp.csr_matrix((rng.random((rows, ITEMS)) * (rng.random((rows, ITEMS)) < p)).astype(np.float32))

    seen = sparse(USERS, 0.15)
    seen.data = np.arange(1, len(seen.data) + 1, dtype=np.float32)  # positive recency ranks
    cohorts = {GLOBAL_COHORT: rng.permutation(ITEMS), COHORT: rng.permutation(ITEMS)[:30]}
    cohorts |= {genre_key(g): rng.permutation(np.flatnonzero(genre == n)) for n, g in enumerate(GENRES)}
    return CandidateIndex(
        np.array([f"i{n}" for n in range(ITEMS)]),
        genre,
        list(GENRES),
        np.array([f"u{n}" for n in range(USERS)]),
        rng.normal(size=(USERS, 4)),
        rng.normal(size=(ITEMS, 4)),
        sparse(ITEMS, 0.1),
        cohorts,
        seen=seen,
        knn=sparse(ITEMS, 0.1),
        exclude_seen=exclude_seen,
        exclude_recent=exclude_recent,
    )


def tiny_booster(features: FeatureSet, trees: int, weight: float, seed: int = 0) -> xgb.Booster:
    """A ranker on the declared ranker_v1 inputs; ``weight`` > 0 boosts it from the EASE score."""
    names = list(features.service("ranker_v1").inputs)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, len(names))).astype(np.float32)
    margin = weight * margin_basis(X[:, names.index(MARGIN_FEATURE)]) if weight else None
    d = xgb.DMatrix(X, label=(X[:, 0] + X[:, -1] > 0).astype(np.float32), feature_names=names, base_margin=margin)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, d, num_boost_round=trees)
    set_blend(booster, MARGIN_FEATURE if weight else None, weight)
    return booster


def tiny_variant(features: FeatureSet, index: CandidateIndex, booster: xgb.Booster, seed: int = 0) -> Variant:
    rng = np.random.default_rng(seed)
    names = features.inputs("item")
    matrix = rng.random((ITEMS, len(names))).astype(np.float32)
    matrix[::7, 0] = np.nan  # items with a missing stat, as the online store has
    items = ItemTable(matrix, names, np.array([GENRES[g] for g in index.item_genre], dtype=object), 1, 0)
    layout = Layout.of(list(booster.feature_names or []), features)
    return Variant(ModelBundle(index, booster, "1", "1", layout), items)


def tiny_request(
    user: str = "u3",
    k: int = 10,
    *,
    last: tuple[str, ...] = ("i4", "i9"),
    exclude: tuple[str, ...] = (),
    explain: bool = False,
    personal: bool = True,
    profile: dict | None = None,
) -> stages.Request:
    """A request as ``stages.request`` builds it, by hand: no online store, no Feast."""
    profile = (
        {"user_plays_7d": 3.0, "user_top_genre": "jazz", "user_genre_affinity": [0.2, 0.7, 0.1]}
        if profile is None
        else profile
    )
    session = {
        "session_last_items": list(last),
        "session_blocked_items": [],
        "session_genre": "rock" if last else "",
        "session_length": len(last),
        "session_skip_rate": 0.0,
    }
    return stages.Request(
        user,
        k,
        explain,
        "mobile",
        "en_US",
        NOW,
        profile,
        session,
        last,
        exclude,
        ("rock" if last else "", str(profile.get("user_top_genre") or "")),
        personal,
    )


# --- candidate sources ----------------------------------------------------------------------------
#: (query, n, item indices to exclude) -> (item indices, their scores)
Source = Callable[[SourceQuery, int, frozenset[int]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class SourceCase:
    name: str
    source: Source
    index: CandidateIndex
    serves_cold_users: bool  # answers (non-empty) for a user and session it knows nothing of


WARM = SourceQuery("u3", ("i4", "i9"), COHORT, ("rock", "jazz"))
COLD = SourceQuery("never-seen", (), "xx_XX|fridge", ())


class SourceContract:
    """Needs a ``case`` fixture (a ``SourceCase``)."""

    def _check(self, case: SourceCase, q: SourceQuery, n: int, exclude: frozenset[int] = frozenset()) -> np.ndarray:
        idx, score = case.source(q, n, exclude)
        assert len(idx) <= n, f"{case.name} proposed {len(idx)} > {n}"
        assert len(set(idx.tolist())) == len(idx), f"{case.name} proposed an item twice"
        assert ((idx >= 0) & (idx < len(case.index.item_ids))).all(), f"{case.name} proposed an unknown item"
        assert len(score) == len(idx) and np.isfinite(score).all()
        return idx

    def test_warm_user_gets_at_most_n_unique_known_items(self, case: SourceCase) -> None:
        assert len(self._check(case, WARM, 8)) > 0, f"{case.name} proposed nothing for a warm user"

    def test_excluded_items_are_never_proposed(self, case: SourceCase) -> None:
        first = self._check(case, WARM, 8)
        excluded = frozenset(first[:3].tolist())
        again = self._check(case, WARM, 8, excluded)
        assert not excluded & set(again.tolist())

    def test_the_same_question_gets_the_same_answer(self, case: SourceCase) -> None:
        a, b = case.source(WARM, 8, frozenset()), case.source(WARM, 8, frozenset())
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])

    def test_a_cold_user_with_no_history_or_session(self, case: SourceCase) -> None:
        idx = self._check(case, COLD, 8)
        assert (len(idx) > 0) == case.serves_cold_users

    def test_a_known_user_with_an_empty_session(self, case: SourceCase) -> None:
        self._check(case, replace(WARM, last_items=(), genres=()), 8)

    def test_n_larger_than_the_catalog(self, case: SourceCase) -> None:
        self._check(case, WARM, 10 * ITEMS)


# --- rankers --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankerCase:
    name: str
    ranker: stages.Ranker
    variant: Variant
    inputs: stages.Inputs

    def rank(self, request: stages.Request, pool: int = 40) -> tuple[tuple[RankedItem, ...], np.ndarray]:
        ctx = stages.RankContext(request, self.variant, self.inputs, pool)
        c = stages.candidates(ctx)
        return self.ranker(ctx, c), self.variant.bundle.index.item_ids[c.idx]


class RankerContract:
    """Needs a ``case`` fixture (a ``RankerCase``)."""

    def _check(self, case: RankerCase, request: stages.Request) -> list[str]:
        items, candidates = case.rank(request)
        ids = [i.item_id for i in items]
        scores = np.array([i.score for i in items])
        assert len(ids) <= request.k and len(set(ids)) == len(ids), case.name
        assert set(ids) <= set(candidates.tolist()), f"{case.name} returned an item that was not a candidate"
        assert np.isfinite(scores).all(), case.name
        assert (np.diff(scores) <= 0).all(), f"{case.name}: the order disagrees with the scores"
        return ids

    def test_returns_k_ranked_items(self, case: RankerCase) -> None:
        assert len(self._check(case, tiny_request(k=10))) == 10

    def test_excluded_and_recent_items_are_never_returned(self, case: RankerCase) -> None:
        first = self._check(case, tiny_request(k=10))
        ids = self._check(case, tiny_request(k=10, exclude=tuple(first[:4])))
        assert not set(first[:4]) & set(ids) and not {"i4", "i9"} & set(ids)

    def test_the_same_request_gets_the_same_ranking(self, case: RankerCase) -> None:
        assert case.rank(tiny_request())[0] == case.rank(tiny_request())[0]

    def test_a_cold_user_still_gets_an_answer(self, case: RankerCase) -> None:
        assert len(self._check(case, tiny_request("never-seen", last=(), profile={}))) == 10

    def test_a_known_user_with_an_empty_session(self, case: RankerCase) -> None:
        assert len(self._check(case, tiny_request(last=()))) == 10

    def test_k_larger_than_the_catalog(self, case: RankerCase) -> None:
        items, candidates = case.rank(tiny_request(k=10 * ITEMS), pool=10 * ITEMS)
        assert len(items) == len(candidates) <= ITEMS
        self._check(case, tiny_request(k=10 * ITEMS))

    def test_explanations_only_when_asked(self, case: RankerCase) -> None:
        assert all(i.reasons == () for i in case.rank(tiny_request())[0])
        assert all(i.reasons for i in case.rank(tiny_request(explain=True))[0])


@pytest.fixture(scope="module")
def features() -> FeatureSet:
    from feature_repo.declarations import load

    return load()
