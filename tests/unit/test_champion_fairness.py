"""The promotion gate scores the champion only on a hold-out it never learned from."""

from __future__ import annotations

import pandas as pd
import pytest

from training.champion import not_comparable
from training.promotion import decide

T = pd.Timestamp("2026-03-01", tz="UTC")


def _queries(*days: float) -> pd.Series:
    # each query is 1 ms before its first held-out event
    return pd.Series([T + pd.Timedelta(days=d) - pd.Timedelta(milliseconds=1) for d in days])


@pytest.mark.parametrize(
    "cutoff, kind, days, fair",
    [
        (str(T), "global", (0, 2), True),  # the same period again (a retrain on the same log)
        (str(T), "global", (5, 6), True),  # a later period (the log grew)
        (str(T), "global", (-3, 1), False),  # a longer period: it learned from the first 3 days of it
        (str(T), "per_user", (-300, 1), False),  # each user's last positives, many before its cutoff
        ("per user", "per_user", (-300, 1), True),  # each user's later positives than it learned from
        ("per user", "global", (0, 1), False),  # its users' first 80% may lie in the period
        (None, "global", (-3, 1), True),  # a run from before the cutoff was recorded: as before
        (str(T.tz_localize(None)), "global", (-1, 1), False),  # a naive time is UTC
    ],
)
def test_a_champion_is_scored_only_on_events_it_did_not_learn_from(cutoff, kind, days, fair):
    why = not_comparable(cutoff, kind, _queries(*days))
    assert (why is None) is fair
    if not fair:
        assert "per-user" in why or "learned from events up to" in why


def test_an_unscored_champion_leaves_the_challenger_to_the_baselines_and_says_why():
    baselines = {"popularity": 0.05, "als": 0.08}
    d = decide(0.15, None, baselines, margin=0.005, validation_passed=True, champion_note="not comparable: why")
    assert d.promote and d.reason.startswith("champion not scored (not comparable: why)")
    weak = decide(0.07, None, baselines, margin=0.005, validation_passed=True, champion_note="not comparable: why")
    assert not weak.promote and "does not beat als" in weak.reason
    first = decide(0.15, None, baselines, margin=0.005, validation_passed=True)
    assert first.reason.startswith("first model")
