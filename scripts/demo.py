"""The end of ``make demo``: start the server, rank for a few users, send a skip, show the change."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from contextlib import closing

import pandas as pd
from rich.table import Table

from serving.client import ClientError, SetlistClient, new_event
from setlist.catalog import item_labels
from setlist.cli import console as cli_console
from setlist.errors import SetlistError
from setlist.settings import get_settings

console = cli_console()


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _table(title: str, reply) -> Table:
    t = Table(title=f"{title}  [dim](arm={reply.arm}, cache_hit={reply.cache_hit}, {reply.latency_ms:.1f} ms)[/]")
    named = item_labels(get_settings().catalog_path, [i.item_id for i in reply.items])
    t.add_column("#", justify="right")
    t.add_column("item")
    t.add_column("title or artist")
    t.add_column("genre")
    t.add_column("score", justify="right")
    t.add_column("why")
    for n, item in enumerate(reply.items, 1):
        name, genre = named.get(item.item_id, ("", ""))
        t.add_row(str(n), item.item_id, name, genre, f"{item.score:.3f}", "; ".join(item.reasons))
    return t


def main() -> int:
    settings = get_settings()
    users = pd.read_parquet(settings.data_dir / "generated" / "users.parquet")
    personal = str(users.loc[users["consent_personalization"], "user_id"].iloc[0])
    opted_out = str(users.loc[~users["consent_personalization"], "user_id"].iloc[0])
    port = _free_port()
    env = {**os.environ, "SETLIST_PORT": str(port), "SETLIST_METRICS_PORT": "0", "SETLIST_HOST": "127.0.0.1"}
    console.print(f"starting the ranking server on 127.0.0.1:{port}…")
    proc = subprocess.Popen([sys.executable, "-m", "serving"], env=env)
    try:
        with SetlistClient(f"127.0.0.1:{port}", timeout=10) as client:
            if not client.wait_ready(timeout=120):
                console.print("[red]the server did not become ready[/]")
                return 1
            ctx = {"device": "mobile", "locale": "en_US"}
            for label, user in (
                (f"{personal} (personalized)", personal),
                ("new-listener (cold start)", "new-listener"),
                (f"{opted_out} (no personalization consent)", opted_out),
            ):
                console.print(_table(label, client.rank(user, k=5, context=ctx, explain=True)))
            before = client.rank(personal, k=5, context=ctx)
            skipped = before.items[0].item_id
            client.track([new_event(personal, skipped, "skip", session_id="demo-session", value=0.05, context=ctx)])
            console.print(f"sent [bold]skip[/] of {skipped} for {personal}")
            after = client.rank(personal, k=5, context=ctx, explain=True)
            console.print(_table(f"{personal} after the skip", after))
            again = client.rank(personal, k=5, context=ctx, explain=True)
            console.print(f"the same request again: cache_hit={again.cache_hit}, {again.latency_ms:.2f} ms")
            ok = skipped not in [i.item_id for i in after.items]
            console.print("[green]the skip changed the ranking[/]" if ok else "[red]the skip did not change it[/]")
            return 0 if ok else 1
    except ClientError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetlistError as exc:  # a setting that does not read: one line, as every other command says it
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
