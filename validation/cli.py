"""``python -m validation <gate> [--path PATH] [--json FILE] [--junit FILE]``: run a gate, print the
table, build Data Docs, and write the results as files a CI job keeps (``validation.report_files``).

Exit codes: 0 when every gate passed (warnings allowed), 1 when anything failed, 2 for usage
errors (a --path that does not exist, a single gate whose input is missing, bad options, a bad
thresholds file).

Thresholds come from ``validation/thresholds.yaml`` or the copy ``settings.validation_thresholds_file``
names; a flag given here overrides one value for this run. Each gate's notes say which.

This module is the wiring: it resolves the providers the settings name (``feature_declarations``,
``parity_adapter``; ``--adapter`` overrides the latter) and hands the gates plain callables, so
nothing else in validation names or imports a pipeline package. Errors are ``setlist.errors``
exceptions, turned into a message and an exit code by ``setlist.cli`` like every other command.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from setlist import jobmetrics
from setlist.cli import App, load_provider, require_data_dir
from setlist.errors import BadInput, SetlistError, UsageError
from setlist.featureset import FeatureSet
from setlist.settings import Settings, get_settings
from validation import gates
from validation.gx import Workspace
from validation.report_files import write_reports
from validation.result import GateResult
from validation.skew import ParityAdapter, ParityInput
from validation.thresholds import thresholds_for

app = App(
    add_completion=False,
    no_args_is_help=True,
    help="Data-quality gates (Great Expectations). Exit 0 pass, 1 fail, 2 usage error.",
)


def _out() -> Console:
    return Console(width=max(140, Console().width))  # wide enough that names are not folded


PATH_HELP = "a parquet file or a hive-partitioned directory in the event contract (default: the event log)"
REF_HELP = "explicit reference data (parquet file or directory) instead of the log's earlier events"


def _declarations(settings: Settings) -> Callable[[], FeatureSet]:
    """The declarations ``settings.feature_declarations`` names, loaded on first use (only the features
    gate needs them) and once per run."""
    spec = settings.feature_declarations

    @functools.cache
    def load() -> FeatureSet:
        provider = load_provider(spec, "feature declarations", "SETLIST_FEATURE_DECLARATIONS")
        try:
            return provider(settings)
        except ValueError as exc:  # a declaration that cannot work says why in one sentence
            raise BadInput(f"invalid feature declarations ({spec}): {exc}") from exc

    return load


def _parity(settings: Settings, adapter: str | None) -> ParityAdapter:
    """The parity adapter ``--adapter`` or ``settings.parity_adapter`` names, bound to the settings.
    Imported only when the parity gate runs: it reads the feature stores."""
    spec, origin = (adapter, "--adapter") if adapter else (settings.parity_adapter, "SETLIST_PARITY_ADAPTER")

    def inputs() -> Iterable[ParityInput]:
        return load_provider(spec, "parity adapter", origin)(settings)

    return inputs


def _options(
    path: Path | None = None,
    reference: Path | None = None,
    holdout_days: float | None = None,
    as_of: str | None = None,
    max_age_hours: float | None = None,
    ratio: tuple[float, float] | None = None,
    psi_warn: float | None = None,
    psi_fail: float | None = None,
    categorical_method: str | None = None,
    min_match: float | None = None,
    adapter: str | None = None,
) -> gates.GateOptions:
    """Options for a gate: the thresholds file (settings.validation_thresholds_file, else the packaged
    one) with any flag given on the command line laid over it, and the providers the settings name."""
    for label, p in (("--path", path), ("--reference", reference)):
        if p is not None and not p.exists():
            raise BadInput(f"{label} {p} does not exist")
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            raise UsageError(f"--as-of {as_of!r} is not an ISO date/time (e.g. 2024-05-01T00:00:00+00:00)") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if ratio is not None and not 0 < ratio[0] <= 1 <= ratio[1]:
        raise UsageError(f"--ratio {ratio[0]} {ratio[1]} must satisfy 0 < low <= 1 <= high")
    if categorical_method not in (None, "psi", "js"):
        raise UsageError(f"--categorical-method {categorical_method!r}: allowed are psi, js")
    if holdout_days is not None and not holdout_days > 0:
        raise UsageError("--holdout-days must be a positive number of days (e.g. 0.5, 3, 365)")
    flags: dict[str, dict[str, object]] = {
        "drift": {"psi_warn": psi_warn, "psi_fail": psi_fail, "categorical_method": categorical_method},
        "cardinality": {"ratio": ratio},
        "freshness": {"max_age_hours": max_age_hours},
        "parity": {"min_match": min_match},
    }
    given = {section: {k: v for k, v in values.items() if v is not None} for section, values in flags.items()}
    settings = get_settings()
    limits = thresholds_for(settings).override("command line", **given)  # ThresholdsError: exit 2
    return gates.GateOptions(
        path=path,
        reference=reference,
        holdout_days=holdout_days,
        as_of=when,
        limits=limits,
        declarations=_declarations(settings),
        parity=_parity(settings, adapter),
    )


def _prefix(exc: SetlistError, command: str) -> None:
    """Say which gate or command the error came from, in its message (re-raised as it is)."""
    exc.args = (f"{command}: {exc}", *exc.args[1:])


def _show(results: list[GateResult]) -> None:
    console = _out()
    for r in results:
        r.render(console)
        console.print()


def _finish(results: list[GateResult], docs: Path, reports: Iterable[Path] = ()) -> None:
    console = _out()
    _show(results)
    if any(r.skipped is None for r in results):
        console.print(f"Data Docs: {docs}")
    for path in reports:
        console.print(f"report: {path}")
    failed = [r.gate for r in results if r.skipped is None and not r.passed]
    skipped = sum(r.skipped is not None for r in results)
    tail = f" ({skipped} skipped: no input yet)" if skipped else ""
    if failed:
        console.print("[bold red]FAILED:[/] " + ", ".join(failed) + tail)
    else:
        console.print(("[bold green]all gates passed[/]" if skipped < len(results) else "nothing to validate") + tail)
    raise typer.Exit(1 if failed else 0)


def _run(name: str, opts: gates.GateOptions, reports: tuple[Path | None, Path | None] = (None, None)) -> None:
    """Run gate ``name`` (or ``all``); ``reports`` are the --json and --junit files to write."""
    for flag, target in zip(("--json", "--junit"), reports):
        if target is not None and target.is_dir():
            raise UsageError(f"{flag} {target} is a directory: name the file to write")
    settings = get_settings()
    ws = Workspace.from_settings(settings)
    try:
        if name == "all":
            results = gates.run_all(settings, opts, ws)
        else:
            results = gates.GATES[name](settings, opts, ws)
    except SetlistError as exc:  # a missing input of a single gate exits 2 (under ``all`` it is skipped)
        _prefix(exc, name)
        raise
    try:
        _record(settings, results)
    except Exception:  # the gates ran: their results are shown, and CI's files written, before the error
        _show(results)
        with contextlib.suppress(OSError):
            write_reports(results, *reports)
        raise
    try:
        written = write_reports(results, *reports)
    except OSError as exc:
        raise BadInput(f"{name}: cannot write the report {exc.filename}: {exc.strerror}") from exc
    _finish(results, ws.docs_index, written)


F = TypeVar("F", bound=Callable[..., Any])
NO_DATA = "nothing to validate; check the setting, or run make generate or make import first"


def _needs_data_dir(command: F) -> F:
    """Check the data directory before the job's status mark would create it (``--path`` alone needs none)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("path") is None:
            require_data_dir(get_settings().data_dir, NO_DATA)
        return command(*args, **kwargs)

    return run  # type: ignore[return-value]  # wraps keeps the signature Typer reads


def _record(settings: Settings, results: list[GateResult]) -> None:
    """Each gate run in the lineage ledger, with what it judged, so a model's lineage can cite it."""
    from setlist.eventlog import EventLog
    from setlist.lineage import file_digest, record_gate

    snapshot = EventLog(settings.events_dir).snapshot_hash()
    training_set = settings.training_set_path
    refused: OSError | None = None
    for r in results:
        if r.skipped:
            continue
        if r.gate.startswith("training"):
            subject = f"training_set:{file_digest(training_set)}" if training_set.exists() else "training_set:missing"
        else:
            subject = f"snapshot:{snapshot}"
        try:
            record_gate(settings.lineage_dir, r.gate, r.passed, subject, warnings=len(r.warnings))
        except OSError as exc:  # every gate's status still reaches the job's metrics before the error is raised
            refused = refused or exc
    _report(results)
    if refused is not None:
        raise refused


def _report(results: list[GateResult]) -> None:
    """Drift scores and distinct counts, for the running job's metrics (the gates' statuses go with
    their lineage records)."""
    metrics = jobmetrics.current()
    for r in results:
        for row in r.rows:
            if row.value is None or row.column is None:
                continue
            if row.measure is not None:
                metrics.set("setlist_drift", row.value, column=row.column, measure=row.measure)
            elif row.check == UNIQUE_VALUE_COUNT:
                metrics.set("setlist_cardinality", row.value, column=row.column)


#: the cardinality suite's distinct-count check (validation.suites.cardinality)
UNIQUE_VALUE_COUNT = "expect_column_unique_value_count_to_be_between"

Path_ = typer.Option(None, "--path", help=PATH_HELP)
Json_ = typer.Option(None, "--json", help="also write the results to this JSON file (for a CI job to keep)")
Junit_ = typer.Option(
    None, "--junit", help="also write the results to this JUnit XML file (CI servers show each check as a test)"
)
Ref_ = typer.Option(None, "--reference", help=REF_HELP)
Holdout_ = typer.Option(
    None,
    "--holdout-days",
    help="fix the current window's length in days, fractions allowed "
    "(default: settings.holdout_days, else the newest batch or window.share of the events)",
)


@app.command()
@_needs_data_dir
def events(path: Path | None = Path_, json: Path | None = Json_, junit: Path | None = Junit_) -> None:
    """Raw events: schema, types, ids, event types, timestamps, play values, unique event ids."""
    _run("events", _options(path), (json, junit))


@app.command()
@_needs_data_dir
def features(
    as_of: str | None = typer.Option(None, help="freshness reference time (default: newest event)"),
    max_age_hours: float | None = typer.Option(
        None, help="a batch older than this is stale (default: freshness.max_age_hours)"
    ),
    json: Path | None = Json_,
    junit: Path | None = Junit_,
) -> None:
    """Feature batches under <data_dir>/features: types, nulls, ranges, freshness."""
    _run("features", _options(as_of=as_of, max_age_hours=max_age_hours), (json, junit))


@app.command("training-set")
@_needs_data_dir
def training_set(json: Path | None = Json_, junit: Path | None = Junit_) -> None:
    """<data_dir>/training/training_set.parquet: label balance, no id features, no opted-out users."""
    _run("training-set", _options(), (json, junit))


@app.command()
@_needs_data_dir
def parity(
    adapter: str | None = typer.Option(
        None,
        help="package.module:function taking the settings and returning ParityInputs (default: SETLIST_PARITY_ADAPTER)",
    ),
    min_match: float | None = typer.Option(None, help="minimum match rate per feature (default: parity.min_match)"),
    json: Path | None = Json_,
    junit: Path | None = Junit_,
) -> None:
    """Online vs offline feature values (training–serving skew)."""
    _run("parity", _options(adapter=adapter, min_match=min_match), (json, junit))


@app.command()
@_needs_data_dir
def drift(
    path: Path | None = Path_,
    reference: Path | None = Ref_,
    holdout_days: float | None = Holdout_,
    psi_warn: float | None = typer.Option(None, help="default: drift.psi_warn"),
    psi_fail: float | None = typer.Option(None, help="default: drift.psi_fail"),
    categorical_method: str | None = typer.Option(None, help="psi or js (default: drift.categorical_method)"),
    json: Path | None = Json_,
    junit: Path | None = Junit_,
) -> None:
    """Distribution drift of every event feature: current window vs reference window."""
    _run(
        "drift",
        _options(
            path, reference, holdout_days, psi_warn=psi_warn, psi_fail=psi_fail, categorical_method=categorical_method
        ),
        (json, junit),
    )


@app.command()
@_needs_data_dir
def cardinality(
    path: Path | None = Path_,
    reference: Path | None = Ref_,
    holdout_days: float | None = Holdout_,
    ratio: tuple[float, float] | None = typer.Option(
        None, help="allowed low/high × reference (default: cardinality.ratio)"
    ),
    json: Path | None = Json_,
    junit: Path | None = Junit_,
) -> None:
    """Distinct users/items/genres/devices/locales and id uniqueness within learned bounds."""
    _run("cardinality", _options(path, reference, holdout_days, ratio=ratio), (json, junit))


@app.command("all")
@_needs_data_dir
@jobmetrics.reports("validate")
def all_(
    path: Path | None = Path_,
    reference: Path | None = Ref_,
    holdout_days: float | None = Holdout_,
    json: Path | None = Json_,
    junit: Path | None = Junit_,
) -> None:
    """Every gate; gates whose input does not exist yet are skipped."""
    _run("all", _options(path, reference, holdout_days), (json, junit))


@app.command("learn-reference")
@_needs_data_dir
def learn_reference(
    path: Path | None = Path_, reference: Path | None = Ref_, holdout_days: float | None = Holdout_
) -> None:
    """Learn the cardinality reference from the reference window and store it."""
    opts = _options(path, reference, holdout_days)
    settings = get_settings()
    try:
        ref, where = gates.learn_reference(settings, opts, Workspace.from_settings(settings))
    except SetlistError as exc:
        _prefix(exc, "learn-reference")
        raise
    _out().print(
        f"learned {ref.windows} window(s) of {ref.window_events:,} events: "
        + ", ".join(f"{k}={v:g}" for k, v in ref.distinct.items())
        + f"\nsaved to {where}"
    )


def main() -> None:
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
