"""Experiment configuration, assignment and routing: pure functions, no world needed."""

from __future__ import annotations

from collections import Counter

import pytest
from scipy import stats

from serving.rollout.routing import CANARY, CHAMPION, Router
from setlist.experiment import ExperimentConfigError, load_experiment, parse_experiment

CONFIG = {
    "name": "exp-a",
    "salt": "salt-1",
    "control": "control",
    "holdout": {"share": 0.1, "salt": "global"},
    "arms": {
        "control": {"share": 0.2, "strategy": "popularity"},
        "champion": {"share": 0.5, "strategy": "model", "alias": "champion"},
        "challenger": {"share": 0.3, "strategy": "model", "alias": "challenger"},
    },
}
USERS = [f"u_{n:08x}" for n in range(20_000)]


def test_assignment_is_a_pure_function_of_salt_and_user():
    a, b = parse_experiment(CONFIG), parse_experiment(dict(CONFIG))
    assert [a.assign(u) for u in USERS[:500]] == [b.assign(u) for u in USERS[:500]]
    reshuffled = parse_experiment({**CONFIG, "salt": "salt-2"})
    moved = sum(a.assign(u).arm != reshuffled.assign(u).arm for u in USERS[:2000])
    assert moved > 500  # a new salt draws a new split


def test_shares_match_the_configuration_on_20k_users():
    exp = parse_experiment(CONFIG)
    groups = Counter("holdout" if (a := exp.assign(u)).holdout else a.arm.name for u in USERS)
    expected = exp.expected_shares()
    assert set(groups) == set(expected)
    observed = [groups[g] for g in expected]
    chi2, p = stats.chisquare(observed, [len(USERS) * expected[g] for g in expected])
    assert p > 0.001, (groups, expected)


def test_holdout_users_always_get_control_and_are_the_same_in_every_experiment():
    a = parse_experiment(CONFIG)
    b = parse_experiment({**CONFIG, "name": "exp-b", "salt": "other"})
    held_a = {u for u in USERS if a.assign(u).holdout}
    held_b = {u for u in USERS if b.assign(u).holdout}
    assert held_a == held_b and 0.08 < len(held_a) / len(USERS) < 0.12
    assert all(a.assign(u).arm.name == "control" for u in held_a)


def test_aliases_and_expected_shares():
    exp = parse_experiment(CONFIG)
    assert exp.aliases == ("champion", "challenger")
    assert exp.expected_shares() == pytest.approx(
        {"holdout": 0.1, "control": 0.18, "champion": 0.45, "challenger": 0.27}
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"arms": {"a": {"share": 0.5}}}, "at least two"),
        ({"arms": {"a": {"share": 0.5}, "b": {"share": 0.6}}}, "sum to 1"),
        ({"arms": {"a": {"share": 0.5, "strategy": "coin"}, "b": {"share": 0.5}}}, "strategy"),
        ({"control": "nobody"}, "control arm"),
        ({"holdout": {"share": 1.5}}, "holdout"),
        ({"name": ""}, "name"),
        ({"analysis": {"primary": "dwell"}}, "analysis.primary"),
    ],
)
def test_bad_configurations_say_what_is_wrong(change, message):
    with pytest.raises(ExperimentConfigError, match=message):
        parse_experiment({**CONFIG, **change})


def test_a_missing_file_means_no_experiment(tmp_path):
    assert load_experiment(None) is None
    assert load_experiment(tmp_path / "absent.yaml") is None
    path = tmp_path / "e.yaml"
    path.write_text("name: x\narms:\n  control: {share: 0.5, strategy: popularity}\n  champion: {share: 0.5}\n")
    exp = load_experiment(path)
    assert exp is not None and exp.control == "control" and exp.salt == "x"


def test_without_an_experiment_everyone_routes_to_the_champion():
    route = Router().route("u_1")
    assert (route.arm, route.variant, route.strategy, route.experiment) == ("champion", CHAMPION, "model", "")


def test_the_canary_takes_its_share_of_champion_arms_only_and_widening_keeps_canary_users():
    exp = parse_experiment(CONFIG)
    small, wide = Router(exp, 0.1, "canary:1:2"), Router(exp, 0.5, "canary:1:2")
    routes = {u: small.route(u) for u in USERS[:5000]}
    champion_users = [u for u, r in routes.items() if r.arm == "champion"]
    share = sum(routes[u].variant == CANARY for u in champion_users) / len(champion_users)
    assert 0.07 < share < 0.13
    assert all(r.variant != CANARY for r in routes.values() if r.arm != "champion")
    # monotone: a user who saw the canary at 10% still sees it at 50%
    assert all(wide.route(u).variant == CANARY for u in champion_users if routes[u].variant == CANARY)
    assert all(r.arm == wide.route(u).arm for u, r in routes.items())  # the canary never moves arms
