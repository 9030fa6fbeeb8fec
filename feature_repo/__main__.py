"""``python -m feature_repo list|describe|plan|apply|materialize``.

Errors are ``setlist.errors`` exceptions; ``setlist.cli.App`` prints them and picks the exit code."""

from __future__ import annotations

import time
import warnings

import typer
from rich.markup import escape
from rich.table import Table

from feature_repo.data_sources import VIEW_OF_FILE
from feature_repo.materialize import publish
from feature_repo.store import apply as apply_defs
from feature_repo.store import get_store
from setlist import jobmetrics
from setlist.cli import App
from setlist.cli import console as cli_console
from setlist.errors import SetlistError
from setlist.featureset import DeclarationError, FeatureSet
from setlist.settings import Settings, get_settings

# MLflow's SQL store warns on every registry query; nothing a feature owner can act on
warnings.filterwarnings("ignore", module="mlflow.store")
warnings.filterwarnings("ignore", message=".*noload.*")

app = App(
    add_completion=False,
    help="Feature declarations and the Feast repository: list, describe, plan, apply and publish features.",
)
console = cli_console()


def _declarations():
    """The declared features, or one line saying which declaration is wrong (exit 1)."""
    from feature_repo.declarations import load

    try:
        return load(get_settings())
    except DeclarationError as exc:  # a SetlistError already; the message gains what kind
        raise SetlistError(f"invalid feature declaration: {exc}") from exc


@app.command("list", reads_only=True)
def list_features() -> None:
    """Every declared feature: entity, source, owner, how current it is, and the model versions that read it."""
    from feature_repo.inventory import freshness, model_uses, users_of

    settings = get_settings()
    fs = _declarations()
    uses = model_uses(settings)
    table = Table(title=f"{len(fs.features)} features · services {', '.join(fs.service(v).name for v in fs.versions)}")
    # "as of": the newest snapshot built, the time of the newest event it used (a 2018 log's is 2018), not
    # when it was built; live features say how they are kept current
    for col in ("feature", "entity", "source", "owner", "since", "as of", "used by"):
        table.add_column(col, overflow="fold")
    for f in fs.features:
        used = "registry unreachable" if uses is None else ", ".join(u.label for u in users_of(fs, f, uses)) or "-"
        table.add_row(
            f.name, f.entity, f.describe_source(), f.owner or "?", f"ranker_v{f.since}", freshness(settings, f), used
        )
    console.print(table)


@app.command(reads_only=True)
def describe(name: str = typer.Argument(..., help="a feature name, as `list` shows it")) -> None:
    """One feature: its declaration, where it is declared, and its importance in each model that reads it."""
    from feature_repo.inventory import freshness, model_uses, users_of

    settings = get_settings()
    fs = _declarations()
    if name not in fs:
        close = [f.name for f in fs.features if name.split("_")[0] in f.name][:5]
        raise SetlistError(f"no feature {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    f = fs[name]
    e = f.expect
    rows = [
        ("entity", f.entity),
        ("view", f.view or "-"),
        ("source", f.describe_source()),
        ("dtype", f.dtype),
        ("missing value", repr(f.missing)),
        ("owner", f.owner or "?"),
        ("description", f.description or "-"),
        ("services", ", ".join(fs.service(v).name for v in fs.versions if f.in_version(v))),
        ("ranker input", "yes" if f.is_input else "no (used by the candidate stage)"),
        ("expectations", f"min {e.min}, max {e.max}, null share ≤ {e.max_null_share}" if e else "-"),
        ("declared in", fs.origin.get(f.name) or fs.origin.get(f.name.rsplit("_", 1)[0], "?")),
        ("as of", freshness(settings, f)),
    ]
    table = Table(show_header=False, title=name)
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)
    uses = model_uses(settings, with_importance=True)
    if uses is None:
        console.print("the model registry cannot be read: no importance to show")
        return
    readers = users_of(fs, f, uses)
    if not readers:
        console.print("no registered ranker reads this feature yet")
    for u in readers:
        share = u.importance.get(name)
        console.print(
            f"ranker {u.label} on {u.service}: "
            + (f"{share:.1%} of the total gain" if share is not None else "importance not logged")
        )


def _buildable(settings: Settings) -> tuple[FeatureSet, list[str]]:
    """The declarations, refused (exit 1) when one reads a column the events, the catalogue or its table do not
    have, and the tables whose columns could not be read to check (a file not there yet): before any build."""
    from feature_repo.source_columns import refuse_missing

    fs = _declarations()
    return fs, refuse_missing(settings, fs).unchecked


def _say_unchecked(unchecked: list[str]) -> None:
    """The tables whose columns could not be checked yet, a `!` line each: said, not an error."""
    for why in unchecked:
        console.print(f"[yellow]![/] {escape(why)}")


@app.command(reads_only=True)
def plan() -> None:
    """What `apply` and the next `materialize` would change, like `terraform plan`."""
    from feature_repo.inventory import PlanLine
    from feature_repo.inventory import plan as make_plan

    settings = get_settings()
    fs, unchecked = _buildable(settings)
    lines = [PlanLine("!", why) for why in unchecked] + make_plan(settings, fs)
    if not lines:
        console.print("no changes: the registry matches the declarations")
        return
    colour = {"+": "green", "-": "red", "~": "yellow", "!": "magenta"}
    for line in lines:
        console.print(f"[{colour[line.sign]}]{line.sign}[/] {line.what}")
    console.print(
        f"{sum(line.sign in '+-~' for line in lines)} change(s); run `python -m feature_repo apply` "
        "(or `make materialize`, which applies first)"
    )


@app.command()
def apply() -> None:
    """Register entities, feature views and feature services in the Feast registry."""
    settings = get_settings()
    _say_unchecked(_buildable(settings)[1])
    defs = apply_defs(get_store(settings), settings, prune=True)
    console.print(
        f"registered {len(defs.objects())} Feast objects in project [bold]{settings.feast_project}[/] "
        f"(services: {', '.join(s.name for s in defs.services)})"
        + (f"; removed {', '.join(defs.removed)}, no longer declared" if defs.removed else "")
    )
    for view, (names, held) in defs.dropped.items():
        console.print(
            f"dropped {', '.join(f'{view}.{n}' for n in names)} from the online store, no longer declared "
            f"({held:,} {'entities' if settings.on_servers else 'rows'} held a value)"
        )
    for view, kept in defs.kept.items():
        for name, why in kept:
            console.print(
                f"[yellow]kept {view}.{name}'s values in the online store, though no longer declared: {escape(why)} "
                "(a running server goes on reading them; they are left as they are)[/]"
            )


class _Steps:
    """Each step on one line with its duration; the running one in a spinner."""

    def __init__(self) -> None:
        self.status = console.status("starting…")
        self.current: tuple[str, float] | None = None

    def __call__(self, message: str) -> None:
        self.done()
        self.current = (message, time.perf_counter())
        jobmetrics.current().step(message)
        self.status.update(f"{message}…")

    def done(self) -> None:
        if self.current is not None:
            message, start = self.current
            console.print(f"  [dim]{time.perf_counter() - start:6.1f}s[/] {message}")
            self.current = None


@app.command()
@jobmetrics.reports("materialize")
def materialize(
    full: bool = typer.Option(
        False, "--full", help="rebuild every feature from the whole log instead of only what the new events touch"
    ),
) -> None:
    """Build features from the event log (only what changed, unless --full), validate and publish them."""
    settings = get_settings()
    # the columns every declaration reads, checked as `plan` does before anything is built or written: a
    # missing one is refused here (exit 1) and the last good features keep serving (schemas and headers only)
    _say_unchecked(_buildable(settings)[1])
    steps = _Steps()
    start = time.perf_counter()
    # a store that is down is one line (setlist.cli.store_down); a refused batch is a SetlistError already
    with steps.status:
        report = publish(settings, full=full, step=steps)
        steps.done()
    took = time.perf_counter() - start
    if report.mode == "none":
        console.print(f"nothing to do: {report.reason} (feature version [bold]{report.version}[/])")
        return
    console.print(f"[bold]{report.mode}[/] build: {report.reason}")
    if report.mode == "incremental":
        users, items = report.touched
        console.print(f"  recomputed {users:,} users and {items:,} items")
    for fname in report.rows:  # just written: the job reports each published view's age as of now
        jobmetrics.current().set("setlist_feature_age_seconds", 0.0, view=VIEW_OF_FILE.get(fname, fname))
    for name, n in report.rows.items():
        extra = f"  ({report.changed[name]:,} recomputed)" if report.changed else ""
        console.print(f"  {name:<24} {n:>10,} rows{extra}")
    console.print(
        f"published feature version [bold]{report.version}[/] (event log snapshot {report.snapshot}) in {took:,.1f}s"
    )


if __name__ == "__main__":
    app()
