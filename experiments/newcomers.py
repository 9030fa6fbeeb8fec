"""New listeners over simulated days: the onboarding simulation behind ``experiments onboarding``.

Who arrives
-----------
:func:`draw_newcomers` draws brand-new users from the prior the generated world drew its users from
(``ingest.world.build_world``): a locale from ``LOCALE_SHARES``; genre preferences
``0.85·Dirichlet(0.35·G·tilt[locale]) + 0.15·tilt[locale]``; a taste ``3·(pref·C + N(0, 1/√D))``;
an engagement bias ``N(0, 0.35)``; an activity ``LogNormal(-0.5, 1)``; a device mix around a primary
device drawn from ``DEVICE_SHARES``; consent flags with the world's opt-out shares. The genre centres
``C`` are not stored in ``latent.npz``: :func:`genre_centres` takes the generator's own draw for its
seed (``SETLIST_SEED``) once the existing users' tastes confirm it, and otherwise fits them by least
squares on those users, whose taste is ``3·pref·C`` plus independent noise. The newcomers are
appended to an in-memory copy of the latent arrays (:func:`with_newcomers`): the existing users and
the items are untouched and affinity keeps the world's standardization, so newcomers answer through
``ingest.latent.respond`` like any generated user. Their ids, ``newcomer-<run>-<n>``, carry a token
per run: features, training and the online store have never seen them, not even in an earlier run.
Each newcomer draws from its own random stream (``seed``, number), so the same seed gives the same
listeners whatever their count; the arm each lands in follows its id, so it changes from run to run.

Simulated time
--------------
Day ``d`` is ``[start + d days, start + d + 1 days)`` with ``start`` = today's UTC midnight minus
``days + 1`` days: the timeline lies in the past and ends a day before today, and a simulated day is
a UTC calendar day (the KPIs' days, ``experiments.onboarding``). Newcomers arrive uniformly over the
first ``max(1, days - 7)`` days, so most can be watched for a week. Each visits at a habitual hour
(the generator's diurnal curve in their locale's local time) ± 45 minutes. A visit is ``slates``
Rank → react → Track rounds in one session (one session id per visit), on a device drawn from the
user's mix, with ``device`` and ``locale`` in the context. The user goes down each slate reacting
through ``respond``; the clock moves by the time that takes (a play: its listen fraction of the
track; a skip 10 s; an item passed over 2 s; a like, playlist add or not-interested 1 s) and each
event is stamped when it happens; the next Rank comes a second after the Track.

Sign-up
-------
A newcomer's first visit opens with what a music app sends when someone signs up, before any slate:
a ``feature_use`` event (``sign_up``) carrying the consent flags they chose, so the server knows
them from the first Rank on, and, for ``SEARCH_SHARE`` of newcomers, a ``search`` typed
``SEARCH_S`` seconds later for a genre drawn from their own preferences (a draw, not their top
genre: a first search is a noisy hint). Both arms receive the same events; what each arm does with
them is the experiment. Time-to-first-value counts from the sign-up event.

The in-process server runs on this simulated clock (``serving.bootstrap.build(clock=...)``): Track
takes the events as live (no ``track_max_age_days`` to raise), a session expires after its gap as it
would, the request hour is the simulated one, and impressions carry simulated time too.

Returns
-------
After a visit in which ``v`` of the items shown gave a value event (``setlist.kpis.ValueRule``: the
visit's value events over its items shown, ``v`` in [0, 1]), on each later day the user comes back
with probability::

    sigmoid(RETURN_BASE + RETURN_PER_VALUE·v + ACTIVITY_WEIGHT·(ln activity + 0.5)) · RETURN_FADE ** (g - 1)

where ``g`` is the days since that visit: value brings a listener back, and interest fades each day
they stay away. With average activity a visit whose value share was 0, 0.2, 0.3, 0.4 and 0.6 gives
12%, 27%, 38%, 50% and 73% the next day. A share, not a count: a visit's count grows with its
length (slates × k) and would saturate any cap, while the share keeps telling a better visit from a
worse one at every length. So a ranking that gives new users more value also earns more returns,
which the return rate then measures; nothing here looks at the arm.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence

from experiments.simulate import Ranking
from ingest.generate import DIURNAL
from ingest.latent import DIM, GENRE_SHARES, GENRES, Latent, respond
from ingest.world import (
    DAY_S,
    DEVICE_SHARES,
    LOCALE_SHARES,
    LOCALE_TILT,
    LOCALE_UTC_OFFSET_H,
    LOCALES,
    OPT_OUT_ANALYTICS,
    OPT_OUT_PERSONALIZATION,
)
from serving.types import RankQuery, TrackEvent, TrackResult
from setlist.contract import DEVICES
from setlist.kpis import ValueRule

PREFIX = "newcomer"
RETURN_BASE = -2.0
RETURN_PER_VALUE = 5.0
RETURN_FADE = 0.8
ACTIVITY_WEIGHT = 0.5
#: seconds a reaction takes, besides a play (its listen fraction of the track)
SKIP_S, PASS_S, EXTRA_S = 10.0, 2.0, 1.0
RANK_GAP_S = 1.0
#: sign-up: the share of newcomers whose first click is a search, and how long typing it takes (s)
SEARCH_SHARE = 0.6
SEARCH_S = 8.0
SIGN_UP_FEATURE = "sign_up"
#: a visit starts at the user's habitual hour ± this (hours), kept inside its simulated day
JITTER_H = 0.75
WATCH_DAYS = 7


# --- who arrives ----------------------------------------------------------------------------------
def genre_centres(latent: Latent, seed: int | None = None) -> np.ndarray:
    """The world's genre centres ``C`` (G × D). With the generator's ``seed``: its own first draw
    (``ingest.generate`` → ``build_world``), kept only if the users' tastes confirm it (their residual
    is no larger than a least-squares fit's, within noise); else, or without a seed, the least-squares
    fit of ``taste / 3`` on ``pref``, which is exact only up to noise on a small world."""
    pref = latent.user_genre_pref.astype(np.float64)
    taste = latent.user_taste.astype(np.float64) / 3.0
    fitted, *_ = np.linalg.lstsq(pref, taste, rcond=None)
    if seed is None:
        return fitted
    world = SeedSequence(seed).spawn(2)[0]
    drawn = Generator(PCG64(world)).normal(0.0, 1.0 / np.sqrt(DIM), (len(GENRES), DIM))
    if drawn.shape != fitted.shape:
        return fitted
    residual = float(np.mean((taste - pref @ drawn) ** 2))
    floor = float(np.mean((taste - pref @ fitted) ** 2))
    return drawn if residual <= 1.2 * floor else fitted


def locale_tilt() -> np.ndarray:
    """Per locale, the genre shares its users' preferences centre on (as ``build_world``)."""
    tilt = np.tile(GENRE_SHARES, (len(LOCALES), 1))
    tilt[np.arange(len(LOCALES)), [GENRES.index(t) for t in LOCALE_TILT]] *= 2.5
    return tilt / tilt.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Newcomer:
    user_id: str  # the application's id (the server pseudonymizes it)
    number: int  # 0.. within the run: the random stream
    index: int  # row in the extended latent arrays
    locale: str
    hour: float  # habitual visit time, UTC hours
    arrival_day: int
    consent: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Prior:
    """One newcomer's latent row (what ``build_world`` draws per user)."""

    locale: int
    pref: np.ndarray
    taste: np.ndarray
    bias: float
    activity: float
    device_mix: np.ndarray


def draw_prior(rng: np.random.Generator, centres: np.ndarray, tilt: np.ndarray) -> Prior:
    g = len(GENRES)
    locale = int(rng.choice(len(LOCALES), p=LOCALE_SHARES))
    base = tilt[locale]
    raw = rng.gamma(np.maximum(0.35 * g * base, 1e-3))
    pref = 0.85 * raw / raw.sum() + 0.15 * base
    taste = 3.0 * (pref @ centres + rng.normal(0.0, 1.0 / np.sqrt(DIM), DIM))
    primary = int(rng.choice(len(DEVICES), p=DEVICE_SHARES))
    mix = 0.3 * rng.dirichlet(np.full(len(DEVICES), 0.5))
    mix[primary] += 0.7
    return Prior(locale, pref, taste, float(rng.normal(0.0, 0.35)), float(rng.lognormal(-0.5, 1.0)), mix)


def with_newcomers(latent: Latent, priors: Sequence[Prior], ids: Sequence[str]) -> Latent:
    """A copy of ``latent`` with the newcomers' rows appended (rows ``latent.n_users`` on)."""
    if not priors:
        return latent

    def add(old: np.ndarray, new: list) -> np.ndarray:
        return np.concatenate([old, np.asarray(new, dtype=old.dtype)])

    return replace(
        latent,
        user_ids=np.concatenate([latent.user_ids, np.asarray(ids, dtype=str)]),  # wider strings: no cut ids
        user_taste=add(latent.user_taste, [p.taste for p in priors]),
        user_genre_pref=add(latent.user_genre_pref, [p.pref for p in priors]),
        user_bias=add(latent.user_bias, [p.bias for p in priors]),
        user_activity=add(latent.user_activity, [p.activity for p in priors]),
        user_device_mix=add(latent.user_device_mix, [p.device_mix for p in priors]),
    )


def draw_newcomers(
    latent: Latent, n: int, seed: int, days: int, run: str | None = None, world_seed: int | None = None
) -> tuple[Latent, list[Newcomer]]:
    """``n`` new listeners of this world (generated with ``world_seed``, when known) and the latent
    arrays that include them."""
    run = run or uuid.uuid4().hex[:8]
    centres, tilt = genre_centres(latent, world_seed), locale_tilt()
    arrive = max(1, days - WATCH_DAYS)
    priors, users = [], []
    diurnal = DIURNAL / DIURNAL.sum()
    for k in range(n):
        rng = np.random.default_rng([seed, 1, k])
        p = draw_prior(rng, centres, tilt)
        local = rng.choice(24, p=diurnal) + rng.random()
        hour = float((local - LOCALE_UTC_OFFSET_H[p.locale]) % 24)
        consent = {
            "consent_personalization": str(bool(rng.random() >= OPT_OUT_PERSONALIZATION)).lower(),
            "consent_analytics": str(bool(rng.random() >= OPT_OUT_ANALYTICS)).lower(),
        }
        uid = f"{PREFIX}-{run}-{k:06d}"
        priors.append(p)
        users.append(Newcomer(uid, k, latent.n_users + k, LOCALES[p.locale], hour, int(rng.integers(arrive)), consent))
    return with_newcomers(latent, priors, [u.user_id for u in users]), users


# --- simulated time -------------------------------------------------------------------------------
class SimClock:
    """The simulated "now" (Unix seconds), for the server and the simulator alike."""

    def __init__(self, t: float) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t


@dataclass(frozen=True)
class Timeline:
    start_s: int  # a UTC midnight
    days: int

    @classmethod
    def ending_before(cls, now: datetime, days: int) -> Timeline:
        """``days`` simulated days ending a day before ``now``'s UTC midnight (all in the past)."""
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(int((midnight - timedelta(days=days + 1)).timestamp()), days)

    @property
    def end_s(self) -> int:
        return self.start_s + self.days * DAY_S

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_s, tz=UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_s, tz=UTC)


def return_probability(value_share: float, gap_days: int, activity: float) -> float:
    """The chance of a visit ``gap_days`` after one whose items gave ``value_share`` value events each
    (module doc)."""
    x = RETURN_BASE + RETURN_PER_VALUE * min(max(value_share, 0.0), 1.0)
    x += ACTIVITY_WEIGHT * (np.log(max(activity, 1e-6)) + 0.5)
    return float(1.0 / (1.0 + np.exp(-x)) * RETURN_FADE ** max(gap_days - 1, 0))


# --- the simulation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnboardingConfig:
    users: int = 300
    days: int = 14
    slates: int = 3  # Rank → react → Track rounds per visit
    k: int = 10
    seed: int = 11


@dataclass
class OnboardingStats:
    ranks: Counter = field(default_factory=Counter)  # Rank calls answered, by arm
    tracks: Counter = field(default_factory=Counter)  # Track calls, by the arm of the Rank before
    tracked: Counter = field(default_factory=Counter)  # Track events accepted, by arm
    visits: int = 0
    returns: int = 0  # visits after the first
    events: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)  # why Track rejected events (first words)
    seconds: float = 0.0  # wall time


@dataclass
class _State:
    rng: np.random.Generator
    last_day: int = -1
    last_value: float = 0.0  # the last visit's value events per item shown
    last_ms: int = 0


class Onboarding:
    """Newcomers arrive and return over simulated days against ``ranking`` (run on ``clock``)."""

    def __init__(
        self,
        ranking: Ranking,
        latent: Latent,
        config: OnboardingConfig,
        clock: SimClock,
        rule: ValueRule,
        timeline: Timeline,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.ranking, self.latent, self.config = ranking, latent, config
        self.clock, self.rule, self.timeline = clock, rule, timeline
        self.progress = progress
        self._items = {str(i): n for n, i in enumerate(latent.item_ids)}

    def run(self, users: Sequence[Newcomer]) -> OnboardingStats:
        cfg, stats = self.config, OnboardingStats()
        started = time.perf_counter()
        state = {u.user_id: _State(np.random.default_rng([cfg.seed, 2, u.number])) for u in users}
        for day in range(self.timeline.days):
            today: list[tuple[float, Newcomer]] = []
            for u in users:
                s = state[u.user_id]
                if u.arrival_day == day:
                    visit = True
                elif s.last_day >= 0:
                    p = return_probability(s.last_value, day - s.last_day, float(self.latent.user_activity[u.index]))
                    visit = bool(s.rng.random() < p)
                else:
                    visit = False
                if visit:
                    hour = float(np.clip(u.hour + s.rng.normal(0.0, JITTER_H), 0.1, 22.0))
                    today.append((self.timeline.start_s + day * DAY_S + hour * 3600.0, u))
            for at, u in sorted(today, key=lambda x: x[0]):
                s = state[u.user_id]
                stats.returns += s.last_day >= 0
                s.last_value = self.visit(u, s, at, stats, first=s.last_day < 0)
                s.last_day = day
                stats.visits += 1
            if self.progress is not None:
                self.progress(day)
        stats.seconds = time.perf_counter() - started
        return stats

    def sign_up(
        self, u: Newcomer, s: _State, at: float, session: str, ctx: dict[str, str]
    ) -> tuple[float, TrackResult]:
        """The app's first events for a new listener, before any slate (module doc, "Sign-up"):
        a ``feature_use`` of sign-up with the consent flags they chose and, for ``SEARCH_SHARE`` of
        them, a search for a genre drawn from their own preferences. Returns the time of the last
        and what Track answered."""
        rng = s.rng
        s.last_ms = max(int(at * 1000), s.last_ms + 1)
        events = [self._event(u, s, "feature_use", session, ctx, query=SIGN_UP_FEATURE)]
        if rng.random() < SEARCH_SHARE:
            pref = self.latent.user_genre_pref[u.index].astype(np.float64)
            genre = GENRES[int(rng.choice(len(GENRES), p=pref / pref.sum()))]
            s.last_ms += int(SEARCH_S * 1000)
            events.append(self._event(u, s, "search", session, ctx, query=genre.replace("_", " ")))
        self.clock.t = s.last_ms / 1000
        return s.last_ms / 1000, self.ranking.track(events)

    def _event(
        self, u: Newcomer, s: _State, type_: str, session: str, ctx: dict[str, str], query: str = ""
    ) -> TrackEvent:
        return TrackEvent(uuid.uuid4().hex, u.user_id, "", type_, s.last_ms, session, {**ctx, **u.consent}, None, query)

    @staticmethod
    def _count_track(stats: OnboardingStats, arm: str, result: TrackResult) -> None:
        stats.tracks[arm] += 1
        stats.tracked[arm] += result.accepted
        stats.events += result.accepted
        stats.rejected += len(result.rejected)
        stats.reasons.update(r.reason.split(":")[0] for r in result.rejected)

    def visit(self, u: Newcomer, s: _State, at: float, stats: OnboardingStats, first: bool = False) -> float:
        """One visit of ``slates`` rounds from ``at`` (after the sign-up events on the ``first``);
        returns its value events per item shown."""
        cfg, rng = self.config, s.rng
        mix = self.latent.user_device_mix[u.index].astype(np.float64)
        device = DEVICES[int(rng.choice(len(DEVICES), p=mix / mix.sum()))]
        ctx = {"device": device, "locale": u.locale}
        session = f"onb-{uuid.uuid4().hex[:12]}"
        t, value, items = at, 0, 0
        signed_up: TrackResult | None = None
        if first:
            t, signed_up = self.sign_up(u, s, t, session, ctx)
            t += RANK_GAP_S
        for _ in range(cfg.slates):
            self.clock.t = t
            reply = self.ranking.rank(RankQuery(u.user_id, cfg.k, dict(ctx)))
            stats.ranks[reply.arm] += 1
            if signed_up is not None:  # counted under the arm that then answers the user
                self._count_track(stats, reply.arm, signed_up)
                signed_up = None
            shown = [self._items[i.item_id] for i in reply.items if i.item_id in self._items]
            if not shown:
                t += RANK_GAP_S
                continue
            items += len(shown)
            events = []
            for r in respond(self.latent, u.index, np.asarray(shown), rng):
                if r.type == "play":
                    t += float(r.value or 0.0) * float(self.latent.item_duration_s[r.item_index])
                else:
                    t += {"skip": SKIP_S, "impression": PASS_S}.get(r.type, EXTRA_S)
                s.last_ms = max(int(t * 1000), s.last_ms + 1)  # strictly increasing: the log order is the order
                events.append(
                    TrackEvent(
                        uuid.uuid4().hex,
                        u.user_id,
                        str(self.latent.item_ids[r.item_index]),
                        r.type,
                        s.last_ms,
                        session,
                        {**ctx, **u.consent},
                        r.value,
                    )
                )
            value += int(
                self.rule.is_value(
                    np.array([e.type for e in events], dtype=object),
                    np.array([np.nan if e.value is None else e.value for e in events], dtype=np.float64),
                ).sum()
            )
            t = s.last_ms / 1000
            self.clock.t = t  # Track's "now": the last reaction
            self._count_track(stats, reply.arm, self.ranking.track(events))
            t += RANK_GAP_S
        return value / items if items else 0.0
