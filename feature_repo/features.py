"""Feature views: batch (user profile, item stats), push (session) and on-demand (context), with
the batch and context schemas taken from the feature declarations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from feast import FeatureView, Field, OnDemandFeatureView
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Bool, Float32, Float64, Int64, String

from feature_repo.data_sources import Sources
from feature_repo.entities import item, user
from setlist.featureset import Feature, FeatureSet, service_name


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
#: Rank reads a user's session row whatever its age (recent and blocked items outlive a session, and
#: setlist.features.effective_session decides what of it is still the current session), so training's
#: point-in-time join must not drop it either: a 30-day TTL hid a monthly customer's last items from
#: training queries asked 31 days on, while Rank read them.
SESSION_TTL = NO_EXPIRY


def batch_ttl(days: float | None) -> timedelta:
    return NO_EXPIRY if days is None else timedelta(days=days)


FEAST_TYPES: dict[str, Any] = {
    "int64": Int64,
    "float64": Float64,
    "float_list": Array(Float32),
    "string": String,
    "bool": Bool,
}


def _fields(features: Sequence[Feature]) -> list[Field]:
    return [
        Field(
            name=f.name,
            dtype=FEAST_TYPES[f.dtype],
            description=f.description,
            tags={"owner": f.owner, "since": service_name(f.since)},
        )
        for f in features
    ]


def build_views(sources: Sources, ttl: timedelta = NO_EXPIRY, features: FeatureSet | None = None) -> Views:
    """Feast views from the declarations: every declared user feature in ``user_profile``, every
    item feature in ``item_stats``, every request transform in ``context``. Services (one per
    version) then project the columns each model reads."""
    from feature_repo.declarations import load

    fs = features or load()
    user_profile = FeatureView(
        name="user_profile",
        entities=[user],
        ttl=ttl,
        source=sources.user_profile,
        online=True,
        schema=_fields(fs.view("user_profile")),
        description="Per-user features declared on the event log and the user's tables (daily snapshots).",
    )
    item_stats = FeatureView(
        name="item_stats",
        entities=[item],
        ttl=ttl,
        source=sources.item_stats,
        online=True,
        schema=_fields(fs.view("item_stats")),
        description="Per-item features declared on the event log and the catalogue (daily snapshots).",
    )
    session = FeatureView(
        name="session",
        entities=[user],
        ttl=SESSION_TTL,
        source=sources.session_push,
        online=True,
        schema=[
            Field(name="session_id", dtype=String),
            Field(name="session_last_items", dtype=Array(String)),
            Field(name="session_blocked_items", dtype=Array(String)),
            Field(name="session_skip_rate", dtype=Float64),
            Field(name="session_genre", dtype=String),
            Field(name="session_length", dtype=Int64),
            Field(name="session_updated_ms", dtype=Int64),
        ],
        description="Session context pushed by Track within a second: last items, skip rate, genre.",
    )

    consent = FeatureView(
        name="user_consent",
        entities=[user],
        ttl=NO_EXPIRY,
        source=sources.consent_push,
        online=True,
        schema=[Field(name="consent_personalization", dtype=Bool), Field(name="consent_analytics", dtype=Bool)],
        description="Latest consent flags. Serving answers users without personalization consent with "
        "cohort popularity, whatever else the store holds about them.",
    )

    # Python mode rather than pandas: the context transform runs per request and pandas costs
    # milliseconds for a single row.
    @on_demand_feature_view(
        sources=[sources.request_context],
        mode="python",
        schema=[Field(name=f.name, dtype=Float64) for f in fs.entity("request")],
    )
    def context(inputs: dict[str, Any]) -> dict[str, Any]:
        # Imported here: Feast stores this function by source, without the module's globals.
        from feature_repo.declarations import load

        fs = load()
        names = [f.name for f in fs.entity("request")]
        rows = [
            fs.request_values(d, int(h), int(w))
            for d, h, w in zip(inputs["device"], inputs["request_hour"], inputs["request_weekday"])
        ]
        return {name: [r[i] for r in rows] for i, name in enumerate(names)}

    return Views(user_profile=user_profile, item_stats=item_stats, session=session, consent=consent, context=context)
