"""``python -m serving.client rank|track|health``: talk to a running server from the shell.

Exit codes: 0 success, 1 when the server is unreachable or answers with an error status (the code and
message are printed, no traceback), 2 for usage errors. ``health`` exits 1 unless the status is SERVING.
The token comes from --token or, better (argv is visible to other users), SETLIST_CLIENT_TOKEN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from serving.client.api import ClientError, SetlistClient, new_event
from setlist.cli import App
from setlist.errors import SetlistError

# App: a setting that does not read (the default port comes from the settings) is one line, not a traceback
app = App(add_completion=False, no_args_is_help=True, help="Call a Setlist ranking server: rank, track, health.")

Target = Annotated[
    str | None, typer.Option(help="host:port (default: localhost and SETLIST_PORT)", envvar="SETLIST_TARGET")
]
Token = Annotated[str | None, typer.Option(help="bearer token", envvar="SETLIST_CLIENT_TOKEN", show_default=False)]
TlsCa = Annotated[Path | None, typer.Option("--tls-ca", help="CA certificate (PEM): turns TLS on")]
Timeout = Annotated[float, typer.Option(help="deadline per call, seconds")]


def _fail(message: str, code: int = 1) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _client(target: str | None, token: str | None, tls_ca: Path | None, timeout: float) -> SetlistClient:
    if target is None:
        from setlist.settings import get_settings  # only for the default port

        target = f"localhost:{get_settings().port}"
    if tls_ca is not None and not tls_ca.is_file():
        _fail(f"--tls-ca {tls_ca} is not a file", code=2)
    return SetlistClient(target, token=token, tls_ca=tls_ca, timeout=timeout)


def _labels(ids: list[str]) -> dict[str, tuple[str, str]]:
    """Titles and genres of ranked items from the local catalogue; a ranking still prints without."""
    from setlist.catalog import item_labels
    from setlist.settings import get_settings

    try:
        return item_labels(get_settings().catalog_path, ids)
    except (OSError, ValueError, KeyError, SetlistError):  # no catalogue, or no settings to find it: ids alone
        return {}


def _pairs(values: list[str] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            _fail(f"--context expects KEY=VALUE, got {value!r}", code=2)
        pairs[key] = val
    return pairs


def _rpc_failed(client: SetlistClient, exc: ClientError) -> NoReturn:
    if exc.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        _fail(f"{exc.code.name}: cannot get an answer from {client.target} ({exc.message})")
    _fail(f"{exc.code.name}: {exc.message}")


@app.command()
def rank(
    user: Annotated[str, typer.Option(help="the application's user id")],
    k: Annotated[int, typer.Option("--k", help="how many items")] = 10,
    context: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="item id to leave out, repeatable")] = None,
    explain: Annotated[bool, typer.Option(help="ask for reasons")] = False,
    candidate: Annotated[
        list[str] | None,
        typer.Option(help="an item of your own slate to order instead of the server's candidates, repeatable"),
    ] = None,
    labels: Annotated[
        bool,
        typer.Option(help="show titles and genres from this machine's catalogue (SETLIST_DATA_DIR), if it has them"),
    ] = True,
    target: Target = None,
    token: Token = None,
    tls_ca: TlsCa = None,
    timeout: Timeout = 2.0,
) -> None:
    """Rank items for a user and print them as a table."""
    ctx = _pairs(context)
    with _client(target, token, tls_ca, timeout) as client:
        # connected first, so the printed latency is the Rank's alone; an unreachable server still
        # fails below, with the call's own error and hint
        client.connect(timeout)
        try:
            reply = client.rank(
                user, k=k, context=ctx, exclude=exclude or (), explain=explain, candidates=candidate or ()
            )
        except ClientError as exc:
            _rpc_failed(client, exc)
    named = _labels([i.item_id for i in reply.items]) if labels else {}
    table = Table(title=f"top {len(reply.items)}")
    table.add_column("rank", justify="right")
    table.add_column("item")
    if named:
        table.add_column("title")
        table.add_column("genre")
    table.add_column("score", justify="right")
    table.add_column("reasons")
    for position, item in enumerate(reply.items, start=1):
        title, genre = named.get(item.item_id, ("", ""))
        described = [escape(title), escape(genre)] if named else []
        table.add_row(
            str(position), escape(item.item_id), *described, f"{item.score:.4f}", escape("; ".join(item.reasons))
        )
    out = Console()
    out.print(table)
    out.print(
        f"model_version={escape(reply.model_version)} cache_hit={reply.cache_hit} "
        f"degraded={reply.degraded} arm={escape(reply.arm) or '-'} request_id={reply.request_id} "
        f"latency={reply.latency_ms:.2f} ms",
        highlight=False,
    )
    if reply.unknown_item_ids:  # never dropped unseen: the caller decides where they go
        ids = ", ".join(escape(i) for i in reply.unknown_item_ids)
        Console(stderr=True).print(f"[yellow]not ranked, the served models do not know these items:[/] {ids}")
    if reply.ignored_context_keys:  # a misspelt key changes nothing: say so rather than rank as if it did
        keys = ", ".join(escape(k) for k in reply.ignored_context_keys)
        Console(stderr=True).print(f"[yellow]the server ignored these context keys:[/] {keys}")


@app.command()
def track(
    user: Annotated[str, typer.Option(help="the application's user id")],
    type: Annotated[str, typer.Option("--type", help="play, skip, like, not_interested, search, feature_use, …")],
    item: Annotated[str, typer.Option(help="item id (none for a search or a feature_use)")] = "",
    query: Annotated[str, typer.Option(help="a search's text, or the product feature a feature_use used")] = "",
    session: Annotated[str, typer.Option(help="session id")] = "",
    value: Annotated[float | None, typer.Option(help="e.g. the listen fraction")] = None,
    context: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
    target: Target = None,
    token: Token = None,
    tls_ca: TlsCa = None,
    timeout: Timeout = 2.0,
) -> None:
    """Send one event that happens now (a fresh uuid4 event id). A consent change is an event like any
    other: e.g. --type feature_use --query privacy_settings --context consent_personalization=false."""
    event = new_event(user, item, type, session_id=session, value=value, context=_pairs(context), query=query)
    with _client(target, token, tls_ca, timeout) as client:
        try:
            accepted, rejected = client.track([event])
        except ClientError as exc:
            _rpc_failed(client, exc)
    out = Console()
    out.print(f"accepted={accepted} event_id={event.event_id}", highlight=False)
    for rejection in rejected:
        out.print(f"[red]rejected[/] {escape(rejection.event_id)}: {escape(rejection.reason)}", highlight=False)
    if rejected:
        raise typer.Exit(1)


@app.command(reads_only=True)
def health(
    service: Annotated[str, typer.Option(help="service name; empty means the whole server")] = "",
    target: Target = None,
    tls_ca: TlsCa = None,
    timeout: Timeout = 2.0,
) -> None:
    """Print the grpc.health.v1 status; exit 0 only when SERVING."""
    with _client(target, None, tls_ca, timeout) as client:
        try:
            status = client.health(service)
        except ClientError as exc:
            _rpc_failed(client, exc)
    Console().print(status, highlight=False)
    if status != "SERVING":
        raise typer.Exit(1)


def main() -> None:
    app()
