"""Item features held in process, aligned to the candidate index.

Reading 500 items through Feast per request costs ~90 ms, so item stats are read once from the
online store (the same rows Feast serves) and reloaded when a new materialization is published.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feature_repo.online import OnlineFeatures

BATCH = 2000


@dataclass(frozen=True)
class ItemTable:
    matrix: np.ndarray  # (n_items, len(names)) float32, NaN where unknown
    names: tuple[str, ...]  # every declared item input, in declaration order
    genres: np.ndarray  # (n_items,) object: item_genre from the store
    publish_version: int
    missing: int  # catalog items with no online row


def load_items(online: OnlineFeatures, item_ids: np.ndarray, publish_version: int, names: tuple[str, ...]) -> ItemTable:
    """Every declared item input for the candidate index's items; each model takes its columns."""
    n = len(item_ids)
    matrix = np.full((n, len(names)), np.nan, dtype=np.float32)
    genres = np.full(n, "", dtype=object)
    missing = 0
    ids = [str(i) for i in item_ids]
    for start in range(0, n, BATCH):
        rows = online.read("item_stats", ids[start : start + BATCH])
        for k, (_, values) in enumerate(rows):
            if values is None:
                missing += 1
                continue
            matrix[start + k] = [np.nan if values.get(f) is None else float(values[f]) for f in names]
            genres[start + k] = values.get("item_genre") or ""
    return ItemTable(matrix, names, genres, publish_version, missing)


def differences(
    table: ItemTable, online: OnlineFeatures, item_ids: np.ndarray, sample: int = 0, tolerance: float = 1e-5
) -> list[str]:
    """Items whose in-process row differs from the online store (empty when they agree)."""
    idx = (
        np.arange(len(item_ids))
        if not sample
        else np.random.default_rng(0).choice(len(item_ids), size=min(sample, len(item_ids)), replace=False)
    )
    fresh = load_items(online, np.asarray(item_ids)[idx], table.publish_version, table.names)
    a, b = table.matrix[idx], fresh.matrix
    same = np.isclose(a, b, atol=tolerance, equal_nan=True).all(axis=1)
    return [str(item_ids[i]) for i, ok in zip(idx, same) if not ok]
