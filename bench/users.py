"""The generated users the benchmark sends requests for (raw application ids, as clients send them),
and the new users of the new-user scenario: ids the event log has never seen, and users with only a
few events in it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: "new" users have fewer events than this in the event log
FEW_EVENTS = 10
BRAND_NEW_PREFIX = "bench-new-user-"


@dataclass(frozen=True)
class User:
    user_id: str
    locale: str
    device: str

    @property
    def context(self) -> dict[str, str]:
        return {"device": self.device, "locale": self.locale}


def load_users(data_dir: Path, n: int, seed: int = 0) -> list[User]:
    """Up to ``n`` users who consented to personalization (so Rank runs the ranker, not the
    popularity fallback), in a seeded random order."""
    frame = users_frame(data_dir)
    frame = frame[frame["consent_personalization"]]
    order = np.random.default_rng(seed).permutation(len(frame))[:n]
    picked = frame.iloc[order]
    return [User(str(u), str(loc), str(d)) for u, loc, d in zip(picked["user_id"], picked["locale"], picked["device"])]


@dataclass(frozen=True)
class NewUsers:
    """The new-user scenario's users: ``brand_new`` ids absent from the event log, and ``few_events``
    users with 1 to ``below - 1`` events in it (``events[i]`` for ``few_events[i]``)."""

    brand_new: list[User]
    few_events: list[User]
    events: list[int]
    below: int = FEW_EVENTS

    def interleaved(self) -> tuple[list[User], list[str]]:
        """One list of users alternating between the groups, and each one's group name (``brand_new``
        or ``few_events``): half the requests each, the smaller group's users coming round more often."""
        users: list[User] = []
        groups: list[str] = []
        kinds = [(name, members) for name, members in self.groups().items() if members]
        for i in range(max((len(members) for _, members in kinds), default=0)):
            for name, members in kinds:
                users.append(members[i % len(members)])
                groups.append(name)
        return users, groups

    def groups(self) -> dict[str, list[User]]:
        return {"brand_new": self.brand_new, "few_events": self.few_events}

    def selection(self) -> dict[str, Any]:
        """How the users were chosen, for the report."""
        ev = self.events
        return {
            "below_events": self.below,
            "brand_new": {
                "users": len(self.brand_new),
                "how": f"ids {BRAND_NEW_PREFIX}<seed>-<n> whose pseudonyms are not in the event log (checked); "
                "no consent, profile or session row, so the server's consent default and cold-start path apply",
            },
            "few_events": {
                "users": len(self.few_events),
                "how": f"generated users who consented to personalization with 1 to {self.below - 1} events in "
                "the event log (counted by pseudonym over every file), in a seeded random order",
                "events_min": min(ev) if ev else None,
                "events_median": float(np.median(ev)) if ev else None,
                "events_max": max(ev) if ev else None,
            },
            "mix": "one schedule, requests alternating between the two kinds (half each when both exist)",
        }


def users_frame(data_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(
        Path(data_dir) / "generated" / "users.parquet",
        columns=["user_id", "locale", "device", "consent_personalization"],
    )


def event_counts(events_dir: Path) -> dict[str, int]:
    """Events per user (pseudonym) over every file of the event log."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from setlist.eventlog import EVENT_SCHEMA, EventLog

    files = EventLog(events_dir).files()
    if not files:
        return {}
    ids = ds.dataset([str(f) for f in files], schema=EVENT_SCHEMA, format="parquet").to_table(columns=["user_id"])
    counted = pc.value_counts(ids["user_id"])
    return dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()))


def pseudonymizer(env: Mapping[str, str]) -> Callable[[str], str]:
    """The pseudonymization a server started with ``env`` applies to a raw user id (its HMAC key)."""
    from pydantic import SecretStr

    from setlist.pseudonym import pseudonymize
    from setlist.settings import Settings

    over: dict[str, Any] = {"data_dir": Path(env["SETLIST_DATA_DIR"]), "profile": env["SETLIST_PROFILE"]}
    if env.get("SETLIST_HMAC_KEY"):
        over["hmac_key"] = SecretStr(env["SETLIST_HMAC_KEY"])
    key = Settings(**over).secret_hmac_key()
    return lambda raw: pseudonymize(raw, key)


def few_event_users(
    frame: pd.DataFrame,
    counts: Mapping[str, int],
    pseudonym: Callable[[str], str],
    n: int,
    seed: int = 0,
    below: int = FEW_EVENTS,
) -> tuple[list[User], list[int]]:
    """Up to ``n`` users of ``frame`` who consented to personalization and have 1 to ``below - 1``
    events (``counts`` by pseudonym), in a seeded random order; and each one's event count."""
    consenting = frame[frame["consent_personalization"]].reset_index(drop=True)
    events = np.array([counts.get(pseudonym(str(u)), 0) for u in consenting["user_id"]], dtype=np.int64)
    few = np.flatnonzero((events >= 1) & (events < below))
    picked = few[np.random.default_rng(seed).permutation(len(few))][:n]
    rows = consenting.iloc[picked]
    users = [User(str(u), str(loc), str(d)) for u, loc, d in zip(rows["user_id"], rows["locale"], rows["device"])]
    return users, events[picked].tolist()


def brand_new_users(
    frame: pd.DataFrame, counts: Mapping[str, int], pseudonym: Callable[[str], str], n: int, seed: int = 0
) -> list[User]:
    """``n`` ids the event log has never seen (any that it has are skipped), with the contexts (locale,
    device) of generated users drawn at random, so requests look like the rest of the traffic."""
    rng = np.random.default_rng(seed)
    users: list[User] = []
    i = 0
    while len(users) < n and len(frame):
        raw = f"{BRAND_NEW_PREFIX}{seed}-{i:06d}"
        i += 1
        if pseudonym(raw) in counts:
            continue
        row = frame.iloc[int(rng.integers(len(frame)))]
        users.append(User(raw, str(row["locale"]), str(row["device"])))
    return users


def load_new_users(data_dir: Path, env: Mapping[str, str], n: int, seed: int = 0) -> NewUsers:
    """Up to ``n`` users of each kind, from the bench world's users and event log."""
    frame = users_frame(data_dir)
    counts = event_counts(Path(data_dir) / "events")
    pseudonym = pseudonymizer(env)
    few, events = few_event_users(frame, counts, pseudonym, n, seed)
    return NewUsers(brand_new_users(frame, counts, pseudonym, n, seed), few, events)
