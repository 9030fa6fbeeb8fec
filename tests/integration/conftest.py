"""Fixtures of the integration layer: the gRPC code generated once, and a real server around a fake
ranking (``serve_fake``). Imported here so that test modules use them by name alone."""

from tests.fakes.transport import protos, serve_fake  # noqa: F401  (fixtures are registered by import)
