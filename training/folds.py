"""Before a model is fitted: whether the log can train anything at all, the evaluation split's
parameters, and the ranker's training folds (the evaluation protocol again, inside the training
part), whose rows are combined into one training set."""

from __future__ import annotations

import pandas as pd

from setlist.errors import Refused
from setlist.settings import Settings
from training.dataset import RankingSet
from training.labels import label
from training.splits import MIN_POSITIVES, Split, SplitParams, make_split

#: below this many ranker training queries the ranker cannot be fitted and validated honestly
MIN_TRAIN_QUERIES = 10
#: a per-user protocol gives one query per user: on a small log the ranker repeats it on earlier
#: folds (each with a candidate model of its own) until it has about this many queries
TARGET_TRAIN_QUERIES = 1000
MAX_RANKER_FOLDS = 3


class TrainingRefused(Refused, RuntimeError):
    """The training set failed its gate; nothing was trained or registered."""


def split_params(settings: Settings) -> SplitParams:
    return SplitParams(
        kind=settings.split,
        holdout_days=settings.holdout_days,
        holdout_share=settings.holdout_share,
        holdout_fraction=settings.holdout_fraction,
        min_users=settings.min_holdout_users,
        min_queries=settings.min_holdout_queries,
        min_warm_share=settings.min_holdout_warm_share,
    )


def ranker_splits(outer: Split, settings: Settings, exclude_seen: bool) -> list[Split]:
    """The outer protocol again, inside the training part, so the ranker learns the evaluated task;
    repeated on the remaining earlier part while queries are few. Newest fold first."""
    p = SplitParams(
        kind=outer.kind,
        holdout_days=settings.ranker_window_days,
        holdout_share=settings.ranker_window_share,
        holdout_fraction=settings.holdout_fraction,
        min_users=0,
        min_queries=0,
    )
    folds: list[Split] = []
    source = outer.train
    while True:
        try:
            inner = make_split(source, p, exclude_seen)
        except ValueError as exc:
            if folds:
                break
            raise TrainingRefused(f"cannot place the ranker's training window: {exc}") from exc
        if folds and len(inner.queries) < MIN_TRAIN_QUERIES:
            break
        if not folds and inner.queries.empty and outer.kind == "per_user":
            # else refused later as "no query had a positive", with advice about the ranker window,
            # which a per-user split does not have (Expedia's searches as users: one booking each)
            raise TrainingRefused(
                "the ranker has no query to learn from: the per_user split holds out each user's last positives, "
                f"and no user has {MIN_POSITIVES} positives left before them ({len(source):,} training events, "
                f"{source['user_id'].nunique():,} users). SETLIST_SPLIT=global holds out the newest period instead, "
                "which users with a single visit can answer"
            )
        inner.reason = "the evaluation protocol, applied to the training part"
        folds.append(inner)
        enough = sum(len(f.queries) for f in folds) >= TARGET_TRAIN_QUERIES
        if enough or len(folds) >= MAX_RANKER_FOLDS:
            return folds
        source = inner.train
    return folds


def combine(sets: list[RankingSet]) -> RankingSet:
    """Folds' rows as one set, query ids renumbered oldest fold first, so that ids still follow time
    and the ranker validates on the newest queries."""
    frames, offset = [], 0
    for rs in reversed(sets):
        frames.append(rs.frame.assign(query_id=rs.frame["query_id"] + offset))
        offset += int(rs.frame["query_id"].max()) + 1
    frame = pd.concat(frames, ignore_index=True)
    return RankingSet(
        frame=frame, groups=frame.groupby("query_id", sort=False).size().to_numpy(), inputs=sets[0].inputs
    )


def require_enough(events: pd.DataFrame) -> None:
    """Refuse early, in one sentence, when the data cannot train anything."""
    if events.empty:
        raise TrainingRefused(
            "no events of users with personalization consent: nothing can be learned "
            "(check the consent columns of the imported data)"
        )
    positives = int((label(events) == 1).sum())
    if positives < 2 * MIN_TRAIN_QUERIES:
        raise TrainingRefused(
            f"only {positives} positive interactions (a like, a play with listen fraction ≥ 0.8, or a rating in "
            "the top fifth of the scale): import more interactions, or check --rating-col / --type-col"
        )
    if events["user_id"].nunique() < 2 or events["item_id"].nunique() < 2:
        raise TrainingRefused("the log has fewer than two users or two items: a ranking needs both")
