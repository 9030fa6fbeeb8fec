"""Pipeline metrics of batch jobs (materialize, validate, train, retention, compaction, import).

A batch job has no port to be scraped, so each run leaves its metrics in two places:

- always, a status file ``<data_dir>/status/<job>.prom`` in Prometheus' text format (the format
  node_exporter's textfile collector reads, so a host can export it as it is), replaced atomically;
  ``python -m ops status`` reads these files;
- when ``SETLIST_PUSHGATEWAY_URL`` is set, the same registry pushed to that Pushgateway under
  ``job=<job>``. A push that fails is logged and never fails the job: the file is the record.

``CATALOGUE`` names every pipeline series (serving exports the ones it can see on its own endpoint,
serving.metrics), so dashboards, alert rules and tests check their expressions against one list.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import resource
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from click.exceptions import Exit as ClickExit
from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families
from typer import Exit as TyperExit

from setlist import liveness, tracing
from setlist.errors import UsageError
from setlist.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["gauge", "counter"]


@dataclass(frozen=True)
class Family:
    kind: Kind
    labels: tuple[str, ...]
    help: str


#: Every pipeline series, by the name Prometheus shows (counters with their ``_total``).
CATALOGUE: dict[str, Family] = {
    "setlist_ingest_lag_seconds": Family(
        "gauge", (), "How long the oldest acknowledged Track event not yet in the event log has waited (0: none)."
    ),
    "setlist_feature_lag_seconds": Family(
        "gauge", (), "How long the oldest event-log write not covered by an online publish has waited (0: none)."
    ),
    "setlist_feature_age_seconds": Family("gauge", ("view",), "Age of each feature view's newest published row."),
    "setlist_events_quarantined_total": Family("counter", ("reason",), "Events sent to the quarantine, by reason."),
    "setlist_schema_violations_total": Family(
        "counter", ("field",), "Events rejected because a field broke the event contract, by field."
    ),
    "setlist_gate_status": Family("gauge", ("gate",), "Last result of each data-quality gate: 0 pass, 1 warn, 2 fail."),
    "setlist_gate_last_run_timestamp_seconds": Family("gauge", ("gate",), "Unix time each gate last ran."),
    "setlist_drift": Family("gauge", ("column", "measure"), "Drift of each column between window and reference."),
    "setlist_cardinality": Family("gauge", ("column",), "Distinct values of each guarded column in the window."),
    "setlist_model_age_seconds": Family("gauge", ("model", "alias"), "Age of the model version each alias names."),
    "setlist_model_metric": Family("gauge", ("model", "metric"), "The champion's offline evaluation metrics."),
    "setlist_job_duration_seconds": Family("gauge", ("job",), "Wall time of the job's last run."),
    "setlist_job_cpu_seconds": Family(
        "gauge", ("job",), "CPU time (user + system) of the job's last run: its process and the children it waited for."
    ),
    "setlist_job_last_success_timestamp_seconds": Family("gauge", ("job",), "Unix time the job last succeeded."),
    "setlist_job_last_run_timestamp_seconds": Family("gauge", ("job",), "Unix time the job last ended."),
    "setlist_job_failed": Family("gauge", ("job",), "1 when the job's last run failed, else 0."),
    "setlist_job_interrupted": Family(
        "gauge", ("job",), "1 when the job's last run was stopped by Ctrl-C or SIGTERM (it counts as failed too)."
    ),
    "setlist_compaction_last_timestamp_seconds": Family(
        "gauge",
        ("dataset",),
        "Unix time each dataset was last compacted (or found with nothing to merge); a run that found it in use"
        " keeps the time before.",
    ),
    "setlist_compaction_skipped": Family(
        "gauge", ("dataset",), "1 when the last compaction left the dataset alone because another job held it, else 0."
    ),
}

GATE_STATUS = {"pass": 0, "warn": 1, "fail": 2}
#: The batch jobs that report, and the schedule's names for them.
JOBS = ("generate", "import", "materialize", "validate", "train", "retention", "compaction")


def field_of(reason: str) -> str | None:
    """The event field a quarantine reason blames (``missing_id: user_id is empty`` → ``user_id``),
    or None when the reason is not a contract violation (retention, duplicates)."""
    code, _, detail = reason.partition(":")
    code = code.strip()
    if code == "missing_id":
        return detail.strip().split(" ", 1)[0] or "id"
    return {
        "unknown_schema_version": "schema_version",
        "unknown_type": "type",
        "bad_timestamp": "timestamp",
        "future_timestamp": "timestamp",
        "bad_value": "value",
        "bad_consent": "consent",
        "bad_context": "context",
        "too_long": "id",
        "missing_query": "query",
        "bad_weight": "weight",
    }.get(code)


def reason_code(reason: str) -> str:
    """The stable code of a quarantine reason (before the first ``:``), a bounded label value."""
    return reason.partition(":")[0].strip() or "unknown"


class JobMetrics:
    """One run's registry: what a job knows about the data it handled."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.registry = CollectorRegistry()
        self._series: dict[str, Gauge | Counter] = {}
        self._step = ExitStack()  # the running step's span (setlist.tracing), ended by the next step

    def step(self, name: str) -> None:
        """A new step of the job begins (and the previous one ends): one span each when tracing is on."""
        self._step.close()
        self._step.enter_context(tracing.span(f"{self.job}.step", step=name))

    def end_steps(self) -> None:
        self._step.close()

    def _family(self, name: str) -> Gauge | Counter:
        series = self._series.get(name)
        if series is None:
            family = CATALOGUE[name]
            if family.kind == "counter":
                series = Counter(name.removesuffix("_total"), family.help, family.labels, registry=self.registry)
            else:
                series = Gauge(name, family.help, family.labels, registry=self.registry)
            self._series[name] = series
        return series

    def set(self, name: str, value: float, **labels: str) -> None:
        series = self._family(name)
        assert isinstance(series, Gauge), f"{name} is a counter"
        (series.labels(**labels) if labels else series).set(value)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        series = self._family(name)
        assert isinstance(series, Counter), f"{name} is a gauge"
        (series.labels(**labels) if labels else series).inc(value)

    def gate(self, gate: str, status: str, at: float | None = None) -> None:
        """A gate's result: ``pass``, ``warn`` or ``fail`` (a skipped gate reports nothing)."""
        if status not in GATE_STATUS:
            return
        self.set("setlist_gate_status", GATE_STATUS[status], gate=gate)
        self.set("setlist_gate_last_run_timestamp_seconds", at if at is not None else time.time(), gate=gate)

    def quarantined(self, reasons: Mapping[str, int]) -> None:
        """Count quarantined events (reason → count) by the reason's code and the field it blames."""
        for reason, count in reasons.items():
            self.inc("setlist_events_quarantined_total", count, reason=reason_code(reason))
            field = field_of(reason)
            if field is not None:
                self.inc("setlist_schema_violations_total", count, field=field)


_current: contextvars.ContextVar[JobMetrics | None] = contextvars.ContextVar("setlist_job", default=None)


def current() -> JobMetrics:
    """The running job's metrics; outside a job, a detached registry nobody publishes, so library
    code reports unconditionally (a gate run from a test or a notebook writes no status file)."""
    return _current.get() or JobMetrics("detached")


def read_status(directory: Path) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Every job's status file: job → {(series name, sorted labels): value}."""
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.prom")):
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        try:
            text = path.read_text(encoding="utf-8")
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        except (OSError, ValueError) as exc:
            log.warning("unreadable status file %s: %s", path.name, exc)
            continue
        out[path.stem] = samples
    return out


#: a run's mark beside the status files, ``<job>.<id>.running`` (``setlist.liveness``): taken as the run
#: starts and removed as it ends. A run killed without a last word (SIGKILL, the OOM killer, a pod deleted)
#: leaves it unlocked, which is how ``python -m ops status`` tells a killed run from a last success.
RUNNING = ".running"


@dataclass(frozen=True)
class Running:
    job: str
    pid: int
    host: str
    started: float
    alive: bool
    path: Path
    #: a run that ended but could not write its status file (a full disk) says so in its mark: how it
    #: ended ("succeeded" or "failed") and why the file was not written
    ended: str | None = None
    unreported: str | None = None


def running(directory: Path) -> list[Running]:
    """Every run that started and has not ended, or was killed before it could say so; oldest first."""
    out = []
    for path in directory.glob(f"*{RUNNING}") if directory.is_dir() else []:
        found = liveness.look(path)
        if found is None:  # removed as it was listed
            continue
        facts = found.facts
        try:
            job, pid, host, started = str(facts["job"]), int(facts["pid"]), str(facts["host"]), float(facts["started"])
        except (KeyError, TypeError, ValueError):
            continue  # not a mark this code wrote
        ended, why = facts.get("ended"), facts.get("unreported")
        out.append(
            Running(
                job, pid, host, started, found.alive, path, str(ended) if ended else None, str(why) if why else None
            )
        )
    return sorted(out, key=lambda r: r.started)


@dataclass(frozen=True)
class _Marker:
    mark: liveness.Mark
    #: the directories the marker had to create, deepest first: a usage error leaves none behind
    created: list[Path]


def _mark_running(directory: Path, job: str) -> _Marker | None:
    facts = {"job": job, "pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    created = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        mark = liveness.Mark.take(directory / f"{job}.{uuid.uuid4().hex[:12]}{RUNNING}", facts)
    except OSError as exc:
        log.warning("could not mark %s as running: %s", job, exc)
        return None
    return _Marker(mark, created)


def _unmark(directory: Path, job: str, own: _Marker | None, misused: bool, keep: bool = False) -> None:
    """This run's mark; and when it reported, the marks of the job's earlier runs that were killed: its
    report is the job's newest word now. A usage error was no run: it leaves them, and the directories
    its own mark made go too. A run whose status file could not be written leaves its mark (``keep``) as
    its report: else status would show the run before it."""
    kept = own is not None and keep
    if own is not None:
        own.mark.release(remove=not kept)
    if not misused:
        for dead in (r for r in running(directory) if r.job == job and not r.alive):
            if kept and own is not None and dead.path == own.mark.path:
                continue  # this run's own word, kept in place of the status file it could not write
            dead.path.unlink(missing_ok=True)
    for made in own.created if own and misused else []:
        try:
            made.rmdir()
        except OSError:  # something else was written there meanwhile
            break


def _last_success(directory: Path, job: str) -> float | None:
    samples = read_status(directory).get(job, {})
    return samples.get(("setlist_job_last_success_timestamp_seconds", (("job", job),)))


def publish(settings: Settings, metrics: JobMetrics) -> Path:
    """Write the status file, then push to the Pushgateway when one is configured."""
    directory = settings.status_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{metrics.job}.prom"
    write_to_textfile(str(path), metrics.registry)  # writes a temporary file and renames it
    url = settings.pushgateway_url
    if url:
        try:
            push_to_gateway(url, job=metrics.job, registry=metrics.registry, timeout=settings.pushgateway_timeout_s)
        except Exception as exc:  # the status file holds the run; a down gateway must not fail the job
            log.warning("could not push %s's metrics to the Pushgateway at %s: %s", metrics.job, url, exc)
    return path


@contextmanager
def job_run(settings: Settings, job: str) -> Iterator[JobMetrics]:
    """Time a job and report how it ended: success, or failure (an exception, or a non-zero exit).

    On failure the last success time is carried over from the previous status file, so an alert on
    "no success within the period" keeps its clock. A usage error (bad arguments, exit 2) is no run
    of the job and reports nothing: it did no work and must leave no file behind."""
    metrics = JobMetrics(job)
    start, cpu = time.monotonic(), cpu_seconds()
    ok = False
    misused = stopped = False
    marker = _mark_running(settings.status_dir, job)
    token = _current.set(metrics)
    traced = tracing.configure(settings, f"setlist-{job}")
    try:
        with tracing.span(f"job.{job}"):
            try:
                yield metrics
            finally:
                metrics.end_steps()
        ok = True
    except SystemExit as exc:
        ok = exc.code in (None, 0)
        raise
    except (TyperExit, ClickExit) as exc:  # a CLI's exit: its code says how the run ended
        ok = exc.exit_code in (None, 0)
        raise
    except UsageError:
        misused = True
        raise
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM raised as one (setlist.cli.Stopped)
        stopped = True
        raise
    finally:
        _current.reset(token)
        if traced:
            tracing.force_flush()
        keep = False
        if not misused:
            metrics.set("setlist_job_interrupted", 1.0 if stopped else 0.0, job=job)
            unreported = _report(settings, metrics, ok, time.monotonic() - start, cpu_seconds() - cpu)
            if unreported is not None and marker is not None:
                # amended, the mark says how the run ended; not even that written, a failed run's bare mark
                # still reads as a run to do again, while a success's would read as one killed
                amended = marker.mark.amend(ended="succeeded" if ok else "failed", unreported=unreported)
                keep = amended or not ok
        _unmark(settings.status_dir, job, marker, misused, keep)


def cpu_seconds() -> float:
    """CPU time (user + system) used so far by this process, every thread, and by the child processes
    it has waited for (a child still running is not counted until it is reaped)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _report(settings: Settings, metrics: JobMetrics, ok: bool, took: float, cpu: float) -> str | None:
    """Write the run's status file (and push it); None when written, else why it could not be."""
    job = metrics.job
    now = time.time()
    metrics.set("setlist_job_duration_seconds", took, job=job)
    metrics.set("setlist_job_cpu_seconds", cpu, job=job)
    metrics.set("setlist_job_last_run_timestamp_seconds", now, job=job)
    metrics.set("setlist_job_failed", 0.0 if ok else 1.0, job=job)
    last = now if ok else _last_success(settings.status_dir, job)
    if last is not None:
        metrics.set("setlist_job_last_success_timestamp_seconds", last, job=job)
    try:
        publish(settings, metrics)
    except OSError as exc:
        log.warning("could not write %s's status file: %s", job, exc)
        return exc.strerror or str(exc)
    return None


F = TypeVar("F", bound=Callable[..., Any])


def reports(job: str) -> Callable[[F], F]:
    """Run a CLI command as ``job`` (``job_run``), in the job's turns (``setlist.turns``: who it waits
    for). A ``dry_run=True`` call reports nothing and takes no turn: it changed nothing, so it is no
    success of the job. ``functools.wraps`` keeps the signature Typer reads the options from."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("dry_run"):
                return command(*args, **kwargs)
            from setlist import turns
            from setlist.settings import get_settings

            settings = get_settings()
            # its own turn first, outside the run: a run waiting for another of the same job is no run yet
            with turns.own(settings, job), job_run(settings, job), turns.others(settings, job):
                return command(*args, **kwargs)

        return run  # type: ignore[return-value]  # wraps keeps the signature, which the type of run cannot say

    return decorate
