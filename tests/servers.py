"""Real Redis and PostgreSQL servers for integration tests, a local Redis Cluster, and the
environment of a ``python -m serving`` subprocess.

The single servers live in ``bench.backing``, shared with ``make chaos``; they are re-exported here so
tests import them from one place. :class:`RedisClusterServer` (the cluster profile's online store)
is defined here.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.backing import (
    INSTALL_HINT,
    PG_OS_USER,
    MissingServer,
    PostgresServer,
    PushgatewayServer,
    RedisServer,
    find_postgres_bin,
    find_redis_server,
    free_port,
    terminate,
    wait_for,
)

__all__ = [
    "INSTALL_HINT",
    "PG_OS_USER",
    "MissingServer",
    "PostgresServer",
    "PushgatewayServer",
    "RedisClusterServer",
    "RedisServer",
    "cluster_ports",
    "db_url",
    "find_postgres_bin",
    "find_redis_server",
    "free_port",
    "redis_cluster",
    "server_env",
    "wait_for",
]


def skip_or_fail(reason: str) -> None:
    """A server or runtime a test needs is missing: skip locally, fail in CI (SETLIST_REQUIRE_SERVERS=1)."""
    if os.environ.get("SETLIST_REQUIRE_SERVERS") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def server_env(settings, port: int, **extra: str) -> dict[str, str]:
    """The environment of a `python -m serving` subprocess on ``settings``' data: loopback, a given
    port, no metrics port, no model reloads during the test; ``extra`` adds or overrides variables."""
    return {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "SETLIST_DATA_DIR": str(settings.data_dir),
        "SETLIST_HMAC_KEY": settings.hmac_key.get_secret_value(),
        "SETLIST_PORT": str(port),
        "SETLIST_HOST": "127.0.0.1",
        "SETLIST_METRICS_PORT": "0",
        "SETLIST_RELOAD_INTERVAL_S": "3600",
        **extra,
    }


#: Redis Cluster's node-to-node bus listens on the client port + 10000 (Redis' fixed offset)
CLUSTER_BUS_OFFSET = 10_000
SLOTS = 16_384


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int, low: int = 10_000, high: int = 22_000) -> list[int]:
    """``count`` client ports whose bus ports (+10000) are free too. Picked below Linux's ephemeral
    range (32768 and up), so neither port collides with an outgoing connection's."""
    rng = random.Random()
    ports: list[int] = []
    for _ in range(2000):
        port = rng.randrange(low, high)
        taken = {p for q in ports for p in (q, q + CLUSTER_BUS_OFFSET)}
        if port in taken or port + CLUSTER_BUS_OFFSET in taken:
            continue
        if _bindable(port) and _bindable(port + CLUSTER_BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free port pairs (port, port+{CLUSTER_BUS_OFFSET}) in {low}..{high}")


class RedisClusterServer:
    """A Redis Cluster of ``masters`` redis-server child processes on free loopback ports, each with
    its data under ``directory/<port>``, the 16384 slots split evenly between them, and ``replicas``
    replicas of each master (none by default).

    The nodes run with ``cluster-require-full-coverage no`` (as ``make services`` does): when a
    master dies, the others keep serving their own slots instead of refusing every key; a master
    with a replica is replaced by it after the node timeout (the cluster's own failover).
    ``kill(i)`` SIGKILLs one master; ``start()`` brings the dead ones back on their ports, where
    they rejoin from their ``nodes.conf``."""

    def __init__(self, directory: Path, masters: int = 3, node_timeout_ms: int = 1000, replicas: int = 0) -> None:
        self.binary = find_redis_server()
        self.directory = Path(directory)
        all_ports = cluster_ports(masters * (1 + replicas))
        self.ports = all_ports[:masters]  # the masters, as first created
        #: the replicas of each master, by the master's port
        self.replicas = {
            m: all_ports[masters + k * replicas : masters + (k + 1) * replicas] for k, m in enumerate(self.ports)
        }
        self.node_timeout_ms = node_timeout_ms
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def _all_ports(self) -> list[int]:
        return self.ports + [r for rs in self.replicas.values() for r in rs]

    @property
    def nodes(self) -> list[str]:
        """``host:port`` of every master: SETLIST_REDIS_CLUSTER_NODES."""
        return [f"127.0.0.1:{p}" for p in self.ports]

    def _dir(self, port: int) -> Path:
        return self.directory / str(port)

    def log(self, port: int) -> Path:
        return self._dir(port) / "redis.log"

    def running(self, port: int) -> bool:
        proc = self._procs.get(port)
        return proc is not None and proc.poll() is None

    def node(self, port: int, timeout: float = 1.0):
        """A plain client of one node (no redirections followed), failing at once."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def client(self, timeout: float = 1.0):
        """A cluster client (redirections followed, pipelines split per node), failing at once."""
        from redis.backoff import NoBackoff
        from redis.cluster import ClusterNode, RedisCluster
        from redis.retry import Retry

        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.ports],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )

    def _info(self, port: int) -> dict[str, str]:
        try:
            with self.node(port, timeout=0.5) as c:
                text = c.execute_command("CLUSTER INFO")
        except Exception:
            return {}
        if isinstance(text, dict):  # redis-py parses the reply into a dict of str
            return {str(k): str(v) for k, v in text.items()}
        text = text.decode() if isinstance(text, bytes) else str(text)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def state_ok(self, port: int) -> bool:
        """The node answers and says ``cluster_state:ok`` with every master it should know of."""
        info = self._info(port)
        return info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == str(len(self._all_ports))

    def _ping(self, port: int) -> bool:
        try:
            with self.node(port, timeout=0.5) as c:
                return bool(c.ping())
        except Exception:
            return False

    def _spawn(self, port: int, timeout: float) -> None:
        d = self._dir(port)
        d.mkdir(parents=True, exist_ok=True)
        self._procs[port] = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(d),
                "--logfile",
                str(self.log(port)),
                "--daemonize",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--cluster-require-full-coverage",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        wait_for(
            lambda: self._ping(port),
            timeout,
            f"redis cluster node on port {port}",
            alive=lambda: self.running(port),
            log=self.log(port),
        )

    def start(self, timeout: float = 30.0) -> RedisClusterServer:
        """Start every node that is not running; on first start, assign the slots and join them
        (what ``redis-cli --cluster create`` does), then wait until every node says
        ``cluster_state:ok``."""
        fresh = not any((self._dir(p) / "nodes.conf").exists() for p in self.ports)
        for port in self._all_ports:
            if not self.running(port):
                self._spawn(port, timeout)
        if fresh:
            self._create()
            self._attach_replicas(timeout)
        for port in self._all_ports:
            wait_for(
                lambda port=port: self.state_ok(port),
                timeout,
                f"cluster_state:ok on port {port}",
                alive=lambda port=port: self.running(port),
                log=self.log(port),
            )
        return self

    def _create(self) -> None:
        n = len(self.ports)
        for i, port in enumerate(self.ports):
            first, last = i * SLOTS // n, (i + 1) * SLOTS // n - 1
            with self.node(port) as c:
                c.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
                # distinct epochs, as redis-cli sets them: no collision for the nodes to settle first
                c.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
        with self.node(self.ports[0]) as c:
            for port in self.ports[1:]:
                c.execute_command("CLUSTER MEET", "127.0.0.1", port)

    def _attach_replicas(self, timeout: float) -> None:
        """Each replica meets the cluster, then follows its master (``CLUSTER REPLICATE``, as
        ``redis-cli --cluster create --cluster-replicas`` does), and has its first full sync."""
        for master, replicas in self.replicas.items():
            with self.node(master) as c:
                master_id = c.execute_command("CLUSTER MYID")
                master_id = master_id.decode() if isinstance(master_id, bytes) else str(master_id)
            for port in replicas:
                with self.node(self.ports[0]) as c:
                    c.execute_command("CLUSTER MEET", "127.0.0.1", port)
                # a replica can follow a master only once it knows that node
                wait_for(
                    lambda port=port, master_id=master_id: self._knows(port, master_id),
                    timeout,
                    f"redis cluster node on port {port} learning of its master",
                    alive=lambda port=port: self.running(port),
                    log=self.log(port),
                )
                with self.node(port) as c:
                    c.execute_command("CLUSTER REPLICATE", master_id)
                wait_for(
                    lambda port=port: self._role(port) == ("slave", "connected"),
                    timeout,
                    f"the replica on port {port} in sync with its master",
                    alive=lambda port=port: self.running(port),
                    log=self.log(port),
                )

    def _knows(self, port: int, node_id: str) -> bool:
        try:
            with self.node(port, timeout=0.5) as c:
                text = c.execute_command("CLUSTER NODES")
        except Exception:
            return False
        return node_id in str(text)

    def _role(self, port: int) -> tuple[str, str]:
        """(``master``, "") or (``slave``, the replication state: ``connected`` once in sync)."""
        try:
            with self.node(port, timeout=0.5) as c:
                role = c.execute_command("ROLE")
        except Exception:
            return ("", "")
        kind = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
        if kind == "slave":
            state = role[3].decode() if isinstance(role[3], bytes) else str(role[3])
            return (kind, state)
        return (kind, "")

    def promoted(self, replica: int) -> bool:
        """The replica on port ``replica`` has taken over as a master (after a failover)."""
        return self._role(replica)[0] == "master"

    def wait_replicated(self, timeout_ms: int = 10_000) -> None:
        """Every write acknowledged so far has reached every replica (``WAIT`` on each master)."""
        for master, replicas in self.replicas.items():
            if replicas:
                with self.node(master, timeout=timeout_ms / 1000 + 1) as c:
                    got = int(c.execute_command("WAIT", len(replicas), timeout_ms))
                if got < len(replicas):
                    raise RuntimeError(f"{got} of {len(replicas)} replicas of {master} acknowledged the writes")

    def port_of(self, key: bytes | str) -> int:
        """The port of the master that serves ``key``'s slot, as the cluster itself says."""
        live = next(p for p in self.ports if self.running(p))
        with self.node(live) as c:
            slot = int(c.execute_command("CLUSTER KEYSLOT", key))
            for first, last, master, *_ in c.execute_command("CLUSTER SLOTS"):
                if int(first) <= slot <= int(last):
                    return int(master[1])
        raise LookupError(f"slot {slot} is not served by any master")

    def kill(self, port: int) -> None:
        """Abrupt death of one master (SIGKILL), as on an OOM kill or a lost machine."""
        proc = self._procs.get(port)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def marked_failed(self, port: int) -> bool:
        """Every live master has marked the master on ``port`` as ``fail`` (after the node timeout)."""
        live = [p for p in self.ports if p != port and self.running(p)]
        for p in live:
            try:
                with self.node(p, timeout=0.5) as c:
                    text = c.execute_command("CLUSTER NODES")
            except Exception:
                return False
            if isinstance(text, dict):  # redis-py parses the reply: {"host:port": {"flags": …}}
                flags = str(text.get(f"127.0.0.1:{port}", {}).get("flags", ""))
            else:
                line = next((ln for ln in str(text).splitlines() if f"127.0.0.1:{port}@" in ln), "")
                flags = line.split()[2] if line else ""
            if "fail" not in flags.split(",") or "fail?" in flags:
                return False
        return bool(live)

    def flush(self) -> None:
        for port in self.ports:
            with self.node(port) as c:
                c.flushall()

    def dbsize(self) -> dict[int, int]:
        """Keys held by each master."""
        out = {}
        for port in self.ports:
            with self.node(port) as c:
                out[port] = int(c.dbsize())
        return out

    def stop(self, timeout: float = 15.0) -> None:
        for proc in self._procs.values():
            terminate(proc, timeout)
        self._procs.clear()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    """A 3-master Redis Cluster of our own on free loopback ports (never ``make services``' 7001-7003):
    ``.nodes`` is SETLIST_REDIS_CLUSTER_NODES; ``kill(port)`` SIGKILLs one master and ``start()``
    brings it back (empty: the test nodes keep no data files) and waits for ``cluster_state:ok``.
    Like the other servers' fixtures, a missing redis-server skips, or fails with
    SETLIST_REQUIRE_SERVERS=1. Import it into a test module (or a conftest) to use it."""
    try:
        server = RedisClusterServer(tmp_path_factory.mktemp("redis-cluster"))
    except MissingServer as exc:
        skip_or_fail(str(exc))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def db_url(server: RedisServer, db: int) -> str:
    """The session Redis's URL for database ``db``: a test module that flushes its keys takes a number
    of its own (test_redis_cache 7, test_cache_hit_path 8, test_redis_quotas 9)."""
    return server.url.rsplit("/", 1)[0] + f"/{db}"
