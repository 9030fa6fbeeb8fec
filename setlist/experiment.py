"""Experiments as configuration, and the one assignment function serving and analysis share.

An experiment is a YAML file (``SETLIST_EXPERIMENTS_FILE``)::

    name: ranker-ab-1
    salt: ranker-ab-1        # change it to reshuffle users between arms
    control: control
    holdout: {share: 0.05, salt: setlist-global-holdout}
    analysis: {primary: play_rate, window_minutes: 30}
    arms:
      control:    {share: 0.2, strategy: popularity}
      champion:   {share: 0.4, strategy: model, alias: champion}
      challenger: {share: 0.4, strategy: model, alias: challenger}

Assignment is a pure function of (salt, pseudonymous user): sticky across requests, restarts and
replicas without any shared state. The global holdout uses its own salt so the same users stay out
of every experiment; they are served (and counted as) the control arm, flagged ``holdout``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from setlist.errors import UsageError
from setlist.registry import CHAMPION
from setlist.yamlfile import load_yaml

Strategy = Literal["model", "popularity"]
STRATEGIES: tuple[str, ...] = ("model", "popularity")
METRICS: tuple[str, ...] = ("play_rate", "skip_rate", "completion_rate", "positive_rate")
_SCALE = float(1 << 64)


class ExperimentConfigError(UsageError, ValueError):
    """The experiments file is malformed; the message says what and what is allowed."""


@dataclass(frozen=True)
class Arm:
    name: str
    share: float
    strategy: Strategy = "model"
    alias: str | None = CHAMPION  # the registry alias a model arm serves


@dataclass(frozen=True)
class Assignment:
    arm: Arm
    holdout: bool


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    arms: tuple[Arm, ...]
    control: str
    holdout_share: float = 0.0
    holdout_salt: str = "setlist-global-holdout"
    primary_metric: str = "play_rate"
    window_s: float = 1800.0
    _bounds: tuple[float, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        # cumulative upper bounds, so assign() is one bisect-free scan over a handful of arms
        bounds, acc = [], 0.0
        for arm in self.arms:
            acc += arm.share
            bounds.append(acc)
        object.__setattr__(self, "_bounds", tuple(bounds))

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    @property
    def aliases(self) -> tuple[str, ...]:
        """Registry aliases the arms serve, champion first (it is always loaded)."""
        wanted: dict[str, None] = {CHAMPION: None}
        wanted.update({a.alias: None for a in self.arms if a.strategy == "model" and a.alias})
        return tuple(wanted)

    def expected_shares(self) -> dict[str, float]:
        """Share of users expected per reporting group: the holdout, then each arm."""
        out = {"holdout": self.holdout_share} if self.holdout_share > 0 else {}
        out.update({a.name: (1.0 - self.holdout_share) * a.share for a in self.arms})
        return out

    def assign(self, user: str) -> Assignment:
        if self.holdout_share > 0 and bucket(self.holdout_salt, user) < self.holdout_share:
            return Assignment(self.arm(self.control), True)
        u = bucket(self.salt, user)
        for arm, upper in zip(self.arms, self._bounds):
            if u < upper:
                return Assignment(arm, False)
        return Assignment(self.arms[-1], False)  # shares sum to 1 up to rounding


def bucket(salt: str, user: str) -> float:
    """A uniform number in [0, 1) from (salt, user); blake2b, so it is stable across processes
    (Python's own hash() is salted per process)."""
    digest = hashlib.blake2b(f"{salt}\x1f{user}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def parse_experiment(raw: dict) -> Experiment:
    if not isinstance(raw, dict):
        raise ExperimentConfigError("the experiments file must be a mapping with name, salt and arms")
    name = str(raw.get("name") or "").strip()
    if not name:
        raise ExperimentConfigError("experiment needs a non-empty 'name'")
    arms_raw = raw.get("arms")
    if not isinstance(arms_raw, dict) or len(arms_raw) < 2:
        raise ExperimentConfigError("'arms' must map at least two arm names to {share, strategy[, alias]}")
    arms = []
    for arm_name, spec in arms_raw.items():
        spec = spec or {}
        strategy = spec.get("strategy", "model")
        if strategy not in STRATEGIES:
            raise ExperimentConfigError(f"arm {arm_name!r}: strategy {strategy!r} unknown; use one of {STRATEGIES}")
        share = float(spec.get("share", -1))
        if not 0 < share <= 1:
            raise ExperimentConfigError(f"arm {arm_name!r}: share must be in (0, 1], got {spec.get('share')!r}")
        alias = spec.get("alias", CHAMPION) if strategy == "model" else None
        arms.append(Arm(str(arm_name), share, strategy, alias))
    total = sum(a.share for a in arms)
    if abs(total - 1.0) > 1e-6:
        raise ExperimentConfigError(f"arm shares must sum to 1, they sum to {total:g}")
    control = str(raw.get("control", arms[0].name))
    if control not in {a.name for a in arms}:
        raise ExperimentConfigError(f"control arm {control!r} is not one of the arms {[a.name for a in arms]}")
    holdout = raw.get("holdout") or {}
    h_share = float(holdout.get("share", 0.0))
    if not 0 <= h_share < 1:
        raise ExperimentConfigError(f"holdout share must be in [0, 1), got {h_share}")
    analysis = raw.get("analysis") or {}
    primary = str(analysis.get("primary", "play_rate"))
    if primary not in METRICS:
        raise ExperimentConfigError(f"analysis.primary {primary!r} unknown; use one of {METRICS}")
    return Experiment(
        name=name,
        salt=str(raw.get("salt") or name),
        arms=tuple(arms),
        control=control,
        holdout_share=h_share,
        holdout_salt=str(holdout.get("salt", "setlist-global-holdout")),
        primary_metric=primary,
        window_s=60.0 * float(analysis.get("window_minutes", 30)),
    )


def load_experiment(path: Path | None) -> Experiment | None:
    """The experiment in ``path``; None when no file is configured or the file does not exist."""
    if path is None or not Path(path).exists():
        return None
    with open(path, encoding="utf-8") as fh:
        return parse_experiment(load_yaml(fh.read()) or {})
