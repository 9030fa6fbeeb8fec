"""Why this item: the ranker's strongest positive feature contributions, in words.

Only the k returned rows are explained, and only when asked, so the DMatrix that XGBoost's
contribution API needs never touches the normal Rank path.
"""

from __future__ import annotations

import numpy as np

#: worded for any catalogue (songs, films, products), as the features are: an import is rarely music
PHRASES = {
    "x_embedding_score": "people with your taste chose it",
    "x_genre_affinity": "you often choose {genre}",
    "x_is_top_genre": "{genre} is your top genre",
    "x_session_genre_match": "fits this session's {genre}",
    "x_covisit_score": "often chosen after what you just picked",
    "x_candidate_sources": "recommended by several signals",
    "x_popularity_rank": "popular with people like you",
    "item_plays_1d": "trending today",
    "item_plays_7d": "popular this week",
    "item_plays_30d": "popular this month",
    "item_like_rate_30d": "often liked",
    "item_completion_30d": "usually finished",
    "item_skip_rate_30d": "rarely skipped",
    "item_age_days": "a new release",
}


def reasons(booster, X: np.ndarray, genres: list[str], top: int = 2) -> list[tuple[str, ...]]:
    import xgboost as xgb

    names = list(booster.feature_names or [])  # the model's own inputs, whichever service it reads
    contrib = booster.predict(xgb.DMatrix(X, feature_names=names), pred_contribs=True)[:, :-1]
    out = []
    for row, genre in zip(contrib, genres):
        order = np.argsort(-row, kind="stable")
        words: list[str] = []
        for j in order:
            if row[j] <= 0 or len(words) >= top:
                break
            phrase = PHRASES.get(names[j])
            if phrase:
                words.append(phrase.format(genre=genre.replace("_", " ") or "this genre"))
        out.append(tuple(words) or ("matches your history",))
    return out
