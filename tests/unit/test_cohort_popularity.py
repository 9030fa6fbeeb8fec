"""The popularity lists' window and counting, chosen on a probe of the log's own newest events."""

from __future__ import annotations

import numpy as np
import pandas as pd

from setlist.candidate_sources import GLOBAL_COHORT
from setlist.candidates import CandidateIndex
from setlist.windows import trailing
from training.candidates_fit import (
    CandidateParams,
    choose_popularity,
    fit_candidates,
    fit_cohorts,
    refit_popularity,
    refit_registered_popularity,
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
    assert how.live is not None and how.live.end == how.window.end
    assert how.live.end - how.live.start >= how.window.end - how.window.start
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
    plain = fit_candidates(stable, catalog, CandidateParams(factors=8, iterations=2), seed=1).index
    assert plain.live is None
    assert not refit_registered_popularity(plain, stable), "no live filter: nothing recorded to refit"


def test_refitting_over_a_longer_log_moves_the_window_and_the_live_items_to_its_end(tmp_path):
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
    # a later training scores this index on its own training part: fitted again there, as it was counted
    fitted.index.save(tmp_path / "index")
    loaded = CandidateIndex.load(tmp_path / "index")
    assert loaded.popularity_refit == fitted.index.popularity_refit
    assert refit_registered_popularity(loaded, events[events["timestamp"] < cut])
    assert np.array_equal(loaded.live, before)


def test_a_stable_catalogue_whose_recent_exposure_predicts_keeps_every_item_on_offer():
    """Shown items the probe then plays make counting every event win, but half the probe's plays go
    to a long tail no short window holds: leaving those items out would lose them."""
    rng = np.random.default_rng(3)
    tail = [f"t{n}" for n in range(2000)]
    hot = [f"h{n}" for n in range(20)]
    day = pd.Timedelta(days=1)
    rows = [
        (f"u{rng.integers(300)}", tail[rng.integers(2000)], "play", START + rng.uniform(0, 20) * day)
        for _ in range(3000)
    ]
    rows += [
        (f"u{rng.integers(300)}", hot[rng.integers(20)], "impression", START + rng.uniform(19.5, 20) * day)
        for _ in range(2000)
    ]
    rows += [
        (
            f"u{rng.integers(300)}",
            (hot[rng.integers(20)] if k % 2 else tail[rng.integers(2000)]),
            "play",
            START + rng.uniform(20, 21) * day,
        )
        for k in range(600)
    ]
    events, items = _frame(rows), pd.Index(tail + hot)
    how = choose_popularity(events, items, CandidateParams())
    assert how.every_event and how.live is None
    assert "all items offered" in how.reason
    catalog = pd.DataFrame({"item_id": list(items), "genre": ["any"] * len(items)})
    assert fit_candidates(events, catalog, CandidateParams(factors=8, iterations=2), seed=1).index.live is None


def test_counting_every_event_in_a_stable_catalogue_offers_every_item():
    """A small catalogue whose popularity never moves, in a log of mostly skips: counting every
    event can win on numbers alone (more rows than the likes), and a live filter would pass the loss
    check (nearly every item is shown in the window); but no shorter window beats the whole one,
    so nothing says items die, and every item stays on offer."""
    won = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        w = 1.0 / np.arange(1, 301) ** 0.8
        items = [f"i{k}" for k in range(300)]
        picks = rng.choice(300, size=12_000, p=w / w.sum())
        liked = rng.random(12_000) < 0.15
        when = START + pd.to_timedelta(rng.uniform(0, 30, 12_000), "D")
        users = rng.integers(400, size=12_000)
        rows = [(f"u{u}", items[k], "like" if y else "skip", t) for u, k, y, t in zip(users, picks, liked, when)]
        how = choose_popularity(_frame(rows), pd.Index(items), CandidateParams(cohort_probe_k=30))
        assert how.live is None
        won += how.every_event
    assert won >= 2, "the premise: counting every event won in some of these logs"


def test_events_naming_no_locale_beside_some_that_do_make_no_cohort():
    # a users file's blank countries: their events are a group of their own, not what a request without a
    # locale should be shown; in a log that names no locale at all, the device's cohort is everyone on it
    events, items = _stable(seed=4)
    events["locale"] = np.where(events["user_id"].str[-1].isin(list("0123")), "unknown", "gb")
    params = CandidateParams(cohort_probe_k=50)
    cohorts, _ = fit_cohorts(events, items, params, np.zeros(500, np.int64), ["unknown"])
    assert "gb|mobile" in cohorts and not any(k.startswith("unknown|") for k in cohorts)
    events["locale"] = "unknown"
    cohorts, _ = fit_cohorts(events, items, params, np.zeros(500, np.int64), ["unknown"])
    assert "unknown|mobile" in cohorts
