"""``python -m ops schedule``: run the pipeline's scheduled jobs on this machine until stopped.

The jobs, their cron times, retries and deadlines come from ``ops/schedule.yaml``, the file the
Kubernetes CronJobs are checked against. SIGINT or SIGTERM stops the running jobs (SIGTERM, then
SIGKILL after a grace period) and exits 0. ``--once JOB`` runs one job now, with its retries, and exits
with its result, for an outside cron or a quick check; ``--dry-run`` prints when each job runs next.
One scheduler at a time schedules a job on a data directory (``setlist.turns.scheduling``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import islice
from pathlib import Path
from types import FrameType

import typer
from rich.markup import escape
from rich.table import Table

from ops import jobtable
from ops.jobtable import SCHEDULE_FILE, Schedule
from ops.scheduler import Clock, Runner, Scheduler, SystemClock
from setlist import turns
from setlist.cli import console as cli_console
from setlist.cli import require_data_dir
from setlist.errors import UsageError
from setlist.settings import get_settings

DRY_RUN_TIMES = 3  # run times --dry-run lists per job
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def command(
    once: str | None = typer.Option(None, "--once", metavar="JOB", help="run this job now, with its retries, and exit"),
    jobs: str | None = typer.Option(None, "--jobs", help="comma-separated jobs to schedule (default: all of them)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print each job's next run times and exit"),
    schedule_file: Path = typer.Option(
        SCHEDULE_FILE, "--schedule", help="the schedule file", show_default="ops/schedule.yaml"
    ),
) -> None:
    """Run the scheduled jobs on this machine until stopped (materialize, validate, train, retention, compaction)."""
    schedule = jobtable.load(schedule_file)
    if once is not None and jobs is not None:
        raise UsageError("--once runs one job; leave out --jobs")
    if jobs is not None:
        schedule = schedule.select(jobs.split(","))
    if dry_run:
        cli_console().print(plan_table(schedule, SystemClock().now()))
        return
    code = run(schedule, once)
    if code:
        raise typer.Exit(code)


def run(schedule: Schedule, once: str | None, runner: Runner | None = None, clock: Clock | None = None) -> int:
    """Schedule the jobs until a stop signal (exit code 0), or run ``once`` (its run's exit code)."""
    console = cli_console()
    clock = clock or SystemClock()

    def say(line: str) -> None:
        console.print(f"[dim]{clock.now():%Y-%m-%d %H:%M:%S}[/] {escape(line)}", highlight=False)

    with _stop_on_signals() as stop:
        scheduler = Scheduler(schedule, say, stop, runner=runner, clock=clock)
        if once is not None:
            return scheduler.once(once).exit_code
        settings = get_settings()
        # a mistyped SETLIST_DATA_DIR would otherwise be made here and every job scheduled on it
        require_data_dir(settings.data_dir, "check the setting, or run make demo, make generate or make import first")
        with turns.scheduling(settings, schedule.jobs):
            say(f"scheduling {', '.join(schedule.jobs)} (times in {schedule.timezone}); Ctrl-C stops")
            scheduler.run()
        say("stopped")
        return 0


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs; the previous handlers come back after."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in _STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def plan_table(schedule: Schedule, now: datetime) -> Table:
    table = Table(title=f"Scheduled jobs (times in {schedule.timezone})")
    for column in ("job", "cron", "command", "retries", "deadline", "next runs"):
        table.add_column(column)
    for job in schedule.jobs.values():
        times = islice(jobtable.next_runs(schedule, job, now), DRY_RUN_TIMES)
        table.add_row(
            job.name,
            job.cron,
            " ".join(job.command),
            str(job.retries),
            f"{job.deadline_s}s",
            "\n".join(f"{t:%Y-%m-%d %H:%M}" for t in times),
        )
    return table
