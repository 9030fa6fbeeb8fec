"""The load generator's connections, the same number on every worker process of the server.

Worker processes share the port with SO_REUSEPORT, and the kernel places each *connection* on one of
them by a hash of its addresses. A handful of connections splits unevenly by chance (4 on two workers:
3:1 or 4:0 in 10 runs of 16, and still about 2:1 in one run of ten with 32), and then one worker queues
while the other idles: p99 and saturation measured the dice, not the server. So each connection is
opened, the server process that accepted it is looked up in the process table, and connections are
kept until every worker holds its share; the surplus is closed. A server in one process, or one whose
processes cannot be seen (another host, another user), gets plain connections.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import grpc
import psutil

#: connections opened per connection kept, at most, before settling for an uneven spread
MAX_TRIES_PER_CONNECTION = 8
CONNECT_TIMEOUT_S = 30.0

Open = Callable[[], grpc.aio.Channel]


def listeners(port: int) -> list[int]:
    """The pids of the processes listening on ``port`` (the server's workers), or [] when unknown."""
    try:
        found = {
            c.pid for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
    except psutil.AccessDenied:
        return []
    return sorted(pid for pid in found if pid is not None)


def server_ends(pids: list[int], port: int) -> set[tuple[int, int]]:
    """(worker pid, client port) of every established connection the workers accepted on ``port``."""
    ends: set[tuple[int, int]] = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ends |= {
            (pid, c.raddr.port)
            for c in conns
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port and c.raddr
        }
    return ends


async def balanced(open_channel: Open, port: int, n: int) -> tuple[list[grpc.aio.Channel], dict[int, int]]:
    """``n`` connected channels (rounded up to a multiple of the workers), the same number on every
    worker, and how many each worker holds (empty: the spread could not be seen, so it is the
    kernel's). If the workers cannot be evened out within the tries, the channels are kept as drawn."""
    workers = listeners(port)
    if len(workers) < 2:
        return [open_channel() for _ in range(n)], {}
    share = -(-n // len(workers))
    kept: dict[int, list[grpc.aio.Channel]] = {pid: [] for pid in workers}
    seen = server_ends(workers, port)
    for _ in range(MAX_TRIES_PER_CONNECTION * share * len(workers)):
        if all(len(chs) >= share for chs in kept.values()):
            break
        channel = open_channel()
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
        now = server_ends(workers, port)
        owners = {pid for pid, _ in now - seen}
        seen = now
        owner = owners.pop() if len(owners) == 1 else None
        if owner is not None and len(kept[owner]) < share:
            kept[owner].append(channel)
        else:  # a surplus worker, or a connection that cannot be told apart
            await channel.close()
    # interleaved, so calls sent over the channels in turn alternate between workers
    channels = [c for round_ in itertools.zip_longest(*kept.values()) for c in round_ if c is not None]
    if not channels:  # no connection could be told apart: the kernel's spread it is
        return [open_channel() for _ in range(n)], {}
    return channels, {pid: len(chs) for pid, chs in kept.items()}
