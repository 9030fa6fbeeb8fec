"""Evaluation splits, windows from the data, EASE, and the refusal of too little data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from setlist.features import SESSION_LAST_N
from setlist.windows import trailing
from training.ease import fit_ease, top_neighbours
from training.splits import SplitParams, make_split, recent_repeat_share, repeat_share


def _log(
    users: int, per_user: int, span_days: float, seed: int = 0, repeats: bool = False, bursts: int = 1
) -> pd.DataFrame:
    """Each user likes ``per_user`` items in ``bursts`` bursts somewhere in ``span_days``."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        starts = pd.Timestamp("2000-01-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, span_days, bursts), unit="D")
        items = rng.choice(50, size=per_user, replace=repeats)
        for n, item in enumerate(items):
            start = starts[n % bursts]
            rows.append(
                {
                    "event_id": f"e{u}-{n}",
                    "user_id": f"u{u}",
                    "item_id": f"i{item}",
                    "type": "like",
                    "value": np.nan,
                    "timestamp": start + pd.Timedelta(minutes=n),
                    "session_id": f"s{u}",
                    "device": "unknown",
                    "locale": "unknown",
                }
            )
    return pd.DataFrame(rows)


def test_a_derived_window_holds_its_share_of_events_whatever_the_span():
    for span in (3, 3650 * 2):
        ts = _log(200, 10, span)["timestamp"]
        w = trailing("hold-out", ts, 0.1)
        inside = (ts >= w.start).mean()
        assert 0.1 <= inside < 0.12 and w.source == "data"
    fixed = trailing("hold-out", ts, 0.1, days=30)
    assert fixed.days == pytest.approx(30) and fixed.source == "setting"


def test_per_user_split_holds_out_each_users_last_fifth_of_positives():
    events = _log(60, 10, 7000)
    s = make_split(events, SplitParams(kind="per_user"), exclude_seen=True)
    assert s.kind == "per_user" and len(s.queries) == 60
    per_query = s.labels.groupby("query_id").size()
    assert (per_query == 2).all()  # 20% of 10 positives, each a different item
    last = events.sort_values("timestamp").groupby("user_id").tail(2)
    held = s.labels.merge(s.queries[["query_id", "user_id"]])
    assert set(zip(held["user_id"], held["item_id"])) == set(zip(last["user_id"], last["item_id"]))
    # the query comes before the first held-out event, and nothing held out is trained on
    first = last.groupby("user_id")["timestamp"].min()
    asked = s.queries.set_index("user_id")["event_timestamp"]
    assert (asked < first.reindex(asked.index)).all()
    assert not set(s.train["event_id"]) & set(last["event_id"])


def test_auto_takes_the_global_period_only_when_it_holds_enough_users():
    dense = _log(400, 10, 10, bursts=5)  # many users active in any trailing period, and before it
    sparse = _log(60, 10, 7000)  # a few users over twenty years
    params = SplitParams(kind="auto", min_users=20, min_queries=20)
    g = make_split(dense, params, exclude_seen=True)
    assert g.kind == "global" and g.window is not None and "auto" in g.reason
    assert (g.train["timestamp"] < g.window.start).all()
    p = make_split(sparse, params, exclude_seen=True)
    assert p.kind == "per_user" and "only" in p.reason


def test_auto_does_not_judge_models_on_a_period_of_newcomers_only():
    """A log sorted by user and stamped in file order (a file without times): its trailing period
    holds the last users whole, whom no model has seen, so only popularity could answer them."""
    events = _log(400, 10, 10, bursts=5).sort_values(["user_id", "timestamp"], kind="mergesort")
    events["timestamp"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(len(events)), unit="s")
    params = SplitParams(kind="auto", min_users=20, min_queries=20)
    s = make_split(events, params, exclude_seen=True)
    assert s.kind == "per_user" and "0% of its users seen in training (< 50%)" in s.reason
    assert s.queries["user_id"].isin(s.train["user_id"]).all()
    # the share is a setting: at 0 the same period is taken
    g = make_split(events, SplitParams(kind="auto", min_users=20, min_queries=20, min_warm_share=0.0), True)
    assert g.kind == "global" and "0% of them seen in training" in g.reason


def test_seen_items_are_not_relevant_when_they_are_left_out():
    events = _log(40, 30, 100, repeats=True)
    kept = make_split(events, SplitParams(kind="per_user"), exclude_seen=False)
    dropped = make_split(events, SplitParams(kind="per_user"), exclude_seen=True)
    assert len(dropped.labels) < len(kept.labels)
    for q in dropped.queries.itertuples():
        seen = set(dropped.train.loc[dropped.train["user_id"] == q.user_id, "item_id"])
        assert not seen & set(dropped.labels.loc[dropped.labels["query_id"] == q.query_id, "item_id"])
    assert repeat_share(_log(40, 10, 100)) == 0.0
    assert repeat_share(events.assign(session_id=events["event_id"])) > 0.2  # each like a visit of its own


def _touches(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    """(user, item, type, session) rows, a minute apart, in this order."""
    start = pd.Timestamp("2020-01-01", tz="UTC")
    return pd.DataFrame(
        [
            {
                "event_id": f"e{n}",
                "user_id": u,
                "item_id": i,
                "type": t,
                "value": 1.0,
                "session_id": sess,
                "timestamp": start + pd.Timedelta(minutes=n),
                "device": "unknown",
                "locale": "unknown",
            }
            for n, (u, i, t, sess) in enumerate(rows)
        ]
    )


def test_a_repeat_is_a_return_in_a_later_session():
    # a replay in a later visit is a repeat; the same item's next step in one visit is not
    replay = _touches(("u", "a", "play", "s1"), ("u", "a", "play", "s2"))
    assert repeat_share(replay) == 0.5
    bought_then_played = _touches(("u", "a", "add_to_playlist", "s1"), ("u", "a", "play", "s1"))
    assert repeat_share(bought_then_played) == 0.0
    played_then_liked = _touches(("u", "a", "play", "s1"), ("u", "a", "like", "s1"), ("u", "b", "play", "s1"))
    assert repeat_share(played_then_liked) == 0.0
    # shown before is not touched: the first click on a story shown in an earlier visit is new
    shown_then_clicked = _touches(("u", "a", "impression", "s1"), ("u", "a", "play", "s2"))
    assert repeat_share(shown_then_clicked) == 0.0
    # a skip is a touch: coming back to the item later is a return
    skipped_then_played = _touches(("u", "a", "skip", "s1"), ("u", "a", "play", "s2"))
    assert repeat_share(skipped_then_played) == 1.0
    # another user's earlier play of the item is not this user's return
    others = _touches(("v", "a", "play", "s0"), ("u", "a", "play", "s1"))
    assert repeat_share(others) == 0.0


def test_a_recent_repeat_is_an_item_among_the_users_last_plays():
    # Reddit's posts: users stay with a few forums, so most positives repeat a recent item, across visits
    posts = _touches(
        ("u", "a", "play", "s1"), ("u", "a", "play", "s2"), ("u", "a", "play", "s3"), ("u", "b", "play", "s3")
    )
    assert recent_repeat_share(posts) == 0.5
    # a player moves on: an item played again after more than SESSION_LAST_N others is no recent repeat
    moved_on = [("u", "a", "play", "s1"), *[("u", f"x{n}", "play", "s1") for n in range(SESSION_LAST_N)]]
    assert recent_repeat_share(_touches(*moved_on, ("u", "a", "play", "s2"))) == 0.0
    assert recent_repeat_share(_touches(*moved_on[:-1], ("u", "a", "play", "s2"))) == pytest.approx(1 / 11)
    # played then liked: the like repeats a recent item; a view or an impression makes nothing recent
    assert recent_repeat_share(_touches(("u", "a", "play", "s1"), ("u", "a", "like", "s1"))) == 0.5
    assert recent_repeat_share(_touches(("u", "a", "view", "s1"), ("u", "a", "like", "s1"))) == 0.0
    # another user's play of the item is not this user's
    assert recent_repeat_share(_touches(("v", "a", "play", "s1"), ("u", "a", "play", "s1"))) == 0.0
    # a listen written once per hashtag (the same item at the same time) is one listen, no repeat of itself
    tagged = _touches(
        ("u", "a", "play", "s1"), ("u", "a", "play", "s1"), ("u", "b", "play", "s1"), ("u", "a", "play", "s2")
    )
    tagged.loc[1, "timestamp"] = tagged.loc[0, "timestamp"]
    assert recent_repeat_share(tagged) == pytest.approx(1 / 3)  # a, b, then a again: one repeat of three


def test_ease_weights_have_an_empty_diagonal_and_follow_co_occurrence():
    # items 0 and 1 always together, item 2 with neither
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float32))
    b = fit_ease(x, lam=0.5)
    assert np.allclose(np.diag(b), 0)
    assert b[0, 1] > 0.3 and abs(b[0, 2]) < 1e-6
    knn = top_neighbours(b, top=1)
    assert knn[0].indices.tolist() == [1]


def test_training_refuses_a_log_with_too_few_positives_in_one_sentence(tmp_path):
    from ingest.importer import load_interactions
    from ingest.intake import ingest
    from setlist.catalog import save_items
    from tests.world import tiny_settings
    from training.run import TrainingRefused, train

    pd.DataFrame(
        {
            "user": ["a", "a", "b", "c"],
            "item": ["x", "y", "x", "z"],
            "rating": [5, 4, 2, 5],
            "when": [1_000_000_000, 1_000_000_060, 1_200_000_000, 1_400_000_000],
        }
    ).to_csv(tmp_path / "r.csv", index=False)
    settings = tiny_settings(tmp_path / "data")
    events, items, _ = load_interactions(
        tmp_path / "r.csv", user_col="user", item_col="item", time_col="when", time_unit="s", rating_col="rating"
    )
    save_items(items, settings.catalog_path)
    ingest(events, settings, source="import")
    with pytest.raises(TrainingRefused) as refused:
        train(settings, progress=False)
    message = str(refused.value)
    assert "\n" not in message and "positive interactions" in message and "import more" in message


def _per_user_reference(events: pd.DataFrame, fraction: float) -> tuple[set[str], dict[str, pd.Timestamp]]:
    """The per-user protocol written plainly: each user with two or more positives is cut at the
    first of their last ``fraction`` of positives (by time, then event id); every event of theirs
    from that one on, in that order, is held out (events tied with it in time but ordered before it
    stay in training). Returns the held-out event ids and each user's cut."""
    from training.labels import label

    ev = events.assign(lab=label(events).to_numpy()).sort_values(["user_id", "timestamp", "event_id"])
    held: set[str] = set()
    cuts: dict[str, pd.Timestamp] = {}
    for user, rows in ev.groupby("user_id"):
        pos = rows[rows["lab"] == 1]
        if len(pos) < 2:
            continue
        n_hold = max(int(np.round(len(pos) * fraction)), 1)
        cuts[user] = pos["timestamp"].iloc[len(pos) - n_hold]
        at = rows.index.get_loc(pos.index[len(pos) - n_hold])
        held |= set(rows["event_id"].iloc[at:])
    return held, cuts


def test_the_per_user_split_matches_the_protocol_written_plainly():
    rng = np.random.default_rng(7)
    n = 4_000
    events = pd.DataFrame(
        {
            "event_id": [f"e{k:05d}" for k in rng.permutation(n)],
            "user_id": [f"u{k}" for k in rng.integers(0, 150, n)],
            "item_id": [f"i{k}" for k in rng.integers(0, 80, n)],
            # positives, negatives and neither, with ties in time inside a user
            "type": rng.choice(["like", "skip", "play", "impression"], n),
            "value": rng.uniform(0, 1, n).astype(np.float32),
            "timestamp": pd.Timestamp("2001-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 400, n), unit="h"),
            "session_id": rng.integers(0, 900, n),
            "device": "unknown",
            "locale": "unknown",
        }
    ).sample(frac=1.0, random_state=1)  # not in the log's order
    s = make_split(events, SplitParams(kind="per_user", holdout_fraction=0.3), exclude_seen=False)
    held, cuts = _per_user_reference(events, 0.3)
    assert set(s.train["event_id"]) == set(events["event_id"]) - held
    # the training part comes in the log's order, its rows unchanged
    order = s.train.sort_values(["timestamp", "event_id"], kind="mergesort")
    assert s.train["event_id"].tolist() == order["event_id"].tolist()
    pd.testing.assert_frame_equal(s.train, events.loc[s.train.index])
    # one query per user with a held-out positive, just before their cut
    asked = s.queries.set_index("user_id")["event_timestamp"]
    assert set(asked.index) <= set(cuts) and len(asked) > 100
    for user, at in asked.items():
        assert at == cuts[user] - pd.Timedelta(milliseconds=1)


DAY0 = pd.Timestamp("2016-05-09", tz="UTC")


def test_a_log_stamped_by_day_still_leaves_each_user_a_training_part():
    # Diginetica's shape: every row of a session (the user) carries the session's date and nothing finer
    rng = np.random.default_rng(3)
    users, per_user = 120, 6
    n = users * per_user
    events = pd.DataFrame(
        {
            "event_id": [f"e{k:05d}" for k in rng.permutation(n)],
            "user_id": np.repeat([f"s{k}" for k in range(users)], per_user),
            "item_id": [f"i{k}" for k in rng.integers(0, 60, n)],
            "type": "like",
            "value": np.float32(1.0),
            "timestamp": np.repeat(DAY0 + pd.to_timedelta(np.arange(users) % 5, "D"), per_user),
            "session_id": np.repeat(np.arange(users), per_user),
            "device": "unknown",
            "locale": "unknown",
        }
    )
    s = make_split(events, SplitParams(kind="per_user", holdout_fraction=0.3), exclude_seen=False)
    # 0.3 of 6 positives: the last 2 of each user's rows held out, the first 4 trained on
    assert len(s.train) == users * 4
    assert s.train.groupby("user_id").size().eq(4).all()
    assert s.queries["user_id"].nunique() == users


def test_events_without_a_session_are_visits_of_their_own():
    # a client that sends no session id: its replays are still returns, not one endless visit
    replays = _touches(("u", "a", "play", ""), ("u", "a", "play", ""), ("u", "b", "play", ""))
    assert repeat_share(replays) == pytest.approx(1 / 3)


def test_no_held_out_positive_says_what_counts_as_one_and_how_many_there_were():
    # Dressipi's sessions imported as views with one purchase each: nobody has two positives
    from training.run import _no_queries

    rows = [(f"s{k}", f"i{k}", "view", f"s{k}") for k in range(6)] + [(f"s{k}", "p", "like", f"s{k}") for k in range(3)]
    said = _no_queries(_touches(*rows))
    assert "0 of 6 users have them (3 positives in 9 events: view 6, like 3)" in said
    assert "--type-map view=play" in said and "SETLIST_HOLDOUT_FRACTION" not in said
    # Yahoo!'s Front Page log keyed by a hash of each line: one event per user, whatever its type
    once = [(f"h{k}", f"a{k % 5}", "play" if k % 7 == 0 else "impression", f"s{k}") for k in range(40)]
    said = _no_queries(_touches(*once))
    assert "40 of 40 users have a single event (impression 34, play 6)" in said
    assert "a column that names the same person across rows" in said and "--type-map" not in said


@pytest.mark.parametrize("stamp", ["seconds", "dates"])
def test_copies_of_one_event_stay_on_one_side_of_the_cut(stamp):
    # #nowplaying's shape: one listen written once per hashtag, the same user, track and second
    rng = np.random.default_rng(5)
    rows = []
    for u in range(80):
        t0 = pd.Timestamp("2014-01-01", tz="Europe/Copenhagen").tz_convert("UTC") + pd.Timedelta(days=u % 9)
        for n in range(6):
            at = t0 + (pd.Timedelta(days=n) if stamp == "dates" else pd.Timedelta(minutes=7 * n + 3, seconds=11))
            item = f"i{rng.integers(0, 40)}"
            for copy in range(1 + n % 3):  # up to three rows of one listen
                rows.append(
                    {"event_id": f"e{u}-{n}-{copy}", "user_id": f"u{u}", "item_id": item, "type": "like",
                     "value": 1.0, "timestamp": at, "session_id": f"s{u}", "device": "unknown", "locale": "unknown"}
                )  # fmt: skip
    events = pd.DataFrame(rows).sample(frac=1.0, random_state=2)
    s = make_split(events, SplitParams(kind="per_user", holdout_fraction=0.3), exclude_seen=False)
    held = events[~events["event_id"].isin(s.train["event_id"])]
    trained = set(zip(s.train["user_id"], s.train["item_id"], s.train["timestamp"]))
    leaked = [k for k in zip(held["user_id"], held["item_id"], held["timestamp"]) if k in trained]
    if stamp == "seconds":
        assert not leaked  # no held-out listen has a copy the models learn from
        # and a copy moved to the hold-out is asked for there, not lost between the two parts
        asked = s.labels.merge(s.queries[["query_id", "user_id"]])
        assert set(zip(held["user_id"], held["item_id"])) == set(zip(asked["user_id"], asked["item_id"]))
    else:
        # a log of dates ties whole days (here in a zone: midnight is 23:00 UTC): the cut stays a place
        assert len(s.train) == sum(len(g) - max(int(np.round(len(g) * 0.3)), 1) for _, g in events.groupby("user_id"))
    assert s.queries["user_id"].nunique() == 80


def test_leaving_recent_items_out_says_the_recall_it_costs_where_it_is_a_cap():
    from training.run import recent_choice

    capped = recent_choice(0.41, exclude_recent=True, told=False)  # JODIE's MOOC
    assert "left out (41% of positives" in capped and "recall stays near 59% at most" in capped
    assert "SETLIST_EXCLUDE_RECENT=false keeps them" in capped
    assert "recall" not in recent_choice(0.05, exclude_recent=True, told=False)  # music: users move on
    assert "recall" not in recent_choice(0.71, exclude_recent=False, told=False)  # kept: nothing is out of reach


def test_a_refusal_for_lack_of_positives_blames_an_item_column_of_one_row_items():
    from training.run import _thin_data_advice

    once = pd.DataFrame({"item_id": [f"f{k}" for k in range(200)]})
    assert "100% of the 200 items occur on one event only" in _thin_data_advice(once)
    shared = pd.DataFrame({"item_id": [f"i{k % 20}" for k in range(200)]})
    assert "import more interactions per user" in _thin_data_advice(shared)


def test_no_held_out_positive_because_every_one_was_seen_before_names_the_setting_that_keeps_them():
    # Open Bandit's users made of a few feature values: each one long visit over the same few items,
    # so the held-out positives are items met before, and left out as seen
    from setlist.settings import Settings
    from training.run import _no_queries, _seen_only

    rows = [(f"u{u}", "ab"[n % 2], "play", f"s{u}") for u in range(60) for n in range(6)]
    events = _touches(*rows)
    settings = Settings()
    assert _seen_only(events, settings, exclude_seen=True) and not _seen_only(events, settings, exclude_seen=False)
    said = _no_queries(events, seen_only=True)
    assert "every one is an item its user met before" in said and "SETLIST_EXCLUDE_SEEN=false" in said
    # a log that lacks positives altogether is told so, not sent to the seen-items setting
    views = _touches(*[(f"u{u}", f"i{u}", "view", f"s{u}") for u in range(60)])
    assert not _seen_only(views, settings, exclude_seen=True)


def test_a_per_user_split_leaving_the_ranker_no_query_points_at_the_global_split():
    # Expedia's searches imported as users: one booking each, held out, nothing left to learn from
    from setlist.settings import Settings
    from training.folds import TrainingRefused, ranker_splits
    from training.splits import Split

    train = _touches(*[(f"s{u}", f"i{u % 7}", "like", f"s{u}") for u in range(80)])
    outer = Split(train=train, queries=train.iloc[:0], labels=train.iloc[:0], kind="per_user", reason="test")
    with pytest.raises(TrainingRefused, match=r"no user has 2 positives left.*80 users.*SETLIST_SPLIT=global"):
        ranker_splits(outer, Settings(), exclude_seen=False)
