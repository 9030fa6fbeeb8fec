"""The fail-fast Redis clients against a server that accepts connections and never answers (a hung
Redis): a client told not to retry timeouts sends its command once; one that does, twice."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import redis

from setlist.redis_client import fail_fast_redis


class SilentServer:
    """Accepts every connection, reads what is sent, answers nothing; counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)  # open and silent
            self._accepted(conn)

    def _accepted(self, conn: socket.socket) -> None:
        """What a subclass does with a new connection besides holding it."""

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.mark.parametrize(("retry_timeouts", "attempts"), [(False, 1), (True, 2)])
def test_a_timeout_is_retried_only_when_asked(silent: SilentServer, retry_timeouts: bool, attempts: int) -> None:
    client = fail_fast_redis(f"redis://127.0.0.1:{silent.port}/0", 0.05, retries=1, retry_timeouts=retry_timeouts)
    with pytest.raises(redis.exceptions.TimeoutError):
        client.get("k")
    client.close()
    assert silent.connections == attempts  # a retry after a timeout opens a fresh connection


class FirstBytes(SilentServer):
    """A silent server that keeps the first bytes each connection sent: a TLS client opens with a
    handshake record (0x16), a plaintext Redis client with a RESP array (``*``)."""

    def __init__(self) -> None:
        self.first: list[bytes] = []
        super().__init__()

    def _accepted(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            self.first.append(conn.recv(1))
        except OSError:
            self.first.append(b"")


@pytest.mark.parametrize("url, opening", [("rediss://:pw@h:1/0", b"\x16"), ("redis://:pw@h:1/0", b"*")])
def test_the_cluster_profiles_own_clients_speak_tls_when_the_url_says_so(url: str, opening: bytes, tmp_path) -> None:
    """Erasure's sweep of every master and the residue scan open their own Redis Cluster clients: a
    ``rediss://`` SETLIST_REDIS_URL turns TLS on for them, as it does for Feast's client."""
    from ingest.erasure import _cluster_sweep
    from ingest.residue import ResidueScanError, scan_redis_cluster
    from setlist.errors import Refused
    from setlist.settings import Settings

    server = FirstBytes()
    try:
        node = f"127.0.0.1:{server.port}"
        settings = Settings(data_dir=tmp_path, profile="cluster", redis_url=url, redis_cluster_nodes=[node])
        settings = settings.model_copy(update={"online_timeout_ms": 300})
        with pytest.raises(Refused, match="could not be reached"):
            _cluster_sweep(settings, "u_" + "a" * 32)
        with pytest.raises(ResidueScanError):
            scan_redis_cluster([node], {"pseudonym": "u_" + "a" * 32}, timeout_s=0.3, tls=url.startswith("rediss"))
        assert server.first and set(server.first) == {opening}
    finally:
        server.close()
