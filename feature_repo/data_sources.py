"""Where the feature views read from. Paths depend on settings, so sources are built by a function."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from feast import Field as RequestField
from feast import FileSource, PushSource, RequestSource
from feast.types import Int64, String

USER_PROFILE_FILE = "user_profile.parquet"
ITEM_STATS_FILE = "item_stats.parquet"
SESSION_FILE = "session.parquet"
CONSENT_FILE = "consent.parquet"
#: the online view each published file feeds (metrics name views, not files)
VIEW_OF_FILE = {
    USER_PROFILE_FILE: "user_profile",
    ITEM_STATS_FILE: "item_stats",
    SESSION_FILE: "session",
    CONSENT_FILE: "user_consent",
}


@dataclass(frozen=True)
class Sources:
    user_profile: FileSource
    item_stats: FileSource
    session_push: PushSource
    consent_push: PushSource
    request_context: RequestSource


def build_sources(features_dir: Path) -> Sources:
    root = Path(features_dir).resolve()
    session_batch = FileSource(name="session_batch", path=str(root / SESSION_FILE), timestamp_field="event_timestamp")
    return Sources(
        user_profile=FileSource(
            name="user_profile_source", path=str(root / USER_PROFILE_FILE), timestamp_field="event_timestamp"
        ),
        item_stats=FileSource(
            name="item_stats_source", path=str(root / ITEM_STATS_FILE), timestamp_field="event_timestamp"
        ),
        # Track pushes session state here in real time; the batch file is the offline history
        # (one row per event) so that training joins the same values point-in-time.
        session_push=PushSource(name="session_push", batch_source=session_batch),
        # Consent is a feature like any other so every replica reads it from the online store; the
        # batch file holds every user's latest flags (opted-out users included), Track pushes changes.
        consent_push=PushSource(
            name="consent_push",
            batch_source=FileSource(
                name="consent_batch", path=str(root / CONSENT_FILE), timestamp_field="event_timestamp"
            ),
        ),
        request_context=RequestSource(
            name="request_context",
            schema=[
                RequestField(name="device", dtype=String),
                RequestField(name="request_hour", dtype=Int64),
                RequestField(name="request_weekday", dtype=Int64),
            ],
        ),
    )
