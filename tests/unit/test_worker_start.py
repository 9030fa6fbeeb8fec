"""A worker that cannot build its ranking service says why in one line and exits non-zero."""

from __future__ import annotations

import logging
import signal
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
