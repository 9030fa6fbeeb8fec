"""The README's "Add a feature" tutorial, as written, on the tiny world: declare, plan, apply,
materialize, validate, train a challenger on ranker_v2, list and describe, then serve the champion
(ranker_v1) and the challenger (ranker_v2) side by side in an experiment and read its report.

The declaration file is taken from the README itself, so the tutorial and this test cannot drift.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[2]


def tutorial() -> tuple[str, list[str]]:
    """The declaration file and the shell commands of the README's "Add a feature" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Add a feature", 1)[1].split("\n## ", 1)[0]
    declaration = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shell = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#", 1)[0].strip() for line in shell.splitlines() if line.split("#", 1)[0].strip()]
    # the test runs the project's own interpreter: activating the virtualenv is implied
    return declaration, [c for c in commands if not c.startswith("source ")]


def _run(env: dict[str, str], command: str) -> str:
    """A tutorial command; ``make X`` runs the module behind it (the Makefile's setup is done)."""
    words = command.split()
    extra = {}
    while words and "=" in words[0]:
        k, v = words.pop(0).split("=", 1)
        extra[k] = v
    if words[0] == "make":
        modules = {
            "materialize": ["feature_repo", "materialize"],
            "validate": ["validation", "all"],
            "train": ["training"],
        }
        out = ""
        for target in words[1:]:
            out += _run({**env, **extra}, " ".join(["python", "-m", *modules[target]]))
        return out
    assert words[:2] == ["python", "-m"], command
    args = words[2:]
    if args[:2] == ["experiments", "simulate"]:
        args += ["--users", "60", "--no-mlflow"]  # small: the tiny world
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env={**env, **extra}, capture_output=True, text=True, timeout=900
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{out[-3000:]}"
    assert "Traceback" not in out, f"{command} printed a traceback:\n{out[-3000:]}"
    return out


@pytest.fixture
def walked(tiny_copy, tmp_path):
    declaration, commands = tutorial()
    mine = tmp_path / "declarations"
    mine.mkdir()
    (mine / "my_features.py").write_text(declaration)
    s = tiny_copy.settings
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SETLIST_DATA_DIR": str(s.data_dir),
        "SETLIST_SCALE": "tiny",
        "SETLIST_SEED": str(s.seed),
        "SETLIST_HMAC_KEY": "test-hmac-key",
        "SETLIST_PROFILE": "local",
        "SETLIST_FEATURE_DIRS": str(mine),
        "SETLIST_RELOAD_INTERVAL_S": "3600",
        "SETLIST_EXPERIMENTS_FILE": str(ROOT / "experiments.yaml"),
        "COLUMNS": "250",
    }  # tables as wide as a terminal would show them, one feature per line
    client = MlflowClient(tracking_uri=s.tracking_uri)
    champion_before = client.get_model_version_by_alias(s.ranker_model, "champion").version
    outputs = {c: _run(env, c) for c in commands}
    return s, client, champion_before, outputs, env


def test_add_a_feature_follows_the_readme(walked, tmp_path):
    s, client, champion_before, out, env = walked
    plan = next(o for c, o in out.items() if "feature_repo plan" in c)
    assert "+ item_stats.item_release_year" in plan and "+ user_profile.user_distinct_items_30d" in plan
    assert "+ feature service ranker_v2" in plan
    materialized = next(o for c, o in out.items() if "make materialize" in c)
    assert "declarations or the registered tables changed" in materialized

    # the offline files hold the new columns with their declared values
    profile = pd.read_parquet(s.features_dir / "user_profile.parquet")
    items = pd.read_parquet(s.features_dir / "item_stats.parquet")
    assert profile["user_distinct_items_30d"].max() > 0 and (profile["user_distinct_items_30d"] >= 0).all()
    assert items["item_release_year"].between(1900, 2100).mean() > 0.9

    # the challenger was trained on ranker_v2; the champion still is the ranker_v1 model
    challenger = client.get_model_version_by_alias(s.ranker_model, "challenger")
    champion = client.get_model_version_by_alias(s.ranker_model, "champion")
    assert champion.version == champion_before and challenger.version != champion.version
    assert challenger.tags["feature_service"] == "ranker_v2"
    assert champion.tags.get("feature_service", "ranker_v1") == "ranker_v1"
    metrics = client.get_run(challenger.run_id).data.metrics
    assert "importance.user_distinct_items_30d" in metrics and "importance.item_release_year" in metrics

    listing = next(o for c, o in out.items() if "feature_repo list" in c)
    row = next(line for line in listing.splitlines() if "user_distinct_items_30d" in line)
    assert "you@example.com" in listing and f"v{challenger.version}" in row and "challenger" in row
    described = next(o for c, o in out.items() if "feature_repo describe" in c)
    assert f"ranker v{challenger.version}" in described and "of the total gain" in described

    # both served at once: each arm's impressions name its own model version
    imp = pd.read_parquet(s.data_dir / "simulation" / "impressions")
    served = imp[imp["served"] == "model"].groupby("arm")["ranker_version"].unique()
    assert list(served["champion"]) == [str(champion.version)]
    assert list(served["challenger"]) == [str(challenger.version)]
    report = next(o for c, o in out.items() if "simulate" in c)
    assert "challenger" in report and "champion" in report

    # the declaration taken away again: apply removes its service, and the plan says so no more
    without = {k: v for k, v in env.items() if k != "SETLIST_FEATURE_DIRS"}
    before = _run(without, "python -m feature_repo plan")
    assert "- feature service ranker_v2: no longer declared" in before
    assert "- user_profile.user_distinct_items_30d: no longer declared; apply (or materialize) drops its" in before
    applied = _run(without, "python -m feature_repo apply")
    assert "removed ranker_v2, no longer declared" in applied
    # the challenger trained on ranker_v2 is still served and reads both: their online values stay for it
    for kept in ("user_profile.user_distinct_items_30d", "item_stats.item_release_year"):
        assert f"kept {kept}'s values in the online store, though no longer declared: read by v" in applied
    assert "(challenger) on ranker_v2" in applied and "dropped" not in applied
    after = _run(without, "python -m feature_repo plan")
    assert "feature service ranker_v2: no longer declared" not in after
    assert "reads ranker_v2, which is no longer declared" in after  # the challenger trained on it still does

    # a built-in redeclared under the champion's own version: the plan warns before serving refuses it
    redeclared = tmp_path / "redeclared"
    redeclared.mkdir()
    (redeclared / "plays.py").write_text(
        "from setlist.featureset import Events, Feature\n"
        "FEATURES = [Feature('user_plays', 'user', Events('count', types=('play',), windows=(7,)), 'int64')]\n"
    )
    warned = _run({**without, "SETLIST_FEATURE_DIRS": str(redeclared)}, "python -m feature_repo plan")
    alters = f"ranker v{champion.version} (champion) was trained on ranker_v1, whose features this change alters"
    assert alters in warned
