"""``python -m experiments onboarding`` on the tiny world: brand-new listeners over simulated days, served
in process, and their KPIs (table, JSON for the cost report, PNGs, one MLflow run).

Run with ``-p tests.world`` (the ``tiny_copy`` fixture). A few dozen users: this checks the wiring and
what the numbers are made of, not the size of an effect.
"""

from __future__ import annotations

import json
import re

import pandas as pd
from mlflow import MlflowClient
from typer.testing import CliRunner

from experiments.__main__ import app
from ingest.world import LOCALES
from setlist.contract import DEVICES
from setlist.eventlog import EventLog
from setlist.settings import get_settings


def test_the_onboarding_command_simulates_new_listeners_and_reports_their_kpis(tiny_copy, monkeypatch):
    s = tiny_copy.settings
    env = {
        "SETLIST_DATA_DIR": str(s.data_dir),
        "SETLIST_SCALE": "tiny",
        "SETLIST_SEED": str(s.seed),
        "SETLIST_HMAC_KEY": s.hmac_key.get_secret_value() if s.hmac_key else "",
        "SETLIST_RELOAD_INTERVAL_S": "3600",
        "SETLIST_CACHE_TTL_S": "3600",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SETLIST_SETTINGS_FILE", raising=False)
    get_settings.cache_clear()
    known = set(EventLog(s.events_dir).read(columns=["user_id"])["user_id"])
    before = EventLog(s.events_dir).files()

    result = CliRunner().invoke(app, ["onboarding", "--users", "40", "--days", "8", "--slates", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # rich wraps long lines
    for words in ("time-to-first-value", "return rate day 1", "return rate day 7", "engaged users"):
        assert words in out, words
    assert re.search(r"target: personalized cuts time-to-first-value by ≥30% vs popularity: (met|not met)", out)

    # simulated traffic stays out of the real event log
    assert EventLog(s.events_dir).files() == before
    reports = s.reports_dir / "experiments"
    summary = json.loads((reports / "onboarding.json").read_text())
    sim, arms = summary["simulation"], summary["arms"]
    assert set(arms) == {"control", "personalized"} and summary["control"] == "control"
    assert sim["days"] == 8 and sim["returns"] > 0 and sim["track_rejected"] == 0
    assert sum(a["rank_calls"] for a in arms.values()) == sim["rank_calls"] == 2 * sim["visits"]
    # a Track per slate, and each newcomer's sign-up (experiments/newcomers.py)
    assert sum(a["track_calls"] for a in arms.values()) == sim["track_calls"] == sim["rank_calls"] + sim["users"]
    assert sum(a["track_events"] for a in arms.values()) == sim["track_events"] > 0
    for a in arms.values():  # the fields the cost report reads
        assert a["users"] > 0 and 0 <= a["engaged_users"] <= a["users"] and a["value_events"] >= 0
        assert a["ttfv_steps"] >= 1 and a["ttfv_seconds"] >= 0
    assert sum(a["users"] for a in arms.values()) <= 40  # users who declined analytics are left out

    # the newcomers' events: unknown users, in simulated time, with device, locale and arm
    events = EventLog(s.simulation_dir / "events").read()
    start, end = pd.Timestamp(sim["start"]), pd.Timestamp(sim["end"])
    assert events["timestamp"].between(start, end).all()
    assert not set(events["user_id"]) & known
    assert set(events["arm"]) == {"control", "personalized"}
    assert set(events["device"]) <= set(DEVICES) and set(events["locale"]) <= set(LOCALES)
    assert events["timestamp"].dt.floor("D").nunique() > 1  # they came back on later days

    assert (reports / "onboarding.png").exists() and (reports / "onboarding-ab.png").exists()
    assert json.loads((reports / "onboarding-ab.json").read_text())["experiment"] == "onboarding-ab"
    client = MlflowClient(tracking_uri=s.tracking_uri)
    exp_id = client.get_experiment_by_name(s.experiment_name).experiment_id
    (run,) = client.search_runs([exp_id], "tags.`ab.experiment` = 'onboarding-ab'")
    metrics = run.data.metrics
    assert metrics["onboarding.personalized.ttfv_steps"] == arms["personalized"]["ttfv_steps"]
    assert "onboarding.personalized.ttfv_steps_change" in metrics and "personalized.play_rate" in metrics
    assert run.data.tags["onboarding.target.personalized"].startswith(("met", "not met"))
    logged = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"onboarding.json", "onboarding.png", "onboarding-ab.png"} <= logged
