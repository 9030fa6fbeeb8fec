"""The generated users the benchmark sends requests for (raw application ids, as clients send them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class User:
    user_id: str
    locale: str
    device: str

    @property
    def context(self) -> dict[str, str]:
        return {"device": self.device, "locale": self.locale}


def load_users(data_dir: Path, n: int, seed: int = 0) -> list[User]:
    """Up to ``n`` users who consented to personalization (so Rank runs the ranker, not the
    popularity fallback), in a seeded random order."""
    frame = pd.read_parquet(
        Path(data_dir) / "generated" / "users.parquet",
        columns=["user_id", "locale", "device", "consent_personalization"],
    )
    frame = frame[frame["consent_personalization"]]
    order = np.random.default_rng(seed).permutation(len(frame))[:n]
    picked = frame.iloc[order]
    return [User(str(u), str(loc), str(d)) for u, loc, d in zip(picked["user_id"], picked["locale"], picked["device"])]
