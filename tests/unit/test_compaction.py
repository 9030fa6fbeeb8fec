"""Compaction and down-sampling: small files merge per partition with the rows unchanged, duplicates and
erased users' rows go, young files wait, a second run does nothing, a dry run changes nothing, and a
crash between any two steps loses and duplicates nothing once the next run has finished it. Old
impressions become daily counts that give the experiment report the same per-arm totals."""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest
from typer.testing import CliRunner

from experiments.analysis import Report, build
from experiments.data import arm_counts, outcomes
from ingest.lifecycle import app
from setlist import swap
from setlist.compaction import Dataset, compact
from setlist.contract import EVENT_SCHEMA, SCHEMA_VERSION
from setlist.downsample import DAILY, downsample, read_all
from setlist.eventlog import EventLog, Quarantine
from setlist.experiment import Experiment, parse_experiment
from setlist.impressions import Impression, read_impressions, write_batch

T0 = pd.Timestamp("2026-11-20 00:30", tz="UTC")
LATER = time.time() + 7200  # "now" for compaction: every file written by a test is two hours old


def events(prefix: str, n: int, day: int = 0, user: str = "u_a") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [f"{prefix}-{i}" for i in range(n)],
            "schema_version": SCHEMA_VERSION,
            "user_id": user,
            "item_id": [f"i{i % 7}" for i in range(n)],
            "type": "play",
            "timestamp": [T0 + pd.Timedelta(days=day, minutes=i) for i in range(n)],
            "value": 0.5,
        }
    )


def journal(root: Path, files: int, days: int = 2, rows: int = 5) -> EventLog:
    """What Track's roller leaves: one small ``journal-<segment>`` file per roll and day."""
    log = EventLog(root)
    for f in range(files):
        for d in range(days):
            log.append(events(f"s{f}d{d}", rows, day=d), name=f"journal-seg{f:03d}")
    return log


def ids(log: EventLog, **kw: bool) -> Counter[str]:
    return Counter(log.read(columns=["event_id"], **kw)["event_id"])


def settled_ids(root: Path) -> Counter[str]:
    """The event ids a reader listing through ``swap.listing`` sees."""
    files = swap.listing(root, ["date=*/*.parquet"])
    if not files:
        return Counter()
    table = pads.dataset([str(f) for f in files], schema=EVENT_SCHEMA).to_table(columns=["event_id"])
    return Counter(table.column("event_id").to_pylist())


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (hidden ones too) with its size and mtime."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    }


def data_tree(root: Path) -> dict[str, tuple[int, int]]:
    """``tree`` without the swap lock and bookkeeping."""
    return {k: v for k, v in tree(root).items() if not k.startswith(swap.SWAPS)}


def partitions(log: EventLog) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in log.files():
        out.setdefault(f.parent.name, []).append(f.name)
    return out


# --- compaction -----------------------------------------------------------------------------------------------
def test_many_small_files_become_one_per_partition_with_the_same_rows(tmp_path: Path) -> None:
    log = journal(tmp_path / "events", files=40)
    before = log.read()
    assert len(log.files()) == 80
    report = compact(tmp_path / "events", min_age_s=3600, now=LATER)
    stats = report.get("events")
    assert {k: len(v) for k, v in partitions(log).items()} == {"date=2026-11-20": 1, "date=2026-11-21": 1}
    assert all("-compacted-" in name for names in partitions(log).values() for name in names)
    pd.testing.assert_frame_equal(log.read(), before)
    assert (stats.files_before, stats.files_after, stats.rows_in, stats.rows_out) == (80, 2, 400, 400)
    assert stats.bytes_after < stats.bytes_before
    assert not [p for p in (tmp_path / "events").rglob("*") if p.name.endswith(".swap.tmp") or p.suffix == ".json"]


def test_a_second_run_does_nothing(tmp_path: Path) -> None:
    log = journal(tmp_path / "events", files=12)
    compact(log.root, target_bytes=4 * (log.files()[0].stat().st_size), min_age_s=0)  # several outputs a day
    assert max(len(v) for v in partitions(log).values()) > 1
    settled = tree(log.root)
    again = compact(log.root, target_bytes=4 * 10**6, min_age_s=0).get("events")
    assert again.merges == [] and tree(log.root) == settled


def test_large_partitions_split_into_files_of_about_the_target(tmp_path: Path) -> None:
    log = journal(tmp_path / "events", files=30, days=1)
    before = ids(log)
    one = log.files()[0].stat().st_size
    compact(log.root, target_bytes=10 * one, min_age_s=0)
    sizes = [f.stat().st_size for f in log.files()]
    assert len(sizes) == 3  # 30 inputs, 10 per output
    assert all(s <= 10 * one for s in sizes)
    assert ids(log) == before


def test_only_the_journals_young_rolls_wait_other_files_are_written_once_and_merge_at_once(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    for n in range(3):
        log.append(events(f"imp{n}", 5, day=0), tag="import")  # an import's batches: never re-written
    log.append(events("roll", 5, day=0), name="journal-seg999")  # a roll the journal may still re-roll
    before = ids(log)
    stats = compact(log.root, min_age_s=3600).get("events")
    names = sorted(f.name for f in log.files())
    assert stats.young == 1 and len(names) == 2 and "journal-seg999.parquet" in names
    assert ids(log) == before


def test_files_younger_than_min_age_are_left_alone(tmp_path: Path) -> None:
    log = journal(tmp_path / "events", files=6, days=1)
    old = time.time() - 7200
    for f in log.files()[:4]:
        os.utime(f, (old, old))
    young = {f.name for f in log.files()[4:]}
    before = ids(log)
    stats = compact(log.root, min_age_s=3600).get("events")
    names = {f.name for f in log.files()}
    assert stats.young == 2 and young <= names and len(names) == 3  # four merged into one, two waiting
    assert ids(log) == before


def test_a_partition_of_one_file_at_size_or_alone_is_not_rewritten(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    log.append(events("big", 1000), name="import-a")  # at size for a small target
    log.append(events("lone", 5, day=1), name="journal-x")  # alone in its partition
    settled = tree(log.root)
    target = 2 * log.files()[0].stat().st_size - 1
    stats = compact(log.root, target_bytes=target, min_age_s=0).get("events")
    assert stats.merges == [] and data_tree(log.root) == settled
    assert {f.name for f in log.files()} == {"import-a.parquet", "journal-x.parquet"}


def test_repeated_event_ids_are_removed_also_a_segment_re_rolled_after_compaction(tmp_path: Path) -> None:
    log = journal(tmp_path / "events", files=5, days=1)
    log.append(events("s1d0", 5), name="retry-of-seg001")  # the same events in two files
    original = ids(log)
    assert max(original.values()) == 2
    first = compact(log.root, min_age_s=0).get("events")
    assert first.duplicates == 5 and ids(log) == Counter(set(original))
    # the journal re-rolls a segment that compaction already merged: the same file name comes back
    log.append(events("s3d0", 5), name="journal-seg003")
    assert max(ids(log).values()) == 2
    second = compact(log.root, min_age_s=0).get("events")
    assert second.duplicates == 5 and ids(log) == Counter(set(original))
    assert len(log.files()) == 1  # the copy is dropped; the merged file holding the originals stays


def test_rows_of_erased_users_are_dropped(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    for f in range(4):
        log.append(events(f"a{f}", 3, user="u_a"), name=f"journal-a{f}")
        log.append(events(f"b{f}", 3, user="u_b"), name=f"journal-b{f}")
    log.tombstone("u_b")  # erased, not yet scrubbed from the files
    visible = ids(log)
    stats = compact(log.root, min_age_s=0).get("events")
    assert stats.erased == 12 and ids(log) == visible
    assert set(log.read(include_erased=True)["user_id"]) == {"u_a"}


def test_an_erasure_during_the_merge_is_not_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog(tmp_path / "events")
    for f in range(4):
        log.append(pd.concat([events(f"a{f}", 3, user="u_a"), events(f"b{f}", 3, user="u_b")]), name=f"j{f}")

    def erase_meanwhile(step: str) -> None:
        if step == "staged":  # the inputs are read and merged: now the erasure scrubs them
            log.tombstone("u_b")
            assert log.compact_out("u_b") == 12

    monkeypatch.setattr(swap, "checkpoint", erase_meanwhile)
    compact(log.root, min_age_s=0)
    assert set(log.read(include_erased=True)["user_id"]) == {"u_a"}
    assert ids(log) == Counter(f"a{f}-{i}" for f in range(4) for i in range(3))


def test_a_dry_run_changes_nothing_and_plans_what_a_run_does(tmp_path: Path) -> None:
    log = journal(tmp_path / "events", files=10)
    settled = tree(log.root)
    plan = compact(log.root, min_age_s=0, dry_run=True).get("events")
    assert tree(log.root) == settled and not (log.root / swap.SWAPS).exists()
    assert [(m.partition, m.inputs, m.outputs) for m in plan.merges] == [
        ("date=2026-11-20", 10, 1),
        ("date=2026-11-21", 10, 1),
    ]
    done = compact(log.root, min_age_s=0).get("events")
    assert [(m.partition, m.inputs, m.outputs) for m in done.merges] == [
        (m.partition, m.inputs, m.outputs) for m in plan.merges
    ]
    assert plan.files_after == done.files_after == 2


def test_a_second_compaction_waits_for_the_first(tmp_path: Path) -> None:
    log = journal(tmp_path / "events", files=4)
    settled = tree(log.root)
    with swap.locked(log.root):
        stats = compact(log.root, min_age_s=0).get("events")
    assert stats.merges == [] and any("is in use (a compaction" in n for n in stats.notes)
    assert data_tree(log.root) == settled


def test_quarantine_files_of_a_day_merge_and_keep_their_columns(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "quarantine")
    for n in range(6):
        bad = pd.DataFrame({"event_id": [f"q{n}"], "timestamp": ["not a time"], "user_id": ["u_a"]})
        if n % 2:
            bad["extra"] = 3  # importer batches carry whatever columns their file had
        q.put(bad, ["bad_timestamp"], "import")
    before = q.read().sort_values("event_id").reset_index(drop=True)
    newest = max(p.name[:15] for p in (tmp_path / "quarantine").glob("*.parquet"))
    ds = Dataset("quarantine", tmp_path / "quarantine", "quarantine")
    compact(ds, min_age_s=0)
    files = list((tmp_path / "quarantine").glob("*.parquet"))
    assert len(files) == 1 and files[0].name.startswith(newest)  # retention dates it by its newest input
    after = q.read().sort_values("event_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after[before.columns], before, check_dtype=False)


def test_impressions_merge_per_day(tmp_path: Path) -> None:
    root = tmp_path / "impressions"
    for n in range(8):
        write_batch(root, [_impression(n, day=n % 2)])
    before = read_impressions(root)
    compact(Dataset("impressions", root, "impressions"), min_age_s=0)
    assert len(list(root.glob("date=*/*.parquet"))) == 2
    pd.testing.assert_frame_equal(read_impressions(root), before)


# --- crashes --------------------------------------------------------------------------------------------------
class Crash(Exception):
    pass


def _steps(tmp_path: Path) -> list[str]:
    """The checkpoints one compaction of the crash fixture passes, in order."""
    seen: list[str] = []
    log = _crash_fixture(tmp_path / "probe")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(swap, "checkpoint", seen.append)
        compact(log.root, target_bytes=_crash_target(log), min_age_s=0)
    return seen


def _crash_fixture(root: Path) -> EventLog:
    log = journal(root, files=8)
    log.append(events("s2d0", 5), name="retry-of-seg002")  # a duplicate for the merge to drop
    return log


def _crash_target(log: EventLog) -> int:
    return 4 * log.files()[0].stat().st_size  # about three outputs per partition


#: two partitions of 9 and 8 inputs, each merged into two outputs (the retried copy's batch holds only duplicates)
CRASH_STEPS = ["staged", "committed", "renamed", "renamed", "visible"] + ["deleted"] * 9 + ["done"]
CRASH_STEPS += ["staged", "committed", "renamed", "renamed", "visible"] + ["deleted"] * 8 + ["done"]


def test_the_crash_fixture_passes_every_step(tmp_path: Path) -> None:
    assert _steps(tmp_path) == CRASH_STEPS


@pytest.mark.parametrize("at", range(len(CRASH_STEPS)))
def test_a_crash_at_any_step_loses_and_duplicates_nothing(tmp_path: Path, at: int) -> None:
    log = _crash_fixture(tmp_path / "events")
    target = _crash_target(log)
    before = ids(log)
    calls = iter(range(1000))

    def crash(step: str) -> None:
        if next(calls) == at:
            raise Crash(step)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(swap, "checkpoint", crash)
        with pytest.raises(Crash) as stopped:
            compact(log.root, target_bytes=target, min_age_s=0)
    assert stopped.value.args == (CRASH_STEPS[at],)
    # at the crash: a settled reader sees the partition before its merge or after it (the fixture's repeated
    # ids gone), never a mix; a plain listing never loses a row
    assert settled_ids(log.root) in (before, Counter(set(before)))
    assert set(ids(log)) == set(before)
    report = compact(log.root, target_bytes=target, min_age_s=0)
    assert ids(log) == Counter(set(before))  # the duplicate the fixture holds is gone too
    assert not [p for p in log.root.rglob("*") if p.name.endswith(".swap.tmp") or p.suffix == ".json"]
    assert compact(log.root, target_bytes=target, min_age_s=0).get("events").merges == []
    # a manifest is left from the commit point until the swap's last step
    assert report.get("events").recovered == (CRASH_STEPS[at] not in ("staged", "done"))


def test_between_the_renames_and_the_deletes_the_event_log_never_counts_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = journal(tmp_path / "events", files=6, days=1)
    before = ids(log)
    seen: dict[str, Counter[str]] = {}

    def look(step: str) -> None:
        if step == "visible":
            files = sorted(p for p in log.root.glob("date=*/*.parquet") if not p.name.startswith("."))
            plain = pads.dataset([str(f) for f in files], schema=EVENT_SCHEMA).to_table(columns=["event_id"])
            seen["plain"] = Counter(plain.column("event_id").to_pylist())
            seen["log"], seen["settled"] = ids(log), settled_ids(log.root)

    monkeypatch.setattr(swap, "checkpoint", look)
    compact(log.root, min_age_s=0)
    assert seen["settled"] == before and seen["log"] == before  # EventLog lists through the swap protocol
    assert seen["plain"] == Counter({k: 2 * v for k, v in before.items()})  # what a naive listing would see


# --- down-sampling --------------------------------------------------------------------------------------------
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _impression(
    n: int, day: int = 0, arm: str = "control", k: int = 3, user: str | None = None, days_ago: int | None = None
) -> Impression:
    at = (NOW - timedelta(days=days_ago)) if days_ago is not None else T0.to_pydatetime() + timedelta(days=day)
    return Impression(
        f"req-{n}",
        int(at.timestamp() * 1000) + n,
        user or f"u_{n % 5}",
        "exp",
        arm,
        False,
        "model",
        "champion",
        "3",
        "5",
        tuple(f"i{j}" for j in range(k)),
        tuple(1.0 / (j + 1) for j in range(k)),
    )


def _traffic(root: Path) -> None:
    """Forty and thirty-five days ago (to count) and two days ago (kept raw), two arms, k of 2 or 3."""
    n = 0
    for days_ago in (40, 35, 2):
        for arm in ("control", "treatment"):
            for k in (2, 3, 3):
                write_batch(root, [_impression(n, arm=arm, k=k, days_ago=days_ago)])
                n += 1


def totals(root: Path) -> pd.DataFrame:
    """Items shown and requests per arm, as the report counts them from raw rows and daily counts."""
    return arm_counts(*read_all(root))[["shown", "requests"]]


def _age_all(root: Path) -> None:
    old = NOW.timestamp() - 7200
    for f in root.rglob("*.parquet"):
        os.utime(f, (old, old))


def test_old_impressions_become_daily_counts_per_arm_and_position(tmp_path: Path) -> None:
    root = tmp_path / "impressions"
    _traffic(root)
    _age_all(root)
    raw = read_impressions(root)
    stats = downsample(root, 30, now=NOW)
    old_days = sorted({f"{(NOW - timedelta(days=d)).date()}" for d in (40, 35)})
    assert stats.days == old_days and stats.raw_rows == 2 * 2 * 8
    left, daily = read_all(root)
    assert sorted(left["timestamp"].dt.date.astype(str).unique()) == [f"{(NOW - timedelta(days=2)).date()}"]
    assert not any((root / f"date={d}").exists() for d in old_days)
    expected = (
        raw[raw["timestamp"].dt.date.astype(str).isin(old_days)]
        .assign(date=lambda f: f["timestamp"].dt.date)
        .groupby(["date", "arm", "position"])
        .size()
    )
    got = daily.assign(date=pd.to_datetime(daily["date"]).dt.date).set_index(["date", "arm", "position"])["impressions"]
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()
    assert (daily["experiment"] == "exp").all() and (daily["ranker_version"] == "5").all()


def test_the_report_keeps_its_per_arm_counts_after_down_sampling(tmp_path: Path) -> None:
    root = tmp_path / "impressions"
    _traffic(root)
    _age_all(root)
    before = arm_counts(*read_all(root, "exp"))
    exp = parse_experiment({"name": "exp", "arms": {"control": {"share": 0.5}, "treatment": {"share": 0.5}}})
    report_before = _report(exp, root)
    downsample(root, 30, now=NOW)
    imp, daily = read_all(root, "exp")
    assert not daily.empty and len(imp) < sum(before["shown"])
    after = arm_counts(imp, daily)
    pd.testing.assert_frame_equal(after[["shown", "requests"]], before[["shown", "requests"]])
    report_after = _report(exp, root)
    for arm in ("control", "treatment"):
        b, a = report_before.arm(arm), report_after.arm(arm)
        assert (a.shown, a.requests, a.versions) == (b.shown, b.requests, b.versions)
        assert a.counted == 2 * 8 and b.counted == 0
    assert report_before.notes == [] and "kept as daily counts only" in report_after.notes[0]


def _report(exp: Experiment, root: Path) -> Report:
    imp, daily = read_all(root, "exp")
    no_events = pd.DataFrame(columns=["user_id", "item_id", "timestamp", "type", "value"])
    return build(exp, outcomes(imp, no_events, exp.window_s), daily=daily)


def test_daily_counts_keep_whether_a_caller_chose_the_slate_and_read_older_counts_as_not_knowing(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    import pyarrow.parquet as pq

    root = tmp_path / "impressions"
    day = f"{(NOW - timedelta(days=40)).date()}"
    write_batch(root, [replace(_impression(n, days_ago=40), caller_slate=n < 2) for n in range(5)])
    _age_all(root)
    downsample(root, 30, now=NOW)
    _, daily = read_all(root)
    by_flag = daily.groupby("caller_slate")["impressions"].sum().to_dict()
    assert by_flag == {True: 2 * 3, False: 3 * 3}  # k = 3 items a response
    # an aggregate an earlier release wrote (no such column), then a late row of the day: counted together
    folder = root / DAILY / f"date={day}"
    (counted,) = folder.glob("*.parquet")
    pq.write_table(pq.read_table(counted).drop_columns(["caller_slate"]), counted)
    write_batch(root, [replace(_impression(9, days_ago=40), caller_slate=True)])
    _age_all(root)
    downsample(root, 30, now=NOW)
    _, daily = read_all(root)
    assert len(list(folder.glob("*.parquet"))) == 1
    assert daily["caller_slate"].isna().sum() > 0 and daily.loc[daily["caller_slate"].isna(), "impressions"].sum() == 15
    assert daily.loc[daily["caller_slate"].eq(True), "impressions"].sum() == 3


def test_rows_from_before_the_flag_are_counted_as_the_servers_own_as_they_read_raw(tmp_path: Path) -> None:
    import io

    import pyarrow.parquet as pq
    from rich.console import Console

    from experiments.report import run
    from setlist.impressions import to_table
    from tests.world import tiny_settings

    settings = tiny_settings(tmp_path / "data")
    root = settings.impressions_dir
    day = f"{(NOW - timedelta(days=40)).date()}"
    (root / f"date={day}").mkdir(parents=True)
    older = to_table([_impression(n, days_ago=40, arm=("control", "treatment")[n % 2]) for n in range(6)])
    pq.write_table(older.drop_columns(["caller_slate"]), root / f"date={day}" / "old.parquet")
    _age_all(root)
    exp = parse_experiment({"name": "exp", "arms": {"control": {"share": 0.5}, "treatment": {"share": 0.5}}})
    quiet = Console(file=io.StringIO(), width=200)
    raw, _ = run(settings, exp, quiet, log_mlflow=False, caller_slates="exclude")
    downsample(root, 30, now=NOW)
    _, daily = read_all(root)
    assert daily["caller_slate"].eq(False).all() and not daily["caller_slate"].isna().any()
    counted, _ = run(settings, exp, quiet, log_mlflow=False, caller_slates="exclude")
    assert [(a.arm, a.requests, a.shown) for a in counted.arms] == [(a.arm, a.requests, a.shown) for a in raw.arms]
    assert [a.requests for a in counted.arms] == [3, 3]


def test_down_sampling_is_idempotent_and_adds_late_rows_to_the_day(tmp_path: Path) -> None:
    root = tmp_path / "impressions"
    _traffic(root)
    _age_all(root)
    downsample(root, 30, now=NOW)
    settled = tree(root)
    again = downsample(root, 30, now=NOW)
    assert again.days == [] and tree(root) == settled
    write_batch(root, [_impression(99, arm="control", k=2, days_ago=40)])  # a late row for a counted day
    _age_all(root)
    before = arm_counts(*read_all(root))
    late = downsample(root, 30, now=NOW)
    assert late.days == [f"{(NOW - timedelta(days=40)).date()}"]
    assert len(list((root / DAILY).glob(f"date={late.days[0]}/*.parquet"))) == 1
    after = arm_counts(*read_all(root))
    assert after[["shown", "requests"]].equals(before[["shown", "requests"]])
    assert after.loc["control", "counted"] == before.loc["control", "counted"] + 2


def test_a_down_sampling_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "impressions"
    _traffic(root)
    _age_all(root)
    settled = tree(root)
    plan = downsample(root, 30, now=NOW, dry_run=True)
    assert len(plan.days) == 2 and plan.raw_rows == 32 and tree(root) == settled


#: two days counted, each replacing six raw files
DOWNSAMPLE_STEPS = (["staged", "committed", "renamed", "visible"] + ["deleted"] * 6 + ["done"]) * 2


@pytest.mark.parametrize("at", range(len(DOWNSAMPLE_STEPS)))
def test_a_crash_while_down_sampling_loses_and_duplicates_nothing(tmp_path: Path, at: int) -> None:
    root = tmp_path / "impressions"
    _traffic(root)
    _age_all(root)
    before = totals(root)
    calls = iter(range(1000))

    def crash(step: str) -> None:
        if next(calls) == at:
            raise Crash(step)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(swap, "checkpoint", crash)
        with pytest.raises(Crash) as stopped:
            downsample(root, 30, now=NOW)
    assert stopped.value.args == (DOWNSAMPLE_STEPS[at],)
    assert totals(root).equals(before)  # a settled reader, at the crash
    downsample(root, 30, now=NOW)
    assert totals(root).equals(before)
    assert [d.name for d in root.glob("date=*")] == [f"date={(NOW - timedelta(days=2)).date()}"]


# --- the command line -----------------------------------------------------------------------------------------
def test_the_commands_print_before_and_after_per_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("SETLIST_DATA_DIR", str(data))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    journal(data / "events", files=5)
    runner = CliRunner()
    dry = runner.invoke(app, ["compact", "--dry-run", "--min-age-s", "0"])
    assert dry.exit_code == 0, dry.output
    assert (
        "would merge" in dry.output and "date=2026-11-20" in dry.output and len(EventLog(data / "events").files()) == 10
    )
    done = runner.invoke(app, ["compact", "--min-age-s", "0", "--target-mb", "64"])
    assert done.exit_code == 0, done.output
    assert "events" in done.output and "quarantine" in done.output and len(EventLog(data / "events").files()) == 2
    sampled = runner.invoke(app, ["downsample", "--older-than-days", "30"])
    assert sampled.exit_code == 0 and "impressions" in sampled.output
    both = runner.invoke(app, ["all", "--dry-run"])
    assert both.exit_code == 0 and "daily counts" in both.output and "would merge" in both.output
    bad = runner.invoke(app, ["compact", "--target-mb", "0"])
    assert bad.exit_code == 2 and "--target-mb must be positive" in bad.output


def test_status_says_how_long_a_log_another_job_holds_has_gone_without_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ops.status import job_lines
    from setlist import jobmetrics
    from setlist.settings import get_settings

    data = tmp_path / "data"
    monkeypatch.setenv("SETLIST_DATA_DIR", str(data))
    monkeypatch.setenv("SETLIST_HMAC_KEY", "k")
    log = journal(data / "events", files=3)
    runner = CliRunner()

    def last_compacted() -> dict[str, float]:
        samples = jobmetrics.read_status(get_settings().status_dir)["compaction"]
        return {
            dict(labels)["dataset"]: value
            for (name, labels), value in samples.items()
            if name == "setlist_compaction_last_timestamp_seconds"
        }

    assert runner.invoke(app, ["all", "--min-age-s", "0"]).exit_code == 0
    first = last_compacted()
    assert "events" in first and not [x for x in job_lines(get_settings(), time.time()) if "(events)" in x.name]

    log.append(events("late", 5), name="journal-late")
    with swap.locked(log.root, shared=True):  # a long job reading the log at compaction's hour
        held = runner.invoke(app, ["all", "--min-age-s", "0"])
    assert held.exit_code == 0 and "skipped" in held.output, held.output
    assert last_compacted()["events"] == first["events"]  # the time before the skip, not this run's
    assert last_compacted()["quarantine"] > first["quarantine"]
    (line,) = [x for x in job_lines(get_settings(), first["events"] + 3 * 86_400) if x.name == "compaction (events)"]
    assert line.mark == "warn" and "another job was using it; last compacted 3.0 d ago" in line.value

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # a run stopped part-way keeps every dataset's time as well
        m.setattr("ingest.lifecycle.run_compaction", stopped)
        assert runner.invoke(app, ["all", "--min-age-s", "0"]).exit_code == 130
    assert last_compacted()["events"] == first["events"]

    assert runner.invoke(app, ["all", "--min-age-s", "0"]).exit_code == 0  # free again: the line goes
    assert last_compacted()["events"] > first["events"]
    assert not [x for x in job_lines(get_settings(), time.time()) if x.name.startswith("compaction (")]
