"""Fit stage one: ALS embeddings, EASE item neighbours, session co-visitation and cohort popularity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from setlist.candidate_sources import GLOBAL_COHORT, cohort_key, genre_key, top_stable
from setlist.candidates import CandidateIndex
from setlist.contract import UNKNOWN
from setlist.search_terms import fit_terms
from setlist.windows import Window, trailing
from training.ease import Ease, fit_ease_head
from training.labels import label
from training.splits import log_order

# Implicit-feedback confidence per event type: what the embedding should pull towards.
CONFIDENCE = {"play": 1.0, "like": 4.0, "add_to_playlist": 4.0}


@dataclass(frozen=True)
class CandidateParams:
    factors: int = 64
    iterations: int = 15
    regularization: float = 0.05
    alpha: float = 10.0
    covis_window: int = 3
    covis_top: int = 50
    cohort_days: float | None = None  # None: the trailing period holding ``cohort_share`` of events
    cohort_share: float = 0.25
    cohort_probe_k: int = 250  # the probe judges the lists' first this many (the pool's popularity share)
    # where counting every event wins, only the items of the shortest window (from the counting window's
    # length up) that would have lost at most this share of the probe's positives on older items are offered
    live_max_loss: float = 0.1  # as SETLIST_COHORT_LIVE_MAX_LOSS; 0 offers every item
    cohort_size: int = 2000
    exclude_seen: bool = False
    exclude_recent: bool = True  # as SETLIST_EXCLUDE_RECENT (``CandidateIndex.exclude_recent``)
    ease_max_items: int = 10_000  # as SETLIST_EASE_MAX_ITEMS
    exact_search_max_items: int = 100_000  # as SETLIST_EXACT_SEARCH_MAX_ITEMS
    ease_lambda: float = 500.0


@dataclass
class FittedCandidates:
    index: CandidateIndex
    ease: Ease | None  # EASE over the most interacted items, for the baseline; None when turned off
    interactions: sp.csr_matrix  # users (index.user_ids) × items, confidence-weighted
    popularity: Popularity  # how the popularity lists count, and why (``choose_popularity``)


def _interactions(events: pd.DataFrame, users: np.ndarray, items: pd.Index) -> sp.csr_matrix:
    ev = events[events["type"].isin(list(CONFIDENCE))]
    weight = ev["type"].map(CONFIDENCE).to_numpy() * np.where(
        ev["type"].to_numpy() == "play", ev["value"].astype("float64").fillna(1.0).to_numpy(), 1.0
    )
    rows = pd.Index(users).get_indexer(ev["user_id"])
    cols = items.get_indexer(ev["item_id"])
    ok = (rows >= 0) & (cols >= 0)
    return sp.csr_matrix((weight[ok], (rows[ok], cols[ok])), shape=(len(users), len(items)), dtype=np.float32)


def seen_matrix(events: pd.DataFrame, users: np.ndarray, items: pd.Index) -> sp.csr_matrix:
    """Every item each user touched (impressions aside), valued by recency rank within the user;
    negative for items outside the rows EASE is fitted on (a skipped or only disliked item), which
    are left out as seen but must not vote for their neighbours, or the served neighbour score
    drifts from EASE's own."""
    ev = events[events["type"] != "impression"]
    ev = ev.iloc[log_order(ev)]
    profile = ev.loc[ev["type"].isin(list(CONFIDENCE)), ["user_id", "item_id"]].drop_duplicates()
    ev = ev.drop_duplicates(["user_id", "item_id"], keep="last")
    rows = pd.Index(users).get_indexer(ev["user_id"])
    cols = items.get_indexer(ev["item_id"])
    in_profile = pd.MultiIndex.from_frame(ev[["user_id", "item_id"]]).isin(pd.MultiIndex.from_frame(profile))
    rank = (ev.groupby("user_id").cumcount().to_numpy() + 1) * np.where(in_profile, 1, -1)
    ok = (rows >= 0) & (cols >= 0)
    return sp.csr_matrix((rank[ok].astype(np.float32), (rows[ok], cols[ok])), shape=(len(users), len(items)))


#: fits the embeddings: (events, users, interactions, params, seed) → (users, user factors, item factors), the
#: factors float32 and in the interaction matrix's row and column order (``fit_embeddings``, or Spark's ALS
#: in training.spark_fit): what the candidate index stores and serving reads
Embedder = Callable[
    [pd.DataFrame, np.ndarray, sp.csr_matrix, CandidateParams, int], tuple[np.ndarray, np.ndarray, np.ndarray]
]


def fit_embeddings(
    events: pd.DataFrame, users: np.ndarray, matrix: sp.csr_matrix, p: CandidateParams, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # one thread keeps ALS bit-for-bit deterministic for a given seed
    with threadpool_limits(1, "blas"):  # implicit's advice: BLAS threads fight its own loop
        model = AlternatingLeastSquares(
            factors=p.factors,
            iterations=p.iterations,
            regularization=p.regularization,
            alpha=p.alpha,
            random_state=seed,
            num_threads=1,
            calculate_training_loss=False,
        )
        model.fit(matrix, show_progress=False)
    return users, np.asarray(model.user_factors, np.float32), np.asarray(model.item_factors, np.float32)


def fit_covisitation(events: pd.DataFrame, items: pd.Index, p: CandidateParams) -> sp.csr_matrix:
    """Items that follow each other closely in a session, positive events only, top-N per item."""
    ev = events[label(events).to_numpy() == 1].sort_values(["session_id", "timestamp"], kind="mergesort")
    code = items.get_indexer(ev["item_id"])
    sess = pd.factorize(ev["session_id"])[0]
    rows, cols = [], []
    for k in range(1, p.covis_window + 1):
        same = sess[k:] == sess[:-k]
        a, b = code[:-k][same], code[k:][same]
        rows += [a, b]
        cols += [b, a]
    r, c = np.concatenate(rows), np.concatenate(cols)
    ok = (r >= 0) & (c >= 0) & (r != c)
    m = sp.csr_matrix((np.ones(ok.sum(), np.float32), (r[ok], c[ok])), shape=(len(items), len(items)))
    m.sum_duplicates()
    return _top_per_row(m, p.covis_top)


def _top_per_row(m: sp.csr_matrix, top: int) -> sp.csr_matrix:
    indptr, indices, data = [0], [], []
    for i in range(m.shape[0]):
        s, e = m.indptr[i], m.indptr[i + 1]
        vals, cols = m.data[s:e], m.indices[s:e]
        if len(vals) > top:
            keep = np.argsort(-vals, kind="stable")[:top]
            vals, cols = vals[keep], cols[keep]
        total = vals.sum()
        indices.append(cols)
        data.append(vals / total if total else vals)
        indptr.append(indptr[-1] + len(vals))
    return sp.csr_matrix(
        (np.concatenate(data) if data else [], np.concatenate(indices) if indices else [], indptr),
        shape=m.shape,
        dtype=np.float32,
    )


#: the popularity lists may count over these shares of the derived window, the whole first
WINDOW_FRACTIONS = (1.0, 0.5, 0.25, 0.125, 0.0625)
#: the newest share of events that probes the lists' variants (as the evaluation's hold-out share)
PROBE_SHARE = 0.1
#: fewer probe positives than this cannot tell the variants apart: the derived window stays
PROBE_MIN_POSITIVES = 50
#: a variant replaces the default only when it finds this much more of the probe, relatively, and
#: clears two standard errors of the paired difference
PROBE_MIN_GAIN = 0.05


@dataclass(frozen=True)
class Popularity:
    """How the popularity lists count: over which window, positives only or every event."""

    window: Window
    every_event: bool  # impressions and skips count too: an item being shown is an item alive
    reason: str
    live: Window | None = None  # the catalogue turns over: only items with an event in this window are offered

    def describe(self) -> str:
        what = "every event (skips and impressions too, where the log has them)" if self.every_event else "positives"
        live = f"; {self.live.describe()}" if self.live else ""
        return f"cohort popularity counts {what}; {self.window.describe()}{live}; {self.reason}"

    def spec(self) -> dict[str, float | bool | None]:
        """The lengths and counting, for ``from_spec`` (kept with a registered index)."""
        length = (self.window.end - self.window.start).total_seconds()
        live = (self.live.end - self.live.start).total_seconds() if self.live else None
        return {"every_event": self.every_event, "window_s": length, "live_s": live}

    @classmethod
    def from_spec(cls, spec: dict[str, float | bool | None]) -> Popularity:
        """Windows of ``spec``'s lengths ending at the epoch: move them with ``ending_at``."""
        end = pd.Timestamp(0, tz="UTC")

        def window(name: str, seconds: object) -> Window:
            return Window(name, end - pd.Timedelta(seconds=float(seconds)), end, "data")  # type: ignore[arg-type]

        live = window("items offered (any event in)", spec["live_s"]) if spec.get("live_s") else None
        return cls(window("cohort popularity", spec["window_s"]), bool(spec["every_event"]), "as registered", live)

    def ending_at(self, end: pd.Timestamp) -> Popularity:
        """The same lengths and counting, over periods ending at ``end``."""

        def moved(w: Window) -> Window:
            return replace(w, start=end - (w.end - w.start), end=end)

        return replace(self, window=moved(self.window), live=moved(self.live) if self.live else None)


def choose_popularity(
    events: pd.DataFrame, items: pd.Index, p: CandidateParams, positive: np.ndarray | None = None
) -> Popularity:
    """The window and the counting the popularity lists use, chosen on the data's own future.

    A catalogue whose items live for days (news, new releases) needs lists of what is alive now:
    the derived window (a quarter of the events) there ranks yesterday's stories first, and only
    an item being shown says it is alive. So the newest ``PROBE_SHARE`` of the events probes the
    variants (shorter windows, positives or every event), each fitted on the events before it, by
    the share of the probe's positives found in the global list's first ``cohort_probe_k``; the
    derived window keeps its place unless a variant is clearly better. Where counting every event
    wins, the catalogue may turn over: the shortest window, from the chosen one's length up, whose
    items held all but ``live_max_loss`` of the probe's positives on items seen before it becomes the
    window of items on offer (``live``). A window fixed by setting is used as it is, without a probe.
    ``positive``: each event's ``label`` is 1, when the caller has it."""
    positive = label(events).to_numpy() == 1 if positive is None else positive
    stamps = events["timestamp"][positive] if positive.any() else events["timestamp"]
    base = trailing("cohort popularity", stamps, p.cohort_share, p.cohort_days)
    if base.source == "setting":
        return Popularity(base, False, "the window is fixed by setting: no probe")
    ts = _nanoseconds(events)
    probe_start = trailing("probe", events["timestamp"], PROBE_SHARE).start.value
    length = base.end.value - base.start.value
    # items with any event before the probe: the ones a live filter could wrongly leave out
    history = np.zeros(len(items), bool)
    seen = items.get_indexer(pd.unique(events["item_id"].to_numpy()[ts < probe_start]))
    history[seen[seen >= 0]] = True
    # only the widest window and the probe are read: a long log's older rows need no copies
    near = np.flatnonzero(ts >= probe_start - length)
    ts, positive = ts[near], positive[near]
    code = items.get_indexer(events["item_id"].to_numpy()[near]).astype(np.int32)
    asked = positive & (ts >= probe_start) & (code >= 0)
    if asked.sum() < PROBE_MIN_POSITIVES:
        return Popularity(base, False, f"{int(asked.sum())} probe positives are too few to probe shorter windows")
    targets = code[asked]
    found: dict[tuple[float, bool], np.ndarray] = {}
    present: dict[float, np.ndarray] = {}  # per window, each item had an event in it
    for fraction in WINDOW_FRACTIONS:
        inside = (ts < probe_start) & (ts >= probe_start - int(round(fraction * length))) & (code >= 0)
        present[fraction] = np.bincount(code[inside], minlength=len(items)) > 0
        for every in (False, True):
            rows = inside if every else inside & positive
            if not rows.any():
                continue
            counts = np.bincount(code[rows], minlength=len(items))
            top = np.zeros(len(items), bool)
            top[top_stable(counts, p.cohort_probe_k)] = True
            top &= counts > 0
            found[(fraction, every)] = top[targets]
    default = found.get((1.0, False))
    if default is None:
        return Popularity(base, False, "no positives before the probe period: the derived window stays")
    (fraction, every), best = (1.0, False), default
    for variant, hits in found.items():  # the first of equals wins, the default among them
        if hits.mean() > best.mean():
            (fraction, every), best = variant, hits
    probe = f"of {len(targets):,} probe positives in the first {p.cohort_probe_k}"
    if not _clearly_more(best, default):
        return Popularity(
            base,
            False,
            f"the derived window's positives found {default.mean():.1%} {probe}, "
            f"no shorter window or counting clearly more",
        )
    window = Window("cohort popularity", base.end - pd.Timedelta(int(round(fraction * length)), "ns"), base.end, "data")
    span = "the whole derived window" if fraction == 1.0 else f"{fraction:g} of the derived window"
    counted = " counting every event" if every else ""
    reason = (
        f"{span}{counted}, which found {best.mean():.1%} {probe} against "
        f"{default.mean():.1%} for the derived window's positives"
    )
    if not every:
        return Popularity(window, False, reason)
    # Counting every event can win on numbers alone (several times the rows of the positives, in a
    # log of many skips); only a shorter window beating the whole one, both counting every event,
    # says the items' lives are short: a stable catalogue keeps every item on offer.
    whole = found.get((1.0, True))
    if fraction == 1.0 or whole is None or not _clearly_more(best, whole):
        return Popularity(
            window,
            True,
            reason + "; no shorter window clearly beat the whole one counting every event: all items offered",
        )
    # what offering only a window's items would have cost: the probe's positives on items with
    # events before the probe but none in that window
    known = history[targets]
    for f in sorted(x for x in WINDOW_FRACTIONS if x >= fraction):
        lost = float((~present[f][targets])[known].mean()) if known.any() else 1.0
        if 0 < p.live_max_loss and lost <= p.live_max_loss:
            live = Window(
                "items offered (any event in)", base.end - pd.Timedelta(int(round(f * length)), "ns"), base.end, "data"
            )
            reason += f"; offering only the items of {f:g} of it would have lost {lost:.1%} of its positives"
            reason += " on items seen before it"
            return Popularity(window, True, reason, live)
    return Popularity(
        window, True, reason + f"; every window would lose more than {p.live_max_loss:.0%}: all items offered"
    )


def _clearly_more(hits: np.ndarray, than: np.ndarray) -> bool:
    """``hits`` found clearly more of the probe's positives than ``than`` (paired, per positive): by
    ``PROBE_MIN_GAIN`` of it and two standard errors."""
    gain = hits.astype(np.float64) - than
    se = gain.std(ddof=1) / np.sqrt(len(gain))
    return bool(gain.mean() > PROBE_MIN_GAIN * than.mean() and gain.mean() > 2 * se)


def _nanoseconds(events: pd.DataFrame) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(events["timestamp"], utc=True)).as_unit("ns").asi8


def fit_cohorts(
    events: pd.DataFrame,
    items: pd.Index,
    p: CandidateParams,
    item_genre: np.ndarray,
    genres: list[str],
    how: Popularity | None = None,
) -> tuple[dict[str, np.ndarray], Popularity]:
    """Most popular items over the recent period, per (locale, device) cohort and overall; the
    period and what counts as ``how`` says (``choose_popularity`` decides when it is not given)."""
    positive = label(events).to_numpy() == 1
    how = how or choose_popularity(events, items, p, positive)
    counted = np.ones(len(events), bool) if how.every_event else positive
    recent = events[counted & (_nanoseconds(events) >= how.window.start.value)]
    code = items.get_indexer(recent["item_id"])
    keys = [cohort_key(lo, de) for lo, de in zip(recent["locale"], recent["device"])]
    frame = pd.DataFrame({"cohort": keys, "item": code})
    frame = frame[frame["item"] >= 0]
    overall = frame["item"].value_counts(sort=True)
    # items never played recently still get a place, so every cohort list covers the catalog's head
    rest = np.setdiff1d(np.arange(len(items)), overall.index.to_numpy())
    cohorts = {GLOBAL_COHORT: np.concatenate([overall.index.to_numpy(), rest])[: p.cohort_size].astype(np.int64)}
    # where some events name a locale (or device), those that name none are a group of their own (a users
    # file's blank countries), not everyone: no cohort of theirs stands for a request that names none
    partial = {
        part: bool((events[part] != UNKNOWN).any() and (events[part] == UNKNOWN).any()) for part in ("locale", "device")
    }
    for key, grp in frame.groupby("cohort"):
        locale, _, device = str(key).partition("|")
        if (partial["locale"] and locale == UNKNOWN) or (partial["device"] and device == UNKNOWN):
            continue
        counts = grp["item"].value_counts(sort=True)
        if counts.sum() < 50:  # too few events to be better than the global list
            continue
        own = counts.index.to_numpy()
        cohorts[key] = np.concatenate([own, overall.index.difference(own, sort=False).to_numpy(), rest])[
            : p.cohort_size
        ].astype(np.int64)
    ranked = overall.index.to_numpy()
    for g, name in enumerate(genres):
        in_genre = ranked[item_genre[ranked] == g]
        if len(in_genre):
            cohorts[genre_key(name)] = in_genre[: p.cohort_size].astype(np.int64)
    return cohorts, how


def alive(events: pd.DataFrame, items: pd.Index, how: Popularity) -> np.ndarray | None:
    """Items with any event in the window, where the catalogue turns over (only those can still be
    offered); None, every item, otherwise."""
    if how.live is None:
        return None
    code = items.get_indexer(events["item_id"].to_numpy()[_nanoseconds(events) >= how.live.start.value])
    live = np.zeros(len(items), bool)
    live[code[code >= 0]] = True
    return live


def refit_popularity(index: CandidateIndex, events: pd.DataFrame, how: Popularity, p: CandidateParams) -> Popularity:
    """The lists (and the live items) fitted again over ``events`` with ``how``'s length and counting,
    ending at the newest event: where items live for hours, the lists fitted before a hold-out of
    hours are a lifetime old by the time they serve."""
    how = how.ending_at(pd.Timestamp(pd.to_datetime(events["timestamp"], utc=True).max()))
    items = pd.Index(index.item_ids)
    cohorts, _ = fit_cohorts(events, items, p, index.item_genre, index.genres, how)
    index.set_popularity(cohorts, alive(events, items, how))
    index.popularity_refit = how.spec()
    return how


def refit_registered_popularity(index: CandidateIndex, events: pd.DataFrame) -> bool:
    """A registered index's lists fitted again over ``events`` as its training counted them (its
    served lists reach to the end of its log, hold-outs included); False when it keeps no such
    record (no live filter: its lists end where its training part did)."""
    if not index.popularity_refit:
        return False
    refit_popularity(index, events, Popularity.from_spec(index.popularity_refit), CandidateParams())
    return True


def fit_candidates(
    events: pd.DataFrame, catalog: pd.DataFrame, p: CandidateParams, seed: int, embed: Embedder | None = None
) -> FittedCandidates:
    """``embed`` fits the embeddings (``fit_embeddings`` unless given: the cluster profile's may use Spark)."""
    genres = sorted(set(catalog["genre"].fillna("unknown").astype(str)) | {"unknown"})
    item_ids = catalog["item_id"].astype(str).to_numpy()
    items = pd.Index(item_ids)
    genre_idx = pd.Index(genres).get_indexer(catalog["genre"].fillna("unknown").astype(str))
    users = np.array(sorted(events["user_id"].unique()), dtype=object)
    matrix = _interactions(events, users, items)
    users, uf, itf = (embed or fit_embeddings)(events, users, matrix, p, seed)
    ease = fit_ease_head(matrix, p.ease_lambda, p.ease_max_items)
    cohorts, how = fit_cohorts(events, items, p, genre_idx, genres)
    index = CandidateIndex(
        item_ids,
        genre_idx,
        genres,
        users,
        uf,
        itf,
        fit_covisitation(events, items, p),
        cohorts,
        seen=seen_matrix(events, users, items),
        knn=ease.neighbours() if ease is not None else None,
        exclude_seen=p.exclude_seen,
        exclude_recent=p.exclude_recent,
        terms=fit_terms(catalog, genres),
        live=alive(events, items, how),
    ).search_with(p.exact_search_max_items)
    return FittedCandidates(index, ease, matrix, how)
