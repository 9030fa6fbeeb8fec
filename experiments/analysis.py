"""From joined outcomes to a report: per-arm rates, each arm against control, SRM, verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from experiments.data import OUTCOMES, per_user
from experiments.significance import Comparison, Rate, Srm, compare, ratio, srm
from setlist.experiment import METRICS, Experiment

HIGHER_IS_BETTER = {"play_rate": True, "skip_rate": False, "completion_rate": True}
SRM_ALPHA = 0.001
MIN_USERS = 20


@dataclass
class ArmResult:
    arm: str
    users: int
    requests: int
    shown: int
    rates: dict[str, Rate]
    versions: str  # model versions seen in the arm, e.g. "c3+r5 (champion)"
    comparison: dict[str, Comparison] = field(default_factory=dict)  # empty for control


@dataclass
class Report:
    experiment: str
    control: str
    primary: str
    alpha: float
    window_s: float
    arms: list[ArmResult]
    srm: Srm
    verdicts: list[str]

    def arm(self, name: str) -> ArmResult:
        return next(a for a in self.arms if a.arm == name)


def _versions(frame: pd.DataFrame) -> str:
    model = frame[frame["served"] == "model"]
    if model.empty:
        return "popularity"
    seen = model.groupby(["candidates_version", "ranker_version", "variant"]).size().sort_values(ascending=False)
    return ", ".join(f"c{c}+r{r} {v}" for c, r, v in seen.index)


def build(exp: Experiment, frame: pd.DataFrame, alpha: float = 0.05) -> Report:
    """``frame`` is :func:`experiments.data.outcomes` for this experiment's impressions."""
    users = per_user(frame)
    arms: list[ArmResult] = []
    for name in [a.name for a in exp.arms] + sorted(set(users["arm"]) - {a.name for a in exp.arms}):
        u = users[users["arm"] == name]
        rates = {m: ratio(u[OUTCOMES[m]].to_numpy(), u["shown"].to_numpy()) for m in METRICS}
        arms.append(
            ArmResult(
                name,
                len(u),
                int(u["requests"].sum()),
                int(u["shown"].sum()),
                rates,
                _versions(frame[frame["arm"] == name]),
            )
        )
    control = next(a for a in arms if a.arm == exp.control)
    for a in arms:
        if a.arm != exp.control:
            a.comparison = {m: compare(a.rates[m], control.rates[m], alpha) for m in METRICS}
    groups = frame.drop_duplicates("user_id")
    group = groups["arm"].where(~groups["holdout"].fillna(False).astype(bool), "holdout")
    check = srm(group.value_counts().to_dict(), exp.expected_shares())
    report = Report(exp.name, exp.control, exp.primary_metric, alpha, exp.window_s, arms, check, [])
    report.verdicts = verdicts(report)
    return report


def verdicts(r: Report) -> list[str]:
    if r.srm.detected(SRM_ALPHA):
        extra = f"; unexpected arms {list(r.srm.unexpected)}" if r.srm.unexpected else ""
        return [f"SRM detected (chi-square p={r.srm.p_value:.2g}{extra}) — do not trust these results"]
    out = []
    level = f"{1 - r.alpha:.0%}"
    for a in r.arms:
        if a.arm == r.control or not a.comparison:
            continue
        c = a.comparison[r.primary]
        metric = r.primary.replace("_", " ")
        ci = f"{level} CI [{c.lift_lo:+.1%}, {c.lift_hi:+.1%}]"
        if min(a.users, r.arm(r.control).users) < MIN_USERS:
            out.append(f"{a.arm} vs {r.control}: inconclusive — fewer than {MIN_USERS} users in an arm")
        elif c.lo > 0 or c.hi < 0:
            better = (c.lo > 0) == HIGHER_IS_BETTER[r.primary]
            word = "beats" if better else "is worse than"
            out.append(f"{a.arm} {word} {r.control}: {c.lift:+.1%} {metric}, {ci}")
        else:
            out.append(f"{a.arm} vs {r.control}: inconclusive ({c.lift:+.1%} {metric}, {ci} includes 0)")
    return out
