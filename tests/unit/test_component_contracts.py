"""Every candidate source and every ranker meets the shared contracts (tests/contracts.py), on a tiny
in-memory world: no server, no Feast, no registry."""

from __future__ import annotations

import numpy as np
import pytest

from serving import rank_stages as stages
from setlist.blend import scorer
from setlist.candidate_sources import SOURCES, SourceQuery
from setlist.candidates import CandidateIndex
from tests.contracts import (
    ITEMS,
    RankerCase,
    RankerContract,
    SourceCase,
    SourceContract,
    tiny_booster,
    tiny_index,
    tiny_request,
    tiny_variant,
)

#: sources that answer a user and a session they know nothing of
COLD_SERVING = {"cohort_popularity", "generate", "generate_unpersonalized"}


def _single(index: CandidateIndex, name: str):
    def source(q: SourceQuery, n: int, exclude: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        p = index.propose(name, q, n, exclude)
        return p.idx, p.score

    return source


def _merged(index: CandidateIndex, personalized: bool):
    """``generate``, the merge of every source that Rank calls, as one source."""

    def source(q: SourceQuery, n: int, exclude: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        c = index.generate(
            q.user_id, list(q.last_items), q.cohort, set(exclude), n, personalized=personalized, genres=q.genres
        )
        return c.idx, -np.arange(len(c.idx), dtype=np.float32)  # its order is its score

    return source


def _source_cases() -> list[SourceCase]:
    cases = []
    for exclude_seen in (False, True):
        index = tiny_index(exclude_seen=exclude_seen)
        named = {
            **{n: _single(index, n) for n in SOURCES},
            "generate": _merged(index, True),
            "generate_unpersonalized": _merged(index, False),
        }
        cases += [
            SourceCase(f"{n}{'-exclude_seen' if exclude_seen else ''}", s, index, n in COLD_SERVING)
            for n, s in named.items()
        ]
    return cases


@pytest.fixture(params=_source_cases(), ids=lambda c: c.name)
def case(request: pytest.FixtureRequest) -> SourceCase:
    return request.param


class TestEverySource(SourceContract):
    pass


def test_every_named_source_is_covered():
    # a source added to SOURCES is in the parametrization above without anyone listing it
    assert {c.name for c in _source_cases()} >= set(SOURCES)


# --- rankers ---------------------------------------------------------------------------------------
RANKERS = {
    "model_ease_boosted": (stages.model_ranking, 20, 2.0),  # trees corrected from an EASE margin
    "model_ease_only": (stages.model_ranking, 0, 1.0),  # no trees: exactly the EASE order
    "model_plain": (stages.model_ranking, 20, 0.0),  # no margin
    "popularity": (stages.popularity_ranking, 5, 0.0),
}


@pytest.fixture(scope="module", params=sorted(RANKERS))
def ranker_case(request: pytest.FixtureRequest, features) -> RankerCase:
    ranker, trees, weight = RANKERS[request.param]
    variant = tiny_variant(features, tiny_index(), tiny_booster(features, trees, weight))
    return RankerCase(request.param, ranker, variant, stages.Inputs.of(features))


class TestEveryRanker(RankerContract):
    @pytest.fixture
    def case(self, ranker_case: RankerCase) -> RankerCase:
        return ranker_case


# --- scorers (setlist.blend): what the model rankers score with ------------------------------------
@pytest.mark.parametrize("trees,weight", [(20, 2.0), (0, 1.0), (20, 0.0)], ids=["boosted", "ease_only", "plain"])
def test_a_scorer_gives_one_finite_score_per_row_whatever_the_row_order(features, trees, weight):
    variant = tiny_variant(features, tiny_index(), tiny_booster(features, trees, weight))
    ctx = stages.RankContext(tiny_request(), variant, stages.Inputs.of(features), ITEMS)
    X = stages.features(ctx, stages.candidates(ctx))
    score = scorer(variant.bundle.booster)
    s = score(X)
    assert s.shape == (len(X),) and np.isfinite(s).all()
    np.testing.assert_array_equal(score(X), s)
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(score(X[perm]), s[perm], rtol=1e-6)  # a request's margin scales per request
    assert len(np.unique(s)) > 1
