"""A viewing log in the shape of a public short-video dataset (KuaiRec's ``big_matrix.csv`` and
``item_categories.csv``), generated from a seed.

Unlike a ratings log, a row says how long a play lasted (``play_duration``) beside the video's
length (``video_duration``), both in milliseconds, and their ratio (``watch_ratio``), which passes
1 when a video was watched again. The feed chooses what each user sees, leaning to their taste; the
user watches what they like to the end and beyond, and swipes past the rest within seconds: a log
full of skips, which only the time played tells from the plays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: KuaiRec's categories are numbered; a video lists one to three
CATEGORIES = 31
START = pd.Timestamp("2020-07-05", tz="Asia/Shanghai")  # the public log's first day
DAY_S = 86_400


@dataclass(frozen=True)
class PlaysFixture:
    plays: pd.DataFrame  # user_id, video_id, play_duration, video_duration, time, date, timestamp, watch_ratio
    categories: pd.DataFrame  # video_id, feat (a bracketed list of category numbers)


def make_plays(
    users: int = 300, items: int = 1_500, plays: int = 25_000, days: int = 14, seed: int = 7
) -> PlaysFixture:
    """Same arguments give the same frames."""
    if users < 1 or items < 100 or plays < 20 * users or days < 2:
        raise ValueError("need users ≥ 1, items ≥ 100, plays ≥ 20 per user and days ≥ 2")
    rng = np.random.default_rng(seed)
    main = rng.choice(CATEGORIES, items, p=rng.dirichlet(np.full(CATEGORIES, 0.8)))
    extra = [rng.choice(CATEGORIES, int(rng.integers(0, 3)), replace=False).tolist() for _ in range(items)]
    appeal = rng.normal(0, 1, items)
    length_ms = np.round(rng.lognormal(np.log(12_000), 0.5, items)).clip(3_000, 120_000)
    taste = rng.normal(0, 1, (users, CATEGORIES)) * 1.4
    per_user = 20 + rng.multinomial(plays - 20 * users, rng.dirichlet(np.full(users, 0.8)))

    rows: list[tuple[int, int, int, float]] = []
    for u in range(users):
        score = taste[u, main] + appeal
        # the feed: what the platform shows, leaning to the user's taste and to appealing videos
        shown = rng.choice(items, per_user[u], p=_softmax(0.6 * score))
        # a session every day or two; within one, each video follows the last as soon as it ends
        sessions = np.sort(rng.uniform(0, days * DAY_S, max(1, per_user[u] // 12)))
        starts = sessions[rng.integers(0, len(sessions), per_user[u])]
        liking = score[shown] + rng.normal(0, 1.0, per_user[u])
        ratio = np.where(
            liking > 2.0,
            rng.uniform(0.85, 2.5, per_user[u]),  # watched through, often again
            np.where(liking > 0.6, rng.uniform(0.3, 0.9, per_user[u]), rng.uniform(0.0, 0.2, per_user[u])),
        )
        played = np.round(ratio * length_ms[shown])
        for s in np.unique(starts):
            mine = np.flatnonzero(starts == s)
            at = s + np.concatenate([[0.0], np.cumsum(played[mine][:-1] / 1000.0 + 1.5)])
            rows += [(u, int(shown[k]), int(played[k]), float(t)) for k, t in zip(mine, at, strict=True)]
    frame = pd.DataFrame(rows, columns=["u", "i", "played", "t"]).sort_values(["u", "t"], kind="mergesort")
    ids = rng.choice(20_000, items, replace=False)
    when = START + pd.to_timedelta(frame["t"].to_numpy(), unit="s")
    video_ms = length_ms[frame["i"].to_numpy()]
    out = pd.DataFrame(
        {
            "user_id": frame["u"].to_numpy(),
            "video_id": ids[frame["i"].to_numpy()],
            "play_duration": frame["played"].to_numpy().astype(np.int64),
            "video_duration": video_ms.astype(np.int64),
            "time": when.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-3],
            "date": when.strftime("%Y%m%d").astype(int),
            "timestamp": np.round(when.tz_convert("UTC").astype("int64") / 1e9, 3),
            "watch_ratio": np.round(frame["played"].to_numpy() / video_ms, 3),
        }
    )
    feats = [sorted({int(main[k]), *extra[k]}) for k in range(items)]
    categories = pd.DataFrame({"video_id": ids, "feat": [str(f) for f in feats]}).sort_values("video_id")
    return PlaysFixture(plays=out.reset_index(drop=True), categories=categories.reset_index(drop=True))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def write_plays(out: Path, **sizes: int) -> PlaysFixture:
    """Write ``out/big_matrix.csv`` and ``out/item_categories.csv`` as the public files lay them out."""
    fx = make_plays(**sizes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fx.plays.to_csv(out / "big_matrix.csv", index=False)
    fx.categories.to_csv(out / "item_categories.csv", index=False)
    return fx
