"""What the data says the loop did, per UTC day and per experiment arm.

- the event log (one read of six columns): events stored and what they stand for (their sampling
  weights), value events and engaged users (setlist.kpis), each event's arm;
- the impression log: Rank calls, one per request (its position-1 row; a down-sampled day's position-1
  count), by arm when an experiment ran;
- partition sizes: the bytes each day's files hold, from the ``date=YYYY-MM-DD`` layout of both logs;
- per arm, the onboarding KPI summary ``<reports>/experiments/onboarding.json`` when it exists, else the
  same numbers computed here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from ops.cost.model import NO_ARM, Arm, Day
from setlist import downsample, lineage, swap
from setlist.eventlog import EventLog
from setlist.impressions import IMPRESSION_SCHEMA
from setlist.kpis import ValueRule
from setlist.settings import Settings

#: an arm of the onboarding summary needs these; one without them sends every arm to the computed numbers
ONBOARDING_FIELDS = ("users", "engaged_users", "value_events")


@dataclass
class Usage:
    days: list[Day]
    arms: list[Arm]
    users: int  # distinct users with events in the period
    engaged_users: int  # engaged over the whole period
    arms_source: str
    notes: list[str] = field(default_factory=list)


def collect(settings: Settings, rule: ValueRule) -> Usage:
    log = EventLog(settings.events_dir)
    events = _events(log, rule)
    calls = rank_calls(settings.impressions_dir)
    notes: list[str] = []
    files = log.files()
    event_bytes = bytes_by_day(files)
    if (since := first_import_day(settings)) is not None:
        # a deployment that served before its first import did work on the days it served: those stay
        served = [*calls["date"].astype(str), *(f.parent.name.removeprefix("date=") for f in files if _tracked(f))]
        since = min([since, *served])
        events, event_bytes, said = _without_history(events, event_bytes, since)
        notes += said
    days = _days(events, calls, event_bytes, _impression_bytes(settings), rule)
    totals = events.groupby("user", sort=False)["value"].sum()
    computed = _arms(events, calls, rule)
    arms, source = computed, "computed from the event log's arm column and the impressions"
    summary = onboarding_path(settings)
    if summary.is_file():
        try:
            arms, said = from_onboarding(json.loads(summary.read_text(encoding="utf-8")), computed, rule)
            notes += said
            source = f"{summary} (onboarding KPI summary); Track events per arm from the event log"
        except (OSError, ValueError) as exc:
            notes.append(f"{summary} not used ({exc}); per-arm numbers computed from the data instead")
    return Usage(days, arms, int(len(totals)), int((totals >= rule.engaged_min).sum()), source, notes)


def first_import_day(settings: Settings) -> str | None:
    """The UTC day of the data directory's first import, from its lineage: events dated before it are
    history the deployment was given, not work it did. None where nothing was imported (the demo's
    generated world stands in for live traffic, and is costed as such)."""
    days = [str(r.get("at", ""))[:10] for r in lineage.imports(settings.lineage_dir)]
    return min((d for d in days if d), default=None)


def _tracked(path: Path) -> bool:
    """An event-log file a server's Track journal wrote (``journal-<segment>.parquet``); a compacted file
    no longer says."""
    return path.name.startswith("journal-")


def _without_history(
    events: pd.DataFrame, event_bytes: dict[str, int], since: str
) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """The events from ``since`` on, and the bytes by day with the history's bytes moved to ``since``:
    imported years are no years of Track calls and batch jobs (each would be charged a day of jobs),
    but their partitions are held on disk from the import on."""
    old = (events["date"] < pd.Timestamp(since, tz="UTC")).to_numpy()
    if not old.any():
        return events, event_bytes, []
    dated = events["date"][old]
    kept = {d: n for d, n in event_bytes.items() if d >= since}
    kept[since] = kept.get(since, 0) + sum(n for d, n in event_bytes.items() if d < since)
    note = (
        f"{int(old.sum()):,} events dated {_day(dated.min())} … {_day(dated.max())}, before the first import "
        f"and the first day served ({since}), are imported history: not costed as Track events, value or days of "
        "batch jobs; their "
        f"{sum(n for d, n in event_bytes.items() if d < since) / 2**20:,.1f} MB are storage held from {since} on"
    )
    return events[~old].reset_index(drop=True), kept, [note]


def onboarding_path(settings: Settings) -> Path:
    return settings.reports_dir / "experiments" / "onboarding.json"


# --- the event log ----------------------------------------------------------------------------------------
def _events(log: EventLog, rule: ValueRule) -> pd.DataFrame:
    """One row per stored event: day, user, arm, weight and the value it counts for (weighted)."""
    frame = log.read(columns=["timestamp", "user_id", "type", "value", "arm", "weight"])
    weight = frame["weight"].astype("float64").fillna(1.0).to_numpy()
    value = rule.is_value(frame["type"].to_numpy(), frame["value"].to_numpy()) * weight
    return pd.DataFrame(
        {
            "date": frame["timestamp"].dt.floor("D"),
            "user": frame["user_id"].to_numpy(),
            "arm": frame["arm"].fillna(NO_ARM).astype(str).to_numpy(),
            "weight": weight,
            "value": value,
        }
    )


def _engaged(events: pd.DataFrame, by: str, rule: ValueRule) -> pd.Series:
    """Users with at least ``engaged_min`` value events within each ``by`` group (a day, an arm)."""
    per_user = events.groupby([by, "user"], sort=False)["value"].sum()
    return (per_user >= rule.engaged_min).groupby(level=by).sum()


def _day(ts: Any) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


# --- the impressions --------------------------------------------------------------------------------------
def _impression_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(raw files, down-sampled daily files), from one settled listing."""
    if not root.exists():
        return [], []
    files = swap.listing(root, [downsample.RAW, downsample.AGGREGATES])
    raw = [f for f in files if f.parent.parent == root]
    return raw, [f for f in files if f.parent.parent == root / downsample.DAILY]


def rank_calls(root: Path) -> pd.DataFrame:
    """Rank calls per (date, arm): a request's position-1 row, or a down-sampled day's position-1 count.
    The arm is the experiment's arm, or NO_ARM when the call ran under no experiment."""
    raw, counted = _impression_files(Path(root))
    parts = []
    if raw:
        table = ds.dataset([str(f) for f in raw], schema=IMPRESSION_SCHEMA, format="parquet").to_table(
            columns=["timestamp", "experiment", "arm"], filter=ds.field("position") == 1
        )
        t = table.to_pandas()
        parts.append(pd.DataFrame({"date": t["timestamp"].dt.strftime("%Y-%m-%d"), "calls": 1, **_arm_of(t)}))
    if counted:
        d = downsample.read_daily_files(counted)
        d = d[d["position"] == 1]
        parts.append(pd.DataFrame({"date": d["date"].astype(str), "calls": d["impressions"], **_arm_of(d)}))
    if not parts:
        return pd.DataFrame({"date": pd.Series(dtype=str), "arm": pd.Series(dtype=str), "calls": pd.Series(dtype=int)})
    frame = pd.concat(parts, ignore_index=True)
    return frame.groupby(["date", "arm"], as_index=False)["calls"].sum()


def _arm_of(frame: pd.DataFrame) -> dict[str, Any]:
    in_experiment = frame["experiment"].fillna("").astype(str).to_numpy() != ""
    return {"arm": np.where(in_experiment, frame["arm"].fillna(NO_ARM).astype(str).to_numpy(), NO_ARM)}


# --- bytes ------------------------------------------------------------------------------------------------
def bytes_by_day(files: Iterable[Path]) -> dict[str, int]:
    """Bytes per ``date=YYYY-MM-DD`` folder; a file removed meanwhile (retention, erasure) counts as none."""
    out: dict[str, int] = defaultdict(int)
    for f in files:
        try:
            out[f.parent.name.removeprefix("date=")] += f.stat().st_size
        except FileNotFoundError:
            continue
    return dict(out)


def _impression_bytes(settings: Settings) -> dict[str, int]:
    raw, counted = _impression_files(settings.impressions_dir)
    return bytes_by_day(raw + counted)


# --- per day and per arm ----------------------------------------------------------------------------------
def _days(
    events: pd.DataFrame,
    calls: pd.DataFrame,
    event_bytes: dict[str, int],
    impression_bytes: dict[str, int],
    rule: ValueRule,
) -> list[Day]:
    by_day = events.groupby("date", sort=True)
    stored, represented, value = by_day.size(), by_day["weight"].sum(), by_day["value"].sum()
    engaged = _engaged(events, "date", rule) if len(events) else pd.Series(dtype=int)
    rows: dict[str, dict[str, Any]] = defaultdict(dict)
    for ts in stored.index:
        rows[_day(ts)].update(
            track_events=int(stored[ts]),
            represented_events=float(represented[ts]),
            value_events=float(value[ts]),
            engaged_users=int(engaged.get(ts, 0)),
        )
    for date, n in calls.groupby("date")["calls"].sum().items():
        rows[str(date)]["rank_calls"] = int(n)
    for date, n in event_bytes.items():
        rows[date]["events_bytes"] = n
    for date, n in impression_bytes.items():
        rows[date]["impressions_bytes"] = n
    return [Day(date, **rows[date]) for date in sorted(rows)]


def _arms(events: pd.DataFrame, calls: pd.DataFrame, rule: ValueRule) -> list[Arm]:
    by_arm = events.groupby("arm", sort=True)
    users, stored, value = by_arm["user"].nunique(), by_arm.size(), by_arm["value"].sum()
    engaged = _engaged(events, "arm", rule) if len(events) else pd.Series(dtype=int)
    ranked = calls.groupby("arm")["calls"].sum()
    names = sorted(set(users.index) | set(ranked.index))
    return [
        Arm(
            arm=str(a),
            users=int(users.get(a, 0)),
            engaged_users=int(engaged.get(a, 0)),
            value_events=float(value.get(a, 0.0)),
            rank_calls=int(ranked.get(a, 0)),
            track_events=int(stored.get(a, 0)),
        )
        for a in names
    ]


def from_onboarding(doc: Any, computed: list[Arm], rule: ValueRule) -> tuple[list[Arm], list[str]]:
    """The onboarding summary's arms (``experiments.onboarding.summary``: ``{"arms": {name: {…}}}``; a
    list of ``{"arm": name, …}`` is read too), each with its Track events from the log, and notes. An
    arm's Rank calls the summary did not count (null) come from the impressions; the calls under no arm
    stay as computed. A summary without users, engaged users or value events raises ValueError, and the
    caller falls back to the computed arms."""
    arms = doc.get("arms") if isinstance(doc, dict) else None
    if isinstance(arms, dict):
        arms = [{"arm": name, **(row if isinstance(row, dict) else {})} for name, row in arms.items()]
    if not isinstance(arms, list) or not arms or not all(isinstance(r, dict) and r.get("arm") for r in arms):
        raise ValueError("no `arms` mapping of arm name to numbers")
    lacking = sorted({f for r in arms for f in ONBOARDING_FIELDS if not _number(r.get(f))})
    if lacking:
        raise ValueError(f"its arms lack {', '.join(lacking)}")
    logged = {a.arm: a for a in computed}
    notes = []
    uncounted = [str(r["arm"]) for r in arms if not _number(r.get("rank_calls"))]
    if uncounted:
        notes.append(f"the onboarding summary has no Rank calls for {', '.join(uncounted)}: counted from impressions")
    if isinstance(doc, dict) and doc.get("simulation"):
        notes.append(
            "the onboarding summary describes simulated traffic: its arms' users and value events are not this data's"
        )
    if (
        isinstance(doc, dict)
        and _number(doc.get("engaged_min_value_events"))
        and doc["engaged_min_value_events"] != rule.engaged_min
    ):
        notes.append(
            f"the onboarding summary counts engaged from {doc['engaged_min_value_events']} value events, "
            f"this report's days from {rule.engaged_min} (SETLIST_ENGAGED_MIN_VALUE_EVENTS)"
        )

    def arm(r: dict[str, Any]) -> Arm:
        name, have = str(r["arm"]), logged.get(str(r["arm"]), Arm(str(r["arm"])))
        return Arm(
            arm=name,
            users=int(r["users"]),
            engaged_users=int(r["engaged_users"]),
            value_events=float(r["value_events"]),
            rank_calls=int(r["rank_calls"]) if _number(r.get("rank_calls")) else have.rank_calls,
            track_events=have.track_events,
            track_calls=float(r["track_calls"]) if _number(r.get("track_calls")) else None,
        )

    return [arm(r) for r in arms] + [a for a in computed if a.arm == NO_ARM], notes


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
