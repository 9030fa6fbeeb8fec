"""The built-in feature pack: the features Setlist ships with, as declarations.

Extend it with a file of your own next to this one (or in a directory named by
``SETLIST_FEATURE_DIRS``); a declaration with the same name as a built-in one replaces it.
"""

from __future__ import annotations

from setlist.contract import DEVICES
from setlist.featureset import (
    INTERACTIONS,
    NEGATIVE_TYPES,
    POSITIVES,
    Candidate,
    Column,
    DeviceIs,
    Events,
    Expect,
    Feature,
    Request,
    Session,
    engaged,
    hour_cos,
    hour_sin,
    is_weekend,
)

OWNER = "setlist"
COUNT = Expect(min=0)
RATE = Expect(min=0.0, max=1.0)
NONNEG = Expect(min=0.0)
PLAY_OR_NEGATIVE = ("play", *NEGATIVE_TYPES)

FEATURES = [
    # --- user profile: what the user did, over trailing days ------------------------------------
    Feature(
        "user_plays",
        "user",
        Events("count", types=("play",), windows=(7, 30)),
        "int64",
        owner=OWNER,
        description="Plays in the trailing window.",
        expect=COUNT,
    ),
    Feature(
        "user_likes",
        "user",
        Events("count", types=POSITIVES, windows=(30,)),
        "int64",
        owner=OWNER,
        description="Likes and playlist adds in the trailing window.",
        expect=COUNT,
    ),
    Feature(
        "user_active_days",
        "user",
        Events("distinct", column="day", types=INTERACTIONS, windows=(30,)),
        "int64",
        owner=OWNER,
        description="Days with any interaction in the trailing window.",
        expect=COUNT,
    ),
    Feature(
        "user_skip_rate",
        "user",
        Events("rate", types=NEGATIVE_TYPES, over=PLAY_OR_NEGATIVE, windows=(30,)),
        owner=OWNER,
        description="Skips and rejections per play or skip.",
        expect=RATE,
    ),
    Feature(
        "user_completion",
        "user",
        Events("mean", column="value", types=("play",), windows=(30,)),
        owner=OWNER,
        description="Mean share of an item played.",
        expect=RATE,
    ),
    Feature(
        "user_days_since_last",
        "user",
        Events("days_since_last"),
        owner=OWNER,
        description="Days from the last event to the snapshot.",
        expect=NONNEG,
    ),
    Feature(
        "user_genre_affinity",
        "user",
        Events("share", column="genre", where=engaged, windows=(30,)),
        "float_list",
        missing=None,
        owner=OWNER,
        ranker_input=False,
        expect=RATE,
        window_suffix=False,
        description="Share of engaged events per genre (the candidate stage's genre match).",
    ),
    Feature(
        "user_top_genre",
        "user",
        Events("top", column="genre", where=engaged, windows=(30,)),
        "string",
        missing="",
        owner=OWNER,
        ranker_input=False,
        window_suffix=False,
        description="The genre with the most engaged events; empty without any.",
    ),
    # --- session state, pushed by Track ------------------------------------------------------------
    Feature(
        "session_skip_rate",
        "session",
        Session("skip_rate"),
        owner=OWNER,
        description="Skips per event in the current session.",
    ),
    Feature(
        "session_length",
        "session",
        Session("length"),
        "int64",
        owner=OWNER,
        description="Events in the current session.",
    ),
    # --- request context, on demand -------------------------------------------------------------
    Feature("ctx_hour_sin", "request", Request(hour_sin), owner=OWNER, description="Hour of day, sine."),
    Feature("ctx_hour_cos", "request", Request(hour_cos), owner=OWNER, description="Hour of day, cosine."),
    Feature("ctx_is_weekend", "request", Request(is_weekend), owner=OWNER, description="Saturday or Sunday."),
    *[
        Feature(f"ctx_device_{d}", "request", Request(DeviceIs(d)), owner=OWNER, description=f"The device is {d}.")
        for d in DEVICES
    ],
    # --- item statistics ------------------------------------------------------------------------
    Feature(
        "item_plays",
        "item",
        Events("count", types=("play",), windows=(1, 7, 30)),
        "int64",
        owner=OWNER,
        description="Plays in the trailing window.",
        expect=COUNT,
    ),
    Feature(
        "item_skip_rate",
        "item",
        Events("rate", types=NEGATIVE_TYPES, over=PLAY_OR_NEGATIVE, windows=(30,)),
        owner=OWNER,
        description="Skips and rejections per play or skip.",
        expect=RATE,
    ),
    Feature(
        "item_like_rate",
        "item",
        Events("rate", types=POSITIVES, over=PLAY_OR_NEGATIVE, windows=(30,)),
        owner=OWNER,
        description="Likes per play or skip, capped at 1.",
        expect=RATE,
    ),
    Feature(
        "item_completion",
        "item",
        Events("mean", column="value", types=("play",), windows=(30,)),
        owner=OWNER,
        description="Mean share played.",
        expect=RATE,
    ),
    Feature(
        "item_age_days",
        "item",
        Column("items", "release_date", "days_since", fallback=Events("days_since_first")),
        owner=OWNER,
        description="Days since release (since the first event when the catalogue has no date).",
        expect=NONNEG,
    ),
    Feature(
        "item_duration_s",
        "item",
        Column("items", "duration_s"),
        owner=OWNER,
        description="Duration in seconds from the catalogue; 0 when unknown.",
        expect=NONNEG,
    ),
    Feature(
        "item_genre",
        "item",
        Column("items", "genre"),
        "string",
        missing="unknown",
        owner=OWNER,
        description="Genre from the catalogue.",
    ),
    # --- user×item scores from the candidate stage ----------------------------------------------
    *[
        Feature(n, "user_item", Candidate(), owner=OWNER, description=d)
        for n, d in (
            ("x_embedding_score", "Dot product of the user and item embeddings."),
            ("x_genre_affinity", "The user's affinity for the item's genre."),
            ("x_is_top_genre", "The item is of the user's top genre."),
            ("x_session_genre_match", "The item is of the session's genre."),
            ("x_covisit_score", "Co-visitation with the session's recent items."),
            ("x_in_session_last", "The item was among the session's recent items."),
            ("x_candidate_sources", "How many candidate sources proposed the item."),
            ("x_popularity_rank", "The item's rank in the cohort's popularity."),
            ("x_neighbour_score", "Item-neighbour (EASE) score of the user's history."),
            ("x_neighbour_rank", "Rank of the neighbour score among this request's candidates."),
            ("x_embedding_rank", "Rank of the embedding score among this request's candidates."),
        )
    ],
]
TABLES: list = []
