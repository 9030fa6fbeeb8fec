"""New listeners in the simulator (experiments.newcomers): the prior they come from, simulated time,
and a return model that rewards a better ranking. A fake ranking stands in for the server."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
from numpy.random import PCG64, Generator, SeedSequence

from experiments.newcomers import (
    PREFIX,
    SIGN_UP_FEATURE,
    Onboarding,
    OnboardingConfig,
    SimClock,
    Timeline,
    draw_newcomers,
    genre_centres,
    return_probability,
)
from ingest.latent import DIM, GENRES, affinity
from ingest.world import DAY_S, LOCALES, build_world
from serving.types import RankedItem, RankQuery, RankResult, TrackEvent, TrackResult
from setlist.contract import DEVICES
from setlist.kpis import ValueRule

SEED = 7
RULE = ValueRule(frozenset({"play", "like"}))


@pytest.fixture(scope="module")
def world():
    seq = SeedSequence(SEED).spawn(2)[0]  # the generator's world stream (ingest.generate)
    return build_world(Generator(PCG64(seq)), 600, 400, 0, 35 * DAY_S)


def test_genre_centres_are_the_generators_own_with_its_seed_and_close_without(world):
    seq = SeedSequence(SEED).spawn(2)[0]
    true = Generator(PCG64(seq)).normal(0.0, 1.0 / np.sqrt(DIM), (len(GENRES), DIM))
    assert np.allclose(genre_centres(world.latent, SEED), true)
    fitted = genre_centres(world.latent, SEED + 1)  # a wrong seed is refused: the fit instead
    assert not np.allclose(fitted, true)
    assert np.allclose(fitted, genre_centres(world.latent))
    assert np.linalg.norm(fitted - true) < 0.5 * np.linalg.norm(true)


def test_newcomers_are_new_users_of_the_same_prior_and_leave_the_world_alone(world):
    latent = world.latent
    before = latent.user_taste.copy()
    extended, users = draw_newcomers(latent, 400, seed=3, days=14, run="r1", world_seed=SEED)
    assert extended.n_users == latent.n_users + 400 and extended.n_items == latent.n_items
    assert np.array_equal(extended.user_taste[: latent.n_users], before) and np.array_equal(latent.user_taste, before)
    assert [u.index for u in users] == list(range(latent.n_users, latent.n_users + 400))
    assert all(u.user_id.startswith(f"{PREFIX}-r1-") for u in users)
    assert list(extended.user_ids[latent.n_users :]) == [u.user_id for u in users]
    assert not {u.user_id for u in users} & set(latent.user_ids)
    assert {u.locale for u in users} <= set(LOCALES) and {u.arrival_day for u in users} == set(range(7))
    # the same prior: affinity of random pairs, taste norms and genre preferences look alike
    rng = np.random.default_rng(0)
    items = rng.integers(0, latent.n_items, 20_000)
    old = affinity(extended, rng.integers(0, latent.n_users, 20_000), items)
    new = affinity(extended, rng.integers(latent.n_users, extended.n_users, 20_000), items)
    assert abs(old.mean() - new.mean()) < 0.1 and abs(old.std() - new.std()) < 0.1
    norms = np.linalg.norm(extended.user_taste, axis=1)
    assert abs(norms[: latent.n_users].mean() - norms[latent.n_users :].mean()) < 0.15
    assert np.allclose(extended.user_genre_pref[latent.n_users :].sum(axis=1), 1.0, atol=1e-5)
    # a newcomer is the same whoever else arrives: its own random stream
    _, fewer = draw_newcomers(latent, 10, seed=3, days=14, run="r2", world_seed=SEED)
    assert [(u.locale, u.hour, u.arrival_day) for u in fewer] == [(u.locale, u.hour, u.arrival_day) for u in users[:10]]


def test_the_timeline_lies_in_the_past_and_its_days_are_utc_calendar_days():
    now = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
    t = Timeline.ending_before(now, 8)
    assert t.start == datetime(2026, 11, 21, tzinfo=UTC) and t.end == datetime(2026, 11, 29, tzinfo=UTC)
    assert t.end_s - t.start_s == 8 * DAY_S and t.end < now


def test_returns_follow_the_value_a_visit_gave_and_fade_with_days_away():
    p = [return_probability(v, 1, 1.0) for v in np.linspace(0, 1, 11)]
    assert all(a < b for a, b in zip(p, p[1:])) and 0.05 < p[0] < 0.2 and p[-1] > 0.9
    assert return_probability(0.3, 3, 1.0) < return_probability(0.3, 2, 1.0) < return_probability(0.3, 1, 1.0)
    assert return_probability(0.3, 1, 5.0) > return_probability(0.3, 1, 0.2)  # active people come back more


class Fake:
    """Shows each user the items with their best (or worst) true affinity; records Track."""

    def __init__(self, latent, best: bool, clock: SimClock) -> None:
        self.latent, self.best, self.clock = latent, best, clock
        self.index = {str(u): n for n, u in enumerate(latent.user_ids)}
        self.tracked: list[tuple[float, list[TrackEvent]]] = []

    def rank(self, q: RankQuery) -> RankResult:
        z = affinity(self.latent, np.full(self.latent.n_items, self.index[q.user_id]), np.arange(self.latent.n_items))
        order = np.argsort(-z if self.best else z)[: q.k]
        items = tuple(RankedItem(str(self.latent.item_ids[i]), float(-n)) for n, i in enumerate(order))
        return RankResult(items, "fake", arm="best" if self.best else "worst")

    def track(self, events: list[TrackEvent]) -> TrackResult:
        self.tracked.append((self.clock(), events))
        return TrackResult(len(events))


def simulate(world, best: bool, users: int = 120, days: int = 10):
    latent, newcomers = draw_newcomers(world.latent, users, seed=5, days=days, run="x", world_seed=SEED)
    timeline = Timeline.ending_before(datetime(2026, 11, 30, tzinfo=UTC), days)
    clock = SimClock(timeline.start_s)
    fake = Fake(latent, best, clock)
    cfg = OnboardingConfig(users=users, days=days, slates=2, k=5, seed=5)
    stats = Onboarding(fake, latent, cfg, clock, RULE, timeline).run(newcomers)
    return stats, fake, timeline, newcomers


def test_events_are_stamped_in_simulated_time_in_order_and_carry_device_and_locale(world):
    stats, fake, timeline, users = simulate(world, best=True, users=30, days=6)
    locales = {u.user_id: u.locale for u in users}
    last: dict[str, int] = {}
    days: Counter = Counter()
    for now, events in fake.tracked:
        assert max(e.timestamp_ms for e in events) <= now * 1000  # never in the future of Track's clock
        for e in events:
            assert timeline.start_s * 1000 <= e.timestamp_ms < timeline.end_s * 1000
            assert e.timestamp_ms > last.get(e.user_id, 0)  # strictly increasing per user
            last[e.user_id] = e.timestamp_ms
            assert e.context["device"] in DEVICES and e.context["locale"] == locales[e.user_id]
            assert e.context["consent_analytics"] in ("true", "false")
            days[(e.user_id, (e.timestamp_ms // 1000 - timeline.start_s) // DAY_S)] += 1
    # one Track per slate, plus each newcomer's sign-up, counted under the arm that then answered them
    assert stats.ranks["best"] + len(users) == len(fake.tracked) == stats.tracks["best"]
    assert stats.visits == len({k for k in days})
    assert stats.returns == stats.visits - len(users) > 0


def test_a_newcomer_signs_up_with_consent_and_most_search_a_genre_of_their_own(world):
    _, fake, _, users = simulate(world, best=True, users=60, days=3)
    first: dict[str, list[TrackEvent]] = {}
    for _, events in fake.tracked:
        first.setdefault(events[0].user_id, events)
    assert set(first) == {u.user_id for u in users}
    searched = 0
    for u in users:
        events = first[u.user_id]
        assert events[0].type == "feature_use" and events[0].query == SIGN_UP_FEATURE and not events[0].item_id
        assert {k: events[0].context[k] for k in u.consent} == u.consent  # consent known before the first Rank
        if len(events) == 2:
            assert events[1].type == "search" and events[1].query.replace(" ", "_") in GENRES
            searched += 1
        else:
            assert len(events) == 1
    assert 0.3 * len(users) < searched < 0.9 * len(users)  # SEARCH_SHARE of them, 0.6


def test_a_better_ranking_earns_more_returns(world):
    good, *_ = simulate(world, best=True)
    bad, *_ = simulate(world, best=False)
    assert good.returns > 1.5 * bad.returns, (good.returns, bad.returns)
    assert good.visits > bad.visits
