"""Fixtures of the unit layer: the built-in feature declarations the contract suites rank with.
Imported here so that test modules use them by name alone."""

from tests.contracts import features  # noqa: F401  (fixtures are registered by import)
