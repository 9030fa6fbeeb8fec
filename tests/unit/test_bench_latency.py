"""Percentiles and the summary arithmetic of bench.latency, on hand-made latency lists."""

from __future__ import annotations

import math

import pytest

from bench.latency import Samples, cdf_points, percentile, summarize


def test_nearest_rank_percentiles_of_one_to_hundred() -> None:
    ms = [float(i) for i in range(1, 101)]
    assert percentile(ms, 50) == 50.0
    assert percentile(ms, 90) == 90.0
    assert percentile(ms, 99) == 99.0
    assert percentile(ms, 99.9) == 100.0  # ceil(99.9) = 100th sample
    assert percentile(ms, 100) == 100.0


def test_percentiles_of_a_small_list_are_real_samples() -> None:
    ms = sorted([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0])
    assert percentile(ms, 50) == 5.0
    assert percentile(ms, 90) == 9.0
    assert percentile(ms, 99) == 10.0
    assert percentile([4.2], 99.9) == 4.2


def test_percentile_edge_cases() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_counts_errors_apart_from_latencies() -> None:
    s = Samples(elapsed_s=2.0)
    for ms in (1.0, 2.0, 3.0, 4.0):
        s.record("OK", ms)
    s.record("RESOURCE_EXHAUSTED", 0.5)
    s.record("DEADLINE_EXCEEDED", 100.0)
    s.record("DEADLINE_EXCEEDED", 100.0)
    out = summarize(s)  # no deadline: percentiles of successful calls only
    assert out["p50_ms"] == 2.0 and out["p99_ms"] == 4.0 and out["max_ms"] == 4.0
    assert out["mean_ms"] == 2.5
    assert out["count"] == 7 and out["ok"] == 4 and out["errors"] == 3
    assert out["errors_by_code"] == {"DEADLINE_EXCEEDED": 2, "RESOURCE_EXHAUSTED": 1}
    assert out["rps"] == 2.0  # successful calls only, over the measured window


def test_failed_calls_count_as_taking_at_least_the_deadline() -> None:
    s = Samples(elapsed_s=1.0)
    for ms in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0):
        s.record("OK", ms)
    s.record("RESOURCE_EXHAUSTED", 0.5)  # refused at once: still counted at the 50 ms deadline
    s.record("DEADLINE_EXCEEDED", 50.2)
    s.record("UNAVAILABLE", 80.0)  # slower than the deadline: its own latency
    out = summarize(s, deadline_ms=50.0)
    # effective latencies: 1..7, 50, 50.2, 80
    assert out["p50_ms"] == 5.0 and out["p90_ms"] == 50.2 and out["p99_ms"] == 80.0
    assert out["max_ms"] == 80.0 and out["p99_ok_only_ms"] == 7.0
    assert out["failed_counted_at_ms"] == 50.0 and out["errors"] == 3 and out["rps"] == 7.0


def test_summary_of_nothing_is_json_friendly() -> None:
    out = summarize(Samples())
    assert out["p50_ms"] is None and out["p99_ms"] is None and out["rps"] is None
    assert out["errors"] == 0


def test_cdf_points_end_at_one_and_are_thinned() -> None:
    pts = cdf_points([float(i) for i in range(1000, 0, -1)], max_points=100)
    assert pts[0] == (1.0, 0.001)
    assert pts[-1] == (1000.0, 1.0)
    assert len(pts) <= 101
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in zip(pts, pts[1:]))
