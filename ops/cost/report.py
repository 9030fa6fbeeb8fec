"""The cost report: one JSON-ready dict built from usage, measurements and prices; the table, the PNG
trend and the MLflow run are all drawn from that dict, so a stored report can be drawn again."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ops.cost import model
from ops.cost.measured import Measured
from ops.cost.model import GB, NO_ARM, Costs
from ops.cost.prices import Prices
from ops.cost.usage import Usage
from setlist.settings import Settings

ALLOCATION = (
    "the period's whole cost is split across arms in proportion to their calls: Rank calls plus Track calls "
    "(an arm's Track events over the measured events per Track call; each event one call when that was "
    "not measured); calls under no experiment form the '(no arm)' row"
)


def _costs(c: Costs) -> dict[str, float]:
    return {**asdict(c), "total": c.total}


def _units(total: float, rank_calls: float, engaged: float, value: float) -> dict[str, float | None]:
    return {
        "per_1000_rank_calls": model.per(total, rank_calls, 1000),
        "per_engaged_user": model.per(total, engaged),
        "per_value_event": model.per(total, value),
    }


def build(usage: Usage, measured: Measured, prices: Prices, cost_file: Path) -> dict[str, Any]:
    rates = measured.rates
    held = model.held(usage.days, measured.online_store_bytes)
    days, whole = [], Costs()
    saved_events = saved_bytes = 0.0
    for day, keep in zip(usage.days, held):
        c = model.day_cost(day, keep, rates, prices)
        whole += c
        saved = model.sampling_saved(day.track_events, day.represented_events, day.events_bytes)
        saved_events, saved_bytes = saved_events + saved.events, saved_bytes + saved.bytes
        days.append(
            {
                **asdict(day),
                "held_bytes": keep,
                "cost": _costs(c),
                **_units(c.total, day.rank_calls, day.engaged_users, day.value_events),
                "sampling_saved_events": saved.events,
                "sampling_saved_bytes": saved.bytes,
            }
        )
    rank_calls = sum(d.rank_calls for d in usage.days)
    value_events = sum(d.value_events for d in usage.days)
    period: dict[str, Any] = {
        "days": len(days),
        "first": days[0]["date"] if days else None,
        "last": days[-1]["date"] if days else None,
        "rank_calls": rank_calls,
        "track_events": sum(d.track_events for d in usage.days),
        "value_events": value_events,
        "users": usage.users,
        "engaged_users": usage.engaged_users,
        "cost": _costs(whole),
    }
    period.update(_units(whole.total, rank_calls, usage.engaged_users, value_events))
    events_bytes = sum(d.events_bytes for d in usage.days)
    impression_bytes = sum(d.impressions_bytes for d in usage.days)
    return {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cost_file": str(cost_file),
        "currency": prices.currency,
        "prices": asdict(prices),
        "measured": {
            "rank_cpu_ms_per_call": _ms(rates.rank_cpu_s),
            "track_cpu_ms_per_event": _ms(rates.track_cpu_s),
            "track_events_per_call": rates.track_events_per_call,
            "jobs_cpu_s_per_day": rates.jobs_cpu_s_per_day,
            "jobs": measured.jobs,
            "redis_gb": None if rates.redis_bytes is None else rates.redis_bytes / GB,
            "server_counters": measured.server,
            "sources": measured.sources,
        },
        "bytes": {
            "events": events_bytes,
            "impressions": impression_bytes,
            "online_store": measured.online_store_bytes,
            "files_total": events_bytes + impression_bytes + measured.online_store_bytes,
            "redis": rates.redis_bytes,
        },
        "days": days,
        "period": period,
        "arms": _arms(usage, rates, whole.total),
        "sampling": {
            "saved_events": saved_events,
            "saved_bytes": saved_bytes,
            "storage_saved_per_month": saved_bytes / GB * prices.storage_gb_month,
            "bench": _bench_saving(measured.bench_sampling, usage, prices),
        },
        "notes": usage.notes,
    }


def _bench_saving(sampled: dict[str, Any] | None, usage: Usage, prices: Prices) -> dict[str, Any] | None:
    """What the tiers saved on the bench's player mix, per million Track events acknowledged: the events
    not stored, their bytes at the mean size of an event stored in this log, and what a month of
    keeping them would have cost."""
    if sampled is None:
        return None
    stored_events = sum(d.track_events for d in usage.days)
    mean = sum(d.events_bytes for d in usage.days) / stored_events if stored_events else 0.0
    share = sampled["sampled_out"] / sampled["accepted"]
    per_million = share * 1e6 * mean
    return {
        **sampled,
        "mean_event_bytes": mean,
        "saved_bytes_per_million_events": per_million,
        "storage_saved_per_month_per_million_events": per_million / GB * prices.storage_gb_month,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _arms(usage: Usage, rates: model.Rates, total: float) -> dict[str, Any]:
    calls = {a.arm: model.arm_calls(a, rates) for a in usage.arms}
    shares = model.allocate(1.0, calls)
    rows = []
    for a in usage.arms:
        cost = total * shares.get(a.arm, 0.0)
        rows.append(
            {
                **asdict(a),
                "calls": calls[a.arm],
                "share": shares.get(a.arm, 0.0),
                "cost": cost,
                **_units(cost, a.rank_calls, a.engaged_users, a.value_events),
            }
        )
    return {"source": usage.arms_source, "allocation": ALLOCATION, "rows": rows}


# --- for people -------------------------------------------------------------------------------------------
def _money(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.4g}"


def _num(x: float) -> str:
    return f"{x:,.0f}"


def _bytes(x: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if abs(x) >= size:
            return f"{x / size:,.1f} {unit}"
    return f"{x:,.0f} B"


UNITS = ("per_1000_rank_calls", "per_engaged_user", "per_value_event")
UNIT_COLUMNS = ("per 1,000\nRank calls", "per engaged user", "per value\nevent")


def _saved(events: float, size: float) -> str:
    return f"{_num(events)} ev, {_bytes(size)}" if events else "—"


def day_table(report: dict[str, Any], last_days: int) -> Table:
    days = report["days"][-last_days:] if last_days > 0 else report["days"]
    t = Table(title=f"cost per day in {report['currency']} (the last {len(days)} of {len(report['days'])} days)")
    for col in ("day", "Rank\ncalls", "Track\nevents", "value\nevents", "engaged\nusers", "stored", "cost"):
        t.add_column(col, justify="left" if col == "day" else "right", no_wrap=True)
    for col in (*UNIT_COLUMNS, "sampling\nsaved"):
        t.add_column(col, justify="right", no_wrap=True)

    def row(label: str, d: dict[str, Any], held: float, saved: str) -> None:
        counts = [_num(d[k]) for k in ("rank_calls", "track_events", "value_events", "engaged_users")]
        t.add_row(label, *counts, _bytes(held), _money(d["cost"]["total"]), *[_money(d[u]) for u in UNITS], saved)

    for d in days:
        row(d["date"], d, d["held_bytes"], _saved(d["sampling_saved_events"], d["sampling_saved_bytes"]))
    t.add_section()
    sampling, held = report["sampling"], report["days"][-1]["held_bytes"] if report["days"] else 0
    row(
        f"all {len(report['days'])} days",
        report["period"],
        held,
        _saved(sampling["saved_events"], sampling["saved_bytes"]),
    )
    return t


def render(report: dict[str, Any], console: Console, last_days: int) -> None:
    console.print(day_table(report, last_days))
    console.print(arm_table(report))
    console.print(measured_table(report))
    bench = report["sampling"].get("bench")
    if bench is not None:
        out, of = bench["sampled_out"], bench["accepted"]
        console.print(
            f"sampling on the bench data ({bench['finished_at']}, scale {bench['scale']}): of {of:,} "
            f"Track events in a player's mix, {out:,} ({out / of:.0%}) "
            f"were sampled out, not stored: {_bytes(bench['saved_bytes_per_million_events'])} and "
            f"{_money(bench['storage_saved_per_month_per_million_events'])} {report['currency']} of storage a month "
            "saved per million events"
        )
    else:
        console.print(f"[dim]sampling on the bench data: {report['measured']['sources']['bench_sampling']}[/]")
    console.print(f"prices: {report['cost_file']} ({report['currency']})")
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}")


def arm_table(report: dict[str, Any]) -> Table:
    arms = report["arms"]
    t = Table(title=f"cost per experiment arm in {report['currency']} (the period's cost, split by calls)")
    for col in ("arm", "share", "users", "engaged\nusers", "value\nevents", "Rank\ncalls", "cost"):
        t.add_column(col, justify="left" if col == "arm" else "right", no_wrap=True)
    for col in UNIT_COLUMNS:
        t.add_column(col, justify="right", no_wrap=True)
    for a in sorted(arms["rows"], key=lambda a: (a["arm"] == NO_ARM, a["arm"])):
        counts = [_num(a[k]) for k in ("users", "engaged_users", "value_events", "rank_calls")]
        name = a["arm"] if a["arm"] != NO_ARM else "(no arm)"
        t.add_row(name, f"{a['share']:.1%}", *counts, _money(a["cost"]), *[_money(a[u]) for u in UNITS])
    t.caption = f"per-arm numbers: {arms['source']}"
    return t


def measured_table(report: dict[str, Any]) -> Table:
    m, b = report["measured"], report["bytes"]
    t = Table(title="what was measured, and how")
    t.add_column("resource")
    t.add_column("measured", justify="right")
    t.add_column("source")
    rows = [
        ("CPU per Rank call", _opt(m["rank_cpu_ms_per_call"], "{:.3f} ms"), m["sources"]["rank_cpu"]),
        ("CPU per Track event", _opt(m["track_cpu_ms_per_event"], "{:.3f} ms"), m["sources"]["track_cpu"]),
        ("batch jobs' CPU a day", _opt(m["jobs_cpu_s_per_day"], "{:,.1f} s"), m["sources"]["jobs_cpu"]),
        ("Redis memory", _opt(m["redis_gb"], "{:.3f} GB"), m["sources"]["redis"]),
        ("online store file", _bytes(b["online_store"]), m["sources"]["online_store"]),
        ("event log", _bytes(b["events"]), "partition files under events/date=*"),
        ("impressions", _bytes(b["impressions"]), "partition files under impressions/ (raw and daily)"),
    ]
    for row in rows:
        t.add_row(*row)
    return t


def _opt(x: float | None, fmt: str) -> str:
    return "not measured" if x is None else fmt.format(x)


def plot(report: dict[str, Any], path: Path) -> Path:
    """Cost per day by component (stacked), and the per-unit costs below it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    days = report["days"]
    x = [datetime.strptime(d["date"], "%Y-%m-%d") for d in days]
    parts = ("serving_cpu", "jobs_cpu", "storage", "redis", "requests")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.stackplot(x, *[[d["cost"][p] for d in days] for p in parts], labels=[p.replace("_", " ") for p in parts])
    top.set_ylabel(f"cost per day ({report['currency']})")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"Setlist cost per day, prices from {Path(report['cost_file']).name}", fontsize=10)
    for key, label in zip(UNITS, UNIT_COLUMNS):
        values = [d[key] if d[key] is not None else float("nan") for d in days]
        bottom.plot(x, values, marker=".", label=label.replace("\n", " "))
    bottom.set_yscale("log")
    bottom.set_ylabel(report["currency"])
    bottom.legend(loc="upper left", fontsize=8)
    bottom.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=12))
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_json(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def log_run(settings: Settings, report: dict[str, Any], artifacts: list[Path]) -> str:
    """The report as a run in the project's MLflow experiment (as experiments.logbook does); the run id."""
    import mlflow

    from setlist import mlflow_runs, registry

    client = registry.connect(settings)
    p = report["period"]
    metrics: dict[str, float | None] = {
        "cost_total": p["cost"]["total"],
        **{f"cost_{k}": v for k, v in p["cost"].items() if k != "total"},
        "cost_per_1000_rank_calls": p["per_1000_rank_calls"],
        "cost_per_engaged_user": p["per_engaged_user"],
        "cost_per_value_event": p["per_value_event"],
        "rank_cpu_ms_per_call": report["measured"]["rank_cpu_ms_per_call"],
        "track_cpu_ms_per_event": report["measured"]["track_cpu_ms_per_event"],
        "sampling_saved_bytes": report["sampling"]["saved_bytes"],
    }
    for a in report["arms"]["rows"]:
        arm = _UNSAFE.sub("_", a["arm"] or "no_arm")
        for key in UNITS:
            metrics[f"{arm}.cost_{key}"] = a[key]
    tags = {f"cost.source.{k}": v[:5000] for k, v in report["measured"]["sources"].items()}
    tags.update({"cost.currency": report["currency"], "cost.period": f"{p['first']}..{p['last']}"})
    with mlflow_runs.tracked(
        settings, client, experiment_id=registry.ensure_experiment(client, settings), run_name="cost"
    ) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        for path in artifacts:
            mlflow.log_artifact(str(path))
    return str(run.info.run_id)
