"""The onboarding KPIs (experiments.onboarding) on small hand-built event-log frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from experiments.onboarding import (
    Change,
    Target,
    analyse,
    per_user,
    prepare,
    summary,
    week_rows,
    wilson,
    write_summary,
)
from setlist.kpis import ValueRule

T0 = pd.Timestamp("2026-01-05 00:00", tz="UTC")  # a UTC midnight: day N is a calendar day
RULE = ValueRule(frozenset({"play", "like"}), play_fraction=0.8, engaged_min=3)


def at(day: int = 0, seconds: float = 0.0) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=day, seconds=seconds)


def frame(*rows: tuple) -> pd.DataFrame:
    """Rows of (user, arm, time, type[, value])."""
    out = []
    for r in rows:
        user, arm, ts, etype = r[:4]
        value = r[4] if len(r) > 4 else None
        out.append({"user_id": user, "arm": arm, "timestamp": ts, "type": etype, "value": value})
    return pd.DataFrame(out)


def browse(user: str, arm: str, day: int, n: int, start: float = 0.0) -> list[tuple]:
    """``n`` items passed over (impressions), one a second from ``start``."""
    return [(user, arm, at(day, start + i), "impression") for i in range(n)]


# --- time-to-first-value ----------------------------------------------------------------------------
def test_ttfv_counts_items_shown_up_to_the_first_value_event_and_seconds_from_the_first_event():
    f = frame(
        ("a", "control", at(0, 10), "impression"),
        ("a", "control", at(0, 20), "skip"),
        ("a", "control", at(0, 40), "play", 0.5),  # a play, but too short to be value
        ("a", "control", at(0, 100), "play", 0.9),  # value: the 4th item shown
        ("a", "control", at(0, 300), "play", 1.0),
    )
    u = per_user(prepare(f, RULE))
    assert u.loc["a", "steps"] == 4
    assert u.loc["a", "seconds"] == pytest.approx(90.0)
    assert bool(u.loc["a", "reached"]) and u.loc["a", "value_events"] == 2 and u.loc["a", "items_shown"] == 5


def test_a_like_counts_at_the_item_it_likes_and_same_instant_events_keep_their_log_order():
    f = frame(
        ("b", "control", at(0, 0), "impression"),
        ("b", "control", at(0, 30), "play", 0.6),  # not value by itself ...
        ("b", "control", at(0, 30), "like", 1.0),  # ... but liked at the same instant, logged after
        ("b", "control", at(0, 31), "impression"),
    )
    u = per_user(prepare(f, RULE))
    assert u.loc["b", "steps"] == 2 and u.loc["b", "seconds"] == pytest.approx(30.0)
    # the frame's row order does not matter across instants, only within one
    shuffled = f.iloc[[3, 0, 1, 2]]
    assert per_user(prepare(shuffled, RULE)).loc["b", "steps"] == 2


def test_the_value_rule_decides_what_value_is():
    f = frame(
        ("c", "control", at(0, 0), "play", 0.95),
        ("c", "control", at(0, 5), "add_to_playlist"),
    )
    playlist_only = ValueRule(frozenset({"add_to_playlist"}))
    assert per_user(prepare(f, RULE)).loc["c", "steps"] == 1
    assert per_user(prepare(f, playlist_only)).loc["c", "seconds"] == pytest.approx(5.0)
    stricter = ValueRule(frozenset({"play"}), play_fraction=0.99)
    assert not per_user(prepare(f, stricter)).loc["c", "reached"]


def test_users_who_never_reach_value_are_censored_at_the_end_of_the_window():
    f = frame(*browse("d", "control", 0, 3, start=3600), ("d", "control", at(2, 0), "skip"))
    end = at(5)
    u = per_user(prepare(f, RULE), end=end)
    assert not u.loc["d", "reached"]
    assert u.loc["d", "steps"] == 4  # every item they were shown: a lower bound on their TTFV
    assert u.loc["d", "seconds"] == pytest.approx((end - at(0, 3600)).total_seconds())
    # without an end, the window closes at the last event
    assert per_user(prepare(f, RULE)).loc["d", "seconds"] == pytest.approx((at(2) - at(0, 3600)).total_seconds())


def test_per_arm_ttfv_its_reached_share_and_the_change_against_control():
    rows = []
    for n in range(4):  # control: value at the 5th item, 50 s in; one user never gets there
        rows += browse(f"c{n}", "control", 0, 4) + [(f"c{n}", "control", at(0, 50), "play", 0.9)]
    rows += browse("c-none", "control", 0, 5)
    for n in range(5):  # personalized: value at the 2nd item, 20 s in
        rows += browse(f"p{n}", "personalized", 0, 1) + [(f"p{n}", "personalized", at(0, 20), "play", 0.9)]
    end = at(0, 100)
    k = analyse(frame(*rows), RULE, "control", end=end, draws=500)
    assert [a.arm for a in k.arms] == ["control", "personalized"]
    control, personal = k.arm("control"), k.arm("personalized")
    # the censored user counts with their 5 items and the 100 s to the window's end
    assert control.steps.mean == pytest.approx(5.0) and control.seconds.mean == pytest.approx((4 * 50 + 100) / 5)
    assert control.reached.k == 4 and control.reached.rate == pytest.approx(0.8)
    assert personal.steps.mean == 2.0 and personal.steps.lo == personal.steps.hi == 2.0  # no spread, no interval
    assert personal.steps_change is not None and personal.steps_change.change == pytest.approx(2 / 5 - 1)
    assert personal.steps_change.lo <= personal.steps_change.change <= personal.steps_change.hi
    assert personal.seconds_change is not None and personal.seconds_change.change == pytest.approx(20 / 60 - 1)
    assert control.steps_change is None  # control is the reference
    (target,) = k.targets()
    assert target.arm == "personalized" and target.met  # the whole interval is a cut of 30% or more


def test_the_bootstrap_interval_covers_the_mean_and_narrows_with_more_users():
    rng = np.random.default_rng(3)

    def arm(n: int) -> list[tuple]:
        rows = []
        for u in range(n):
            steps = int(rng.integers(1, 12))
            rows += browse(f"u{u}", "control", 0, steps - 1) + [(f"u{u}", "control", at(0, 60), "play", 1.0)]
        return rows

    small = analyse(frame(*arm(20)), RULE, "control", draws=800).arm("control").steps
    large = analyse(frame(*arm(400)), RULE, "control", draws=800).arm("control").steps
    assert small.lo < small.mean < small.hi and large.lo < large.mean < large.hi
    assert large.hi - large.lo < (small.hi - small.lo) / 2


def test_the_target_is_met_only_when_the_whole_interval_cuts_enough():
    seconds = Change(-0.5, -0.6, -0.4)
    assert Target("p", 0.3, Change(-0.45, -0.6, -0.31), seconds).met
    reached = Target("p", 0.3, Change(-0.35, -0.6, -0.1), seconds)
    assert not reached.met and reached.verdict().startswith("not met (the estimate reaches it")
    assert Target("p", 0.3, Change(-0.1, -0.2, 0.0), seconds).verdict() == "not met"


# --- return rate ----------------------------------------------------------------------------------
def test_return_rate_counts_calendar_days_after_the_first_exposure_among_users_who_could_return():
    rows = [
        # back the next calendar day, only two hours later: day 1
        ("late", "control", at(0, 23 * 3600), "impression"),
        ("late", "control", at(1, 3600), "impression"),
        # back on day 7, not on day 1
        ("week", "control", at(0, 600), "impression"),
        ("week", "control", at(7, 600), "impression"),
        # never back
        ("gone", "control", at(0, 600), "impression"),
        # arrives on day 3: its day 7 (day 10) is outside a window that ends with day 9
        ("new", "control", at(3, 600), "impression"),
        ("new", "control", at(4, 600), "impression"),
    ]
    k = analyse(frame(*rows), RULE, "control", end=at(10))
    r = k.arm("control").returns
    assert (r[1].k, r[1].n) == (2, 4) and r[1].rate == pytest.approx(0.5)
    assert (r[7].k, r[7].n) == (1, 3)  # "new" is not counted as gone
    assert r[1].lo < 0.5 < r[1].hi


def test_return_rate_per_arm_with_the_difference_to_control():
    rows = []
    for n in range(10):
        rows.append((f"c{n}", "control", at(0, 60), "impression"))
        if n < 2:
            rows.append((f"c{n}", "control", at(1, 60), "impression"))
        rows.append((f"p{n}", "personalized", at(0, 60), "impression"))
        if n < 6:
            rows.append((f"p{n}", "personalized", at(1, 60), "impression"))
    k = analyse(frame(*rows), RULE, "control", end=at(8))
    assert k.arm("control").returns[1].rate == pytest.approx(0.2)
    assert k.arm("personalized").returns[1].rate == pytest.approx(0.6)
    diff = k.arm("personalized").return_diff[1]
    assert diff.diff == pytest.approx(0.4) and diff.lo < 0.4 < diff.hi


def test_wilson_interval():
    s = wilson(0, 10)
    assert s.rate == 0 and s.lo == 0 and 0 < s.hi < 0.35
    assert math.isnan(wilson(0, 0).rate)
    mid = wilson(50, 100)
    assert mid.lo == pytest.approx(1 - mid.hi) and 0.39 < mid.lo < 0.41


# --- lift by week of exposure -----------------------------------------------------------------------
def _week(user: str, arm: str, day: int, shown: int, value: int) -> list[tuple]:
    rows = [(user, arm, at(day, 60 + i), "play", 0.9) for i in range(value)]
    return rows + browse(user, arm, day, shown - value, start=600)


def test_value_rate_by_week_of_exposure_and_its_lift_against_control():
    rows = []
    rows += _week("c", "control", 0, 10, 1) + _week("c", "control", 8, 10, 1)
    rows += _week("p", "personalized", 0, 10, 3) + _week("p", "personalized", 9, 10, 1)
    # a second personalized user who arrives later: its week 0 is calendar week 1
    rows += _week("q", "personalized", 7, 10, 3)
    weeks = week_rows(prepare(frame(*rows), RULE), "control")
    got = {(w.week, w.arm): w for w in weeks}
    assert set(got) == {(0, "control"), (0, "personalized"), (1, "control"), (1, "personalized")}
    assert got[(0, "personalized")].value_rate == pytest.approx(6 / 20) and got[(0, "personalized")].users == 2
    assert got[(0, "personalized")].lift == pytest.approx(2.0)  # 30% against 10%
    assert got[(1, "personalized")].lift == pytest.approx(0.0)  # the novelty is gone by week 1
    assert math.isnan(got[(0, "control")].lift)


# --- engaged users ----------------------------------------------------------------------------------
def test_engaged_users_have_at_least_n_value_events():
    rows = []
    for user, arm, values in (("a", "control", 3), ("b", "control", 2), ("c", "personalized", 5)):
        rows += [(user, arm, at(0, 10 * i), "play", 0.9) for i in range(values)]
        rows.append((user, arm, at(0, 5), "play", 0.3))  # not value
    rows.append(("d", "personalized", at(0, 1), "like", 1.0))
    f = frame(*rows)
    k = analyse(f, RULE, "control")
    assert (k.arm("control").engaged.k, k.arm("control").engaged.n) == (1, 2)
    assert k.arm("personalized").engaged.k == 1 and k.arm("personalized").engaged.rate == pytest.approx(0.5)
    assert k.arm("control").value_events == 5 and k.arm("personalized").value_events == 6
    two = ValueRule(RULE.types, RULE.play_fraction, engaged_min=2)
    assert analyse(f, two, "control").arm("control").engaged.k == 2


def test_users_without_an_arm_form_one_group():
    f = frame(("a", None, at(0), "play", 0.9), ("b", None, at(0, 5), "impression"))
    k = analyse(f, RULE, "control")
    assert [a.arm for a in k.arms] == ["all"] and k.arm("all").users == 2 and k.targets() == []


# --- the JSON summary -------------------------------------------------------------------------------
def test_the_summary_has_the_fields_the_cost_report_reads(tmp_path):
    rows = []
    for n in range(3):
        rows += browse(f"c{n}", "control", 0, 3) + [(f"c{n}", "control", at(0, 30), "play", 0.9)]
        rows += [(f"p{n}", "personalized", at(0, 1), "play", 0.9), (f"p{n}", "personalized", at(1, 1), "like", 1.0)]
    k = analyse(frame(*rows), RULE, "control", end=at(9), draws=200)
    k.arm("control").rank_calls, k.arm("personalized").rank_calls = 7, 9
    k.arm("personalized").track_calls = 9
    path = write_summary(k, tmp_path / "onboarding.json", "onb", simulation={"users": 6})
    data = json.loads(path.read_text())
    assert data["experiment"] == "onb" and data["simulation"] == {"users": 6} and data["control"] == "control"
    for arm in ("control", "personalized"):
        a = data["arms"][arm]
        for field in ("users", "engaged_users", "value_events", "rank_calls", "ttfv_steps", "ttfv_seconds"):
            assert a[field] is not None, (arm, field)
    assert data["arms"]["personalized"]["rank_calls"] == 9 and data["arms"]["control"]["ttfv_steps"] == 4.0
    assert data["arms"]["personalized"]["track_calls"] == 9 and data["arms"]["control"]["track_calls"] is None
    assert data["arms"]["personalized"]["ttfv"]["steps"]["change"] == pytest.approx(1 / 4 - 1)
    assert "change" not in data["arms"]["control"]["ttfv"]["steps"]
    assert data["arms"]["personalized"]["return_rate"]["day_1"]["rate"] == 1.0
    assert data["targets"][0]["arm"] == "personalized" and data["targets"][0]["threshold"] == 0.3
    assert data == summary(k, "onb", simulation={"users": 6})  # NaN-free: it went through JSON unchanged


@pytest.mark.parametrize("n", [7, 12, 20, 33])
def test_wilson_interval_holds_the_share_itself_at_none_and_all(n):
    # at k = 0 the lower bound came out 2.8e-17 above the share for n = 12: a negative error bar
    for k in (0, n):
        w = wilson(k, n)
        assert w.lo <= w.rate <= w.hi


def test_error_bars_are_never_negative_and_nan_gets_none():
    from experiments.onboarding_report import _spans

    below, above = _spans([0.0, 0.5, float("nan")], [2.8e-17, 0.25, float("nan")], [0.24, 0.75, float("nan")])
    assert below == [0.0, 0.25, 0.0] and above == [0.24, 0.25, 0.0]
