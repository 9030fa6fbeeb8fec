"""A worker that cannot build its ranking service says why in one line and exits non-zero."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.grpc.workers import _run_worker
from setlist.featureset import DeclarationError
from setlist.settings import Settings


@pytest.fixture(autouse=True)
def _signals_restored() -> Iterator[None]:
    """A worker takes SIGTERM and SIGINT for itself: the test process gets its own back."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", hmac_key="k", metrics_port=0, port=0)


def test_a_declaration_error_is_its_sentence_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(index: int):
        raise DeclarationError("feature 'my_skips': windows must be a tuple of whole days, e.g. windows=(7, 30)")

    with caplog.at_level(logging.ERROR):
        assert _run_worker(_settings(tmp_path), refuse, 0.1, index=0, reuse_port=False) == 1
    (record,) = [r for r in caplog.records if "could not build" in r.getMessage()]
    assert "windows must be a tuple of whole days" in record.getMessage() and record.exc_info is None


def test_an_unexpected_error_keeps_its_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def crash(index: int):
        raise KeyError("a bug")

    with caplog.at_level(logging.ERROR):
        assert _run_worker(_settings(tmp_path), crash, 0.1, index=0, reuse_port=False) == 1
    (record,) = [r for r in caplog.records if "could not build" in r.getMessage()]
    assert record.exc_info is not None


class _Closed:
    """A ranking service that records being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True


def _listening(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen()
    return sock


def test_a_port_taken_since_the_start_up_check_is_one_line_and_the_service_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken = _listening()
    ranking = _Closed()
    try:
        settings = _settings(tmp_path).model_copy(update={"host": "127.0.0.1", "port": taken.getsockname()[1]})
        with caplog.at_level(logging.ERROR):
            assert _run_worker(settings, lambda index: ranking, 0.1, index=0, reuse_port=False) == 1
    finally:
        taken.close()
    (record,) = [r for r in caplog.records if "could not start the server" in r.getMessage()]
    assert "cannot listen on 127.0.0.1:" in record.getMessage() and record.exc_info is None
    assert ranking.closed


@pytest.mark.parametrize("kind", ["gRPC", "metrics", "health"])
def test_start_up_refuses_a_port_another_server_listens_on_naming_the_setting(tmp_path: Path, kind: str) -> None:
    from serving.__main__ import StartupError, _check_ports, port_in_use

    taken = _listening()
    try:
        port = taken.getsockname()[1]
        base = _settings(tmp_path).model_copy(update={"host": "0.0.0.0", "port": 0, "workers": 2})
        settings = {
            "gRPC": base.model_copy(update={"port": port}),
            # the second worker's metrics port is the taken one
            "metrics": base.model_copy(update={"metrics_port": port - 1}),
            "health": base.model_copy(update={"health_port": port}),
        }[kind]
        if kind == "metrics" and port_in_use("0.0.0.0", port - 1):
            pytest.skip("the port below the test's is taken on this machine")
        with pytest.raises(StartupError, match=rf"the {kind} port \S+:{port} already has a server listening"):
            _check_ports(settings)
    finally:
        taken.close()
    _check_ports(settings)  # free again
    # bound (not listening) by another socket without SO_REUSEADDR's leave: it cannot be bound
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    try:
        assert "cannot be bound" in (port_in_use("127.0.0.1", held.getsockname()[1]) or "")
    finally:
        held.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 on this machine")
def test_an_ipv6_host_in_brackets_as_grpc_takes_it_is_checked_not_refused() -> None:
    from serving.__main__ import port_in_use

    # gRPC binds "[::]:50051" (":::50051" it cannot parse): the start-up check reads the same spelling
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as free:
        free.bind(("::1", 0))
        port = free.getsockname()[1]
    assert port_in_use("[::1]", port) is None
    taken = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    taken.bind(("::1", 0))
    taken.listen()
    try:
        assert port_in_use("[::1]", taken.getsockname()[1]) == "already has a server listening"
    finally:
        taken.close()


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 on this machine")
def test_the_workers_port_is_reserved_on_an_ipv6_host_in_brackets() -> None:
    from serving.grpc.workers import _reserve_port

    with _reserve_port("[::1]", 0) as port:
        assert port > 0


def test_a_metrics_port_past_the_last_one_is_said_not_a_traceback(tmp_path: Path) -> None:
    from serving.__main__ import StartupError, _check_ports

    # worker i serves metrics on metrics_port + i: the second worker's would be 65536
    settings = _settings(tmp_path).model_copy(update={"host": "127.0.0.1", "metrics_port": 65535, "workers": 2})
    with pytest.raises(StartupError, match=r"the metrics port 127.0.0.1:65536 is out of range"):
        _check_ports(settings)


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 on this machine")
def test_metrics_are_served_on_an_ipv6_host_in_brackets_as_the_start_up_check_passes_it() -> None:
    import urllib.request

    from serving.metrics import start_metrics_server, stop_metrics_server

    # SETLIST_HOST=[::] is gRPC's spelling and the check's; the metrics server takes it too (by default it
    # listens on the same host), or every worker would stop at its start on a name that does not resolve
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as free:
        free.bind(("::1", 0))
        port = free.getsockname()[1]
    server = start_metrics_server(port, "[::1]")
    try:
        assert server is not None and server[1] == port
        with urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=5) as answer:
            assert answer.status == 200
    finally:
        stop_metrics_server(server)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["metrics", "health"])
def test_start_up_refuses_two_of_its_own_servers_on_one_port(tmp_path: Path, kind: str) -> None:
    from serving.__main__ import StartupError, _check_ports, port_in_use

    port = _free_port()
    base = _settings(tmp_path).model_copy(update={"host": "127.0.0.1", "port": port})
    settings = {
        # worker 1 serves metrics on metrics_port + 1, the gRPC port
        "metrics": base.model_copy(update={"metrics_port": port - 1, "workers": 2}),
        "health": base.model_copy(update={"health_port": port}),
    }[kind]
    if kind == "metrics" and port_in_use("127.0.0.1", port - 1):
        pytest.skip("the port below the test's is taken on this machine")
    with pytest.raises(StartupError, match=rf"the {kind} port 127.0.0.1:{port} is also the gRPC port"):
        _check_ports(settings)
    if kind == "metrics" and not port_in_use("127.0.0.2", port - 1):
        # on a host of their own the same number is another port
        _check_ports(settings.model_copy(update={"metrics_host": "127.0.0.2"}))
