"""Distribution statistics for drift: reference bins, PSI and Jensen–Shannon distance.

Pure numpy/pandas, no Great Expectations, so the maths is unit-testable on its own and the custom
expectation (``validation.expectations.drift``) stays a thin adapter around it.

A reference is described by *bins* and the reference share of each bin. Two extra buckets are
always present: ``other`` (categorical values never seen in the reference, or nothing for numeric)
and ``null``. Keeping nulls as a bucket means a feature that suddenly goes missing drifts too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from setlist.numbers import to_numbers

Kind = Literal["numeric", "categorical"]

#: floor for bin shares; PSI and KL are undefined for empty bins, and this caps one empty
#: bin's contribution (ln(share/1e-4)) so a single new bucket cannot produce an infinite score
EPSILON = 1e-4
DEFAULT_NUMERIC_BINS = 10
#: categories beyond the most frequent ones fold into ``other``; keeps suites small and stable
MAX_CATEGORIES = 50


@dataclass(frozen=True)
class BinnedReference:
    """Reference distribution of one column: ``shares`` has one entry per bin plus other and null."""

    kind: Kind
    bins: list  # numeric: inner cut points (ascending); categorical: category labels (str)
    shares: list[float]

    def to_kwargs(self) -> dict:
        return {"kind": self.kind, "bins": list(self.bins), "reference": list(self.shares)}


def numeric_reference(values: pd.Series, n_bins: int = DEFAULT_NUMERIC_BINS) -> BinnedReference:
    """Quantile bins of the reference (equal-mass), so PSI is sensitive across the whole range."""
    numeric = to_numbers(values)
    present = numeric.dropna().to_numpy(dtype=float)
    cuts: list[float] = []
    if present.size:
        qs = np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])
        cuts = sorted({float(q) for q in qs})  # repeated quantiles (discrete data) collapse
    return BinnedReference("numeric", cuts, _shares(histogram("numeric", cuts, values)))


def categorical_reference(values: pd.Series, max_categories: int = MAX_CATEGORIES) -> BinnedReference:
    labels = values.dropna().astype(str)
    top = labels.value_counts().index[:max_categories].tolist()
    return BinnedReference("categorical", top, _shares(histogram("categorical", top, values)))


def histogram(kind: Kind, bins: Sequence, values: pd.Series) -> np.ndarray:
    """Counts per interval (numeric: len(bins) + 1) or category, then ``other``, then ``null``."""
    nulls = int(values.isna().sum())
    present = values.dropna()
    if kind == "numeric":
        x = to_numbers(present)
        other = int(x.isna().sum())  # non-numeric garbage in a numeric column
        x = x.dropna().to_numpy(dtype=float)
        idx = np.searchsorted(np.asarray(bins, dtype=float), x, side="right")
        counts = np.bincount(idx, minlength=len(bins) + 1)
    else:
        vc = present.astype(str).value_counts()
        counts = np.array([int(vc.get(b, 0)) for b in bins], dtype=np.int64)
        other = int(vc.sum() - counts.sum())
    return np.concatenate([counts, [other, nulls]]).astype(float)


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def psi(expected: Sequence[float], actual: Sequence[float], eps: float = EPSILON) -> float:
    """Population stability index: sum((a - e) * ln(a / e)) over bins with shares floored at eps."""
    e = np.clip(np.asarray(expected, dtype=float), eps, None)
    a = np.clip(np.asarray(actual, dtype=float), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Jensen–Shannon distance (base 2, so within [0, 1]); symmetric and finite without flooring."""
    p = np.asarray(expected, dtype=float)
    q = np.asarray(actual, dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0 if p.sum() == q.sum() else 1.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


def drift_score(method: str, kind: Kind, bins: Sequence, reference: Sequence[float], values: pd.Series) -> float:
    """Score ``values`` against a binned reference with ``psi`` or ``js``."""
    current = _shares(histogram(kind, bins, values))
    if method == "psi":
        return psi(reference, current)
    if method == "js":
        return js_distance(reference, current)
    raise ValueError(f"unknown drift method {method!r} (allowed: psi, js)")


def bucket_codes(kind: Kind, bins: Sequence, values: pd.Series) -> np.ndarray:
    """Each value's bucket, in ``histogram``'s order (so ``bincount`` of the codes is the histogram)."""
    nulls = values.isna().to_numpy()
    if kind == "numeric":
        x = to_numbers(values).to_numpy(dtype=float)
        codes = np.searchsorted(np.asarray(bins, dtype=float), np.nan_to_num(x), side="right")
        codes = np.where(np.isnan(x), len(bins) + 1, codes)  # non-numeric garbage: ``other``
        n_values = len(bins) + 1
    else:
        index = {str(b): i for i, b in enumerate(bins)}
        codes = values.astype(str).map(index).fillna(len(bins)).to_numpy(dtype=np.int64)
        n_values = len(bins)
    return np.where(nulls, n_values + 1, codes).astype(np.int64)


def null_scores(
    method: str,
    kind: Kind,
    bins: Sequence,
    values: pd.Series,
    size: int,
    max_slices: int,
    draws: int = 0,
    clusters: np.ndarray | None = None,
    seed: int = 0,
) -> list[float]:
    """What a drift score looks like when nothing drifted: windows of about ``size`` values taken out
    of ``values`` (a reference, in time order), each scored against the rest of it.

    Two kinds of windows: consecutive slices (newest first, at most ``max_slices`` spread over the
    whole), which carry the reference's own wandering over time; and ``draws`` random sets of whole
    ``clusters`` (the events of one session or burst, which share an hour, a device, a mood), which
    carry how few independent observations a window of bursty events really holds."""
    n = len(values)
    if size < 1 or n < 2 * size:
        return []
    codes = bucket_codes(kind, bins, values)
    width = len(bins) + (3 if kind == "numeric" else 2)
    total = np.bincount(codes, minlength=width).astype(float)
    score = psi if method == "psi" else js_distance
    out = []
    count = n // size if max_slices > 0 else 0
    picks = range(count) if count <= max_slices else np.unique(np.linspace(0, count - 1, max_slices).round())
    for k in picks:
        part = np.bincount(codes[n - (int(k) + 1) * size : n - int(k) * size], minlength=width)
        out.append(score(_shares(total - part), _shares(part)))
    if draws and clusters is not None:
        ids, inverse = np.unique(clusters, return_inverse=True)
        sizes = np.bincount(inverse, minlength=len(ids))
        rng = np.random.default_rng(seed)
        for _ in range(draws):
            order = rng.permutation(len(ids))
            take = order[: int(np.searchsorted(np.cumsum(sizes[order]), size)) + 1]
            chosen = np.zeros(len(ids), dtype=float)
            chosen[take] = 1.0
            part = np.bincount(codes, weights=chosen[inverse], minlength=width)
            out.append(score(_shares(total - part), _shares(part)))
    return out
