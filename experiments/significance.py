"""The statistics of an A/B report, on plain numbers.

Users are randomized, items are shown: outcomes of one user's impressions are correlated, so a
per-item binomial variance is too small. Each arm's rate is a ratio of per-user sums
(successes / shown) and its variance comes from the delta method over users (the usual treatment
of ratio metrics in online experiments). With one impression per user it reduces exactly to the
textbook unpooled two-proportion z interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Rate:
    users: int
    shown: int
    successes: int
    rate: float
    se: float


@dataclass(frozen=True)
class Comparison:
    diff: float  # treatment rate - control rate (absolute)
    lo: float  # confidence interval of diff
    hi: float
    lift: float  # relative: diff / control rate
    lift_lo: float  # the diff interval over the control rate, so its sign always agrees with lo/hi
    lift_hi: float
    p_value: float


@dataclass(frozen=True)
class Srm:
    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    unexpected: tuple[str, ...] = ()  # groups seen that the configuration does not name

    def detected(self, alpha: float = 0.001) -> bool:
        return bool(self.unexpected) or self.p_value < alpha


def ratio(successes: np.ndarray, shown: np.ndarray) -> Rate:
    """Pooled rate of per-user ``successes`` over per-user ``shown``, with a delta-method SE."""
    x = np.asarray(successes, np.float64)
    m = np.asarray(shown, np.float64)
    n = len(m)
    total = m.sum()
    if n == 0 or total == 0:
        return Rate(n, int(total), int(x.sum()), float("nan"), float("nan"))
    r = x.sum() / total
    mbar = m.mean()
    # population (ddof=0) moments: exact textbook form when every user saw one item
    var = (x.var() - 2 * r * np.mean((x - x.mean()) * (m - mbar)) + r * r * m.var()) / (n * mbar * mbar)
    return Rate(n, int(total), int(x.sum()), float(r), float(math.sqrt(max(var, 0.0))))


def compare(treatment: Rate, control: Rate, alpha: float = 0.05) -> Comparison:
    diff = treatment.rate - control.rate
    se = math.sqrt(treatment.se**2 + control.se**2)
    z = float(sps.norm.ppf(1 - alpha / 2))
    lo, hi = diff - z * se, diff + z * se
    p = float(2 * sps.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    base = control.rate
    if not base or base != base:
        return Comparison(diff, lo, hi, float("nan"), float("nan"), float("nan"), p)
    return Comparison(diff, lo, hi, diff / base, lo / base, hi / base, p)


def srm(observed: dict[str, int], expected_shares: dict[str, float]) -> Srm:
    """Chi-square goodness of fit of users per group against the configured shares."""
    groups = [g for g in expected_shares if expected_shares[g] > 0]
    unexpected = tuple(sorted(g for g, n in observed.items() if n and g not in expected_shares))
    obs = np.array([observed.get(g, 0) for g in groups], np.float64)
    total = obs.sum()
    shares = np.array([expected_shares[g] for g in groups], np.float64)
    exp = total * shares / shares.sum()
    if total == 0 or len(groups) < 2:
        return Srm(observed, dict(zip(groups, exp.tolist())), 0.0, 1.0, unexpected)
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    p = float(sps.chi2.sf(chi2, len(groups) - 1))
    return Srm(dict(zip(groups, obs.astype(int).tolist())), dict(zip(groups, exp.tolist())), chi2, p, unexpected)
