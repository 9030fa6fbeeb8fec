"""The schedule file (``ops/schedule.yaml``) as plain values, and the arithmetic on them.

One file drives both the one-machine scheduler (``ops.scheduler``) and, through a test that keeps
them equal, the Kubernetes CronJobs. Everything here is pure: times come in as arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from setlist.errors import BadInput, UsageError
from setlist.yamlfile import read_yaml

SCHEDULE_FILE = Path(__file__).with_name("schedule.yaml")
#: the word in a command that stands for the interpreter running the scheduler (or the image's)
PYTHON = "python"
# Job names become Kubernetes object names (setlist-<job>) and command-line arguments.
_JOB_NAME = r"^[a-z][a-z0-9-]{0,40}$"
_CRON_PROBE = datetime(2000, 1, 1)  # any instant: CronSim parses when it is built


@dataclass(frozen=True)
class Backoff:
    """The pause before retry ``n`` (1-based): ``first_s * 2**(n-1)``, at most ``max_s``."""

    first_s: float
    max_s: float

    def delay(self, retry: int) -> float:
        return min(self.first_s * 2 ** (retry - 1), self.max_s)


@dataclass(frozen=True)
class Job:
    name: str
    cron: str
    command: tuple[str, ...]
    retries: int  # attempts after the first
    deadline_s: int  # one attempt's limit


@dataclass(frozen=True)
class Schedule:
    timezone: str
    backoff: Backoff
    starting_deadline_s: int
    jobs: dict[str, Job]  # in the file's order

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def select(self, names: Iterable[str]) -> Schedule:
        """The schedule of the named jobs only; an unknown name is a usage error that lists the known ones."""
        wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
        unknown = [n for n in wanted if n not in self.jobs]
        if unknown:
            raise UsageError(f"unknown job {', '.join(unknown)}; the schedule has {', '.join(self.jobs)}")
        if not wanted:
            raise UsageError(f"no job named; the schedule has {', '.join(self.jobs)}")
        return replace(self, jobs={n: self.jobs[n] for n in wanted})


def next_runs(schedule: Schedule, job: Job, after: datetime) -> Iterator[datetime]:
    """The job's run times strictly after ``after`` (an aware datetime), in the schedule's time zone."""
    return iter(CronSim(job.cron, after.astimezone(schedule.zone)))


def next_run(schedule: Schedule, job: Job, after: datetime) -> datetime:
    return next(next_runs(schedule, job, after))


def run_budget_s(job: Job, backoff: Backoff) -> float:
    """The longest one run may take: every attempt's deadline and the pauses between them."""
    return (job.retries + 1) * job.deadline_s + sum(backoff.delay(n) for n in range(1, job.retries + 1))


def shortest_gap_s(schedule: Schedule, job: Job, start: datetime, samples: int = 400) -> float:
    """The shortest time between two consecutive runs among the next ``samples`` (enough to cover a
    year of a daily job's irregular gaps, such as a day-of-month list)."""
    # as instants: two times in one zone object subtract as wall clocks, and the hour a clock change
    # repeats would read as no gap at all
    times = [t.astimezone(UTC) for t in islice(next_runs(schedule, job, start), samples)]
    return min((b - a for a, b in zip(times, times[1:], strict=False)), default=timedelta(0)).total_seconds()


# -- the file -------------------------------------------------------------------------------------


class _JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str
    command: list[str] = Field(min_length=1)
    retries: int = Field(ge=0, le=20)
    deadline_s: int = Field(gt=0)

    @field_validator("cron")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            CronSim(value, _CRON_PROBE)
        except CronSimError as exc:
            raise ValueError(f"{value!r} is not a cron expression ({exc})") from None
        return value


class _BackoffSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_s: float = Field(ge=0)
    max_s: float = Field(ge=0)


class _ScheduleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = "Etc/UTC"
    backoff: _BackoffSpec
    starting_deadline_s: int = Field(gt=0)
    jobs: dict[str, _JobSpec] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @field_validator("jobs")
    @classmethod
    def _names(cls, value: dict[str, _JobSpec]) -> dict[str, _JobSpec]:
        bad = [n for n in value if not re.match(_JOB_NAME, n)]
        if bad:
            raise ValueError(f"job names are lower-case letters, digits and '-': {', '.join(bad)}")
        return value


def load(path: Path = SCHEDULE_FILE) -> Schedule:
    """Read and check a schedule file; a missing or malformed one raises a one-line ``SetlistError``."""
    raw = read_yaml(path, "schedule file")
    try:
        spec = _ScheduleSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BadInput(f"{path}: {where}: {first['msg']}{more}") from None
    return Schedule(
        timezone=spec.timezone,
        backoff=Backoff(spec.backoff.first_s, spec.backoff.max_s),
        starting_deadline_s=spec.starting_deadline_s,
        jobs={name: Job(name, j.cron, tuple(j.command), j.retries, j.deadline_s) for name, j in spec.jobs.items()},
    )
