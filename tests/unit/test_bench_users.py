"""Who the new-user scenario of the bench sends Rank requests for: users with fewer than 10 events in
the event log, picked from a small frame, and brand-new ids the log has never seen."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.users import (
    BRAND_NEW_PREFIX,
    FEW_EVENTS,
    NewUsers,
    User,
    brand_new_users,
    event_counts,
    few_event_users,
    load_new_users,
    pseudonymizer,
)
from setlist.contract import SCHEMA_VERSION
from setlist.eventlog import EventLog
from setlist.pseudonym import pseudonymize


def tag(raw: str) -> str:
    """A stand-in pseudonymization, so the counts below read at a glance."""
    return f"p:{raw}"


def frame() -> pd.DataFrame:
    rows = [  # user, events in the log, consented to personalization
        ("none", 0, True),
        ("one", 1, True),
        ("five", 5, True),
        ("nine", 9, True),
        ("ten", 10, True),
        ("many", 250, True),
        ("five-no-consent", 5, False),
    ]
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "locale": [f"loc-{r[0]}" for r in rows],
            "device": ["mobile"] * len(rows),
            "consent_personalization": [r[2] for r in rows],
            "events": [r[1] for r in rows],
        }
    )


def counts(f: pd.DataFrame) -> dict[str, int]:
    return {tag(u): int(n) for u, n in zip(f["user_id"], f["events"]) if n}


def test_few_event_users_have_one_to_nine_events_and_consented() -> None:
    f = frame()
    users, events = few_event_users(f, counts(f), tag, n=10, seed=3)
    assert sorted(u.user_id for u in users) == ["five", "nine", "one"]
    assert dict(zip((u.user_id for u in users), events)) == {"one": 1, "five": 5, "nine": 9}
    assert all(u.locale == f"loc-{u.user_id}" and u.device == "mobile" for u in users)
    assert FEW_EVENTS == 10


def test_few_event_users_are_a_seeded_sample_of_at_most_n() -> None:
    f = frame()
    first, _ = few_event_users(f, counts(f), tag, n=2, seed=1)
    again, _ = few_event_users(f, counts(f), tag, n=2, seed=1)
    assert len(first) == 2 and first == again
    orders = {tuple(u.user_id for u in few_event_users(f, counts(f), tag, n=3, seed=s)[0]) for s in range(20)}
    assert len(orders) > 1  # the seed decides the order
    assert few_event_users(f, counts(f), tag, n=10, below=2)[0] == [User("one", "loc-one", "mobile")]


def test_brand_new_users_are_absent_from_the_event_log() -> None:
    f = frame()
    seen = {**counts(f), tag(f"{BRAND_NEW_PREFIX}7-000001"): 3}  # one candidate id is in the log already
    users = brand_new_users(f, seen, tag, n=4, seed=7)
    assert [u.user_id for u in users] == [f"{BRAND_NEW_PREFIX}7-{i:06d}" for i in (0, 2, 3, 4)]
    assert all(tag(u.user_id) not in seen for u in users)
    assert {u.locale for u in users} <= set(f["locale"])  # contexts of real users
    assert brand_new_users(f, seen, tag, n=4, seed=7) == users
    assert brand_new_users(f.iloc[:0], seen, tag, n=4) == []


def test_new_users_interleave_the_two_groups_and_describe_the_choice() -> None:
    new = [User(f"n{i}", "en_US", "web") for i in range(3)]
    few = [User("f0", "en_US", "web")]
    nu = NewUsers(new, few, [4])
    users, groups = nu.interleaved()
    assert [u.user_id for u in users] == ["n0", "f0", "n1", "f0", "n2", "f0"]  # half the requests each
    assert groups == ["brand_new", "few_events"] * 3
    assert NewUsers(new, [], []).interleaved() == (new, ["brand_new"] * 3)
    assert NewUsers([], [], []).interleaved() == ([], [])
    sel = nu.selection()
    assert sel["below_events"] == 10
    assert sel["brand_new"]["users"] == 3 and "not in the event log" in sel["brand_new"]["how"]
    assert sel["few_events"] == {**sel["few_events"], "users": 1, "events_min": 4, "events_max": 4}
    empty = NewUsers([], [], []).selection()["few_events"]
    assert empty["users"] == 0 and empty["events_min"] is None


def _events(users: dict[str, int]) -> pd.DataFrame:
    rows = [(u, i) for u, n in users.items() for i in range(n)]
    return pd.DataFrame(
        {
            "event_id": [f"e-{u}-{i}" for u, i in rows],
            "schema_version": SCHEMA_VERSION,
            "user_id": [u for u, _ in rows],
            "item_id": "track_1",
            "type": "play",
            "timestamp": [pd.Timestamp("2026-11-20", tz="UTC") + pd.Timedelta(days=i % 3) for _, i in rows],
            "value": 0.5,
        }
    )


def test_event_counts_and_load_new_users_read_the_bench_world(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"SETLIST_DATA_DIR": str(data), "SETLIST_PROFILE": "local"}
    pseudonym = pseudonymizer(env)  # makes the local key under data/secrets, as a server would
    key = (data / "secrets" / "hmac.key").read_text().strip().encode()
    assert pseudonym("one") == pseudonymize("one", key)
    f = frame()
    (data / "generated").mkdir(parents=True)
    f.drop(columns="events").to_parquet(data / "generated" / "users.parquet")
    log = EventLog(data / "events")
    log.append(_events({pseudonym(u): int(n) for u, n in zip(f["user_id"], f["events"]) if n}), tag="generator")
    log.append(_events({pseudonym("one"): 1}).assign(event_id="journal-1"), name="journal-1")  # a second file
    assert event_counts(data / "events")[pseudonym("one")] == 2
    assert event_counts(data / "events")[pseudonym("many")] == 250
    assert event_counts(tmp_path / "nowhere") == {}

    nu = load_new_users(data, env, n=5, seed=0)
    assert sorted(u.user_id for u in nu.few_events) == ["five", "nine", "one"]
    assert sorted(nu.events) == [2, 5, 9]
    assert len(nu.brand_new) == 5 and all(u.user_id.startswith(BRAND_NEW_PREFIX) for u in nu.brand_new)


def test_the_production_key_comes_from_the_servers_environment(tmp_path: Path) -> None:
    env = {"SETLIST_DATA_DIR": str(tmp_path), "SETLIST_PROFILE": "production", "SETLIST_HMAC_KEY": "k3y"}
    assert pseudonymizer(env)("user_000001") == pseudonymize("user_000001", b"k3y")
