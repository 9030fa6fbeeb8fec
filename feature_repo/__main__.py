"""``python -m feature_repo apply|materialize|build``."""
from __future__ import annotations

import typer
from rich.console import Console

from setlist.settings import get_settings

from .materialize import FeatureBatchRejected, publish
from .store import apply as apply_defs
from .store import get_store

app = typer.Typer(add_completion=False, help="Feast feature repository: register and publish features.")
console = Console()


@app.command()
def apply() -> None:
    """Register entities, feature views and feature services in the Feast registry."""
    settings = get_settings()
    defs = apply_defs(get_store(settings), settings)
    console.print(f"registered {len(defs.objects())} Feast objects in project [bold]{settings.feast_project}[/]")


@app.command()
def materialize() -> None:
    """Rebuild features from the event log, validate them, and publish them online."""
    settings = get_settings()
    with console.status("building features from the event log…"):
        try:
            report = publish(settings)
        except FeatureBatchRejected as exc:
            console.print(f"[red]refused:[/] {exc}")
            raise typer.Exit(1)
    for name, n in report.rows.items():
        console.print(f"  {name:<24} {n:>10,} rows")
    console.print(f"published feature version [bold]{report.version}[/] (event log snapshot {report.snapshot})")


if __name__ == "__main__":
    app()
