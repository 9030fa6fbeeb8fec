"""Fixtures of the unit layer: the built-in feature declarations the contract suites rank with, and a
server over a module's own ``plane`` fixture (each module sets the plane's settings itself).
Imported here so that test modules use them by name alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.contracts import features  # noqa: F401  (fixtures are registered by import)

if TYPE_CHECKING:
    from serving.bootstrap import Server
    from tests.fakes.dataplane import Dataplane


@pytest.fixture
def server(plane: Dataplane) -> Iterator[Server]:
    """``plane.build()``, closed after the test; a module without a ``plane`` fixture has no use for it."""
    built = plane.build()
    yield built
    built.close()
