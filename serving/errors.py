"""One error hierarchy for serving. The transport maps each class to one gRPC status code."""

from __future__ import annotations


class ServingError(Exception):
    """Base class; ``code`` names the gRPC status the transport answers with."""

    code = "INTERNAL"


class InvalidArgument(ServingError):
    code = "INVALID_ARGUMENT"


class Overloaded(ServingError):
    code = "RESOURCE_EXHAUSTED"


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
