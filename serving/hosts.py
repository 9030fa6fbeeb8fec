"""A listening host as gRPC and the socket module each spell it."""

from __future__ import annotations


def bare_host(host: str) -> str:
    """gRPC takes an IPv6 address in brackets (``[::]:50051``), and so ``SETLIST_HOST`` may give it; the
    socket module, and the metrics server built on it, take it bare."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host
