"""Fixtures of the integration layer: a real server around a fake ranking (``serve_fake``).
Imported here so that test modules use it by name alone."""

from tests.fakes.transport import serve_fake  # noqa: F401  (fixtures are registered by import)
