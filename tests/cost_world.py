"""A small hand-built data directory for the cost report, with every count known in advance.

Events (value rule: a play of ≥ 80 % or a like; engaged from 3 value events):
- 2024-05-01: user-a (arm champion) 3 plays at 0.9 and 4 views sampled at weight 5; user-b (arm
  control) a like and a play at 0.5. 9 rows standing for 25 events; 4 value events; user-a engaged.
- 2024-05-02: user-b 3 likes (engaged that day); user-c (no arm) one heartbeat. 4 rows; 3 value events.
Over the period user-a (3) and user-b (4) are engaged; 3 users.

Impressions (Rank calls): 2024-04-30 down-sampled, 5 champion calls (its position-2 count is no call);
2024-05-01 raw: 2 champion calls of 3 items, 1 control call of 2 items, 1 call under no experiment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pyarrow as pa

from setlist.downsample import DAILY, DAILY_SCHEMA
from setlist.eventlog import EventLog, write_atomic
from setlist.impressions import Impression, write_batch
from setlist.settings import Settings

DAY1, DAY2 = datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 2, 12, tzinfo=UTC)
EXPECTED = {
    "days": ["2024-04-30", "2024-05-01", "2024-05-02"],
    "rank_calls": {"2024-04-30": 5, "2024-05-01": 4, "2024-05-02": 0},
    "track_events": {"2024-04-30": 0, "2024-05-01": 9, "2024-05-02": 4},
    "represented": {"2024-05-01": 25.0, "2024-05-02": 4.0},
    "value_events": {"2024-05-01": 4.0, "2024-05-02": 3.0},
    "engaged_users": {"2024-05-01": 1, "2024-05-02": 1},
    "users": 3,
    "engaged": 2,
    # arm → (users, engaged users, value events, Rank calls, Track events)
    "arms": {"champion": (1, 1, 3.0, 7, 7), "control": (1, 1, 4.0, 1, 5), "": (1, 0, 0.0, 1, 1)},
}


def _event(i: int, user: str, type_: str, at: datetime, value: float | None = None, **kw: object) -> dict:
    return {
        "event_id": f"e{i}",
        "schema_version": 2,
        "user_id": user,
        "item_id": f"item-{i % 3}",
        "type": type_,
        "timestamp": at,
        "value": value,
        **kw,
    }


def build(settings: Settings) -> None:
    rows = [_event(i, "user-a", "play", DAY1, 0.9, arm="champion") for i in range(3)]
    rows += [_event(10 + i, "user-a", "view", DAY1, arm="champion", weight=5.0) for i in range(4)]
    rows += [_event(20, "user-b", "like", DAY1, arm="control"), _event(21, "user-b", "play", DAY1, 0.5, arm="control")]
    rows += [_event(30 + i, "user-b", "like", DAY2, arm="control") for i in range(3)]
    rows += [_event(40, "user-c", "heartbeat", DAY2)]
    EventLog(settings.events_dir).append(pd.DataFrame(rows), tag="cost-test")

    at = int(DAY1.timestamp() * 1000)

    def shown(request: str, user: str, experiment: str, arm: str, k: int) -> Impression:
        items = tuple(f"item-{j}" for j in range(k))
        return Impression(request, at, user, experiment, arm, False, "model", "champion", "1", "1", items, (1.0,) * k)

    write_batch(
        settings.impressions_dir,
        [
            shown("r1", "user-a", "ab", "champion", 3),
            shown("r2", "user-a", "ab", "champion", 3),
            shown("r3", "user-b", "ab", "control", 2),
            shown("r4", "user-c", "", "popularity", 2),
        ],
    )
    daily = pa.Table.from_pylist(
        [
            {**_daily_keys(position), "date": date(2024, 4, 30), "impressions": 5}
            for position in (1, 2)  # a position-2 count is items shown, not calls
        ],
        schema=DAILY_SCHEMA,
    )
    write_atomic(daily, settings.impressions_dir / DAILY / "date=2024-04-30" / "counted.parquet")


def _daily_keys(position: int) -> dict[str, object]:
    return {
        "experiment": "ab",
        "arm": "champion",
        "holdout": False,
        "served": "model",
        "variant": "champion",
        "candidates_version": "1",
        "ranker_version": "1",
        "position": position,
    }
