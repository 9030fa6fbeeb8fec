"""End-to-end evaluation on the hold-out: candidates, then ranking, exactly as serving does it, beside
baselines that rank the whole catalog (popularity, ALS, EASE) on the same queries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

import numpy as np
import pandas as pd
import scipy.sparse as sp

from setlist.candidate_sources import cohort_key
from setlist.candidates import CandidateIndex
from setlist.featureset import Service
from setlist.request_time import hour_weekday
from training.dataset import _cross, exclusions, generate_for, layout, numeric
from training.ease import Ease

Scorer = Callable[[np.ndarray], np.ndarray]


def ndcg_at(ranked: np.ndarray, relevant: set, k: int) -> float:
    gains = np.array([1.0 if i in relevant else 0.0 for i in ranked[:k]])
    dcg = float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())
    ideal = float((1.0 / np.log2(np.arange(2, min(len(relevant), k) + 2))).sum())
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: np.ndarray, relevant: set, k: int) -> float:
    """Hits in the top k over the most hits possible in k slots."""
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k].tolist())) / min(len(relevant), k)


def candidate_recall(cands: np.ndarray, relevant: set, k: int) -> float:
    return len(relevant.intersection(cands[:k].tolist())) / len(relevant) if relevant else 0.0


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")


@dataclass
class Evaluation:
    metrics: dict[str, float]
    ndcg_curve: dict[str, list[float]] = field(default_factory=dict)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: ndcg@10 per scored query, in the same order for every model and baseline of one evaluation
    per_query: np.ndarray = field(default_factory=lambda: np.zeros(0))


def paired_gain(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """The mean per-query gain of ``ours`` over ``theirs`` on the same queries, and its standard error
    (0 with fewer than two queries)."""
    gain = np.asarray(ours, dtype=np.float64) - np.asarray(theirs, dtype=np.float64)
    if not len(gain):
        return 0.0, 0.0
    se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
    return float(gain.mean()), se


#: a baseline ranks the whole catalog for (user index or None, item indices to leave out, cohort)
Baseline = Callable[[int | None, np.ndarray, str], np.ndarray | None]
DEPTH = 100


def top_unseen(scores: np.ndarray, drop: np.ndarray, k: int = DEPTH) -> np.ndarray:
    """The ``k`` best items by score, leaving out ``drop``: every other item of the catalog competes."""
    scores = scores.astype(np.float64, copy=True)
    scores[drop] = -np.inf
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top[np.isfinite(scores[top])]


def als_baseline(index: CandidateIndex) -> Baseline:
    def rank(uidx: int | None, drop: np.ndarray, cohort: str) -> np.ndarray | None:
        if uidx is None or not index.embedded[uidx]:  # a zero embedding ranks nothing: popularity answers
            return None
        return top_unseen(index.item_factors @ index.user_factors[uidx], drop)

    return rank


def ease_baseline(ease: Ease, interactions: sp.csr_matrix) -> Baseline:
    def rank(uidx: int | None, drop: np.ndarray, cohort: str) -> np.ndarray | None:
        if uidx is None:
            return None
        scores = ease.scores(interactions.indices[interactions.indptr[uidx] : interactions.indptr[uidx + 1]])
        return None if scores is None else top_unseen(scores, drop)

    return rank


def _dropped(index: CandidateIndex, uidx: int | None, session_excluded: set[int]) -> np.ndarray:
    drop = np.fromiter(session_excluded, dtype=np.int64, count=len(session_excluded))
    if index.exclude_seen:
        drop = np.union1d(drop, index.history(uidx)[0])
    if index.live is not None:  # popularity and the baselines offer what serving can: the live items
        drop = np.union1d(drop, np.flatnonzero(~index.live))
    return drop


def evaluate(
    index: CandidateIndex,
    scorers: dict[str, Scorer],
    state: pd.DataFrame,
    queries: pd.DataFrame,
    labels: pd.DataFrame,
    item_matrix: Callable[[pd.Timestamp], np.ndarray],
    n_candidates: int,
    cold_users: set[str],
    svc: Service,
    baselines: dict[str, Baseline] | None = None,
    progress=None,
    zone: tzinfo = UTC,
) -> dict[str, Evaluation]:
    """Score every hold-out query with each scorer, with cohort popularity and with ``baselines``.

    A scorer ranks stage one's candidates, exactly as serving does; popularity and the baselines
    rank every item the user has not seen. ``item_matrix(ts)`` gives the service's item inputs per catalog index
    as a server would have had them at ``ts``. A baseline with no answer for a user (no history)
    falls back to popularity, as serving does for such a user. ``zone``: the clock of the scorers'
    request features (the run's ``SETLIST_TIMEZONE``, or the zone a registered model was trained on).
    """
    baselines = baselines or {}
    shape, user_cols, session_cols = layout(svc), svc.block("user"), svc.block("session")
    positives = labels[labels["label"] == 1].groupby("query_id")["item_id"].apply(set).to_dict()
    names = [*scorers, "popularity", *baselines]
    acc: dict[str, dict[str, list]] = {
        n: {"ndcg": [], "recall": [], "recall100": [], "curve": [], "s": [], "y": [], "cold": []} for n in names
    }
    cand_recall: dict[int, list[float]] = {100: [], 500: []}
    for srow, q in zip(state.itertuples(index=False), queries.itertuples(index=False)):
        if progress is not None:
            progress()
        rel = positives.get(q.query_id)
        if not rel:
            continue
        s = pd.Series(srow._asdict())
        c, last = generate_for(index, s, q.locale, q.device, n_candidates)
        ids = index.item_ids[c.idx]
        for k in cand_recall:
            cand_recall[k].append(candidate_recall(ids, rel, k))
        ts = q.event_timestamp
        X = shape.assemble(
            numeric(s, user_cols),
            numeric(s, session_cols),
            svc.request_values(str(q.device), *hour_weekday(ts, zone)),
            item_matrix(ts)[c.idx],
            _cross(index, c, s, last),
        )
        y = np.fromiter((i in rel for i in ids), dtype=np.float32, count=len(ids))
        cold = q.user_id in cold_users
        _, excluded = exclusions(index, s)
        uidx = index.user_index.get(q.user_id)
        drop = _dropped(index, uidx, excluded)
        cohort = cohort_key(q.locale, str(q.device))
        pop = index.popularity(cohort)
        pop = pop[~np.isin(pop, drop)][:DEPTH]
        ranked = {"popularity": index.item_ids[pop]}
        for name, baseline in baselines.items():
            order = baseline(uidx, drop, cohort)
            ranked[name] = ranked["popularity"] if order is None else index.item_ids[order]
        for name, scorer in scorers.items():
            sc = scorer(X)
            # as in serving: without personalization the answer is cohort popularity
            ranked[name] = ids[np.argsort(-sc, kind="stable")] if c.personalized else ranked["popularity"]
            acc[name]["s"].append(sc)
            acc[name]["y"].append(y)
        for name, r in ranked.items():
            a = acc[name]
            a["ndcg"].append(ndcg_at(r, rel, 10))
            a["recall"].append(recall_at(r, rel, 10))
            a["recall100"].append(recall_at(r, rel, 100))
            a["curve"].append([ndcg_at(r, rel, k) for k in (1, 5, 10, 20, 50)])
            a["cold"].append(cold)
    out: dict[str, Evaluation] = {}
    for name, a in acc.items():
        cold = np.array(a["cold"], dtype=bool)
        nd = np.array(a["ndcg"])
        m = {
            "ndcg_at_10": float(nd.mean()) if len(nd) else 0.0,
            "recall_at_10": float(np.mean(a["recall"])) if a["recall"] else 0.0,
            "recall_at_100": float(np.mean(a["recall100"])) if a["recall100"] else 0.0,
            "cold_start_ndcg_at_10": float(nd[cold].mean()) if cold.any() else float("nan"),
            "warm_ndcg_at_10": float(nd[~cold].mean()) if (~cold).any() else float("nan"),
            "queries": float(len(nd)),
            "cold_start_queries": float(cold.sum()),
        }
        ev = Evaluation(
            metrics=m,
            ndcg_curve={"k": [1, 5, 10, 20, 50], "ndcg": np.mean(a["curve"], axis=0).tolist() if a["curve"] else []},
            per_query=nd,
        )
        if a["s"]:
            ev.scores, ev.labels = np.concatenate(a["s"]), np.concatenate(a["y"])
            m["auc"] = auc(ev.scores, ev.labels)
        out[name] = ev
    for k, vals in cand_recall.items():
        for name in scorers:  # stage one's recall belongs to the two-stage models, not to the baselines
            out[name].metrics[f"candidate_recall_at_{k}"] = float(np.mean(vals)) if vals else 0.0
    return out
