"""The schedule: ops/schedule.yaml, the CronJobs that must match it, and the one-machine scheduler
(driven here by a fake clock and fake processes, plus one run of real subprocesses)."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ops import jobtable
from ops.jobtable import Backoff, Job, Schedule
from ops.schedule import command
from ops.scheduler import DEADLINE_EXIT, STOPPED_EXIT, Scheduler, retry_delay
from setlist.cli import App
from setlist.errors import BadInput, InputMissing, Refused, UsageError
from setlist.settings import setting_variables

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
IMAGE_PYTHON = "/app/.venv/bin/python"  # the Dockerfile's venv interpreter (test_production_deploy checks it)
JOBS = ("materialize", "validate", "train", "retention", "compaction")
START = datetime(2024, 1, 1, 0, 59, tzinfo=UTC)
BACKOFF = Backoff(10, 360)  # the Kubernetes Job controller's, as in ops/schedule.yaml


# -- the schedule file ----------------------------------------------------------------------------


def test_the_schedule_has_the_pipelines_jobs_and_their_modules_exist():
    schedule = jobtable.load()
    assert tuple(schedule.jobs) == JOBS
    for job in schedule.jobs.values():
        assert job.command[:2] == ("python", "-m"), job.name
        assert importlib.util.find_spec(job.command[2]) is not None, job.command


def test_every_run_fits_before_the_jobs_next_time():
    """With Forbid, a run still going at the next time skips it: retries included, none should."""
    schedule = jobtable.load()
    for job in schedule.jobs.values():
        assert jobtable.run_budget_s(job, schedule.backoff) < jobtable.shortest_gap_s(schedule, job, START), job.name


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedule.yaml"
    path.write_text(text)
    return path


GOOD = """
backoff: {first_s: 10, max_s: 360}
starting_deadline_s: 600
jobs:
  hourly: {cron: "0 * * * *", command: [python, -m, x], retries: 2, deadline_s: 60}
"""


@pytest.mark.parametrize(
    ("text", "error", "says"),
    [
        ("jobs: [", BadInput, "not valid YAML"),
        (GOOD.replace('"0 * * * *"', '"61 * * * *"'), BadInput, "jobs.hourly.cron"),
        (GOOD.replace("retries: 2", "retries: -1"), BadInput, "jobs.hourly.retries"),
        (GOOD.replace("retries: 2", "retries: 2, image: x"), BadInput, "jobs.hourly.image"),
        (GOOD.replace("hourly:", "Hourly_Job:"), BadInput, "lower-case"),
        (GOOD + "timezone: Mars/Olympus\n", BadInput, "time zone"),
        ("- just a list\n", BadInput, "the file"),
    ],
)
def test_a_malformed_schedule_is_one_clear_error(tmp_path: Path, text: str, error: type[Exception], says: str):
    with pytest.raises(error, match=says) as caught:
        jobtable.load(_write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_a_missing_schedule_and_unknown_jobs(tmp_path: Path):
    with pytest.raises(InputMissing):
        jobtable.load(tmp_path / "absent.yaml")
    schedule = jobtable.load(_write(tmp_path, GOOD))
    with pytest.raises(UsageError, match="unknown job nope; the schedule has hourly"):
        schedule.select(["hourly", "nope"])
    assert list(schedule.select(["hourly", ""]).jobs) == ["hourly"]


# -- the pure parts -------------------------------------------------------------------------------


def _job(name: str = "job", cron: str = "0 * * * *", retries: int = 2, deadline_s: int = 600, **kw: Any) -> Job:
    return Job(name, cron, kw.get("command", ("python", "-m", name)), retries, deadline_s)


def _schedule(*jobs: Job, backoff: Backoff = BACKOFF, timezone: str = "Etc/UTC") -> Schedule:
    return Schedule(timezone, backoff, starting_deadline_s=600, jobs={j.name: j for j in jobs})


def test_next_run_is_strictly_after_and_in_the_schedules_time_zone():
    schedule = _schedule(_job(cron="30 2 * * *"), timezone="Europe/Berlin")
    job = schedule.jobs["job"]
    at = datetime(2024, 7, 1, 0, 30, tzinfo=UTC)  # 02:30 in Berlin (summer time)
    assert jobtable.next_run(schedule, job, at) == datetime(2024, 7, 2, 0, 30, tzinfo=UTC)
    assert jobtable.next_run(schedule, job, at - timedelta(seconds=1)) == at


def test_backoff_doubles_up_to_its_cap_and_retries_run_out():
    schedule = _schedule(_job(retries=3), backoff=Backoff(10, 30))
    job = schedule.jobs["job"]
    assert [retry_delay(job, schedule, attempt) for attempt in (1, 2, 3, 4)] == [10, 20, 30, None]
    assert jobtable.run_budget_s(job, schedule.backoff) == 4 * 600 + 10 + 20 + 30


# -- the scheduler, with a fake clock and fake processes ------------------------------------------


class FakeClock:
    """Time moves only when the scheduler waits; ``stop_after`` seconds in, it sets the stop event."""

    def __init__(self, stop_after: float | None = None, start: datetime = START) -> None:
        self.start, self.t, self.stop_after, self.waits = start, 0.0, stop_after, 0

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def wait(self, stop: threading.Event, seconds: float) -> None:
        self.waits += 1
        assert self.waits < 100_000, "the scheduler is spinning"
        self.t += seconds
        if self.stop_after is not None and self.t >= self.stop_after:
            stop.set()

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeProcess:
    clock: FakeClock
    code: int
    runs_for: float
    ignores_term: bool = False
    started: float = 0.0
    signals: list[str] = field(default_factory=list)
    _ended: int | None = None

    def poll(self) -> int | None:
        if self._ended is None and self.clock.t - self.started >= self.runs_for:
            self._ended = self.code
        return self._ended

    def terminate(self) -> None:
        self.signals.append("TERM")
        if not self.ignores_term and self._ended is None:
            self._ended = -15

    def kill(self) -> None:
        self.signals.append("KILL")
        if self._ended is None:
            self._ended = -9


class FakeRunner:
    """``plan(argv, n)`` says how the n-th start (1-based) behaves: (exit code, seconds, ignores SIGTERM)."""

    def __init__(self, clock: FakeClock, plan: Callable[[Sequence[str], int], tuple[int, float, bool]]) -> None:
        self.clock, self.plan = clock, plan
        self.started: list[tuple[str, float]] = []  # (module, when)
        self.processes: list[FakeProcess] = []

    def start(self, argv: Sequence[str]) -> FakeProcess:
        self.started.append((argv[-1], self.clock.t))
        code, runs_for, ignores_term = self.plan(argv, len(self.started))
        process = FakeProcess(self.clock, code, runs_for, ignores_term, started=self.clock.t)
        self.processes.append(process)
        return process


def _scheduler(schedule: Schedule, clock: FakeClock, runner: FakeRunner, **kw: Any) -> tuple[Scheduler, list[str]]:
    lines: list[str] = []
    scheduler = Scheduler(schedule, lines.append, threading.Event(), runner=runner, clock=clock, **kw)
    return scheduler, lines


def test_once_retries_with_backoff_until_it_succeeds():
    clock = FakeClock()
    runner = FakeRunner(clock, lambda argv, n: (1 if n < 3 else 0, 5.0, False))
    scheduler, lines = _scheduler(_schedule(_job(retries=3)), clock, runner, poll_s=1.0)
    outcome = scheduler.once("job")
    assert (outcome.status, outcome.exit_code, outcome.attempts) == ("succeeded", 0, 3)
    starts = [t for _, t in runner.started]
    # each attempt runs 5 s; the pauses before the retries are 10 s, then 20 s
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [15.0, 25.0]
    assert "job: failed (exit 1), retry 1/3 in 10s" in lines
    assert "job: failed (exit 1), retry 2/3 in 20s" in lines
    assert "job: run 1 started (attempt 3/4)" in lines
    assert lines[-1] == "job: succeeded in 5.0s"


def test_once_gives_up_after_the_retries_with_the_jobs_exit_code():
    clock = FakeClock()
    runner = FakeRunner(clock, lambda argv, n: (2, 1.0, False))
    scheduler, lines = _scheduler(_schedule(_job(retries=2)), clock, runner)
    outcome = scheduler.once("job")
    assert (outcome.status, outcome.exit_code, outcome.attempts) == ("failed", 2, 3)
    assert len(runner.started) == 3
    assert lines[-1] == "job: failed (exit 2), giving up after 3 attempts"


def test_a_run_past_its_deadline_is_stopped_then_killed_and_retried():
    clock = FakeClock()
    # the first attempt hangs and ignores SIGTERM; the second hangs and obeys it
    runner = FakeRunner(clock, lambda argv, n: (0, 10_000.0, n == 1))
    scheduler, lines = _scheduler(_schedule(_job(retries=1, deadline_s=60)), clock, runner, kill_grace_s=30)
    outcome = scheduler.once("job")
    first, second = runner.processes
    assert first.signals == ["TERM", "KILL"] and second.signals == ["TERM"]
    assert (outcome.status, outcome.exit_code) == ("failed", DEADLINE_EXIT)
    assert "job: run 1 passed its deadline of 60s, stopping it" in lines
    assert "job: passed its deadline (killed by SIGKILL), retry 1/1 in 10s" in lines
    # attempt 2 started after 60 s, 30 s of grace and a 10 s pause (give or take one poll)
    assert 100 <= runner.started[1][1] <= 101


def test_runs_start_on_their_cron_times():
    clock = FakeClock(stop_after=2.5 * 3600)  # 00:59 → 03:29
    runner = FakeRunner(clock, lambda argv, n: (0, 600.0, False))
    scheduler, lines = _scheduler(_schedule(_job()), clock, runner)
    scheduler.run()
    assert [clock.start + timedelta(seconds=t) for _, t in runner.started] == [
        datetime(2024, 1, 1, hour, tzinfo=UTC) for hour in (1, 2, 3)
    ]
    assert lines[0] == "job: next run at 2024-01-01 01:00 UTC"
    assert [o.status for o in scheduler.outcomes] == ["succeeded"] * 3


def test_forbid_skips_a_time_while_the_previous_run_is_going():
    clock = FakeClock(stop_after=3 * 3600)  # 00:59 → 03:59
    runner = FakeRunner(clock, lambda argv, n: (0, 5400.0, False))  # 90 minutes each
    scheduler, lines = _scheduler(_schedule(_job(deadline_s=7200)), clock, runner)
    scheduler.run()
    hours = [(clock.start + timedelta(seconds=t)).hour for _, t in runner.started]
    assert hours == [1, 3]
    assert "job: skipped the 2024-01-01 02:00 UTC run: run 1 is still going" in lines


def test_a_run_waiting_for_its_retry_also_blocks_the_next_time():
    clock = FakeClock(stop_after=3600 + 120)
    runner = FakeRunner(clock, lambda argv, n: (1, 3590.0, False))
    schedule = _schedule(_job(retries=1, deadline_s=3600), backoff=Backoff(60, 60))
    scheduler, lines = _scheduler(schedule, clock, runner)
    scheduler.run()
    # 01:00 fails at 01:59:50, its retry waits until 02:00:50, so 02:00 finds it still pending
    assert "job: skipped the 2024-01-01 02:00 UTC run: run 1 is still going" in lines


def test_a_time_missed_by_more_than_the_starting_deadline_is_skipped():
    class Asleep(FakeClock):
        def wait(self, stop: threading.Event, seconds: float) -> None:
            # the machine sleeps through 01:00 on the first wait and wakes at 02:30
            super().wait(stop, 91 * 60.0 if self.waits == 0 else seconds)

    clock = Asleep(stop_after=130 * 60)  # 00:59 → 03:09
    runner = FakeRunner(clock, lambda argv, n: (0, 10.0, False))
    scheduler, lines = _scheduler(_schedule(_job()), clock, runner)
    scheduler.run()
    assert [(clock.start + timedelta(seconds=t)).hour for _, t in runner.started] == [3]
    assert "job: skipped the 2024-01-01 01:00 UTC run: 5400s late, past the starting deadline" in lines
    assert "job: next run at 2024-01-01 03:00 UTC" in lines


def test_stopping_ends_the_running_job_and_cancels_retries():
    clock = FakeClock(stop_after=3600 + 60)  # a minute into the 01:00 runs
    plans = {"long": (0, 10_000.0, False), "flaky": (1, 1.0, False)}
    runner = FakeRunner(clock, lambda argv, n: plans[argv[-1]])
    schedule = _schedule(_job("long", deadline_s=7200), _job("flaky"), backoff=Backoff(3600, 3600))
    scheduler, lines = _scheduler(schedule, clock, runner)
    scheduler.run()
    assert runner.processes[0].signals == ["TERM"]
    assert {(o.job, o.status, o.exit_code) for o in scheduler.outcomes} == {
        ("long", "stopped", STOPPED_EXIT),
        ("flaky", "stopped", STOPPED_EXIT),
    }
    assert "long: run 1 stopped" in lines and "flaky: retry cancelled" in lines


def test_a_command_that_cannot_start_is_a_failed_attempt():
    clock = FakeClock()

    class Missing(FakeRunner):
        def start(self, argv: Sequence[str]) -> FakeProcess:
            raise FileNotFoundError(2, "No such file or directory")

    scheduler, lines = _scheduler(_schedule(_job(retries=0)), clock, Missing(clock, lambda a, n: (0, 0, False)))
    outcome = scheduler.once("job")
    assert (outcome.status, outcome.exit_code) == ("failed", 127)
    assert lines[-1] == "job: could not start (No such file or directory), giving up after 1 attempt"


# -- the command, with real subprocesses ----------------------------------------------------------


def _app() -> App:
    # ops/__main__.py registers the same function as `python -m ops schedule`
    app = App(add_completion=False)
    app.command("schedule")(command)
    app.command("other")(lambda: None)  # a second command keeps `schedule` a subcommand
    return app


def _real_schedule(tmp_path: Path, script: str, retries: int = 2) -> Path:
    return _write(
        tmp_path,
        yaml.safe_dump(
            {
                "backoff": {"first_s": 0, "max_s": 0},
                "starting_deadline_s": 60,
                "jobs": {
                    "flaky": {
                        "cron": "* * * * *",
                        "command": ["python", "-c", script],
                        "retries": retries,
                        "deadline_s": 60,
                    }
                },
            }
        ),
    )


def test_once_retries_a_real_failing_command_and_exits_with_its_code(tmp_path: Path):
    path = _real_schedule(tmp_path, "import sys; sys.exit(1)")
    result = CliRunner().invoke(_app(), ["schedule", "--schedule", str(path), "--once", "flaky"])
    assert result.exit_code == 1, result.output
    assert "flaky: failed (exit 1), retry 1/2 in 0s" in result.output
    assert "flaky: failed (exit 1), retry 2/2 in 0s" in result.output
    assert "flaky: failed (exit 1), giving up after 3 attempts" in result.output


def test_once_succeeds_on_a_retry_of_a_real_command(tmp_path: Path):
    marker = tmp_path / "tried"
    script = f"import pathlib, sys; p = pathlib.Path({str(marker)!r}); sys.exit(0 if p.exists() else p.touch() or 3)"
    result = CliRunner().invoke(
        _app(), ["schedule", "--schedule", str(_real_schedule(tmp_path, script)), "--once", "flaky"]
    )
    assert result.exit_code == 0, result.output
    assert "flaky: failed (exit 3), retry 1/2 in 0s" in result.output and "flaky: succeeded in" in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--once", "nope"], "unknown job nope"),
        (["--jobs", "train,nope"], "unknown job nope"),
        (["--once", "train", "--jobs", "train"], "leave out --jobs"),
        (["--schedule", "absent.yaml"], "no schedule file"),
    ],
)
def test_bad_input_is_a_one_line_error(args: list[str], says: str):
    result = CliRunner().invoke(_app(), ["schedule", *args])
    assert result.exit_code == 2
    assert says in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_second_scheduler_of_the_same_job_on_one_data_directory_is_refused_before_it_runs_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import os

    from ops.schedule import run
    from setlist import turns
    from setlist.settings import Settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    settings = Settings(data_dir=tmp_path / "data")
    schedule = _schedule(_job(name="train"), _job(name="validate"))
    clock = FakeClock(stop_after=3600.0)
    runner = FakeRunner(clock, lambda argv, n: (0, 1.0, False))
    with turns.scheduling(settings, ["validate"]):  # the first scheduler
        with pytest.raises(Refused, match=rf"validate is already scheduled on .* \(pid {os.getpid()}\)"):
            run(schedule, None, runner=runner, clock=clock)
        assert runner.started == [] and clock.t == 0.0
        # the jobs the first one does not schedule are free for another
        assert run(schedule.select(["train"]), None, runner=runner, clock=clock) == 0
        assert [module for module, _ in runner.started] == ["train"]
    assert run(schedule, None, runner=runner, clock=FakeClock(stop_after=60.0)) == 0  # the claims went with it


def test_a_refused_scheduler_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from setlist import turns
    from setlist.settings import Settings

    monkeypatch.setenv("SETLIST_DATA_DIR", str(tmp_path / "data"))
    path = _real_schedule(tmp_path, "pass")
    with turns.scheduling(Settings(data_dir=tmp_path / "data"), ["flaky"]):
        result = CliRunner().invoke(_app(), ["schedule", "--schedule", str(path)])
    assert result.exit_code == 1, result.output
    assert "flaky is already scheduled" in result.output and "--jobs" in result.output
    assert "Traceback" not in result.output


def test_dry_run_prints_each_jobs_next_times():
    result = CliRunner().invoke(_app(), ["schedule", "--dry-run", "--jobs", "train,validate"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "validate" in result.output and "materialize" not in result.output
    assert "02:30" in result.output


# -- the CronJobs ---------------------------------------------------------------------------------


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_the_cronjobs_match_the_schedule_exactly():
    schedule = jobtable.load()
    cronjobs = {d["metadata"]["name"]: d for d in _docs("cronjobs.yaml") if d["kind"] == "CronJob"}
    assert set(cronjobs) == {f"setlist-{name}" for name in schedule.jobs}
    for job in schedule.jobs.values():
        spec = cronjobs[f"setlist-{job.name}"]["spec"]
        job_spec = spec["jobTemplate"]["spec"]
        pod = _pod(cronjobs[f"setlist-{job.name}"])
        (container,) = pod["containers"]
        assert spec["schedule"] == job.cron, job.name
        assert spec["timeZone"] == schedule.timezone, job.name
        assert spec["concurrencyPolicy"] == "Forbid", job.name
        assert spec["startingDeadlineSeconds"] == schedule.starting_deadline_s, job.name
        assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1, job.name
        assert job_spec["backoffLimit"] == job.retries, job.name
        assert pod["activeDeadlineSeconds"] == job.deadline_s, job.name  # one attempt
        assert job_spec["activeDeadlineSeconds"] == jobtable.run_budget_s(job, schedule.backoff), job.name
        assert pod["restartPolicy"] == "Never", job.name  # each attempt a pod, counted by backoffLimit
        assert container["command"] == [IMAGE_PYTHON, *job.command[1:]], job.name


def test_the_cronjobs_run_like_the_serving_deployment():
    (deployment,) = _docs("serving-deployment.yaml")
    serving_pod = deployment["spec"]["template"]["spec"]
    (serving,) = serving_pod["containers"]
    serving_volumes = {v["name"]: v for v in serving_pod["volumes"]}
    serving_mounts = {m["name"]: m for m in serving["volumeMounts"]}
    fields = set(setting_variables())
    # the scheduled jobs, and the on-demand status (a suspended CronJob) that reads what they leave
    for cronjob in [*_docs("cronjobs.yaml"), *_docs("ops-status.yaml")]:
        pod = _pod(cronjob)
        (container,) = pod["containers"]
        name = cronjob["metadata"]["name"]
        assert container["image"] == serving["image"], name
        assert container["envFrom"] == serving["envFrom"], name
        assert pod["securityContext"] == serving_pod["securityContext"], name
        assert container["securityContext"] == serving["securityContext"], name
        for volume in pod["volumes"]:
            assert volume == serving_volumes[volume["name"]], name
        for mount in container["volumeMounts"]:
            assert mount == serving_mounts[mount["name"]], name
        assert {"data", "tmp"} <= {v["name"] for v in pod["volumes"]}, name
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SETLIST_PROFILE"] == "production", name
        assert {n for n in env if n.startswith("SETLIST_")} <= fields, name
        labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "setlist", name  # the Redis network policy admits these


def test_the_kustomization_applies_the_cronjobs():
    (kustomization,) = _docs("kustomization.yaml")
    assert {"cronjobs.yaml", "ops-status.yaml"} <= set(kustomization["resources"])


def test_the_interpreter_word_is_replaced_by_this_one():
    from ops.scheduler import argv

    assert argv(_job(command=("python", "-m", "x")), python=sys.executable) == [sys.executable, "-m", "x"]
    assert argv(_job(command=("/bin/true",))) == ["/bin/true"]


def test_the_gap_between_runs_is_measured_in_real_time_across_a_clock_change():
    from dataclasses import replace

    schedule = replace(jobtable.load(), timezone="America/New_York")
    hourly = next(j for j in schedule.jobs.values() if j.cron.split()[1] == "*")
    # the night clocks go back: the hour 01:xx happens twice, an hour apart in real time
    fall_back = datetime(2024, 11, 3, 4, 0, tzinfo=UTC)
    assert jobtable.shortest_gap_s(schedule, hourly, fall_back, samples=6) == 3600
