"""Deterministic synthetic users, tracks and events for demos, tests and benchmarks.

Users listen in sessions; each session mostly has one genre in mind. Within a session they are
shown tracks drawn from popularity, the intended genre and their own taste, and react through
:func:`ingest.latent.react`, the same response model a later simulator uses. Same ``seed``,
``end`` and ``scale`` give identical frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.random import PCG64, Generator, SeedSequence

from ingest.latent import IMPRESSION, PLAY, SKIP, Latent, affinity, react
from ingest.world import DAY_S, LOCALE_UTC_OFFSET_H, LOCALES, World, build_world
from setlist.contract import DEVICES, EVENT_COLUMNS, SCHEMA_VERSION


@dataclass(frozen=True)
class Scale:
    users: int
    items: int
    events_per_user: float  # target mean; the realized total is within a few percent
    slots_per_session: float  # tracks shown per session (mean)
    days: int = 35


SCALES: dict[str, Scale] = {
    "tiny": Scale(users=200, items=400, events_per_user=75, slots_per_session=12),
    "demo": Scale(users=2_000, items=5_000, events_per_user=150, slots_per_session=12),
    "bench": Scale(users=100_000, items=50_000, events_per_user=30, slots_per_session=10),
}

#: users per chunk: bounds memory at bench scale and drives the progress bar. It is part of the
#: random stream, so changing it changes the data (but not the statistics).
CHUNK_USERS = 5_000
TASTE_CANDIDATES = 20
# how a slot's track is chosen: (intent genre by popularity, global popularity, own taste)
INTENT_SOURCES = (0.50, 0.15, 0.35)
MIXED_SOURCES = (0.0, 0.40, 0.60)
INTENT_SESSION_SHARE = 0.8
#: local-hour activity: quiet nights, a commute bump, an evening peak
DIURNAL = np.array([2, 1, 1, 1, 1, 2, 4, 7, 8, 6, 5, 6, 7, 6, 5, 5, 6, 7, 9, 10, 10, 9, 6, 4], float)
# event type codes of the output (primary codes of latent.react come first)
TYPE_NAMES = np.array(["impression", "play", "skip", "like", "add_to_playlist", "not_interested"], dtype=object)
LIKE, ADD, NOT_INTERESTED = 3, 4, 5


@dataclass
class Generated:
    users: pd.DataFrame
    items: pd.DataFrame
    events: pd.DataFrame
    latent: Latent


def default_end() -> datetime:
    """Today's UTC midnight: the window ends in the past, so no event is 'in the future'."""
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _categorical(rng: Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) probability matrix."""
    u = rng.random((len(probs), 1))
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def _session_starts(rng: Generator, lo: np.ndarray, hi: np.ndarray, offset_h: np.ndarray) -> np.ndarray:
    """Session start times in [lo, hi): a uniform day, then a local hour from DIURNAL."""
    t = lo + rng.random(len(lo)) * (hi - lo)
    local_day = np.floor((t + offset_h * 3600) / DAY_S)
    hour = rng.choice(24, len(lo), p=DIURNAL / DIURNAL.sum())
    shaped = local_day * DAY_S + hour * 3600 + rng.random(len(lo)) * 3600 - offset_h * 3600
    ok = (shaped >= lo) & (shaped < hi)  # near the edges fall back to the uniform draw
    return np.where(ok, shaped, t)


def _pick_items(rng: Generator, latent: Latent, users: np.ndarray, intent: np.ndarray) -> np.ndarray:
    n = len(users)
    items = rng.choice(latent.n_items, n, p=latent.item_pop)  # global popularity by default
    src = rng.random(n)
    has_intent = intent >= 0
    by_genre = has_intent & (src < INTENT_SOURCES[0])
    by_taste = np.where(has_intent, src >= 1 - INTENT_SOURCES[2], src >= 1 - MIXED_SOURCES[2])
    for g in np.unique(intent[by_genre]):
        rows = np.flatnonzero(by_genre & (intent == g))
        pool = np.flatnonzero(latent.item_genre == g)
        p = latent.item_pop[pool] ** 0.7  # flatter than global: genre pages dig deeper
        items[rows] = pool[rng.choice(len(pool), len(rows), p=p / p.sum())]
    rows = np.flatnonzero(by_taste)
    if len(rows):
        # "recommended for you": the best of a few candidates (flatter than popularity), noisily
        flat = latent.item_pop**0.7
        cands = rng.choice(latent.n_items, (len(rows), TASTE_CANDIDATES), p=flat / flat.sum())
        score = affinity(latent, users[rows, None], cands) + rng.gumbel(0.0, 0.5, cands.shape)
        items[rows] = cands[np.arange(len(rows)), score.argmax(axis=1)]
    return items


def _simulate_chunk(
    rng: Generator, world: World, users: np.ndarray, scale: Scale, start_s: int, end_s: int
) -> dict[str, np.ndarray]:
    latent = world.latent
    cold = world.cold[users]
    lo = np.maximum(world.user_signup_s[users], start_s).astype(float)
    active = (end_s - lo) / (end_s - start_s)
    per_session = scale.slots_per_session * 1.12  # ~12% extra events: likes, playlist adds, not-interested
    rate = max(scale.events_per_user / per_session - 1.0, 0.0) / 0.93
    n_sess = np.where(cold, 1, rng.poisson(rate * latent.user_activity[users] * active) + 1)

    s_user = np.repeat(users, n_sess)
    s_start = _session_starts(
        rng, np.repeat(lo, n_sess), np.full(len(s_user), float(end_s)), LOCALE_UTC_OFFSET_H[world.user_locale[s_user]]
    )
    s_device = _categorical(rng, latent.user_device_mix[s_user])
    intent = np.where(
        rng.random(len(s_user)) < INTENT_SESSION_SHARE, _categorical(rng, latent.user_genre_pref[s_user]), -1
    )
    mean_slots = scale.slots_per_session
    n_slots = np.where(
        world.cold[s_user],
        rng.integers(1, 3, len(s_user)),
        rng.negative_binomial(2, 2 / (mean_slots + 1), len(s_user)) + 1,
    )

    slot_sess = np.repeat(np.arange(len(s_user)), n_slots)
    slot_user = s_user[slot_sess]
    items = _pick_items(rng, latent, slot_user, intent[slot_sess])
    for _ in range(5):  # nobody hears a track before its release: redraw those
        early = np.flatnonzero(latent.item_release_s[items] > s_start[slot_sess])
        if not len(early):
            break
        items[early] = rng.choice(latent.n_items, len(early), p=latent.item_pop)
    shown = latent.item_release_s[items] <= s_start[slot_sess]

    r = react(latent, slot_user, items, rng)
    dur = latent.item_duration_s[items].astype(float)
    listened = np.nan_to_num(r.fraction.astype(float)) * dur
    spent = np.select(
        [r.primary == PLAY, r.primary == SKIP],
        [listened, np.minimum(listened, 40.0)],
        rng.uniform(2.0, 10.0, len(items)),
    )
    spent = spent + rng.uniform(0.5, 2.0, len(items))
    # slot start = session start + time spent on the earlier slots of the same session
    csum = np.cumsum(spent)
    first = np.cumsum(n_slots) - n_slots
    slot_t0 = s_start[slot_sess] + csum - spent - (csum - spent)[first][slot_sess]
    done = slot_t0 + spent  # plays and skips are logged when the user moves on

    kinds: list[tuple[np.ndarray, Any, np.ndarray, int]] = [
        (np.ones(len(items), bool), r.primary, np.where(r.primary == IMPRESSION, slot_t0, done), 0)
    ]
    kinds.append((r.like, LIKE, slot_t0 + rng.uniform(0.3, 1.0, len(items)) * listened, 1))
    kinds.append((r.add_to_playlist, ADD, slot_t0 + rng.uniform(0.3, 1.0, len(items)) * listened + 1, 2))
    kinds.append((r.not_interested, NOT_INTERESTED, done + 1.0, 3))
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("slot", "type", "ts_ms", "order")}
    for mask, code, ts, order in kinds:
        m = mask & shown
        out["slot"].append(np.flatnonzero(m))
        out["type"].append(np.broadcast_to(np.asarray(code, np.int8), len(items))[m])
        out["ts_ms"].append((ts[m] * 1000).astype(np.int64))
        out["order"].append(np.full(int(m.sum()), order, np.int8))
    ev = {k: np.concatenate(v) for k, v in out.items()}
    slot = ev.pop("slot")
    value = np.where(ev["type"] == PLAY, r.fraction[slot], np.nan)
    value = np.where(ev["type"] == LIKE, 1.0, value)
    keep = ev["ts_ms"] < end_s * 1000  # sessions running past the end are cut at the end
    return {
        "user": slot_user[slot][keep],
        "item": items[slot][keep],
        "type": ev["type"][keep],
        "ts_ms": ev["ts_ms"][keep],
        "value": value[keep].astype(np.float32),
        "session": slot_sess[slot][keep],
        "device": s_device[slot_sess[slot]][keep],
        "slot": slot[keep],
        "order": ev["order"][keep],
        "n_sessions": np.array([len(s_user)]),
    }


def _events_frame(world: World, ev: dict[str, np.ndarray]) -> pd.DataFrame:
    # a total order: time, then user, then position in the session, so ids are reproducible
    idx = np.lexsort((ev["order"], ev["slot"], ev["user"], ev["ts_ms"]))
    ev = {k: v[idx] for k, v in ev.items()}
    n = len(idx)
    users = world.users
    n_sessions = int(ev["session"].max()) + 1 if n else 0
    session_names = np.array([f"s{k:09d}" for k in range(n_sessions)], dtype=object)
    width = max(9, len(str(n)))
    frame = pd.DataFrame(
        {
            "event_id": np.array([f"e{k:0{width}d}" for k in range(n)], dtype=object),
            "schema_version": np.full(n, SCHEMA_VERSION, np.int32),
            "user_id": users["user_id"].to_numpy()[ev["user"]],
            "session_id": session_names[ev["session"]],
            "item_id": world.items["item_id"].to_numpy()[ev["item"]],
            "type": TYPE_NAMES[ev["type"]],
            "timestamp": pd.to_datetime(ev["ts_ms"], unit="ms", utc=True),
            "value": ev["value"],
            "device": np.array(DEVICES, dtype=object)[ev["device"]],
            "locale": np.array(LOCALES, dtype=object)[world.user_locale[ev["user"]]],
            "consent_personalization": users["consent_personalization"].to_numpy()[ev["user"]],
            "consent_analytics": users["consent_analytics"].to_numpy()[ev["user"]],
            "arm": np.full(n, None, dtype=object),
            "query": np.full(n, None, dtype=object),
            "weight": np.full(n, np.nan, dtype=np.float32),
        }
    )
    return frame[list(EVENT_COLUMNS)]


def generate(scale: str = "demo", seed: int = 7, end: datetime | None = None, progress: bool = True) -> Generated:
    """Users, items and a time-ordered event frame over ``SCALES[scale].days`` days up to ``end``."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    spec = SCALES[scale]
    end = default_end() if end is None else end
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    end_s = int(end.timestamp())
    start_s = end_s - spec.days * DAY_S
    # independent streams: the world does not change when event simulation changes, and
    # each chunk's draws do not depend on how much randomness the chunks before it used
    world_seq, events_seq = SeedSequence(seed).spawn(2)
    world = build_world(Generator(PCG64(world_seq)), spec.users, spec.items, start_s, end_s)

    chunks = [np.arange(a, min(a + CHUNK_USERS, spec.users)) for a in range(0, spec.users, CHUNK_USERS)]
    parts: list[dict[str, np.ndarray]] = []
    session_base = 0
    with _progress(progress, spec.users, f"generating {scale} events") as advance:
        for users, seq in zip(chunks, events_seq.spawn(len(chunks))):
            part = _simulate_chunk(Generator(PCG64(seq)), world, users, spec, start_s, end_s)
            part["session"] = part["session"] + session_base
            session_base += int(part.pop("n_sessions")[0])
            parts.append(part)
            advance(len(users))
    ev = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    events = _events_frame(world, ev)
    return Generated(users=world.users, items=world.items, events=events, latent=world.latent)


class _progress:
    """A tqdm bar when asked for, a no-op otherwise (library code must stay quiet)."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.enabled, self.total, self.desc = enabled, total, desc
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="user")
        return (lambda k: self.bar.update(k)) if self.bar is not None else (lambda k: None)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
