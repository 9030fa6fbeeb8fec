"""A Python client for setlist.v1.RankingService, and its shell CLI (``python -m serving.client``)."""

from serving.client.api import ClientError, RankReply, SetlistClient, new_event

__all__ = ["ClientError", "RankReply", "SetlistClient", "new_event"]
