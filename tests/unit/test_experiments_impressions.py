"""The impression writer on its own: bounded, non-blocking, drops counted, rows expanded per item."""

from __future__ import annotations

import threading
from dataclasses import replace

import pyarrow.parquet as pq
from prometheus_client import REGISTRY

from serving import metrics
from serving.impressions import ImpressionLog
from setlist.impressions import Impression, read_impressions, to_table, write_batch


def _record(n: int = 0, items: tuple[str, ...] = ("a", "b", "c")) -> Impression:
    return Impression(
        f"req-{n}",
        1_795_000_000_000 + n,
        f"u_{n}",
        "exp",
        "champion",
        False,
        "model",
        "champion",
        "3",
        "5",
        items,
        tuple(1.0 / (i + 1) for i in range(len(items))),
        device="mobile",
    )


class BlockedSink:
    """A writer that cannot finish until the test lets it."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.records: list[Impression] = []

    def __call__(self, records: list[Impression]) -> int:
        self.entered.set()
        assert self.release.wait(10), "the test never released the writer"
        self.records.extend(records)
        return sum(len(r.item_ids) for r in records)


def test_submit_never_waits_for_the_writer_and_drops_are_counted():
    sink = BlockedSink()
    log = ImpressionLog(sink, maxsize=2, flush_s=0.0, on_drop=metrics.record_impression_drop)
    before = REGISTRY.get_sample_value("setlist_impressions_dropped_total") or 0.0
    assert log.submit(_record(0))
    assert sink.entered.wait(5)  # the writer holds record 0 and is stuck in the sink
    accepted = [log.submit(_record(n)) for n in range(1, 6)]
    assert accepted == [True, True, False, False, False]  # two fit in the queue, the rest are dropped
    assert log.dropped == 3
    assert REGISTRY.get_sample_value("setlist_impressions_dropped_total") - before == 3
    sink.release.set()
    assert log.flush()
    assert [r.request_id for r in sink.records] == ["req-0", "req-1", "req-2"]
    log.close()


def test_a_failing_sink_loses_records_but_not_the_writer():
    calls = []

    def sink(records):
        calls.append(len(records))
        if len(calls) == 1:
            raise OSError("disk full")
        return len(records)

    log = ImpressionLog(sink, flush_s=0.0)
    log.submit(_record(0))
    assert log.flush()
    log.submit(_record(1))
    assert log.flush()
    assert log.failed == 1 and log.written == 1
    log.close()


def test_rows_are_one_per_shown_item_with_positions_and_scores(tmp_path):
    table = to_table([_record(0), _record(1, ("x",))])
    rows = table.to_pylist()
    assert [(r["request_id"], r["item_id"], r["position"]) for r in rows] == [
        ("req-0", "a", 1),
        ("req-0", "b", 2),
        ("req-0", "c", 3),
        ("req-1", "x", 1),
    ]
    assert rows[1]["score"] == 0.5 and rows[0]["k"] == 3 and rows[3]["k"] == 1
    assert {r["arm"] for r in rows} == {"champion"} and rows[0]["ranker_version"] == "5"
    assert write_batch(tmp_path, [_record(0), _record(1)]) == 6
    back = read_impressions(tmp_path, "exp")
    assert len(back) == 6 and back["position"].tolist() == [1, 2, 3, 1, 2, 3]
    assert read_impressions(tmp_path, "other").empty and read_impressions(tmp_path / "none").empty


def test_a_slate_is_marked_and_files_written_before_the_mark_read_it_as_unknown(tmp_path):
    older = to_table([_record(0)]).drop_columns(["caller_slate"])  # a file from before the column existed
    (tmp_path / "date=2026-11-18").mkdir()
    pq.write_table(older, tmp_path / "date=2026-11-18" / "old.parquet")
    write_batch(tmp_path, [replace(_record(1), caller_slate=True), _record(2)])
    back = read_impressions(tmp_path, "exp").drop_duplicates("request_id").set_index("request_id")["caller_slate"]
    assert back.to_dict() == {"req-0": None, "req-1": True, "req-2": False}
