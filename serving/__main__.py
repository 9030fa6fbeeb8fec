"""``python -m serving [--port N] [--workers N] [--engine fast|baseline]``: run the gRPC server."""

from __future__ import annotations

import logging
import sys

import typer

from setlist.settings import get_settings

app = typer.Typer(add_completion=False, help="Run the Setlist gRPC ranking server.")


@app.command()
def main(
    port: int | None = typer.Option(None, help="listen port (default SETLIST_PORT, 50051)"),
    workers: int | None = typer.Option(None, help="processes sharing the port (SO_REUSEPORT)"),
    engine: str | None = typer.Option(None, help="fast (default) or baseline (Feast + pyfunc, for bench)"),
    metrics_port: int | None = typer.Option(None, help="Prometheus port; 0 turns metrics off"),
) -> None:
    from serving.grpc.workers import serve
    from serving.logs import configure_logging

    configure_logging()
    updates = {
        k: v
        for k, v in {"port": port, "workers": workers, "engine": engine, "metrics_port": metrics_port}.items()
        if v is not None
    }
    settings = get_settings().model_copy(update=updates)
    if settings.engine not in ("fast", "baseline"):
        typer.echo(f"unknown engine {settings.engine!r}: choose fast or baseline", err=True)
        raise typer.Exit(2)
    try:
        preflight(settings)
    except StartupError as exc:
        logging.getLogger("setlist.serving").error("cannot start: %s", exc)
        raise typer.Exit(1) from None
    sys.exit(serve(settings, lambda worker: factory(settings, worker)))


class StartupError(RuntimeError):
    pass


def preflight(settings) -> None:
    """Fail fast, with one clear line, when a store the server depends on is missing or down."""
    from sqlalchemy import create_engine, text

    for name, url in (("metadata store", settings.metadata_url),):
        try:
            engine = create_engine(url, connect_args={"connect_timeout": 3} if url.startswith("postgresql") else {})
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
        except Exception as exc:
            raise StartupError(
                f"{name} at {_redact(url)} is unavailable ({type(exc).__name__}); "
                "start it (`make services` for the production profile) and retry"
            ) from None
    if settings.profile == "local" and not (settings.data_dir / "registry.db").exists():
        raise StartupError(
            f"no feature registry under {settings.data_dir}: run `make materialize` and `make train` first"
        )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def factory(settings, worker: int):
    if settings.engine == "baseline":
        from serving.baseline import build_baseline

        return build_baseline(settings)
    from serving.bootstrap import build

    return build(settings, worker=worker, start=True)


if __name__ == "__main__":
    app()
