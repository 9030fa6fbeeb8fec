"""Which arm and which model variant serve a user: a pure function of the pseudonym.

The experiment picks the arm (setlist.experiment); within arms that serve the ``champion`` alias a
canary rollout sends a share of users to the candidate version. Both use salted hashes of the
pseudonym, so a user's route is the same on every request and every replica, and the canary's
salt names the candidate version so each new rollout draws a fresh set of users.
"""

from __future__ import annotations

from dataclasses import dataclass

from setlist.experiment import Experiment, bucket
from setlist.registry import CHAMPION

#: the variant a canary's users get; a routing name only (the candidate pair holds the champion alias)
CANARY = "canary"


@dataclass(frozen=True, slots=True)
class Route:
    arm: str  # returned in RankResponse.arm and recorded with impressions and Track rows
    holdout: bool
    strategy: str  # model | popularity
    variant: str  # key into Live.variants: champion, canary, or another alias (challenger)
    experiment: str  # "" without an experiment


@dataclass(frozen=True)
class Router:
    experiment: Experiment | None = None
    canary_share: float = 0.0
    canary_salt: str = ""

    def route(self, user: str) -> Route:
        exp = self.experiment
        if exp is None:
            arm, holdout, strategy, alias, name = CHAMPION, False, "model", CHAMPION, ""
        else:
            a = exp.assign(user)
            arm, holdout, strategy, name = a.arm.name, a.holdout, a.arm.strategy, exp.name
            alias = a.arm.alias or CHAMPION
        variant = alias
        if (
            alias == CHAMPION
            and strategy == "model"
            and self.canary_share > 0
            and (self.canary_share >= 1.0 or bucket(self.canary_salt, user) < self.canary_share)
        ):
            variant = CANARY
        return Route(arm, holdout, strategy, variant, name)
