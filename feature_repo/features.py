"""Feature views: batch (user profile, item stats), push (session) and on-demand (context)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from feast import FeatureView, Field, OnDemandFeatureView
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Bool, Float32, Float64, Int64, String

from setlist.features import CONTEXT_NAMES

from .data_sources import Sources
from .entities import item, user

# Long, because recent and blocked items outlive a session; setlist.features.effective_session
# decides what of a stored row is still "the current session".
SESSION_TTL = timedelta(days=30)


@dataclass(frozen=True)
class Views:
    user_profile: FeatureView
    item_stats: FeatureView
    session: FeatureView
    consent: FeatureView
    context: OnDemandFeatureView

    def all(self) -> list[Any]:
        return [self.user_profile, self.item_stats, self.session, self.consent, self.context]


#: what Feast reads as "no expiry" (a zero TTL)
NO_EXPIRY = timedelta(0)


def batch_ttl(days: float | None) -> timedelta:
    return NO_EXPIRY if days is None else timedelta(days=days)


def build_views(sources: Sources, ttl: timedelta = NO_EXPIRY) -> Views:
    user_profile = FeatureView(
        name="user_profile", entities=[user], ttl=ttl, source=sources.user_profile, online=True,
        schema=[Field(name=n, dtype=Int64) for n in
                ("user_plays_7d", "user_plays_30d", "user_likes_30d", "user_active_days_30d")]
        + [Field(name=n, dtype=Float64) for n in
           ("user_skip_rate_30d", "user_completion_30d", "user_days_since_last")]
        + [Field(name="user_genre_affinity", dtype=Array(Float32)), Field(name="user_top_genre", dtype=String)],
        description="Long-term profile: activity over 7/30 days, skip rate, genre affinities, recency.",
    )
    item_stats = FeatureView(
        name="item_stats", entities=[item], ttl=ttl, source=sources.item_stats, online=True,
        schema=[Field(name=n, dtype=Int64) for n in ("item_plays_1d", "item_plays_7d", "item_plays_30d")]
        + [Field(name=n, dtype=Float64) for n in
           ("item_skip_rate_30d", "item_like_rate_30d", "item_completion_30d", "item_age_days", "item_duration_s")]
        + [Field(name="item_genre", dtype=String)],
        description="Item popularity over 1/7/30 days, skip/like/completion rates, age.",
    )
    session = FeatureView(
        name="session", entities=[user], ttl=SESSION_TTL, source=sources.session_push, online=True,
        schema=[Field(name="session_id", dtype=String), Field(name="session_last_items", dtype=Array(String)),
                Field(name="session_blocked_items", dtype=Array(String)),
                Field(name="session_skip_rate", dtype=Float64), Field(name="session_genre", dtype=String),
                Field(name="session_length", dtype=Int64), Field(name="session_updated_ms", dtype=Int64)],
        description="Session context pushed by Track within a second: last items, skip rate, genre.",
    )

    consent = FeatureView(
        name="user_consent", entities=[user], ttl=NO_EXPIRY, source=sources.consent_push, online=True,
        schema=[Field(name="consent_personalization", dtype=Bool), Field(name="consent_analytics", dtype=Bool)],
        description="Latest consent flags. Serving answers users without personalization consent with "
                    "cohort popularity, whatever else the store holds about them.",
    )

    # Python mode rather than pandas: the context transform runs per request and pandas costs
    # milliseconds for a single row.
    @on_demand_feature_view(sources=[sources.request_context], mode="python",
                            schema=[Field(name=n, dtype=Float64) for n in CONTEXT_NAMES])
    def context(inputs: dict[str, Any]) -> dict[str, Any]:
        # Imported here: Feast stores this function by source, without the module's globals.
        from setlist.features import CONTEXT_NAMES, context_vector

        rows = [context_vector(d, int(h), int(w)) for d, h, w in
                zip(inputs["device"], inputs["request_hour"], inputs["request_weekday"])]
        return {name: [r[i] for r in rows] for i, name in enumerate(CONTEXT_NAMES)}

    return Views(user_profile=user_profile, item_stats=item_stats, session=session, consent=consent, context=context)
