"""Simulated users on the tiny world: a real lift is measured, a broken ranker is rolled back.

Run with ``-p tests.world`` (the ``tiny_copy`` fixture). Users react through ingest.latent's
response model, so these are statistical tests with large margins, not exact numbers.
"""

from __future__ import annotations

from mlflow import MlflowClient

from experiments.drill import run_drill
from experiments.report import run, source_settings
from experiments.simulate import SimConfig, Simulator, experiment_settings, load_latent, population
from serving.bootstrap import build
from setlist.eventlog import EventLog
from setlist.experiment import load_experiment
from setlist.impressions import read_impressions

AB = """
name: sim-ab
salt: sim-ab-1
control: control
arms:
  control:  {share: 0.5, strategy: popularity}
  champion: {share: 0.5, strategy: model, alias: champion}
"""


def test_the_model_shows_a_positive_lift_over_popularity_with_a_ci_excluding_zero(tiny_copy, tmp_path):
    path = tmp_path / "experiments.yaml"
    path.write_text(AB)
    real = tiny_copy.settings
    before = EventLog(real.events_dir).files()
    settings = experiment_settings(real, path)
    latent = load_latent(settings)
    server = build(settings)
    stats = Simulator(server, latent, SimConfig(users=200, sessions=3)).run(
        population(latent, 200, seed=11, users=tiny_copy.users)
    )
    server.close()
    assert stats.ranks == 600 and stats.rejected == 0 and set(stats.arms) == {"control", "champion"}
    # simulated traffic stays under simulation_dir: the real event log, journal and impressions are untouched
    assert EventLog(real.events_dir).files() == before
    assert EventLog(real.simulation_dir / "events").count() == stats.events
    assert read_impressions(real.impressions_dir).empty and not (real.wal_dir / "worker-0").exists()
    # the report finds the simulation's traffic by itself
    chosen, label = source_settings(real, "sim-ab")
    assert chosen.events_dir == settings.events_dir and "simulated" in label
    report, png = run(settings, load_experiment(path))
    lift = report.arm("champion").comparison["play_rate"]
    assert lift.lo > 0, report.verdicts
    assert report.verdicts[0].startswith("champion beats control: +")
    assert not report.srm.detected() and png.exists()
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    exp_id = client.get_experiment_by_name(settings.experiment_name).experiment_id
    runs = client.search_runs([exp_id], "tags.`ab.experiment` = 'sim-ab'")
    assert len(runs) == 1 and runs[0].data.tags["ab.versions.champion"].startswith("c1+r1")
    assert runs[0].data.metrics["champion.play_rate.lift_lo"] > 0


def test_a_broken_ranker_promoted_to_champion_is_rolled_back_by_the_canary(tiny_copy):
    settings = tiny_copy.settings
    before = EventLog(settings.events_dir).files()
    result = run_drill(settings, users=200, users_info=tiny_copy.users)
    assert EventLog(settings.events_dir).files() == before  # the drill's traffic is simulated too
    assert result.phase == "rolled_back" and "skip rate" in result.reason, result.decisions
    assert result.champion_after == result.stable == ("1", "1")
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    tags = client.get_model_version(settings.ranker_model, result.candidate[1]).tags
    assert tags["rollout.status"] == "rolled_back" and "skip rate" in tags["rollout.reason"]
    assert str(client.get_model_version_by_alias(settings.ranker_model, "challenger").version) == "1"  # restored
    exp_id = client.get_experiment_by_name(settings.experiment_name).experiment_id
    runs = client.search_runs([exp_id], "tags.`rollout.action` = 'rollback'")
    assert len(runs) == 1 and runs[0].data.metrics["canary_skip_rate"] > runs[0].data.metrics["stable_skip_rate"]
