"""Simulated traffic lives under settings.simulation_dir; the A/B report finds it there."""

from __future__ import annotations

from pathlib import Path

from experiments.report import source_settings
from experiments.simulate import experiment_settings, simulation_settings
from setlist.impressions import Impression, write_batch
from tests.world import tiny_settings


def _impression(n: int, experiment: str = "ab") -> Impression:
    return Impression(
        f"req-{n}",
        1_795_000_000_000 + n,
        f"u_{n}",
        experiment,
        "champion",
        False,
        "model",
        "champion",
        "3",
        "5",
        ("a", "b"),
        (1.0, 0.5),
        device="mobile",
    )


def test_everything_the_simulation_writes_is_under_simulation_dir(tmp_path):
    real = tiny_settings(tmp_path / "data")
    sim = experiment_settings(real, Path("experiments.yaml"))
    for where in (sim.events_dir, sim.wal_dir, sim.impressions_dir):
        assert where.is_relative_to(real.simulation_dir), where
    assert not real.events_dir.is_relative_to(real.simulation_dir)
    assert real.events_dir == real.data_dir / "events" and real.impressions_dir == real.data_dir / "impressions"
    # what is served is the real thing: models, features, registry and identities
    assert (sim.data_dir, sim.tracking_uri, sim.metadata_url) == (real.data_dir, real.tracking_uri, real.metadata_url)
    assert sim.experiments_file == Path("experiments.yaml") and sim.impressions_enabled


def test_the_report_reads_live_traffic_first_then_the_simulation(tmp_path):
    real = tiny_settings(tmp_path / "data")
    assert source_settings(real, "ab")[0].events_dir == real.events_dir  # nothing anywhere: live
    write_batch(simulation_settings(real).impressions_dir, [_impression(1)])
    chosen, label = source_settings(real, "ab")
    assert chosen.events_dir == real.simulation_dir / "events" and "simulated" in label
    assert source_settings(real, "ab", "live")[0].impressions_dir == real.impressions_dir
    write_batch(real.impressions_dir, [_impression(2)])
    assert source_settings(real, "ab")[0].impressions_dir == real.impressions_dir
    assert source_settings(real, "ab", "simulation")[0].impressions_dir == real.simulation_dir / "impressions"
