"""``python -m serving [--port N] [--workers N] [--engine fast|baseline]``: run the gRPC server.

``python -m serving recover-journals [--root DIR]``: move the Track journals that no live server
holds (dead workers, dead pods) into the event log, each event exactly once.

``python -m serving token-fingerprints [--stdin]``: each auth token's fingerprint, the name the
per-token quota file (``SETLIST_QUOTA_FILE``) knows it by.

``python -m serving check-quotas [FILE]``: check a quota file as a server would, before shipping it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from setlist.cli import App, exits_on_error
from setlist.settings import get_settings

# App: a setting that does not read (a misspelled key in the settings file) is one line, not a traceback
app = App(add_completion=False, help="Run the Setlist gRPC ranking server.")


@app.callback(invoke_without_command=True)
@exits_on_error
def main(
    ctx: typer.Context,
    port: int | None = typer.Option(None, min=0, max=65535, help="listen port (default SETLIST_PORT, 50051)"),
    workers: int | None = typer.Option(None, min=1, help="processes sharing the port (SO_REUSEPORT)"),
    engine: str | None = typer.Option(None, help="fast (default) or baseline (Feast + pyfunc, for bench)"),
    metrics_port: int | None = typer.Option(None, min=0, max=65535, help="Prometheus port; 0 turns metrics off"),
) -> None:
    if ctx.invoked_subcommand is not None:
        return  # a subcommand (recover-journals) runs instead of the server
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
    from serving.rollout.models import bound_mlflow

    bound_mlflow(settings)  # before the models and stores are built
    sys.exit(serve(settings, lambda worker: factory(settings, worker)))


@app.command("recover-journals")
def recover_journals(
    root: Path | None = typer.Option(
        None, help="WAL root to search (default SETLIST_JOURNAL_SWEEP_DIR, else SETLIST_WAL_DIR)"
    ),
) -> None:
    """Move every unlocked journal directory's segments under the WAL root into the event log."""
    from serving.dedupe import make_dedupe
    from serving.logs import configure_logging
    from setlist.eventlog import EventLog
    from setlist.journal_dirs import held_files, recover_orphans

    configure_logging()
    settings = get_settings()
    where = root or settings.journal_sweep_dir or settings.wal_dir
    dedupe = make_dedupe(settings)  # the recovered events' clients may retry them: known as stored
    try:
        done = recover_orphans(where, EventLog(settings.events_dir), dedupe.commit)
    finally:
        dedupe.close()
    held = [path for path in held_files(where) if path.parent in done]
    # a directory kept for its withdrawals alone (a run before this one moved its segments) is not counted
    # again as recovered at every run
    kept = {path.parent for path in held if not done[path.parent]}
    rows = sum(done.values())
    typer.echo(f"recovered {rows} events from {len(done) - len(kept)} unlocked journal directories under {where}")
    if held:  # only a server can write them to the online store
        typer.echo(
            f"{len(held)} unlocked journal {'directory holds' if len(held) == 1 else 'directories hold'} "
            f"consent withdrawals the online store never took ({', '.join(str(p.parent) for p in held)}): "
            f"the next server started on {where} pushes them"
        )


@app.command("token-fingerprints")
def token_fingerprints(
    stdin: bool = typer.Option(False, "--stdin", help="fingerprint the tokens read from stdin, one per line"),
) -> None:
    """Print each SETLIST_AUTH_TOKENS entry's fingerprint (the name SETLIST_QUOTA_FILE gives a token)."""
    from serving.grpc.auth import TokenAuth, fingerprint

    if stdin:  # never from argv: a token on a command line shows in the process table
        for line in sys.stdin:
            if line.strip():
                typer.echo(fingerprint(line.strip()))
        return
    try:
        auth = TokenAuth.from_settings(get_settings())
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if auth is None:
        typer.echo("SETLIST_AUTH_TOKENS is not set: no tokens to fingerprint (or pass --stdin)", err=True)
        raise typer.Exit(2)
    for position, (fp, scopes) in enumerate(auth.fingerprints(), start=1):
        typer.echo(f"entry {position}  {'+'.join(sorted(scopes)):<10}  {fp}")


@app.command("check-quotas")
def check_quotas(
    file: Path | None = typer.Argument(None, help="the quota file to check (default SETLIST_QUOTA_FILE)"),
) -> None:
    """Check a quota file as a server would (start-up or reload), against SETLIST_AUTH_TOKENS and the
    SETLIST_QUOTA_* defaults, and print each token's limits; exit 1 with the reason when it is invalid."""
    settings = get_settings()
    if file is not None:
        settings = settings.model_copy(update={"quota_file": file})
    if settings.quota_file is None:
        typer.echo("no quota file: pass one, or set SETLIST_QUOTA_FILE", err=True)
        raise typer.Exit(2)
    try:
        entries = _check_auth_and_quotas(settings)
    except StartupError as exc:
        typer.echo(f"invalid: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{settings.quota_file}: valid, {len(entries)} token(s) with limits of their own")
    for entry in entries:
        limits = ", ".join(
            f"{rpc} " + ("no quota" if limit is None else f"{limit.per_s:g}/s burst {limit.burst}")
            for rpc, limit in entry.limits.items()
        )
        typer.echo(f"  {entry.name} ({entry.fingerprint}): {limits or 'the defaults'}")


class StartupError(RuntimeError):
    pass


def preflight(settings) -> None:
    """Fail fast, with one clear line, when a store the server depends on is missing or down."""
    from setlist.sqltimeouts import probe

    for name, url in (("metadata store", settings.metadata_url),):
        try:
            probe(url, settings.database_connect_timeout_s)
        except Exception as exc:
            raise StartupError(
                f"{name} at {_redact(url)} is unavailable ({type(exc).__name__}); "
                "start it (`make services` for the production profile) and retry"
            ) from None
    if settings.engine == "fast":
        _check_journals(settings)
    _check_ports(settings)
    from serving.grpc.server import InsecureServer, require_secure_transport

    try:
        require_secure_transport(settings)
    except InsecureServer as exc:
        raise StartupError(str(exc)) from None
    _check_auth_and_quotas(settings)
    if settings.profile == "local" and not (settings.data_dir / "registry.db").exists():
        raise StartupError(
            f"no feature registry under {settings.data_dir}: run `make materialize` and `make train` first"
        )
    from setlist.errors import SetlistError
    from setlist.pseudonym import check_key

    try:
        check_key(settings)  # Track would log every user under a new pseudonym, Rank know no one
    except SetlistError as exc:
        raise StartupError(str(exc)) from None


def _check_ports(settings) -> None:
    """Every port the server will listen on, free, before models load for a minute: a second server on
    the same port would otherwise end in a traceback, or with several workers (SO_REUSEPORT) share the
    port with the first one and take half its connections."""
    metrics_host = settings.metrics_host or settings.host
    ports = [("gRPC", settings.host, settings.port, "--port or SETLIST_PORT")]
    if settings.metrics_port:
        ports += [
            ("metrics", metrics_host, settings.metrics_port + i, "--metrics-port or SETLIST_METRICS_PORT")
            for i in range(max(1, settings.workers))
        ]
    if settings.health_port:
        ports.append(("health", settings.host, settings.health_port, "SETLIST_HEALTH_PORT"))
    seen: dict[int, tuple[str, str]] = {}
    for name, host, port, option in ports:
        # two of its own servers on one port (worker 1's metrics on the gRPC port): the second one's start fails
        if port and (same := seen.get(port)) and _overlap(same[1], host):
            raise StartupError(
                f"the {name} port {host}:{port} is also the {same[0]} port: choose another with {option}"
            )
        seen.setdefault(port, (name, host))
        if why := port_in_use(host, port):
            raise StartupError(
                f"the {name} port {host}:{port} {why}: stop that process, or choose another with {option}"
            )


def _overlap(a: str, b: str) -> bool:
    """Whether listening on ``a`` and on ``b`` takes the same port: one host, or a wildcard."""
    from serving.hosts import bare_host

    a, b = bare_host(a), bare_host(b)
    wildcard = ("", "0.0.0.0", "::")
    return a == b or a in wildcard or b in wildcard


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served, or None: something answers there, or it cannot be bound."""
    import socket

    from serving.hosts import bare_host

    if not 0 <= port <= 65535:
        return "is out of range (0 to 65535)"
    host = bare_host(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # a wildcard address is reached through loopback: a server already listening there answers
    target = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return "already has a server listening"
    except OSError:
        pass
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: a closed socket's wait is no use
        sock.bind((host, port))
    except OSError as exc:
        return f"cannot be bound ({exc.strerror or exc})"
    finally:
        sock.close()
    return None


def _check_auth_and_quotas(settings) -> list:
    """The token list and the quota settings and file, read as the server will: a mistake in either
    is one line here rather than a traceback in every worker. Returns the file's entries."""
    from serving.grpc.auth import TokenAuth
    from serving.grpc.quotas import token_quotas
    from setlist.errors import UsageError

    try:
        return token_quotas(settings, TokenAuth.from_settings(settings))
    except (UsageError, ValueError) as exc:
        raise StartupError(str(exc)) from None


def _check_journals(settings) -> None:
    """Each worker's journal directory must be free: a second server on the same data would otherwise
    fail in its workers, one traceback each (the lock itself is taken again by each journal)."""
    from setlist.journal_dirs import JournalLocked, journal_dir, probe_lock

    for worker in range(max(1, settings.workers)):
        try:
            probe_lock(journal_dir(settings.wal_dir, worker), settings.journal_lock_wait_s)
        except JournalLocked as exc:
            raise StartupError(str(exc)) from None


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
