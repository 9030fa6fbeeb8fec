"""An append writes one file per day, each holding exactly that day's rows in time order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from setlist.eventlog import EventLog


def _events(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # decades of days, several rows on most of them, and ties within a day
    ts = pd.Timestamp("1996-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 9_000, n) * 86_400_000, unit="ms")
    ts = ts + pd.to_timedelta(rng.integers(0, 3, n) * 3_600_000, unit="ms")
    return pd.DataFrame(
        {
            "event_id": [f"e{k:05d}" for k in range(n)],
            "schema_version": np.full(n, 2, np.int32),
            "user_id": [f"u{k % 7}" for k in range(n)],
            "session_id": None,
            "item_id": [f"i{k % 11}" for k in range(n)],
            "type": "play",
            "timestamp": ts,
            "value": np.float32(1.0),
        }
    )


def test_each_days_file_holds_that_days_rows_in_time_order_ties_in_arrival_order(tmp_path):
    frame = _events(3_000, seed=1)
    log = EventLog(tmp_path / "events")
    assert log.append(frame, tag="t") == len(frame)
    files = log.files()
    days = frame["timestamp"].dt.strftime("%Y-%m-%d")
    assert len(files) == days.nunique()
    for path in files:
        day = path.parent.name.removeprefix("date=")
        got = pq.read_table(path).to_pandas()
        want = frame[days == day].sort_values("timestamp", kind="mergesort")
        assert got["event_id"].tolist() == want["event_id"].tolist()


def test_a_read_is_the_log_sorted_by_time_then_event_id_with_codes_and_positions(tmp_path):
    frame = _events(3_000, seed=2)
    frame["session_id"] = [None if k % 5 == 0 else f"s{k % 13}" for k in range(len(frame))]
    # ids in an order unrelated to time, so that ties in time are broken by the id, not by arrival
    frame["event_id"] = frame["event_id"].sample(frac=1.0, random_state=3).to_numpy()
    log = EventLog(tmp_path / "events")
    log.append(frame, tag="t")
    want = frame.sort_values(["timestamp", "event_id"], kind="mergesort").reset_index(drop=True)

    got = log.read(columns=("event_id", "user_id", "item_id", "timestamp", "value"))
    assert list(got.columns) == ["event_id", "user_id", "item_id", "timestamp", "value"]
    assert got["event_id"].tolist() == want["event_id"].tolist()
    assert got["user_id"].tolist() == want["user_id"].tolist()
    assert (got["timestamp"].to_numpy() == want["timestamp"].to_numpy()).all()

    coded = log.read(columns=("event_id", "session_id", "item_id"), codes=("session_id",), ids_as_positions=True)
    assert coded["event_id"].tolist() == list(range(len(frame)))
    assert coded["item_id"].tolist() == want["item_id"].tolist()
    # one code per session, -1 where there is none, in the order sessions first appear
    sessions = want["session_id"]
    expected = pd.Series(pd.factorize(sessions)[0]).where(sessions.notna(), -1)
    assert coded["session_id"].tolist() == expected.tolist()


@pytest.mark.parametrize("writer", ["write_atomic", "stage"])
def test_a_write_that_fails_part_way_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    import errno

    import pyarrow as pa

    from setlist import swap
    from setlist.eventlog import write_atomic

    target = tmp_path / "date=2026-11-20" / "batch.parquet"
    old = pa.table({"event_id": ["e1"]})
    write_atomic(old, target)
    before = sorted(p.name for p in target.parent.iterdir())

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(OSError):
        if writer == "write_atomic":
            write_atomic(pa.table({"event_id": ["e1", "e2"]}), target)
        else:
            swap.stage(pa.table({"event_id": ["e2"]}), tmp_path, "date=2026-11-20/merged.parquet")
    monkeypatch.undo()
    assert sorted(p.name for p in target.parent.iterdir()) == before  # the half-written file is gone
    assert pq.read_table(target).equals(old)
