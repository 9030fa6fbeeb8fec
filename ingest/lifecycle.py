"""``python -m ingest.lifecycle compact|downsample|all`` — keep the stored datasets few-filed and small.

``compact`` merges each partition's small files (``setlist.compaction``); ``downsample`` turns old
impressions into daily counts (``setlist.downsample``); ``all`` does both, down-sampling first so that
days about to be counted are not merged first. Both are atomic and idempotent: run them as
often as you like, and a killed run is finished by the next one. ``--dry-run`` prints what would
change and changes nothing. Errors are ``setlist.errors`` exceptions, printed by ``setlist.cli.App``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import typer
from rich.table import Table

from setlist import jobmetrics
from setlist.cli import App
from setlist.cli import console as cli_console
from setlist.compaction import CompactionReport, datasets
from setlist.compaction import compact as run_compaction
from setlist.downsample import DownsampleStats
from setlist.downsample import downsample as run_downsample
from setlist.errors import UsageError
from setlist.settings import Settings, get_settings

app = App(add_completion=False, help="Compact the stored datasets and down-sample old impressions.")
console = cli_console()
_PLAN_ROWS = 40  # a dry run lists this many partitions, then a count
LAST_COMPACTED = "setlist_compaction_last_timestamp_seconds"


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


@app.command()
def compact(
    dry_run: bool = typer.Option(False, "--dry-run", help="print what would be merged; change nothing"),
    target_mb: float | None = typer.Option(
        None, "--target-mb", help="about how large a merged file grows (default SETLIST_COMPACTION_TARGET_MB, 128)"
    ),
    min_age_s: float | None = typer.Option(
        None, "--min-age-s", help="leave files younger than this alone (default SETLIST_COMPACTION_MIN_AGE_S, 3600)"
    ),
) -> None:
    """Merge each partition's small files (event log, impressions, quarantine) into files of about --target-mb."""
    settings = get_settings()
    target_bytes = int((target_mb if target_mb is not None else settings.compaction_target_mb) * 2**20)
    age = min_age_s if min_age_s is not None else settings.compaction_min_age_s
    if target_bytes <= 0:
        raise UsageError("--target-mb must be positive")
    if age < 0:
        raise UsageError("--min-age-s must not be negative")
    with console.status("compacting…") as status:
        report = run_compaction(
            datasets(settings), target_bytes, age, dry_run, progress=lambda step: status.update(f"compacting: {step}")
        )
    console.print(compaction_table(report))
    if dry_run:
        console.print(plan_table(report))
    else:
        _record(report)
    for d in report.datasets:
        for note in d.notes:
            console.print(f"  {d.dataset}: {note}")


def _carry_compaction_times(settings: Settings) -> None:
    """The previous run's time for each dataset, before anything runs: a dataset this run skips, and every
    dataset of a run that fails or is stopped, keeps it in the new status file."""
    metrics = jobmetrics.current()
    for (name, labels), value in jobmetrics.read_status(settings.status_dir).get(metrics.job, {}).items():
        if name == LAST_COMPACTED and labels and labels[0][0] == "dataset":
            metrics.set(LAST_COMPACTED, value, dataset=labels[0][1])


def _record(report: CompactionReport) -> None:
    """When each dataset was last compacted, for ``make status``: so a log that a long job holds at every
    run's hour shows how long it has gone without one."""
    metrics = jobmetrics.current()
    now = time.time()
    for d in report.datasets:
        if not d.skipped:
            metrics.set(LAST_COMPACTED, now, dataset=d.dataset)
        metrics.set("setlist_compaction_skipped", 1.0 if d.skipped else 0.0, dataset=d.dataset)


def compaction_table(report: CompactionReport) -> Table:
    title = (
        f"compaction into ~{report.target_bytes / 2**20:g} MiB files; files younger than {report.min_age_s:g} s wait"
    )
    if report.dry_run:
        title += " (dry run: nothing changed; 'after' is the plan, its size unknown until written)"
    table = Table(title=title)
    for column in ("dataset", "files before", "files after", "MB before", "MB after", "partitions merged", "rows"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for d in report.datasets:
        rows = f"{d.rows_in:,} → {d.rows_out:,}" if d.rows_in else "—"
        dropped = [f"{d.duplicates:,} repeated" if d.duplicates else "", f"{d.erased:,} erased" if d.erased else ""]
        if any(dropped):
            rows += f" ({', '.join(x for x in dropped if x)})"
        table.add_row(
            d.dataset,
            f"{d.files_before:,}",
            f"{d.files_after:,}",
            _mb(d.bytes_before),
            _mb(d.bytes_after),
            f"{len(d.merges):,}" + (f" ({d.young:,} young files left)" if d.young else ""),
            rows,
        )
    return table


def plan_table(report: CompactionReport) -> Table:
    table = Table(title="would merge")
    for column in ("dataset", "partition", "files", "MB", "into files"):
        table.add_column(column, justify="left" if column in ("dataset", "partition") else "right")
    merges = [(d.dataset, m) for d in report.datasets for m in d.merges]
    for name, m in merges[:_PLAN_ROWS]:
        table.add_row(name, m.partition, f"{m.inputs:,}", _mb(m.input_bytes), f"{m.outputs:,}")
    if len(merges) > _PLAN_ROWS:
        table.add_row("…", f"and {len(merges) - _PLAN_ROWS:,} more partitions", "", "", "")
    if not merges:
        table.add_row("—", "nothing to merge", "", "", "")
    return table


@app.command()
def downsample(
    dry_run: bool = typer.Option(False, "--dry-run", help="print what would be counted; change nothing"),
    older_than_days: float | None = typer.Option(
        None, "--older-than-days", help="count the days older than this (default SETLIST_IMPRESSIONS_RAW_DAYS, 30)"
    ),
    min_age_s: float | None = typer.Option(
        None, "--min-age-s", help="leave files younger than this alone (default SETLIST_COMPACTION_MIN_AGE_S, 3600)"
    ),
) -> None:
    """Turn impressions older than --older-than-days into daily counts per arm, position, model and slate kind."""
    settings = get_settings()
    days = settings.impressions_raw_days if older_than_days is None else older_than_days
    age = min_age_s if min_age_s is not None else settings.compaction_min_age_s
    if days < 0:
        raise UsageError("--older-than-days must not be negative")
    now = datetime.now(UTC)
    results = []
    with console.status("down-sampling…") as status:
        for d in datasets(settings):
            if d.layout != "impressions":
                continue
            results.append(
                run_downsample(
                    d.root,
                    days,
                    now=now,
                    dry_run=dry_run,
                    min_age_s=age,
                    tombstones=d.tombstones,
                    name=d.name,
                    progress=lambda step: status.update(f"down-sampling: {step}"),
                )
            )
    console.print(downsample_table(results, days, dry_run))
    for r in results:
        for note in r.notes:
            console.print(f"  {r.dataset}: {note}")


def downsample_table(results: list[DownsampleStats], days: float, dry_run: bool) -> Table:
    title = f"impressions older than {days:g} days as daily counts"
    if dry_run:
        title += " (dry run: nothing changed)"
    table = Table(title=title)
    columns = ("dataset", "days before", "days counted", "raw rows", "count rows", "files before", "files after")
    for column in (*columns, "MB before", "MB after"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for r in results:
        table.add_row(
            r.dataset,
            r.before_day.isoformat(),
            f"{len(r.days):,}",
            f"{r.raw_rows:,}" + (f" ({r.erased:,} erased)" if r.erased else ""),
            f"{r.aggregate_rows:,}" if not dry_run else "—",
            f"{r.files_before:,}",
            f"{r.files_after:,}",
            _mb(r.bytes_before),
            _mb(r.bytes_after),
        )
    return table


@app.command(name="all")
@jobmetrics.reports("compaction")
def run_all(
    dry_run: bool = typer.Option(False, "--dry-run", help="print what would change; change nothing"),
    min_age_s: float | None = typer.Option(
        None, "--min-age-s", help="leave files younger than this alone (default SETLIST_COMPACTION_MIN_AGE_S, 3600)"
    ),
) -> None:
    """Down-sample old impressions, then compact every dataset (what `make compact` runs)."""
    if not dry_run:
        _carry_compaction_times(get_settings())
    downsample(dry_run=dry_run, older_than_days=None, min_age_s=min_age_s)
    compact(dry_run=dry_run, target_mb=None, min_age_s=min_age_s)


if __name__ == "__main__":
    app()
