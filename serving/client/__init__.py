"""A Python client for setlist.v1.RankingService, and its shell CLI (``python -m serving.client``)."""

from serving.client.api import (
    ClientError,
    QuotaExceededError,
    RankReply,
    RetryLaterError,
    ServerBusyError,
    SetlistClient,
    new_event,
)

__all__ = [
    "ClientError",
    "QuotaExceededError",
    "RankReply",
    "RetryLaterError",
    "ServerBusyError",
    "SetlistClient",
    "new_event",
]
