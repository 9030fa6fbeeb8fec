"""The cost arithmetic on hand-built inputs (ops.cost.model), and the cost file's errors (ops.cost.prices)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.cost import model, prices
from ops.cost.model import GB, Arm, Day, Rates
from ops.cost.prices import Prices
from setlist.errors import BadInput, InputMissing

ROOT = Path(__file__).resolve().parents[2]
# round numbers, so each expected cost below can be worked out by hand
PRICES = Prices("USD", cpu_second=0.01, storage_gb_month=model.DAYS_PER_MONTH, redis_gb_hour=1.0, million_requests=1e6)


def test_a_day_costs_its_measured_cpu_calls_bytes_and_memory() -> None:
    day = Day("2024-05-01", rank_calls=1000, track_events=500)
    rates = Rates(rank_cpu_s=0.002, track_cpu_s=0.001, track_events_per_call=5, jobs_cpu_s_per_day=30, redis_bytes=GB)
    c = model.day_cost(day, held_bytes=2 * GB, rates=rates, prices=PRICES)
    assert c.serving_cpu == pytest.approx((1000 * 0.002 + 500 * 0.001) * 0.01)  # 2.5 CPU-s
    assert c.jobs_cpu == pytest.approx(30 * 0.01)
    assert c.storage == pytest.approx(2.0)  # 2 GB for a day at one day's price per GB
    assert c.redis == pytest.approx(24.0)  # 1 GB for 24 hours
    assert c.requests == pytest.approx(1000 + 100)  # 1,000 Rank calls + 500 events in 100 Track calls, at 1 each
    assert c.total == pytest.approx(c.serving_cpu + c.jobs_cpu + c.storage + c.redis + c.requests)


def test_an_unmeasured_rate_adds_nothing_rather_than_a_guess() -> None:
    day = Day("2024-05-01", rank_calls=1000, track_events=500)
    c = model.day_cost(day, held_bytes=0, rates=Rates(rank_cpu_s=0.002), prices=PRICES)
    assert c.serving_cpu == pytest.approx(1000 * 0.002 * 0.01)  # no Track CPU measured: none charged
    assert c.jobs_cpu == c.storage == c.redis == 0.0
    assert c.requests == pytest.approx(1000)  # Track calls unknown (no events per call): not charged


def test_cost_per_1000_rank_calls_per_engaged_user_and_per_value_event() -> None:
    assert model.per(3.0, 1500, 1000) == pytest.approx(2.0)
    assert model.per(3.0, 4) == pytest.approx(0.75)
    assert model.per(3.0, 12.5) == pytest.approx(0.24)
    assert model.per(3.0, 0, 1000) is None  # no Rank calls: no per-call cost, not a division by zero


def test_bytes_held_on_a_day_are_every_partition_up_to_it_plus_the_online_store() -> None:
    days = [Day("a", events_bytes=100, impressions_bytes=10), Day("b"), Day("c", events_bytes=5)]
    assert model.held(days, fixed_bytes=1000) == [1110, 1110, 1115]


def test_arms_are_charged_in_proportion_to_their_rank_and_track_calls() -> None:
    rates = Rates(track_events_per_call=10)
    arms = [
        Arm("a", rank_calls=300, track_events=1000),  # 300 + 100 calls
        Arm("b", rank_calls=100, track_events=1000),  # 100 + 100
        Arm("c", rank_calls=0, track_events=0, track_calls=200),  # counted calls win over derived ones
    ]
    calls = {a.arm: model.arm_calls(a, rates) for a in arms}
    assert calls == {"a": 400, "b": 200, "c": 200}
    split = model.allocate(80.0, calls)
    assert split == pytest.approx({"a": 40.0, "b": 20.0, "c": 20.0})
    assert sum(split.values()) == pytest.approx(80.0)
    # events per call unmeasured: each Track event counts as one call
    assert model.arm_calls(Arm("a", rank_calls=3, track_events=7), Rates()) == 10
    assert model.allocate(80.0, {"a": 0.0, "b": 0.0}) == {}  # nothing to split by


def test_sampling_savings_are_the_missing_events_at_the_mean_stored_size() -> None:
    saved = model.sampling_saved(stored=10, represented=46.0, stored_bytes=2000)
    assert saved.events == pytest.approx(36.0)
    assert saved.bytes == pytest.approx(36 * 200)
    assert model.sampling_saved(stored=10, represented=10.0, stored_bytes=2000) == model.Saving(0.0, 0.0)
    assert model.sampling_saved(stored=0, represented=0.0, stored_bytes=0) == model.Saving(0.0, 0.0)


# --- the cost file ------------------------------------------------------------------------------------------
def test_the_repository_cost_file_loads_and_says_its_prices_are_examples() -> None:
    p = prices.load(ROOT / "cost.yaml")
    assert p.currency and all(getattr(p, f) > 0 for f in prices.FIELDS)
    assert "EXAMPLE" in (ROOT / "cost.yaml").read_text()


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cost.yaml"
    path.write_text(text)
    return path


VALID = "prices: {cpu_second: 1, storage_gb_month: 1, redis_gb_hour: 1, million_requests: 1}\n"


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("prices: [1, 2\n", BadInput, "is not valid YAML at line"),
        ("- just a list\n", BadInput, "needs a `prices` mapping"),
        (
            VALID.replace("cpu_second: 1", "cpu_second: -0.5"),
            BadInput,
            "prices.cpu_second is -0.5; a price is 0 or more",
        ),
        (VALID.replace("redis_gb_hour: 1, ", ""), BadInput, "no price for redis_gb_hour"),
        (VALID.replace("cpu_second", "cpu_hour"), BadInput, "unknown price cpu_hour"),
        (VALID.replace("million_requests: 1", "million_requests: cheap"), BadInput, "must be a number"),
        (VALID.replace("million_requests: 1", "million_requests: .nan"), BadInput, "must be a number"),
        (VALID + "currency: ''\n", BadInput, "`currency` must be a short label"),
    ],
)
def test_a_malformed_cost_file_is_one_line_naming_what_is_wrong(tmp_path, text, kind, message) -> None:
    with pytest.raises(kind) as caught:
        prices.load(_file(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_cost_file_says_where_it_looked(tmp_path) -> None:
    with pytest.raises(InputMissing, match="no cost file at .*SETLIST_COST_FILE"):
        prices.load(tmp_path / "nope.yaml")


def test_a_price_of_zero_is_allowed(tmp_path) -> None:
    p = prices.load(_file(tmp_path, VALID.replace("redis_gb_hour: 1", "redis_gb_hour: 0")))
    assert p.redis_gb_hour == 0.0 and p.currency == "USD"
