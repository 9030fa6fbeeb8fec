"""Peak memory and time of feature materialization, on logs of different spans (a benchmark, not a test).

    .venv/bin/python -m bench.materialize_memory                      # ratings (100k, 22 y) + span (1M, 30 y vs 1 y)
    .venv/bin/python -m bench.materialize_memory --datasets bench     # the bench generator's 3M events
    .venv/bin/python -m bench.materialize_memory --no-dense           # skip the old dense builder

Every measurement runs in a child process that reports its own peak RSS (``ru_maxrss``) and time;
the parent kills a child above ``--limit-gb`` (the old dense builder can ask for far more than the
machine has) and records that. The measurements:

- ``dense`` / ``build``: read the log and build the batches, with the builder of ``DENSE_COMMIT``
  (the dense entity × day grids, loaded from git) / the current one;
- ``publish-dense``: the whole publish of ``DENSE_COMMIT``, run from a copy of its tree on a copy
  of the data;
- ``publish-full``: ``feature_repo materialize --full`` (read, build, gate, write, Feast materialize);
- ``publish``: ``feature_repo materialize`` after a small append (APPEND events): incremental;
- ``publish-full (after append)``: the full rebuild of that same log, to compare with.

Data is prepared once under ``--work`` and reused. Results: a table, and
``bench/results/materialize_memory.json`` (runs of earlier invocations are kept unless re-measured).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import typer
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "materialize_memory.json"
DENSE_COMMIT = "fa61a80"  # the last commit with the dense entity × day grids
APPEND = 200  # events in the "small new import" of the incremental measurement

app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0])
child_app = typer.Typer(add_completion=False)
console = Console(width=max(Console().width, 120))


# --- data -------------------------------------------------------------------------------------
def write_log(events: pd.DataFrame, items: pd.DataFrame, data_dir: Path) -> None:
    """One file per date partition, as the log lays them out (written directly: ``EventLog.append``
    filters the whole batch once per date, minutes for thousands of dates)."""
    import pyarrow.parquet as pq

    from setlist.catalog import save_items
    from setlist.eventlog import to_table

    if data_dir.exists():
        shutil.rmtree(data_dir)
    events = events.sort_values(["timestamp", "event_id"], kind="mergesort").reset_index(drop=True)
    table = to_table(events)
    day = pd.to_datetime(events["timestamp"], utc=True).dt.floor("D")
    starts = np.flatnonzero(np.r_[True, day.to_numpy()[1:] != day.to_numpy()[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(events)]):
        out = data_dir / "events" / f"date={day.iloc[a]:%Y-%m-%d}" / "bench-000.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(a, b - a), out, compression="zstd")
    save_items(items, data_dir / "catalog" / "items.parquet")


def ratings_events(users: int, items: int, ratings: int, years: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A MovieLens-shaped ratings log (ingest.sparse) converted by the real importer."""
    import tempfile

    from ingest.importer import load_interactions
    from ingest.sparse import write_fixture

    with tempfile.TemporaryDirectory() as tmp:
        write_fixture(Path(tmp), users=users, items=items, ratings=ratings, seed=seed, years=years)
        events, catalog, _ = load_interactions(
            Path(tmp) / "ratings.csv",
            user_col="userId",
            item_col="movieId",
            time_unit="s",
            rating_col="rating",
            items=Path(tmp) / "movies.csv",
            item_id_col="movieId",
        )
    return events, catalog


def respan(events: pd.DataFrame, years: float) -> pd.DataFrame:
    """The same events, their times stretched or squeezed linearly onto ``years``."""
    ts = events["timestamp"].astype("int64").to_numpy()
    lo, hi = ts.min(), ts.max()
    span = int(years * 365.2425 * 86_400 * 1e9)
    out = events.copy()
    out["timestamp"] = pd.to_datetime(lo + ((ts - lo) / max(hi - lo, 1) * span).astype(np.int64), utc=True)
    return out


def prepare(name: str, data_dir: Path, seed: int) -> dict:
    if name == "ratings-22y":
        events, items = ratings_events(600, 9_000, 100_000, 22.0, seed)
    elif name.startswith("span-"):  # the same 1M ratings, over 30 years or over 1 year
        events, items = ratings_events(6_000, 20_000, 1_000_000, 30.0, seed)
        events = respan(events, float(name.split("-")[1].rstrip("y")))
    elif name == "bench":
        from ingest.generate import generate

        data = generate("bench", seed=seed, progress=False)
        events, items = data.events, data.items
    else:
        raise typer.BadParameter(f"unknown dataset {name!r}")
    write_log(events, items, data_dir)
    ts = pd.to_datetime(events["timestamp"], utc=True)
    return {
        "events": len(events),
        "users": int(events["user_id"].nunique()),
        "items": int(events["item_id"].nunique()),
        "span_days": int((ts.max() - ts.min()) / pd.Timedelta(days=1)) + 1,
    }


def append_small(data_dir: Path, seed: int) -> int:
    """A small import: APPEND events of known users and items, just after the end of the log."""
    from setlist.eventlog import EventLog

    log = EventLog(data_dir / "events")
    rng = np.random.default_rng(seed)
    files = log.files()
    recent = files[-max(1, len(files) // 20) :]  # the newest partitions are enough to sample from
    last = pd.concat([pd.read_parquet(f) for f in recent], ignore_index=True)
    new = last.iloc[rng.choice(len(last), APPEND, replace=False)].copy()
    new["timestamp"] = last["timestamp"].max() + pd.to_timedelta(rng.integers(1, 86_400, APPEND), unit="s")
    new["event_id"] = [f"append-{seed}-{i}" for i in range(APPEND)]
    return log.append(new, tag="bench-append")


# --- the child: one measurement ------------------------------------------------------------------
def _dense_build() -> types.ModuleType:
    src = subprocess.run(
        ["git", "show", f"{DENSE_COMMIT}:feature_repo/build.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("dense_build")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(src, f"{DENSE_COMMIT}:feature_repo/build.py", "exec"), module.__dict__)
    return module


@child_app.command()
def child(what: str, data_dir: Path, seed: int = 7) -> None:
    """Run one measurement in this process and print its JSON on the last line."""
    out: dict = {"what": what, "stages": {}}
    t0 = time.perf_counter()
    if what == "prepare":
        out.update(prepare(data_dir.name, data_dir, seed))
    elif what == "append":
        out["appended"] = append_small(data_dir, seed)
    elif what in ("build", "dense"):
        from setlist.catalog import load_items
        from setlist.eventlog import EventLog

        log = EventLog(data_dir / "events")
        if what == "dense":
            builder = _dense_build()
        else:
            from feature_repo.build import build_prepared
            from feature_repo.incremental import read_events

            # the demo's default consent: a user without any flag counts as consenting
            builder = types.SimpleNamespace(build=lambda ev, items: build_prepared(ev, items, consent_default=True))
        out["stages"]["import"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        # as each publish reads: the old one every column, the new one what the builders use, sorted in Arrow
        events = log.read() if what == "dense" else read_events(log.files(), log.erased(), prepared=True)
        items = load_items(data_dir / "catalog" / "items.parquet")
        out["stages"]["read"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        batches = builder.build(events, items)
        out["stages"]["build"] = time.perf_counter() - t1
        out["rows"] = {k: len(getattr(batches, k)) for k in ("user_profile", "item_stats", "session", "consent")}
    elif what.startswith("publish"):
        os.environ.update(SETLIST_DATA_DIR=str(data_dir), SETLIST_HMAC_KEY="bench")
        from feature_repo.materialize import publish
        from setlist.settings import get_settings

        t1 = time.perf_counter()
        marks: list[tuple[str, float]] = []
        report = publish(
            get_settings(), full=what == "publish-full", step=lambda m: marks.append((m, time.perf_counter()))
        )
        ends = [t for _, t in marks[1:]] + [time.perf_counter()]
        out["stages"] = {m: round(e - t, 3) for (m, t), e in zip(marks, ends)}
        out.update(
            mode=report.mode,
            reason=report.reason,
            rows=report.rows,
            touched=report.touched,
            publish_s=time.perf_counter() - t1,
        )
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, default=str))


# --- the parent ---------------------------------------------------------------------------------
# the whole publish of the old code, run from a copy of its tree (its modules shadow ours)
_OLD_PUBLISH = """
import json, resource, time
t0 = time.perf_counter()
from feature_repo.materialize import publish
from setlist.settings import get_settings
t1 = time.perf_counter()
report = publish(get_settings())
print(json.dumps({"what": "publish-dense", "stages": {"import": t1 - t0}, "rows": report.rows, "mode": "full",
                  "publish_s": time.perf_counter() - t1, "seconds": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _old_publish(data_dir: Path) -> tuple[list[str], Path, dict[str, str]]:
    """Command, directory and environment that publish a copy of ``data_dir`` with the old code."""
    tree = data_dir.parent / f"_tree-{DENSE_COMMIT}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", DENSE_COMMIT], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    copy = data_dir.parent / f"{data_dir.name}-dense"
    shutil.rmtree(copy, ignore_errors=True)
    for part in ("events", "catalog"):
        shutil.copytree(data_dir / part, copy / part, ignore=shutil.ignore_patterns("*-bench-append-*"))
    return [sys.executable, "-c", _OLD_PUBLISH], tree, {"PYTHONPATH": str(tree), "SETLIST_DATA_DIR": str(copy)}


def run_child(what: str, data_dir: Path, limit_gb: float, seed: int) -> dict:
    """The child's JSON, or a record that it was killed above the memory limit or failed."""
    cmd = [sys.executable, "-m", "bench.materialize_memory", "_child", what, str(data_dir), "--seed", str(seed)]
    cwd, env = ROOT, {**os.environ, "PYTHONPATH": str(ROOT), "SETLIST_HMAC_KEY": "bench"}
    if what == "publish-dense":
        cmd, cwd, extra = _old_publish(data_dir)
        env.update(extra)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch, peak, killed, start = psutil.Process(proc.pid), 0, False, time.perf_counter()
    while proc.poll() is None:
        try:
            peak = max(peak, watch.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        if peak > limit_gb * 2**30:
            proc.kill()  # only the child this function started
            killed = True
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if killed:
        return {
            "what": what,
            "killed": True,
            "peak_rss_mb": peak / 2**20,
            "seconds": wall,
            "note": f"killed above the {limit_gb:g} GB limit after {wall:.0f}s",
        }
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}"
        return {"what": what, "failed": tail, "peak_rss_mb": peak / 2**20, "seconds": wall}
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


@app.command()
def main(
    datasets: str = typer.Option(
        "ratings-22y,span-30y,span-1y", help="comma-separated: ratings-22y, span-30y, span-1y, bench"
    ),
    dense: bool = typer.Option(True, help="also measure the old dense builder (from git)"),
    publish: str = typer.Option("ratings-22y", help="datasets to also publish in full and incrementally"),
    work: Path = typer.Option(ROOT / "var" / "bench" / "materialize", help="where the datasets are kept"),
    limit_gb: float = typer.Option(8.0, help="kill a measurement above this resident size"),
    fresh: bool = typer.Option(False, help="prepare the datasets again"),
    only: str | None = typer.Option(None, help="comma-separated measurements to run, e.g. publish-dense"),
    seed: int = 7,
    out: Path | None = typer.Option(RESULTS),
) -> None:
    """Measure, print a table and write the JSON."""
    from bench.machine import machine_info

    results: list[dict] = []
    previous = json.loads(out.read_text()) if out and out.exists() else {}
    kept = {(r["dataset"], r["what"]): r for r in previous.get("runs", [])}
    for name in [d.strip() for d in datasets.split(",") if d.strip()]:
        data_dir = work / name
        info_path = work / f"{name}.json"
        if fresh or not info_path.exists():
            with console.status(f"preparing {name}…"):
                info = run_child("prepare", data_dir, limit_gb, seed)
            if "failed" in info or info.get("killed"):
                console.print(f"[red]could not prepare {name}[/]: {info.get('failed') or info.get('note')}")
                continue
            info_path.parent.mkdir(parents=True, exist_ok=True)
            info_path.write_text(json.dumps(info))
        info = {
            k: v for k, v in json.loads(info_path.read_text()).items() if k in ("events", "users", "items", "span_days")
        }
        plan = (["dense"] if dense else []) + ["build"]
        if name in publish.split(","):
            plan += (["publish-dense"] if dense else []) + ["publish-full", "append", "publish", "publish-full"]
            # a cold start: no features, no earlier append (kept data is reused across runs)
            shutil.rmtree(data_dir / "features", ignore_errors=True)
            for f in (data_dir / "events").glob("date=*/*-bench-append-*.parquet"):
                f.unlink()
        if only:
            plan = [w for w in plan if w in only.split(",")]
        for what in plan:
            with console.status(f"{name}: {what}…"):
                r = run_child(what, data_dir, limit_gb, seed)
            r.update(dataset=name, **info)
            if what == "publish-full" and any(x["what"] == "publish-full" and x["dataset"] == name for x in results):
                r["what"] = "publish-full (after append)"
            if what != "append":
                results.append(r)
                kept[(name, r["what"])] = r
            console.print(f"  {name:<12} {r['what']:<28} {_fmt(r)}")
    _table(list(kept.values()))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "machine": machine_info(),
                    "dense_commit": DENSE_COMMIT,
                    "append_events": APPEND,
                    "runs": list(kept.values()),
                },
                indent=2,
                default=str,
            )
        )
        console.print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def _fmt(r: dict) -> str:
    if r.get("killed"):
        return f"[red]> {r['peak_rss_mb']:,.0f} MB[/] ({r['note']})"
    if r.get("failed"):
        return f"[red]failed[/]: {r['failed']}"
    extra = f" mode={r['mode']}" if "mode" in r else ""
    return f"{r['peak_rss_mb']:>8,.0f} MB {r.get('publish_s', r['seconds']):>8.1f} s{extra}"


def _table(runs: list[dict]) -> None:
    t = Table(title="feature materialization: peak RSS and time")
    for col in ("dataset", "events", "span (days)", "what", "peak RSS (MB)", "time (s)", "note"):
        t.add_column(col, justify="right" if col in ("events", "span (days)", "peak RSS (MB)", "time (s)") else "left")
    for r in runs:
        rss = f">{r['peak_rss_mb']:,.0f}" if r.get("killed") else f"{r['peak_rss_mb']:,.0f}"
        secs = r.get("publish_s", r.get("seconds", 0.0))
        note = (
            r.get("note")
            or r.get("failed")
            or (
                f"{r['mode']}"
                + (f", {r['touched'][0]} users / {r['touched'][1]} items" if r.get("mode") == "incremental" else "")
                if "mode" in r
                else ""
            )
        )
        t.add_row(
            r["dataset"], f"{r.get('events', 0):,}", f"{r.get('span_days', 0):,}", r["what"], rss, f"{secs:,.1f}", note
        )
    console.print(t)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_child"]:
        child_app(args=sys.argv[2:])
    else:
        app()
