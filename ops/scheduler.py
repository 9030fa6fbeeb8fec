"""Run a schedule's jobs on one machine: on their cron times, one run of a job at a time, retried with
backoff, each attempt held to its deadline.

It behaves like the CronJobs of deploy/k8s (``concurrencyPolicy: Forbid``, ``backoffLimit``, the pod's
``activeDeadlineSeconds``, ``startingDeadlineSeconds``), so a job misbehaves the same way on both. The
loop is single-threaded and polls its subprocesses; the clock and the way a process is started are
passed in (``ops.runner``), so tests drive it with a fake clock and fake processes instead of waiting.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ops.jobtable import PYTHON, Job, Schedule, next_run
from ops.runner import Clock, Process, Runner, SubprocessRunner, SystemClock

POLL_S = 0.5  # how often a running job is checked: the deadline and the end of a run are this late at most
MAX_PAUSE_S = 60.0  # the wall clock is read at least this often, in case it jumps
KILL_GRACE_S = 30.0  # SIGTERM, then this long before SIGKILL: Kubernetes' default termination grace
KILL_WAIT_S = 10.0  # after SIGKILL, how long a stop waits for the process to go
DEADLINE_EXIT = 124  # exit code of a run killed at its deadline, as timeout(1) returns
NOT_STARTED_EXIT = 127  # the command could not be started, as a shell returns
STOPPED_EXIT = 130  # the scheduler was stopped before the run ended
SIGNAL_EXIT_BASE = 128  # a run killed by signal N exits 128 + N, as a shell reports it


def argv(job: Job, python: str = sys.executable) -> list[str]:
    """The command to run: a leading ``python`` is this interpreter (the venv's, with the packages)."""
    first, *rest = job.command
    return [python if first == PYTHON else first, *rest]


def retry_delay(job: Job, schedule: Schedule, attempt: int) -> float | None:
    """After attempt ``attempt`` (1-based) of a run failed: the pause before the next, or None when the
    job's retries are used up."""
    return schedule.backoff.delay(attempt) if attempt <= job.retries else None


def overdue(job: Job, started: float, now: float) -> bool:
    return now - started >= job.deadline_s


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


@dataclass(frozen=True)
class Outcome:
    job: str
    run: int
    status: Literal["succeeded", "failed", "stopped"]
    exit_code: int  # what ``--once`` exits with
    attempts: int


@dataclass
class _Run:
    number: int
    attempt: int = 1
    process: Process | None = None
    started: float = 0.0
    retry_at: float | None = None
    stopping_since: float | None = None  # SIGTERM sent (deadline); SIGKILL follows after the grace
    killed: bool = False
    timed_out: bool = False


class Scheduler:
    """``run()`` until ``stop`` is set; ``once(job)`` for one run with its retries. ``say`` gets one
    line per event ("materialize: run 3 started")."""

    def __init__(
        self,
        schedule: Schedule,
        say: Callable[[str], None],
        stop: threading.Event,
        *,
        runner: Runner | None = None,
        clock: Clock | None = None,
        python: str = sys.executable,
        kill_grace_s: float = KILL_GRACE_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.schedule = schedule
        self.say = say
        self.stop = stop
        self.runner: Runner = runner or SubprocessRunner()
        self.clock: Clock = clock or SystemClock()
        self.python = python
        self.kill_grace_s = kill_grace_s
        self.poll_s = poll_s
        self.outcomes: list[Outcome] = []
        self._runs: dict[str, _Run] = {}
        self._due: dict[str, datetime] = {}
        self._count: dict[str, int] = {}

    # -- driving ----------------------------------------------------------------------------------

    def run(self) -> None:
        now = self.clock.now()
        for job in self.schedule.jobs.values():
            self._plan(job, now)
        while not self.stop.is_set():
            self.tick()
            self.clock.wait(self.stop, self._pause())
        self._shut_down()

    def once(self, name: str) -> Outcome:
        job = self.schedule.select([name]).jobs[name]
        self._start_run(job, self.clock.monotonic())
        while name in self._runs and not self.stop.is_set():
            self.tick()
            if name in self._runs:
                self.clock.wait(self.stop, self._pause())
        self._shut_down()
        return next(o for o in reversed(self.outcomes) if o.job == name)

    def tick(self) -> None:
        """Advance every run (end, deadline, retry), then start the jobs whose time has come."""
        now = self.clock.monotonic()
        for name, run in list(self._runs.items()):
            self._advance(self.schedule.jobs[name], run, now)
        wall = self.clock.now()
        for name, due in list(self._due.items()):
            if due > wall:
                continue
            job = self.schedule.jobs[name]
            late = (wall - due).total_seconds()
            if name in self._runs:
                self.say(f"{name}: skipped the {self._at(due)} run: run {self._runs[name].number} is still going")
            elif late > self.schedule.starting_deadline_s:
                self.say(f"{name}: skipped the {self._at(due)} run: {late:.0f}s late, past the starting deadline")
            else:
                self._start_run(job, now)
            self._plan(job, wall)

    # -- one run ----------------------------------------------------------------------------------

    def _plan(self, job: Job, after: datetime) -> None:
        self._due[job.name] = next_run(self.schedule, job, after)
        self.say(f"{job.name}: next run at {self._at(self._due[job.name])}")

    def _start_run(self, job: Job, now: float) -> None:
        self._count[job.name] = self._count.get(job.name, 0) + 1
        run = _Run(self._count[job.name])
        self._runs[job.name] = run
        self._start_attempt(job, run, now)

    def _start_attempt(self, job: Job, run: _Run, now: float) -> None:
        of = f" (attempt {run.attempt}/{job.retries + 1})" if run.attempt > 1 else ""
        self.say(f"{job.name}: run {run.number} started{of}")
        run.retry_at, run.stopping_since, run.killed, run.timed_out = None, None, False, False
        run.started = now
        try:
            run.process = self.runner.start(argv(job, self.python))
        except OSError as exc:
            run.process = None
            self._failed(job, run, now, f"could not start ({exc.strerror or exc})", NOT_STARTED_EXIT)

    def _advance(self, job: Job, run: _Run, now: float) -> None:
        if run.process is None:
            if run.retry_at is not None and now >= run.retry_at:
                self._start_attempt(job, run, now)
            return
        code = run.process.poll()
        if code is None:
            if run.stopping_since is None and overdue(job, run.started, now):
                self.say(f"{job.name}: run {run.number} passed its deadline of {job.deadline_s}s, stopping it")
                run.timed_out, run.stopping_since = True, now
                run.process.terminate()
            elif run.stopping_since is not None and not run.killed and now - run.stopping_since >= self.kill_grace_s:
                run.killed = True
                run.process.kill()
            return
        run.process = None
        if code == 0 and not run.timed_out:
            self.say(f"{job.name}: succeeded in {now - run.started:.1f}s")
            self._end(job, run, "succeeded", 0)
        elif run.timed_out:
            self._failed(job, run, now, f"passed its deadline ({describe_exit(code)})", DEADLINE_EXIT)
        else:
            exit_code = code if code > 0 else SIGNAL_EXIT_BASE - code
            self._failed(job, run, now, f"failed ({describe_exit(code)})", exit_code)

    def _failed(self, job: Job, run: _Run, now: float, reason: str, exit_code: int) -> None:
        delay = retry_delay(job, self.schedule, run.attempt)
        if delay is None or self.stop.is_set():
            tries = f"{run.attempt} attempts" if run.attempt > 1 else "1 attempt"
            self.say(f"{job.name}: {reason}, giving up after {tries}")
            self._end(job, run, "failed", exit_code)
            return
        self.say(f"{job.name}: {reason}, retry {run.attempt}/{job.retries} in {delay:g}s")
        run.retry_at = now + delay
        run.attempt += 1

    def _end(self, job: Job, run: _Run, status: Literal["succeeded", "failed", "stopped"], code: int) -> None:
        self._runs.pop(job.name, None)
        self.outcomes.append(Outcome(job.name, run.number, status, code, run.attempt))

    # -- waiting and stopping ---------------------------------------------------------------------

    def _pause(self) -> float:
        """How long to wait before the next tick: until the next poll, retry or cron time."""
        now, wall = self.clock.monotonic(), self.clock.now()
        waits = [MAX_PAUSE_S] + [(due - wall).total_seconds() for due in self._due.values()]
        for run in self._runs.values():
            if run.process is not None:
                waits.append(self.poll_s)
            elif run.retry_at is not None:
                waits.append(run.retry_at - now)
        return max(0.0, min(waits))

    def _shut_down(self) -> None:
        """Stop what is running (SIGTERM, then SIGKILL after the grace) and cancel pending retries."""
        for name, run in self._runs.items():
            if run.process is not None:
                self.say(f"{name}: stopping run {run.number}")
                run.process.terminate()
        since = self.clock.monotonic()
        killed = False
        while any(r.process is not None and r.process.poll() is None for r in self._runs.values()):
            waited = self.clock.monotonic() - since
            if killed and waited >= self.kill_grace_s + KILL_WAIT_S:
                self.say("some jobs did not end after SIGKILL; leaving them")  # stuck in the kernel (D state)
                break
            if not killed and waited >= self.kill_grace_s:
                killed = True
                for run in self._runs.values():
                    if run.process is not None:
                        run.process.kill()
            self.clock.sleep(self.poll_s)
        for name, run in list(self._runs.items()):
            self.say(f"{name}: run {run.number} stopped" if run.process else f"{name}: retry cancelled")
            self._end(self.schedule.jobs[name], run, "stopped", STOPPED_EXIT)

    def _at(self, moment: datetime) -> str:
        return moment.astimezone(self.schedule.zone).strftime("%Y-%m-%d %H:%M %Z")
