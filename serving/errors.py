"""One error hierarchy for serving. The transport maps each class to one gRPC status code."""

from __future__ import annotations

#: trailing metadata on a RESOURCE_EXHAUSTED that says which refusal it is ("busy": the server's
#: line was too long), so a client tells it from a spent quota, which carries the same retry hint
REFUSED_KEY = "x-setlist-refused"


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


class RetryLater(Overloaded):
    """RESOURCE_EXHAUSTED with a hint: ``retry_after_ms`` is how long until the call would fit, sent as
    ``retry-after-ms`` and ``grpc-retry-pushback-ms``; None when waiting cannot help, sent as a
    pushback of -1: gRPC's "do not retry". ``refused``, when set, is sent as ``x-setlist-refused``."""

    refused = ""

    def __init__(self, message: str, retry_after_ms: int | None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        kind = ((REFUSED_KEY, self.refused),) if self.refused else ()
        if self.retry_after_ms is None:
            return (("grpc-retry-pushback-ms", "-1"), *kind)
        ms = str(self.retry_after_ms)
        return (("retry-after-ms", ms), ("grpc-retry-pushback-ms", ms), *kind)


class QuotaExceeded(RetryLater):
    """The caller's quota (serving.grpc.quotas) is spent; no hint when one call costs more than the
    whole burst."""


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
