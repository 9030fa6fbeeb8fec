"""From joined outcomes to a report: per-arm rates, each arm against control, SRM, verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from experiments.data import OUTCOMES, arm_counts, per_user
from experiments.significance import Comparison, Rate, Srm, compare, ratio, srm
from setlist.downsample import DAILY_SCHEMA
from setlist.experiment import METRICS, Experiment

HIGHER_IS_BETTER = {"play_rate": True, "skip_rate": False, "completion_rate": True, "positive_rate": True}
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
    counted: int = 0  # of ``shown``, items known from daily counts only (down-sampled days): no users, no rates


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
    notes: list[str] = field(default_factory=list)  # what the numbers cover, when it is not every impression

    def arm(self, name: str) -> ArmResult:
        return next(a for a in self.arms if a.arm == name)


_MODEL = ["candidates_version", "ranker_version", "variant"]


def _versions(frame: pd.DataFrame, daily: pd.DataFrame) -> str:
    model = frame[frame["served"] == "model"]
    counted = daily[daily["served"] == "model"]
    if model.empty and counted.empty:
        return "popularity"
    shown = pd.concat([model.groupby(_MODEL).size(), counted.groupby(_MODEL)["impressions"].sum()])
    seen = shown.groupby(level=[0, 1, 2]).sum().sort_values(ascending=False)
    return ", ".join(f"c{c}+r{r} {v}" for c, r, v in seen.index)


def build(
    exp: Experiment,
    frame: pd.DataFrame,
    alpha: float = 0.05,
    daily: pd.DataFrame | None = None,
    assigned: pd.DataFrame | None = None,
) -> Report:
    """``frame`` is :func:`experiments.data.outcomes` for this experiment's raw impressions; ``daily`` the
    counts of its down-sampled days (:func:`setlist.downsample.read_all`), which add to items shown and
    requests only; ``assigned`` the raw impressions of every user assigned (``user_id``, ``arm``,
    ``holdout``) when ``frame`` holds only some of them, for the sample-ratio check."""
    daily = daily if daily is not None else DAILY_SCHEMA.empty_table().to_pandas()
    users = per_user(frame)
    counts = arm_counts(frame, daily)
    arms: list[ArmResult] = []
    known = {a.name for a in exp.arms}
    for name in [a.name for a in exp.arms] + sorted((set(users["arm"]) | set(counts.index)) - known):
        u = users[users["arm"] == name]
        rates = {m: ratio(u[OUTCOMES[m]].to_numpy(), u["shown"].to_numpy()) for m in METRICS}
        c = counts.loc[name] if name in counts.index else pd.Series({"shown": 0, "requests": 0, "counted": 0})
        arms.append(
            ArmResult(
                name,
                len(u),
                int(c["requests"]),
                int(c["shown"]),
                rates,
                _versions(frame[frame["arm"] == name], daily[daily["arm"] == name]),
                counted=int(c["counted"]),
            )
        )
    control = next(a for a in arms if a.arm == exp.control)
    for a in arms:
        if a.arm != exp.control:
            a.comparison = {m: compare(a.rates[m], control.rates[m], alpha) for m in METRICS}
    everyone = frame if assigned is None or assigned.empty else assigned
    groups = everyone.drop_duplicates("user_id")
    group = groups["arm"].where(~groups["holdout"].fillna(False).astype(bool), "holdout")
    check = srm(group.value_counts().to_dict(), exp.expected_shares())
    report = Report(exp.name, exp.control, exp.primary_metric, alpha, exp.window_s, arms, check, [])
    report.verdicts = verdicts(report)
    report.notes = _counted_note(everyone, daily)
    return report


def _counted_note(frame: pd.DataFrame, daily: pd.DataFrame) -> list[str]:
    """What the down-sampled days count in; ``frame``: the raw impressions of every user assigned."""
    if daily.empty:
        return []
    days = sorted(pd.to_datetime(daily["date"]).dt.date.unique())
    raw = f"the raw impressions from {frame['timestamp'].min():%Y-%m-%d} on" if len(frame) else "no raw impressions"
    return [
        f"{int(daily['impressions'].sum()):,} items shown on {len(days)} day(s) from {days[0]} to {days[-1]} are "
        "kept as daily counts only (down-sampled): they count in items shown and requests; users, the rates, "
        f"their intervals and the sample-ratio check need each user's impressions and use {raw}"
    ]


def slates_note(impressions: pd.DataFrame, caller_slates: str) -> list[str]:
    """Said when some Rank responses ordered a caller's own slate (``candidate_item_ids``): those measure the
    ranker's order of items the caller chose, not what the server would have offered."""
    srm = "" if caller_slates == "include" else "; the sample-ratio check counts every user assigned, slates or not"
    if impressions.empty or "caller_slate" not in impressions or not impressions["caller_slate"].eq(True).any():
        return (
            [f"no raw Rank response ordered a caller's own slate (--caller-slates {caller_slates}){srm}"] if srm else []
        )
    responses = impressions.drop_duplicates("request_id")
    caller = responses["caller_slate"].eq(True)
    share = caller.groupby(responses["arm"]).mean()
    per_arm = ", ".join(f"{arm} {v:.0%}" for arm, v in share.items())
    read = {
        "include": "the rates include them (--caller-slates exclude leaves them out, only keeps them alone)",
        "exclude": "left out of the rates here (--caller-slates exclude)",
        "only": "the rates are of those alone (--caller-slates only)",
    }[caller_slates]
    return [
        f"{int(caller.sum()):,} of {len(responses):,} Rank responses ordered a caller's own slate "
        f"(candidate_item_ids; by arm: {per_arm}): {read}{srm}"
    ]


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
        lift = f"{c.lift:+.1%}"
        if c.lift != c.lift:  # control saw no such event: a relative lift is 0/0, the difference is said in points
            none = metric.removesuffix(" rate")
            ci = f"{level} CI [{c.lo:+.1%}, {c.hi:+.1%}] points, as {r.control} has no {none} events"
            lift = f"{c.diff:+.1%} points"
        if min(a.users, r.arm(r.control).users) < MIN_USERS:
            out.append(f"{a.arm} vs {r.control}: inconclusive — fewer than {MIN_USERS} users in an arm")
        elif c.lo > 0 or c.hi < 0:
            better = (c.lo > 0) == HIGHER_IS_BETTER[r.primary]
            word = "beats" if better else "is worse than"
            out.append(f"{a.arm} {word} {r.control}: {lift} {metric}, {ci}")
        else:
            out.append(f"{a.arm} vs {r.control}: inconclusive ({lift} {metric}, {ci} includes 0)")
    return out
