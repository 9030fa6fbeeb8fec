"""The popularity lists' window and counting, chosen on a probe of the log's own newest events."""

from __future__ import annotations

import numpy as np
import pandas as pd

from setlist.candidate_sources import GLOBAL_COHORT
from setlist.windows import trailing
from training.candidates_fit import (
    CandidateParams,
    choose_popularity,
    fit_candidates,
    fit_cohorts,
    refit_popularity,
)

START = pd.Timestamp("2026-01-01", tz="UTC")


def _frame(rows: list[tuple[str, str, str, pd.Timestamp]]) -> pd.DataFrame:
    users, items, types, stamps = zip(*rows, strict=True)
    n = len(rows)
    return pd.DataFrame(
        {
            "user_id": users,
            "session_id": users,
            "event_id": [f"e{k}" for k in range(n)],
            "item_id": items,
            "type": types,
            "value": np.ones(n),
            "timestamp": pd.DatetimeIndex(stamps),
            "locale": ["en"] * n,
            "device": ["mobile"] * n,
            "weight": np.full(n, np.nan),
        }
    ).sort_values("timestamp", kind="stable", ignore_index=True)


def _news(seed: int = 0, days: int = 10) -> tuple[pd.DataFrame, pd.Index, dict[str, pd.Timestamp]]:
    """Stories published every hour, each alive for a day: every hour shows live stories and some
    of them are clicked, the newest most."""
    rng = np.random.default_rng(seed)
    born = {f"s{h}": START + pd.Timedelta(hours=h) for h in range(days * 24)}
    rows = []
    for h in range(days * 24):
        now = START + pd.Timedelta(hours=h)
        live = [s for s, t in born.items() if now - pd.Timedelta(hours=24) < t <= now]
        ages = np.array([(now - born[s]) / pd.Timedelta(hours=1) for s in live])
        p = np.exp(-ages / 6)
        p /= p.sum()
        for k in range(30):
            user = f"u{rng.integers(200)}"
            stamp = now + pd.Timedelta(seconds=int(rng.integers(3600)))
            story = live[rng.choice(len(live), p=p)]
            rows.append((user, story, "play" if k % 3 == 0 else "impression", stamp))
    return _frame(rows), pd.Index(list(born)), born


def _stable(seed: int = 0, days: int = 30) -> tuple[pd.DataFrame, pd.Index]:
    """A catalogue whose items keep their popularity (a Zipf law) for the whole log."""
    rng = np.random.default_rng(seed)
    items = [f"i{n}" for n in range(500)]
    p = 1.0 / np.arange(1, 501)
    p /= p.sum()
    picks = rng.choice(500, size=6000, p=p)
    stamps = START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, 6000)), unit="s")
    rows = [(f"u{rng.integers(300)}", items[i], "play", t) for i, t in zip(picks, stamps, strict=True)]
    return _frame(rows), pd.Index(items)


def test_a_catalogue_that_turns_over_gets_a_short_window_of_every_event_and_live_items_first():
    events, items, born = _news()
    params = CandidateParams(cohort_probe_k=20)
    how = choose_popularity(events, items, params)
    derived = trailing("derived", events.loc[events["type"] == "play", "timestamp"], params.cohort_share)
    assert how.every_event
    assert "of the derived window" in how.reason
    assert how.window.days <= 0.5 * derived.days and how.window.end == derived.end
    cohorts, fitted = fit_cohorts(events, items, params, np.zeros(len(items), np.int64), ["unknown"])
    assert fitted == how
    end = events["timestamp"].max()
    head = items[cohorts[GLOBAL_COHORT][:10]]
    assert all(end - born[s] < pd.Timedelta(hours=24) for s in head), "the head is stories still alive"


def test_a_stable_catalogue_keeps_the_derived_window_and_the_counts_of_positives():
    events, items = _stable()
    how = choose_popularity(events, items, CandidateParams(cohort_probe_k=50))
    assert not how.every_event
    assert how.window.source == "data"
    assert "no shorter window or counting clearly more" in how.reason
    cohorts, _ = fit_cohorts(events, items, CandidateParams(cohort_probe_k=50), np.zeros(500, np.int64), ["unknown"])
    recent = events[events["timestamp"] >= how.window.start]
    counts = recent["item_id"].value_counts()
    assert list(items[cohorts[GLOBAL_COHORT][: len(counts)]]) == list(counts.index)


def test_a_window_fixed_by_setting_is_used_without_a_probe():
    events, items, _ = _news()
    how = choose_popularity(events, items, CandidateParams(cohort_days=3.0))
    assert how.window.source == "setting" and how.window.days == 3.0
    assert not how.every_event
    assert "fixed by setting" in how.reason


def test_too_few_probe_positives_keep_the_derived_window():
    events, items, _ = _news(days=2)
    events = events[(events["type"] != "play") | (events.index % 10 == 0)]
    how = choose_popularity(events, items, CandidateParams())
    assert not how.every_event
    assert "too few" in how.reason


def test_a_fitted_index_offers_only_items_alive_at_the_end_when_the_catalogue_turns_over():
    events, items, born = _news(days=6)
    catalog = pd.DataFrame({"item_id": list(items), "genre": ["news"] * len(items)})
    params = CandidateParams(factors=8, iterations=2, cohort_probe_k=20)
    fitted = fit_candidates(events, catalog, params, seed=1)
    live = fitted.index.live
    assert live is not None and fitted.popularity.every_event
    end, start = events["timestamp"].max(), fitted.popularity.window.start
    # a story is alive when it was shown in the window: born no later than its end, dead no sooner than its start
    assert all(born[s] <= end and born[s] + pd.Timedelta(hours=24) > start for s in items[live])
    assert live.sum() < len(items) / 2
    stable, stable_items = _stable(days=10)
    catalog = pd.DataFrame({"item_id": list(stable_items), "genre": ["pop"] * len(stable_items)})
    assert fit_candidates(stable, catalog, CandidateParams(factors=8, iterations=2), seed=1).index.live is None


def test_refitting_over_a_longer_log_moves_the_window_and_the_live_items_to_its_end():
    events, items, born = _news(days=6)
    catalog = pd.DataFrame({"item_id": list(items), "genre": ["news"] * len(items)})
    params = CandidateParams(factors=8, iterations=2, cohort_probe_k=20)
    cut = events["timestamp"].max() - pd.Timedelta(hours=20)
    fitted = fit_candidates(events[events["timestamp"] < cut], catalog, params, seed=1)
    before = fitted.index.live.copy()
    served = refit_popularity(fitted.index, events, fitted.popularity, params)
    assert served.window.end == events["timestamp"].max()
    assert served.window.end - served.window.start == fitted.popularity.window.end - fitted.popularity.window.start
    newest = [s for s, t in born.items() if t >= cut]
    assert not before[items.get_indexer(newest)].any()
    assert fitted.index.live[items.get_indexer(newest)].any(), "stories of the last hours are offered"
    head = items[fitted.index.cohorts[GLOBAL_COHORT][:5]]
    assert all(born[s] > cut - pd.Timedelta(hours=24) for s in head)
