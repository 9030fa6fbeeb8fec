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
