"""Onboarding KPIs from an event log: time-to-first-value, return rate, lift by week, engaged users.

Pure pandas/NumPy over event-log rows (``user_id``, ``timestamp``, ``type``, ``value`` and, when the
traffic ran in an experiment, ``arm``); every user in the frame counts as a new user whose first
event is their first exposure. ``python -m experiments onboarding`` feeds it the simulation's event
log (``experiments.newcomers``); nothing here knows where the rows came from.

Definitions
-----------
- **value event**: :class:`setlist.kpis.ValueRule` (by default a like, or a play of at least 80%
  of the track): one definition shared with the simulator and the cost report.
- **items shown**: every item a user is shown leaves exactly one *primary* event, ``impression``
  (not engaged), ``play`` or ``skip`` (:data:`SHOWN_TYPES`).
- **time-to-first-value (TTFV)**, per user: in **steps**, the items shown up to and including the
  one that gave the first value event (a like counts at the item it likes: its play came first);
  in **seconds**, from the user's first event to their first value event, in the log's (here:
  simulated) time, so it includes listening time and any days between visits. Events of the same
  instant keep their log order.
- **censoring**: a user who never reached value in the observation window counts with everything
  observed, steps = every item they were shown, seconds = from their first event to the end of the
  window (``end``). That is a lower bound on their true TTFV: an arm that leaves more users without
  value is flattered by it, never penalized beyond what was seen. ``reached`` gives the share of
  users who did reach value, so the censoring is always visible beside the means.
- Per arm, TTFV is the mean over users (censored as above) with a percentile **bootstrap** CI over
  users; the **change vs control** is ``mean(arm) / mean(control) - 1``, its CI from independent
  bootstrap resamples of both arms (negative = faster to value).
- **day N** of a user: UTC calendar days since the day of their first event (day 0). The **return
  rate** at day N is the share of users with an event on day N, among the users whose day N lies
  inside the observation window (the others are not counted, rather than counted as gone); Wilson
  intervals, and the difference to control with a delta-method interval
  (:func:`experiments.significance.compare`).
- **week of exposure** w holds days 7w..7w+6. Its **value rate** is value events per item shown,
  pooled over the arm's users active that week (delta-method SE over users), with its lift
  against control in the same week: novelty decay shows as a lift that shrinks week after week.
- **engaged user**: at least ``ValueRule.engaged_min`` value events in the window
  (``settings.engaged_min_value_events``).

The JSON summary (``onboarding.json``)
--------------------------------------
:func:`summary` is what ``python -m experiments onboarding`` writes to
``<reports_dir>/experiments/onboarding.json`` (the cost report reads it). Top level:

- ``experiment``, ``control`` (the control arm's name), ``alpha`` (1 - confidence level),
  ``value_rule`` (the rule in words), ``engaged_min_value_events``, ``window_end`` (ISO time), and
  whatever the caller adds (the simulation's ``simulation`` block: users, days, start, seed…);
- ``arms``: one object per arm, keyed by arm name, with
    - ``users``: users analysed; ``items_shown``: items shown to them; ``value_events``: their
      value events; ``rank_calls``, ``track_calls``, ``track_events``: the Rank calls the arm
      answered, and the Track calls and events accepted, as the simulator counted them (every call,
      users who declined analytics included: they cost the same; null when the caller did not count);
    - ``engaged_users`` and ``engaged_share`` (+ ``engaged_share_lo``/``_hi``);
    - ``reached_value``: users with at least one value event, ``reached_value_share``;
    - ``ttfv_steps``, ``ttfv_seconds``: the censored means above (floats), and ``ttfv``: for
      ``steps`` and ``seconds`` each ``mean``, ``lo``, ``hi``, ``median`` and (not for control)
      ``change``, ``change_lo``, ``change_hi`` against control;
    - ``return_rate``: ``day_1``, ``day_7`` (one per day asked): ``eligible``, ``returned``,
      ``rate``, ``lo``, ``hi`` and (not for control) ``diff``, ``diff_lo``, ``diff_hi``;
- ``weeks``: one row per (week, arm): ``week``, ``arm``, ``users``, ``items_shown``,
  ``value_events``, ``value_rate``, ``se`` and (not for control) ``lift``, ``lift_lo``, ``lift_hi``;
- ``targets``: per non-control arm, the TTFV-cut target: ``arm``, ``threshold`` (0.3),
  ``steps_change`` (+ ``_lo``/``_hi``), ``seconds_change`` (+ ``_lo``/``_hi``) and ``met``.

NaN becomes null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from experiments.significance import Comparison, compare, ratio
from setlist.kpis import ValueRule

#: each item shown leaves exactly one of these (the response model's primary reaction)
SHOWN_TYPES = ("impression", "play", "skip")
#: the arm of users whose events carry none (traffic outside an experiment)
NO_ARM = "all"
RETURN_DAYS = (1, 7)
#: the target: the personalized arm cuts time-to-first-value (steps) by at least this much
TARGET_CUT = 0.30
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float
    hi: float
    median: float


@dataclass(frozen=True)
class Change:
    """``mean(arm) / mean(control) - 1`` with its bootstrap interval."""

    change: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Share:
    k: int
    n: int
    rate: float
    lo: float
    hi: float


@dataclass
class ArmKpis:
    arm: str
    users: int
    items_shown: int
    value_events: int
    reached: Share  # users with a value event
    engaged: Share
    steps: Estimate
    seconds: Estimate
    returns: dict[int, Share]
    steps_change: Change | None = None  # against control; None for control
    seconds_change: Change | None = None
    return_diff: dict[int, Comparison] = field(default_factory=dict)
    engaged_diff: Comparison | None = None
    rank_calls: int | None = None  # filled in by a caller that counted them
    track_calls: int | None = None
    track_events: int | None = None


@dataclass(frozen=True)
class WeekRow:
    week: int
    arm: str
    users: int
    items_shown: int
    value_events: int
    value_rate: float
    se: float
    lift: float = float("nan")
    lift_lo: float = float("nan")
    lift_hi: float = float("nan")


@dataclass(frozen=True)
class Target:
    arm: str
    threshold: float
    steps: Change
    seconds: Change

    @property
    def met(self) -> bool:
        """Met only when the whole interval of the steps change is a cut of ``threshold`` or more."""
        return self.steps.hi <= -self.threshold

    def verdict(self) -> str:
        s = self.steps
        if self.met:
            return "met"
        if s.change <= -self.threshold:
            return "not met (the estimate reaches it, its interval does not)"
        return "not met"


@dataclass
class Kpis:
    control: str
    alpha: float
    value_rule: str
    engaged_min: int
    window_end: pd.Timestamp
    arms: list[ArmKpis]
    weeks: list[WeekRow]

    def arm(self, name: str) -> ArmKpis:
        return next(a for a in self.arms if a.arm == name)

    def targets(self, threshold: float = TARGET_CUT) -> list[Target]:
        return [
            Target(a.arm, threshold, a.steps_change, a.seconds_change)
            for a in self.arms
            if a.steps_change is not None and a.seconds_change is not None
        ]


# --- per user -------------------------------------------------------------------------------------
def prepare(events: pd.DataFrame, rule: ValueRule) -> pd.DataFrame:
    """The rows in (user, time, log order), with ``is_value``, ``is_shown``, ``shown_cum`` (items
    shown so far, this row included), ``arm`` (the user's) and ``day_n`` (days since their first)."""
    cols = ["user_id", "timestamp", "type", "value"]
    f = events[cols + (["arm"] if "arm" in events.columns else [])].reset_index(drop=True)
    f = f.assign(
        timestamp=pd.to_datetime(f["timestamp"], utc=True).astype("datetime64[ns, UTC]"),
        _order=np.arange(len(f)),
    )
    f = f.sort_values(["user_id", "timestamp", "_order"]).drop(columns="_order").reset_index(drop=True)
    f["is_value"] = rule.is_value(f["type"].to_numpy(), f["value"].to_numpy(dtype=np.float64, na_value=np.nan))
    f["is_shown"] = f["type"].isin(SHOWN_TYPES).to_numpy()
    by = f.groupby("user_id", sort=False)
    f["shown_cum"] = by["is_shown"].cumsum().astype(np.int64)
    if "arm" in f.columns:
        arms = f.dropna(subset=["arm"]).groupby("user_id")["arm"].first()
        f["arm"] = f["user_id"].map(arms).fillna(NO_ARM).astype(str)
    else:
        f["arm"] = NO_ARM
    day = f["timestamp"].dt.floor("D")
    f["day_n"] = (day - day.groupby(f["user_id"]).transform("min")).dt.days.astype(np.int64)
    return f


def per_user(prepared: pd.DataFrame, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per user: ``arm``, ``first`` (time), ``items_shown``, ``value_events``, ``reached``,
    ``steps`` and ``seconds`` (TTFV, censored at ``end`` when never reached: see the module doc)."""
    f = prepared
    end = _end(f, end)
    by = f.groupby("user_id", sort=True)
    out = pd.DataFrame(
        {
            "arm": by["arm"].first(),
            "first": by["timestamp"].min(),
            "items_shown": by["is_shown"].sum().astype(np.int64),
            "value_events": by["is_value"].sum().astype(np.int64),
        }
    )
    first_value = f[f["is_value"]].groupby("user_id")[["timestamp", "shown_cum"]].first()
    out["first_value"] = first_value["timestamp"].reindex(out.index)
    out["reached"] = out["first_value"].notna()
    out["steps"] = np.where(
        out["reached"], first_value["shown_cum"].reindex(out.index).fillna(0), out["items_shown"]
    ).astype(np.float64)
    until = out["first_value"].where(out["reached"], end)
    out["seconds"] = (until - out["first"]).dt.total_seconds().clip(lower=0.0)
    return out


def _end(f: pd.DataFrame, end: pd.Timestamp | None) -> pd.Timestamp:
    if end is None:
        return f["timestamp"].max() if len(f) else pd.Timestamp(0, tz="UTC")
    stamp = pd.Timestamp(end)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# --- statistics -----------------------------------------------------------------------------------
def wilson(k: int, n: int, alpha: float = 0.05) -> Share:
    """A share with its Wilson score interval (NaN for no users)."""
    if n == 0:
        return Share(0, 0, float("nan"), float("nan"), float("nan"))
    z = float(sps.norm.ppf(1 - alpha / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the interval holds p itself: at p = 0 (or 1) the bound is 0 (1) up to rounding, which a plot's
    # error bar reads as a negative length
    return Share(int(k), int(n), p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def bootstrap_means(x: np.ndarray, rng: np.random.Generator, draws: int = BOOTSTRAP) -> np.ndarray:
    """``draws`` means of resamples (with replacement) of ``x``; NaN when ``x`` is empty."""
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        return np.full(draws, np.nan)
    out = np.empty(draws)
    step = max(1, 2_000_000 // len(x))  # bounded memory for large arms
    for a in range(0, draws, step):
        b = min(draws, a + step)
        out[a:b] = x[rng.integers(0, len(x), size=(b - a, len(x)))].mean(axis=1)
    return out


def estimate(x: np.ndarray, boot: np.ndarray, alpha: float) -> Estimate:
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"))
    lo, hi = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(x.mean()), float(lo), float(hi), float(np.median(x)))


def change(x: np.ndarray, control: np.ndarray, boot: np.ndarray, boot_control: np.ndarray, alpha: float) -> Change:
    x, control = np.asarray(x, np.float64), np.asarray(control, np.float64)
    if len(x) == 0 or len(control) == 0 or control.mean() <= 0:
        return Change(float("nan"), float("nan"), float("nan"))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = boot / boot_control - 1.0
    rel = rel[np.isfinite(rel)]
    lo, hi = np.quantile(rel, [alpha / 2, 1 - alpha / 2]) if len(rel) else (float("nan"), float("nan"))
    return Change(float(x.mean() / control.mean() - 1.0), float(lo), float(hi))


def _compare_shares(a: np.ndarray, c: np.ndarray, alpha: float) -> Comparison:
    """Difference of two shares of users (0/1 each) with the delta-method interval."""
    return compare(ratio(a, np.ones(len(a))), ratio(c, np.ones(len(c))), alpha)


# --- the KPIs -------------------------------------------------------------------------------------
def returns(prepared: pd.DataFrame, users: pd.DataFrame, day: int, end: pd.Timestamp) -> pd.DataFrame:
    """Per user whose day ``day`` lies in the window: ``arm`` and ``returned`` (an event that day)."""
    last_day = (end - pd.Timedelta(1, "ns")).floor("D")
    first_day = users["first"].dt.floor("D")
    eligible = users[first_day + pd.Timedelta(days=day) <= last_day]
    active = set(prepared.loc[prepared["day_n"] == day, "user_id"])
    return pd.DataFrame({"arm": eligible["arm"], "returned": eligible.index.isin(list(active))}, index=eligible.index)


def weekly(prepared: pd.DataFrame) -> pd.DataFrame:
    """Per (week of exposure, arm, user): items shown and value events, for users shown something."""
    f = prepared.assign(week=prepared["day_n"] // 7)
    g = f.groupby(["week", "arm", "user_id"], sort=True).agg(
        items_shown=("is_shown", "sum"), value_events=("is_value", "sum")
    )
    return g[g["items_shown"] > 0].reset_index()


def analyse(
    events: pd.DataFrame,
    rule: ValueRule,
    control: str,
    end: pd.Timestamp | None = None,
    alpha: float = 0.05,
    return_days: Sequence[int] = RETURN_DAYS,
    draws: int = BOOTSTRAP,
    seed: int = 0,
) -> Kpis:
    """Every KPI of the module doc, per arm, ``control`` first. ``end`` closes the observation window
    (default: the last event)."""
    rng = np.random.default_rng(seed)
    f = prepare(events, rule)
    end = _end(f, end)
    users = per_user(f, end)
    names = [control] if control in set(users["arm"]) else []
    names += sorted(set(users["arm"]) - {control})
    boots: dict[str, dict[str, np.ndarray]] = {}
    arms: list[ArmKpis] = []
    back = {d: returns(f, users, d, end) for d in return_days}
    for name in names:
        u = users[users["arm"] == name]
        boots[name] = {m: bootstrap_means(u[m].to_numpy(), rng, draws) for m in ("steps", "seconds")}
        arms.append(
            ArmKpis(
                arm=name,
                users=len(u),
                items_shown=int(u["items_shown"].sum()),
                value_events=int(u["value_events"].sum()),
                reached=wilson(int(u["reached"].sum()), len(u), alpha),
                engaged=wilson(int((u["value_events"] >= rule.engaged_min).sum()), len(u), alpha),
                steps=estimate(u["steps"].to_numpy(), boots[name]["steps"], alpha),
                seconds=estimate(u["seconds"].to_numpy(), boots[name]["seconds"], alpha),
                returns={
                    d: wilson(int(r.loc[r["arm"] == name, "returned"].sum()), int((r["arm"] == name).sum()), alpha)
                    for d, r in back.items()
                },
            )
        )
    if names and names[0] == control:
        c = users[users["arm"] == control]
        for a in arms[1:]:
            u = users[users["arm"] == a.arm]
            a.steps_change, a.seconds_change = (
                change(u[m].to_numpy(), c[m].to_numpy(), boots[a.arm][m], boots[control][m], alpha)
                for m in ("steps", "seconds")
            )
            a.return_diff = {
                d: _compare_shares(
                    r.loc[r["arm"] == a.arm, "returned"].to_numpy(np.float64),
                    r.loc[r["arm"] == control, "returned"].to_numpy(np.float64),
                    alpha,
                )
                for d, r in back.items()
            }
            a.engaged_diff = _compare_shares(
                (u["value_events"] >= rule.engaged_min).to_numpy(np.float64),
                (c["value_events"] >= rule.engaged_min).to_numpy(np.float64),
                alpha,
            )
    return Kpis(control, alpha, rule.describe(), rule.engaged_min, end, arms, week_rows(f, control, alpha))


def week_rows(prepared: pd.DataFrame, control: str, alpha: float = 0.05) -> list[WeekRow]:
    """The value rate per week of exposure and arm, with the lift against control that week."""
    w = weekly(prepared)
    rows: list[WeekRow] = []
    for week, in_week in w.groupby("week", sort=True):
        rates = {
            arm: ratio(g["value_events"].to_numpy(), g["items_shown"].to_numpy())
            for arm, g in in_week.groupby("arm", sort=True)
        }
        order = ([control] if control in rates else []) + sorted(set(rates) - {control})
        for arm in order:
            r = rates[arm]
            row = WeekRow(int(week), arm, r.users, r.shown, r.successes, r.rate, r.se)
            if arm != control and control in rates:
                c = compare(r, rates[control], alpha)
                row = WeekRow(row.week, arm, r.users, r.shown, r.successes, r.rate, r.se, c.lift, c.lift_lo, c.lift_hi)
            rows.append(row)
    return rows


# --- the JSON summary -----------------------------------------------------------------------------
def _clean(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _arm_summary(a: ArmKpis) -> dict[str, Any]:
    ttfv: dict[str, Any] = {}
    for name, est, ch in (("steps", a.steps, a.steps_change), ("seconds", a.seconds, a.seconds_change)):
        ttfv[name] = asdict(est)
        if ch is not None:
            ttfv[name].update({"change": ch.change, "change_lo": ch.lo, "change_hi": ch.hi})
    back: dict[str, Any] = {}
    for d, s in a.returns.items():
        back[f"day_{d}"] = {"eligible": s.n, "returned": s.k, "rate": s.rate, "lo": s.lo, "hi": s.hi}
        if d in a.return_diff:
            c = a.return_diff[d]
            back[f"day_{d}"].update({"diff": c.diff, "diff_lo": c.lo, "diff_hi": c.hi})
    return {
        "users": a.users,
        "items_shown": a.items_shown,
        "value_events": a.value_events,
        "rank_calls": a.rank_calls,
        "track_calls": a.track_calls,
        "track_events": a.track_events,
        "engaged_users": a.engaged.k,
        "engaged_share": a.engaged.rate,
        "engaged_share_lo": a.engaged.lo,
        "engaged_share_hi": a.engaged.hi,
        "reached_value": a.reached.k,
        "reached_value_share": a.reached.rate,
        "ttfv_steps": a.steps.mean,
        "ttfv_seconds": a.seconds.mean,
        "ttfv": ttfv,
        "return_rate": back,
    }


def summary(k: Kpis, experiment: str = "", **extra: Any) -> dict[str, Any]:
    """The KPIs as JSON-friendly data, in the format of the module doc; ``extra`` adds top-level keys."""
    targets = [
        {
            "arm": t.arm,
            "threshold": t.threshold,
            "steps_change": t.steps.change,
            "steps_change_lo": t.steps.lo,
            "steps_change_hi": t.steps.hi,
            "seconds_change": t.seconds.change,
            "seconds_change_lo": t.seconds.lo,
            "seconds_change_hi": t.seconds.hi,
            "met": t.met,
        }
        for t in k.targets()
    ]
    out = {
        "experiment": experiment,
        "control": k.control,
        "alpha": k.alpha,
        "value_rule": k.value_rule,
        "engaged_min_value_events": k.engaged_min,
        "window_end": k.window_end.isoformat(),
        **extra,
        "arms": {a.arm: _arm_summary(a) for a in k.arms},
        "weeks": [asdict(w) for w in k.weeks],
        "targets": targets,
    }
    return _clean(out)


def write_summary(k: Kpis, path: Path, experiment: str = "", **extra: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary(k, experiment, **extra), indent=2))
    return path
