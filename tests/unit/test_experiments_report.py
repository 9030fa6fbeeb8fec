"""The report's arithmetic on hand-computed examples, the impression/feedback join, and verdicts."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from experiments.analysis import build
from experiments.data import outcomes
from experiments.significance import compare, ratio, srm
from setlist.experiment import parse_experiment

T0 = pd.Timestamp("2026-11-20 12:00", tz="UTC")


def test_one_item_per_user_reduces_to_the_two_proportion_z_interval():
    control = ratio(np.r_[np.ones(30), np.zeros(70)], np.ones(100))
    treatment = ratio(np.r_[np.ones(45), np.zeros(55)], np.ones(100))
    assert control.rate == 0.30 and treatment.rate == 0.45
    # by hand: se = sqrt(.3*.7/100 + .45*.55/100) = 0.0676387; 1.959964 * se = 0.1325697
    c = compare(treatment, control)
    assert c.diff == pytest.approx(0.15)
    assert (c.lo, c.hi) == pytest.approx((0.0174303, 0.2825697), abs=1e-6)
    assert c.lift == pytest.approx(0.5) and (c.lift_lo, c.lift_hi) == pytest.approx((0.058101, 0.941899), abs=1e-5)
    assert c.p_value == pytest.approx(2 * (1 - 0.986731), abs=1e-4)  # z = 0.15 / 0.0676387 = 2.2177


def test_clustered_rates_use_the_delta_method_over_users():
    # users (successes, shown) = (1, 1) and (3, 4): r = 4/5; residuals x - r·m = (0.2, -0.2)
    # var(r) = mean(residual²) / (n · mean(m)²) = 0.04 / (2 · 6.25) = 0.0032
    r = ratio(np.array([1, 3]), np.array([1, 4]))
    assert r.rate == pytest.approx(0.8) and r.se == pytest.approx(math.sqrt(0.0032))
    assert (r.users, r.shown, r.successes) == (2, 5, 4)


def test_sample_ratio_mismatch_chi_square():
    check = srm({"a": 60, "b": 40}, {"a": 0.5, "b": 0.5})
    assert check.chi2 == pytest.approx(4.0) and check.p_value == pytest.approx(0.0455, abs=1e-4)
    assert not check.detected(0.001) and check.detected(0.05)
    assert srm({"a": 50, "b": 50, "ghost": 3}, {"a": 0.5, "b": 0.5}).detected()


def _imp(user: str, item: str, at: pd.Timestamp, arm: str = "control", rid: str = "r") -> dict:
    return {
        "request_id": rid,
        "timestamp": at,
        "user_id": user,
        "arm": arm,
        "holdout": False,
        "item_id": item,
        "position": 1,
        "served": "model",
        "variant": "champion",
        "candidates_version": "1",
        "ranker_version": "1",
    }


def test_feedback_is_credited_to_the_latest_showing_within_the_window():
    m = pd.Timedelta(minutes=1)
    imp = pd.DataFrame(
        [
            _imp("u1", "A", T0, rid="r1"),
            _imp("u1", "A", T0 + 10 * m, rid="r2"),
            _imp("u1", "B", T0, rid="r1"),
            _imp("u2", "A", T0, rid="r3"),
        ]
    )
    ev = pd.DataFrame(
        [
            {"user_id": "u1", "item_id": "A", "timestamp": T0 + 11 * m, "type": "play", "value": 0.9},
            {"user_id": "u1", "item_id": "B", "timestamp": T0 + 40 * m, "type": "skip", "value": None},  # too late
            {"user_id": "u2", "item_id": "A", "timestamp": T0 - 5 * m, "type": "play", "value": 0.2},  # before
            {"user_id": "u2", "item_id": "A", "timestamp": T0 + 2 * m, "type": "skip", "value": None},
            {"user_id": "u2", "item_id": "A", "timestamp": T0 + 3 * m, "type": "like", "value": 1.0},  # positive only
        ]
    )
    out = outcomes(imp, ev, window_s=1800)
    got = out[["request_id", "item_id", "played", "skipped", "completed", "positive"]].values.tolist()
    assert got == [
        ["r1", "A", False, False, False, False],
        ["r2", "A", True, False, True, True],  # a completed play is positive
        ["r1", "B", False, False, False, False],
        ["r3", "A", False, True, False, True],
    ]


def _frame(arms: dict[str, tuple[int, int]], holdout: int = 0) -> pd.DataFrame:
    """``arms``: name → (users, plays); one item shown per user."""
    rows = []
    for arm, (users, plays) in arms.items():
        for n in range(users):
            rows.append(
                {
                    **_imp(f"{arm}-{n}", "A", T0, arm, f"{arm}-{n}"),
                    "played": n < plays,
                    "skipped": False,
                    "completed": False,
                    "positive": False,
                    "holdout": arm == "control" and n < holdout,
                }
            )
    return pd.DataFrame(rows)


EXP = parse_experiment(
    {"name": "e", "arms": {"control": {"share": 0.5, "strategy": "popularity"}, "champion": {"share": 0.5}}}
)


def test_a_clear_winner_gets_a_verdict_with_its_interval():
    report = build(EXP, _frame({"control": (200, 60), "champion": (200, 100)}))
    assert report.arm("champion").rates["play_rate"].rate == 0.5
    c = report.arm("champion").comparison["play_rate"]
    assert c.lift == pytest.approx(100 / 60 - 1)
    assert report.verdicts == [f"champion beats control: +66.7% play rate, 95% CI [{c.lift_lo:+.1%}, {c.lift_hi:+.1%}]"]
    assert c.lift_lo > 0


def test_no_difference_is_inconclusive_and_a_skewed_split_is_srm():
    even = build(EXP, _frame({"control": (200, 60), "champion": (200, 64)}))
    assert even.verdicts[0].startswith("champion vs control: inconclusive")
    skewed = build(EXP, _frame({"control": (300, 90), "champion": (100, 60)}))
    assert skewed.srm.detected() and skewed.verdicts[0].startswith("SRM detected")
    assert "do not trust" in skewed.verdicts[0]


def test_a_shops_feedback_counts_as_positive_and_no_control_event_is_said_in_points():
    # a shop's Track sends likes (purchases) and saves (carts), no plays: the play rate is 0 in both
    # arms, a lift over it 0/0; the positive rate counts them, and over a control without any the
    # difference is said in points, never as "+nan%"
    shop = parse_experiment(
        {"name": "e", "arms": {"control": {"share": 0.5, "strategy": "popularity"}, "champion": {"share": 0.5}},
         "analysis": {"primary": "positive_rate"}}
    )  # fmt: skip
    frame = _frame({"control": (200, 0), "champion": (200, 0)})
    frame["positive"] = frame["user_id"].isin([f"champion-{n}" for n in range(40)])
    report = build(shop, frame)
    assert report.arm("champion").rates["positive_rate"].rate == 0.2
    (verdict,) = report.verdicts
    assert verdict.startswith("champion beats control: +20.0% points positive rate") and "nan" not in verdict
    assert "as control has no positive events" in verdict
    plays = build(EXP, _frame({"control": (200, 0), "champion": (200, 0)}))
    assert "nan" not in plays.verdicts[0] and "inconclusive" in plays.verdicts[0]


def _shown(n: int, arm: str, caller: bool, items: tuple[str, ...] = ("A", "B")):
    """One Rank response of user ``{arm}-u{n}`` in experiment ``e``, recorded as serving writes it."""
    from setlist.impressions import Impression

    at = int(T0.timestamp() * 1000) + n
    scores = tuple(1.0 / (j + 1) for j in range(len(items)))
    record = Impression(f"{arm}-{n}", at, f"{arm}-u{n}", "e", arm, False, "model", "champion", "3", "5", items, scores)
    return replace(record, caller_slate=caller)


def test_caller_slates_are_said_and_can_be_left_out_or_read_alone(tmp_path):
    import io

    import pyarrow.parquet as pq
    from rich.console import Console

    from experiments.report import ReportError, run
    from setlist.impressions import to_table, write_batch
    from tests.world import tiny_settings

    settings = tiny_settings(tmp_path / "data")

    # control: 10 responses, 2 of them caller slates; champion: 10, 5 of them
    write_batch(settings.impressions_dir, [_shown(n, "control", n < 2) for n in range(10)])
    write_batch(settings.impressions_dir, [_shown(n, "champion", n < 5) for n in range(10)])
    quiet = Console(file=io.StringIO(), width=200)

    every, _ = run(settings, EXP, quiet, log_mlflow=False)
    assert [a.requests for a in every.arms] == [10, 10]
    (note,) = [n for n in every.notes if "caller's own slate" in n]
    assert note.startswith("7 of 20 Rank responses") and "control 20%" in note and "champion 50%" in note
    own, _ = run(settings, EXP, quiet, log_mlflow=False, caller_slates="exclude")
    assert [a.requests for a in own.arms] == [8, 5] and any("left out of the rates" in n for n in own.notes)
    alone, _ = run(settings, EXP, quiet, log_mlflow=False, caller_slates="only")
    assert [a.requests for a in alone.arms] == [2, 5]
    # the assignment is of every user: who sent slates is the callers' doing, not the split's
    assert alone.srm.observed == own.srm.observed == every.srm.observed == {"control": 10, "champion": 10}
    assert any("the sample-ratio check counts every user" in n for n in alone.notes)
    # a file from before the column reads as the server's own rankings: nothing to report alone, said so
    older = tiny_settings(tmp_path / "older")
    table = to_table([_shown(n, arm, False) for n in range(4) for arm in ("control", "champion")])
    (older.impressions_dir / "date=2026-11-18").mkdir(parents=True)
    pq.write_table(table.drop_columns(["caller_slate"]), older.impressions_dir / "date=2026-11-18" / "old.parquet")
    own_older = run(older, EXP, quiet, log_mlflow=False, caller_slates="exclude")[0]
    assert [a.requests for a in own_older.arms] == [4, 4]
    assert own_older.notes == [
        "no raw Rank response ordered a caller's own slate (--caller-slates exclude); the sample-ratio check counts "
        "every user assigned, slates or not"
    ]
    with pytest.raises(ReportError, match="no impression of experiment 'e' ordered a caller's slate"):
        run(older, EXP, quiet, log_mlflow=False, caller_slates="only")


def test_caller_slates_are_split_on_counted_days_that_kept_the_flag_and_refused_on_older_ones():
    from typer.testing import CliRunner

    from experiments.__main__ import app
    from experiments.data import Loaded
    from experiments.report import ReportError, _slates

    raw = pd.DataFrame([{**_imp("u1", "A", T0, "control", "r1"), "caller_slate": True}])
    daily = pd.DataFrame(
        {
            "date": [T0.date()] * 2,
            "arm": ["control"] * 2,
            "position": [1, 1],
            "caller_slate": [True, False],
            "impressions": [3, 4],
        }
    )
    loaded = Loaded(raw, pd.DataFrame(), daily)
    every = _slates(loaded, "include", "e")
    assert every[0] is raw and every[1] is daily  # every response, counted days too
    only, only_daily = _slates(loaded, "only", "e")
    assert len(only) == 1 and only_daily["impressions"].tolist() == [3]
    own, own_daily = _slates(loaded, "exclude", "e")
    assert own.empty and own_daily["impressions"].tolist() == [4]  # counted days alone are something to report
    older = Loaded(raw, pd.DataFrame(), daily.assign(caller_slate=[None, None]))  # counted before the flag
    with pytest.raises(ReportError, match=r"down-sampled before .*\(2026-.* to 2026-.*\).*--since"):
        _slates(older, "exclude", "e")
    assert _slates(older, "include", "e")[1] is older.daily
    said = CliRunner().invoke(app, ["report", "e", "--caller-slates", "some"])
    assert said.exit_code == 2 and "--caller-slates must be include, exclude or only, got 'some'" in said.output
    said = CliRunner().invoke(app, ["report", "e", "--since", "yesterday"])
    assert said.exit_code == 2 and "--since must be an ISO 8601 date or time" in said.output


def test_with_only_counted_caller_slates_the_notes_name_the_raw_days_the_srm_check_reads(tmp_path):
    import io
    from datetime import date

    import pyarrow as pa
    from rich.console import Console

    from experiments.report import run
    from setlist.downsample import DAILY, DAILY_SCHEMA
    from setlist.eventlog import write_atomic
    from setlist.impressions import write_batch
    from tests.world import tiny_settings

    settings = tiny_settings(tmp_path / "data")
    arms = ["control"] * 6 + ["champion"] * 5
    own = [_shown(n, arm, caller=False, items=("A",)) for n, arm in enumerate(arms)]
    write_batch(settings.impressions_dir, own)
    keys = {"experiment": "e", "holdout": False, "served": "model", "variant": "champion", "candidates_version": "3",
            "ranker_version": "5", "caller_slate": True, "position": 1, "date": date(2026, 10, 1)}  # fmt: skip
    keys["impressions"] = 4
    counted = pa.Table.from_pylist([{**keys, "arm": arm} for arm in ("control", "champion")], schema=DAILY_SCHEMA)
    write_atomic(counted, settings.impressions_dir / DAILY / "date=2026-10-01" / "counted.parquet")
    report, _ = run(settings, EXP, Console(file=io.StringIO(), width=200), log_mlflow=False, caller_slates="only")
    assert [a.requests for a in report.arms] == [4, 4]  # the counted caller slates alone
    assert report.srm.observed == {"control": 6, "champion": 5}  # every raw user, slates or not
    (days,) = [n for n in report.notes if "kept as daily counts only" in n]
    assert f"use the raw impressions from {T0:%Y-%m-%d} on" in days
    assert any("the sample-ratio check counts every user assigned" in n for n in report.notes)
