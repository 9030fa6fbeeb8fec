"""One error hierarchy for serving. The transport maps each class to one gRPC status code."""

from __future__ import annotations


class ServingError(Exception):
    """Base class; ``code`` names the gRPC status the transport answers with."""

    code = "INTERNAL"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata the transport adds to the error status, beside the request id."""
        return ()


class InvalidArgument(ServingError):
    code = "INVALID_ARGUMENT"


class Overloaded(ServingError):
    code = "RESOURCE_EXHAUSTED"


class QuotaExceeded(ServingError):
    """The caller's quota (serving.grpc.quotas) is spent. ``retry_after_ms`` is how long until the call
    would fit, sent as ``retry-after-ms`` and ``grpc-retry-pushback-ms``; None when waiting cannot help
    (one call costs more than the whole burst), sent as a pushback of -1: gRPC's "do not retry"."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after_ms: int | None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        if self.retry_after_ms is None:
            return (("grpc-retry-pushback-ms", "-1"),)
        ms = str(self.retry_after_ms)
        return (("retry-after-ms", ms), ("grpc-retry-pushback-ms", ms))


class Unauthenticated(ServingError):
    code = "UNAUTHENTICATED"


class PermissionDenied(ServingError):
    code = "PERMISSION_DENIED"


class NotReady(ServingError):
    """Models or features are not loaded yet."""

    code = "UNAVAILABLE"


class DeadlineExceeded(ServingError):
    code = "DEADLINE_EXCEEDED"


class Unavailable(ServingError):
    """Something this call needs has failed in this process (the Track journal's disk): the caller
    retries elsewhere, and the health check has turned NOT_SERVING so traffic moves away."""

    code = "UNAVAILABLE"
