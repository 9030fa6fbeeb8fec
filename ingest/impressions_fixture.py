"""An impression log in the shape of a public news dataset (MIND's ``behaviors.tsv`` and
``news.tsv``), generated from a seed.

Unlike a ratings log, each line is one moment a user was shown a list of items, every item marked
clicked (``-1``) or not (``-0``), with the user's earlier clicks beside it. Items are news: each
lives a day or two, so most of what a user is shown was published after the user's last visit.
Users click by category taste and by item appeal, a few percent of what they are shown and at
least one item per list, as in the public log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = (
    "news",
    "sports",
    "finance",
    "lifestyle",
    "health",
    "travel",
    "foodanddrink",
    "weather",
    "entertainment",
    "autos",
    "tv",
    "music",
    "movies",
    "video",
)
# how often each category is published: news and sports dominate, as in the public catalogue
_CATEGORY_FREQ = np.array([30, 28, 6, 6, 5, 4, 4, 3, 3, 3, 3, 2, 2, 1], float)
#: the columns of the public files, which have no header line
BEHAVIOR_NAMES = ("impression_id", "user_id", "timestamp", "history", "impressions")
NEWS_NAMES = (
    "news_id",
    "category",
    "subcategory",
    "title",
    "abstract",
    "url",
    "title_entities",
    "abstract_entities",
)
START = pd.Timestamp("2019-11-09")  # the public log's first day
DAY_S = 86_400
_WORDS = ("storm", "market", "season", "coach", "recipe", "election", "vaccine", "trade", "album", "trail", "city")


@dataclass(frozen=True)
class ImpressionFixture:
    behaviors: pd.DataFrame  # impression_id, user_id, timestamp (US format), history, impressions
    news: pd.DataFrame  # news_id, category, subcategory, title, abstract, url, entities


def make_impressions(
    users: int = 500, items: int = 2_000, impressions: int = 4_000, days: int = 6, seed: int = 7
) -> ImpressionFixture:
    """Same arguments give the same frames."""
    if users < 1 or items < 100 or impressions < users or days < 2:
        raise ValueError("need users ≥ 1, items ≥ 100, impressions ≥ users and days ≥ 2")
    rng = np.random.default_rng(seed)
    span = days * DAY_S
    category = rng.choice(len(CATEGORIES), items, p=_CATEGORY_FREQ / _CATEGORY_FREQ.sum())
    # a fifth of the catalogue is older than the log (the users' histories); the rest is published during it
    published = np.where(rng.random(items) < 0.2, rng.uniform(-7 * DAY_S, 0, items), rng.uniform(0, span, items))
    appeal = rng.normal(0, 1, items)
    taste = rng.normal(0, 1, (users, len(CATEGORIES))) * 1.2

    visits = 1 + rng.multinomial(impressions - users, rng.dirichlet(np.full(users, 0.7)))
    rows: list[tuple[str, int, str, str]] = []
    news_ids = np.array([f"N{k}" for k in rng.choice(100_000, items, replace=False) + 1])
    old = np.flatnonzero(published < 0)
    for u in range(users):
        score = taste[u, category] + appeal
        # the history: earlier clicks on old news, by taste
        h = int(rng.poisson(8))
        keys = score[old] + rng.gumbel(size=len(old))
        history = " ".join(news_ids[old[np.argsort(-keys)[:h]]])
        for t in np.sort(rng.uniform(0, span, visits[u])):
            # shown: what was published in the two days before, the appealing first
            live = np.flatnonzero((published <= t) & (published > t - 2 * DAY_S))
            if len(live) < 2:
                continue
            n = min(len(live), int(rng.integers(5, 30)))
            shown = live[np.argsort(-(0.5 * appeal[live] + rng.gumbel(size=len(live))))[:n]]
            p = 1 / (1 + np.exp(-(score[shown] - 5.0)))
            clicked = rng.random(n) < p
            clicked[np.argmax(score[shown] + rng.gumbel(size=n))] = True  # every list holds a click
            marks = " ".join(f"{news_ids[i]}-{int(c)}" for i, c in zip(rng.permutation(shown), clicked, strict=True))
            rows.append((f"U{u + 1}", int(t), history, marks))
    frame = pd.DataFrame(rows, columns=["user_id", "t", "history", "impressions"]).sort_values("t", kind="mergesort")
    when = START + pd.to_timedelta(frame["t"], unit="s")
    behaviors = pd.DataFrame(
        {
            "impression_id": np.arange(1, len(frame) + 1),
            "user_id": frame["user_id"].to_numpy(),
            "timestamp": [f"{w.month}/{w.day}/{w.year} {w:%-I:%M:%S %p}" for w in when],
            "history": frame["history"].to_numpy(),
            "impressions": frame["impressions"].to_numpy(),
        }
    )
    words = rng.choice(_WORDS, (items, 3))
    news = pd.DataFrame(
        {
            "news_id": news_ids,
            "category": np.array(CATEGORIES)[category],
            "subcategory": [f"{CATEGORIES[c]}{k % 4}" for k, c in enumerate(category)],
            "title": [" ".join(w).capitalize() for w in words],
            "abstract": [f"About the {w[0]} and the {w[1]}." for w in words],
            "url": [f"https://example.com/{i}.html" for i in news_ids],
            "title_entities": "[]",
            "abstract_entities": "[]",
        }
    )
    return ImpressionFixture(behaviors=behaviors, news=news)


def write_impressions(out: Path, **sizes: int) -> ImpressionFixture:
    """Write ``out/behaviors.tsv`` and ``out/news.tsv`` as the public files lay them out (tab
    separated, no header line)."""
    fx = make_impressions(**sizes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fx.behaviors.to_csv(out / "behaviors.tsv", sep="\t", header=False, index=False)
    fx.news.to_csv(out / "news.tsv", sep="\t", header=False, index=False)
    return fx
