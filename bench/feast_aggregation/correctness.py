"""Compares what each path returned (files written by the steps) with the brute-force reference.

Point-in-time question: at label time t, is the value the aggregate over (t - window, t]?
Our snapshots are not meant to be: a snapshot stamped at midnight T covers [T - window, T), and a
lookup at t sees the latest snapshot at or before t, i.e. the end of the entity's last active day.
So mismatches of ours are split into "label-day lag" (equal to the reference as of the label's
midnight) and "stale" (no snapshot since the entity was last active, so the window never moved
on), and the snapshots themselves are checked against the reference at their own stamps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.feast_aggregation import brute, data
from bench.feast_aggregation.repo import W7, W30

if TYPE_CHECKING:
    from bench.feast_aggregation.steps import Ctx

SNAPSHOT_SAMPLE = 20_000


def _mismatch(frame: pd.DataFrame, got: str, want: str, show: list[str], tol: float = 1e-9) -> dict[str, Any]:
    a, b = frame[got].astype("float64").fillna(0.0), frame[want].astype("float64")
    bad = ~np.isclose(a.to_numpy(), b.to_numpy(), rtol=0, atol=tol)
    out: dict[str, Any] = {"rows": int(len(frame)), "mismatches": int(bad.sum())}
    if bad.any():
        out["example"] = frame.loc[bad, show + [got, want]].iloc[0].to_dict()
    return out


def _feast_engine(ev: pd.DataFrame, rows: pd.DataFrame, ref: dict[str, pd.DataFrame], work) -> dict[str, Any]:
    """The engine's retrieval output per entity, matched to the label rows by entity id."""
    out: dict[str, Any] = {}
    lifetime = {
        k: ev.assign(p=(ev["type"] == "play").astype(int)).groupby(k)["p"].sum() for k in ("user_id", "item_id")
    }
    for key, prefix in (("user_id", "user"), ("item_id", "item")):
        got = pd.read_parquet(work / f"feast_hist_{key}.parquet")
        m = rows.merge(got, on=key, how="left").assign(want=ref[f"{prefix}_30d"]["plays"].to_numpy())
        out[f"{prefix}_plays_30d"] = _mismatch(m, f"{prefix}_plays", "want", [key, "event_timestamp"])
        out[f"{prefix}_rows_returned"] = {
            "requested": int(len(rows)),
            "returned": int(len(got)),
            "distinct_entities_in_log": int(ev[key].nunique()),
        }
        # what the numbers are instead: every event of the entity, whatever the label time
        equal = got.set_index(key)[f"{prefix}_plays"].eq(lifetime[key].reindex(got[key]).to_numpy())
        out[f"{prefix}_equals_lifetime_plays"] = f"{int(equal.sum())}/{len(got)}"
    return out


def _ours_pit(ev: pd.DataFrame, rows: pd.DataFrame, ref: dict[str, pd.DataFrame], work) -> dict[str, Any]:
    got = rows[["row"]].merge(
        pd.read_parquet(work / "ours_hist.parquet").drop(columns=["user_id", "item_id", "event_timestamp"]),
        on="row",
        how="left",
    )
    frame = pd.concat([rows.reset_index(drop=True), got.drop(columns=["row"])], axis=1)
    midnight = rows.assign(event_timestamp=rows["event_timestamp"].dt.floor("D"))
    out: dict[str, Any] = {}
    for feature, key, window, col in (
        ("user_plays_7d", "user_id", W7, "plays"),
        ("user_plays_30d", "user_id", W30, "plays"),
        ("user_skip_rate_30d", "user_id", W30, "skip_rate"),
        ("item_plays_30d", "item_id", W30, "plays"),
    ):
        want = ref[f"{key[:4]}_{window.days}d"][col].to_numpy()
        at_midnight = brute.windowed(ev, midnight, key, window, closed="left")[col].to_numpy()
        f = frame.assign(want=want, want_midnight=at_midnight)
        res = _mismatch(f, feature, "want", [key, "event_timestamp"])
        val = f[feature].astype("float64").fillna(0.0).to_numpy()
        wrong = ~np.isclose(val, want, atol=1e-9)
        lag = wrong & np.isclose(val, at_midnight, atol=1e-9)
        res.update(label_day_lag=int(lag.sum()), stale=int((wrong & ~lag).sum()))
        out[feature] = res
    return out


def _snapshots(ev: pd.DataFrame, work) -> dict[str, Any]:
    """Each builder row against the reference over [stamp - window, stamp)."""
    out: dict[str, Any] = {}
    for name, key, checks in (
        (
            "user_profile",
            "user_id",
            (
                ("user_plays_7d", W7, "plays"),
                ("user_plays_30d", W30, "plays"),
                ("user_skip_rate_30d", W30, "skip_rate"),
            ),
        ),
        ("item_stats", "item_id", (("item_plays_30d", W30, "plays"), ("item_skip_rate_30d", W30, "skip_rate"))),
    ):
        snap = pd.read_parquet(work / f"{name}.parquet")
        snap = snap.sample(min(SNAPSHOT_SAMPLE, len(snap)), random_state=5).reset_index(drop=True)
        for feature, window, col in checks:
            f = snap.assign(want=brute.windowed(ev, snap, key, window, closed="left")[col].to_numpy())
            out[feature] = _mismatch(f, feature, "want", [key, "event_timestamp"])
    return out


def _online(ev: pd.DataFrame, work, end: pd.Timestamp) -> dict[str, Any]:
    """Online values after materialization against the reference at its end (midnight after the last day)."""
    out: dict[str, Any] = {}
    for who, key, feat_feast, feat_ours in (
        ("users", "user_id", "user_plays_30d", "user_plays_30d"),
        ("items", "item_id", "item_plays_30d", "item_plays_30d"),
    ):
        for engine, feat, closed in (("feast", feat_feast, "right"), ("ours", feat_ours, "left")):
            path = work / f"{engine}_online_{who}.parquet"
            if not path.exists():
                continue
            got = pd.read_parquet(path)
            at = got[[key]].assign(event_timestamp=end)
            f = got.assign(want=brute.windowed(ev, at, key, W30, closed=closed)["plays"].to_numpy())
            res = _mismatch(f, feat, "want", [key])
            res["null_values"] = int(got[feat].isna().sum())
            out[f"{engine}_{feat}"] = res
    return out


def compare(ctx: Ctx) -> dict[str, Any]:
    ev = ctx.events()
    rows = ctx.label_rows(ev)
    ref = {
        "user_7d": brute.windowed(ev, rows, "user_id", W7),
        "user_30d": brute.windowed(ev, rows, "user_id", W30),
        "item_30d": brute.windowed(ev, rows, "item_id", W30),
    }
    end = ev["event_timestamp"].max().floor("D") + pd.Timedelta(days=1)
    work = data.VAR / ctx.size
    out: dict[str, Any] = {"reference": "aggregate over (t - window, t] per label row, brute force (brute.py)"}
    for name, fn in (
        ("feast_engine_hist", lambda: _feast_engine(ev, rows, ref, work)),
        ("ours_via_feast_pit_join", lambda: _ours_pit(ev, rows, ref, work)),
        ("ours_snapshots_at_their_stamp", lambda: _snapshots(ev, work)),
        ("online_after_materialize", lambda: _online(ev, work, end)),
    ):
        try:
            out[name] = fn()
        except FileNotFoundError as exc:  # the step that writes it was skipped or failed
            out[name] = {"skipped": str(exc)}
    return out
