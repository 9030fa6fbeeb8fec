"""A user's own interactions CSV goes through import, features and training with no code changes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.world import tiny_settings


def test_movielens_style_csv_imports_and_materializes(tmp_path):
    from feature_repo.materialize import publish
    from ingest.importer import load_interactions
    from ingest.intake import ingest
    from setlist.catalog import save_items

    rng = np.random.default_rng(3)
    n = 4000
    start = pd.Timestamp("2026-09-01", tz="UTC").timestamp()
    pd.DataFrame(
        {
            "userId": rng.integers(1, 80, n),
            "movieId": rng.integers(1, 300, n),
            "rating": rng.choice([1, 2, 3, 3.5, 4, 4.5, 5], n),
            "timestamp": (start + rng.integers(0, 30 * 86400, n)).astype(int),
        }
    ).to_csv(tmp_path / "r.csv", index=False)
    pd.DataFrame({"movieId": range(1, 300), "title": "x", "genres": rng.choice(["Drama|War", "Comedy"], 299)}).to_csv(
        tmp_path / "m.csv", index=False
    )
    settings = tiny_settings(tmp_path / "data")
    events, items, _ = load_interactions(
        tmp_path / "r.csv",
        user_col="userId",
        item_col="movieId",
        time_unit="s",
        rating_col="rating",
        items=tmp_path / "m.csv",
        item_id_col="movieId",
    )
    save_items(items, settings.catalog_path)
    report = ingest(events, settings, source="import")
    assert report.accepted == n
    published = publish(settings)
    assert published.version == 1
    assert published.rows["user_profile.parquet"] > 0 and published.rows["item_stats.parquet"] > 0
