"""``python -m feature_repo apply|materialize``."""
from __future__ import annotations

import time

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


class _Steps:
    """Each step on one line with its duration; the running one in a spinner."""

    def __init__(self) -> None:
        self.status = console.status("starting…")
        self.current: tuple[str, float] | None = None

    def __call__(self, message: str) -> None:
        self.done()
        self.current = (message, time.perf_counter())
        self.status.update(f"{message}…")

    def done(self) -> None:
        if self.current is not None:
            message, start = self.current
            console.print(f"  [dim]{time.perf_counter() - start:6.1f}s[/] {message}")
            self.current = None


def _store_errors() -> tuple[type[BaseException], ...]:
    """Connection failures of the stores a publish talks to, reported in one line."""
    errors: list[type[BaseException]] = [ConnectionError]
    try:
        from redis.exceptions import ConnectionError as RedisDown
        errors.append(RedisDown)
    except ImportError:  # pragma: no cover - redis ships with feast
        pass
    from sqlalchemy.exc import OperationalError
    errors.append(OperationalError)
    return tuple(errors)


@app.command()
def materialize(full: bool = typer.Option(False, "--full", help="rebuild every feature from the whole log "
                                          "instead of only what the new events touch")) -> None:
    """Build features from the event log (only what changed, unless --full), validate and publish them."""
    settings = get_settings()
    steps = _Steps()
    start = time.perf_counter()
    try:
        with steps.status:
            report = publish(settings, full=full, step=steps)
            steps.done()
    except FeatureBatchRejected as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(1)
    except _store_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        console.print(f"[red]cannot reach a store[/] ({type(exc).__name__}): {first}; is `make services` running?")
        raise typer.Exit(1)
    took = time.perf_counter() - start
    if report.mode == "none":
        console.print(f"nothing to do: {report.reason} (feature version [bold]{report.version}[/])")
        return
    console.print(f"[bold]{report.mode}[/] build: {report.reason}")
    if report.mode == "incremental":
        users, items = report.touched
        console.print(f"  recomputed {users:,} users and {items:,} items")
    for name, n in report.rows.items():
        extra = f"  ({report.changed[name]:,} recomputed)" if report.changed else ""
        console.print(f"  {name:<24} {n:>10,} rows{extra}")
    console.print(f"published feature version [bold]{report.version}[/] (event log snapshot {report.snapshot}) "
                  f"in {took:,.1f}s")


if __name__ == "__main__":
    app()
