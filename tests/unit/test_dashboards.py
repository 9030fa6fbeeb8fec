"""deploy/grafana: the dashboards are well-formed, their PromQL parses, every series they query is one the
code exports (or a recording rule defines), and the ConfigMap the cluster gets carries exactly them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
GRAFANA_KUSTOMIZATION = ROOT / "deploy" / "grafana" / "kustomization.yaml"
K8S = ROOT / "deploy" / "k8s"
CONFIGMAP = K8S / "grafana-dashboards.yaml"
RULES = ROOT / "deploy" / "prometheus" / "rules"
SLO_FILE = ROOT / "deploy" / "prometheus" / "slo.yaml"
EXPECTED = {
    "serving.json": ("setlist-serving", "Setlist serving"),
    "pipeline.json": ("setlist-pipeline", "Setlist pipeline"),
    "experiments.json": ("setlist-experiments", "Setlist experiments"),
}
MIN_SCHEMA_VERSION = 36  # the datasource-by-uid references used here
# Grafana's built-in variables, as promtool should see them (any duration parses the same way).
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# The project's series and recording rules all start with one of these.
METRIC_NAME = re.compile(r"\b(?:setlist_|slo:)[a-zA-Z0-9_:]*")
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
# Recording rules the dashboards use that deploy/prometheus/rules/ defines: accepted unseen only while
# that folder does not exist yet; once it does, each must be defined there.
RECORDED = {"setlist_cache_hit_ratio"}
PROMTOOL_INSTALL = "apt-get install prometheus (Debian's package ships promtool)"
# `kubectl apply` keeps the whole object in an annotation, which may not pass 256 KiB.
APPLY_ANNOTATION_LIMIT = 256 * 1024


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those folded inside a collapsed row."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _exprs() -> list[tuple[str, int, str, str]]:
    """(dashboard file, panel id, refId, expr) for every Prometheus query."""
    return [
        (name, panel["id"], target["refId"], target["expr"])
        for name, dashboard in _dashboards().items()
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_the_three_dashboards_with_stable_uids_and_titles():
    dashboards = _dashboards()
    assert set(dashboards) == set(EXPECTED)
    for name, dashboard in dashboards.items():
        assert (dashboard["uid"], dashboard["title"]) == EXPECTED[name]
        assert dashboard["schemaVersion"] >= MIN_SCHEMA_VERSION
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert (variable["type"], variable["query"]) == ("datasource", "prometheus")


def test_panel_ids_and_titles_are_unique_and_every_query_uses_the_datasource_variable():
    for name, dashboard in _dashboards().items():
        panels = _panels(dashboard)
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        titles = [p["title"] for p in panels]
        assert all(titles), f"{name}: a panel without a title"
        # the runbooks point at panels by title
        assert len(titles) == len(set(titles)), f"{name}: duplicate panel titles"
        for panel in panels:
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for source in [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]:
                assert source == {"type": "prometheus", "uid": "${datasource}"}, f"{name}: {panel['title']}"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("SETLIST_REQUIRE_SERVERS") == "1":
        pytest.fail(f"promtool is not installed: {PROMTOOL_INSTALL}", pytrace=False)
    pytest.skip(f"promtool is not installed: {PROMTOOL_INSTALL}")


def _as_promtool_sees_it(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
    return expr


def test_every_expression_parses(tmp_path: Path):
    promtool = _promtool()
    rules = [
        {"record": f"dashboard:{name.removesuffix('.json')}:panel_{panel}_{ref}", "expr": _as_promtool_sees_it(expr)}
        for name, panel, ref, expr in _exprs()
    ]
    assert rules
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _exported() -> set[str]:
    """Every series name the code exports: serving's registry, by each family's type (a labelled family
    has no sample until it is used, so its samples alone would miss it), and the batch jobs' catalogue."""
    from prometheus_client import REGISTRY

    import serving.metrics  # noqa: F401  (registers serving's families)
    from setlist.jobmetrics import CATALOGUE

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    names = set(CATALOGUE)
    for family in REGISTRY.collect():
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def _recording_rules() -> set[str] | None:
    """The names deploy/prometheus/rules/*.yml record, or None while that folder does not exist."""
    if not RULES.is_dir():
        return None
    names = set()
    for path in sorted(RULES.glob("*.yml")) + sorted(RULES.glob("*.yaml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            names |= {rule["record"] for rule in group.get("rules", []) if "record" in rule}
    return names


def test_every_series_is_exported_or_recorded():
    recorded = _recording_rules()
    known = _exported() | (recorded if recorded is not None else RECORDED)
    unknown = {
        (name, panel, series)
        for name, panel, _ref, expr in _exprs()
        for series in METRIC_NAME.findall(QUOTED.sub('""', expr))
        if series not in known
    }
    assert not unknown, f"series no code exports and no rule records: {sorted(unknown)}"


def test_the_names_checked_are_the_ones_queried():
    """The regex sees through selectors and functions, and skips label values."""
    expr = 'sum by (code) (rate(setlist_rpc_requests_total{rpc="Rank", job="setlist_fake"}[5m])) / slo:x:ratio'
    assert METRIC_NAME.findall(QUOTED.sub('""', expr)) == ["setlist_rpc_requests_total", "slo:x:ratio"]


def _slo_panels() -> list[dict[str, Any]]:
    return [p for p in _panels(_dashboards()["serving.json"]) if p["title"].startswith("SLO: ")]


def _thresholds(panel: dict[str, Any]) -> set[float]:
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    return {step["value"] for step in steps if step["value"] is not None}


def test_the_slo_panels_follow_the_slo_file():
    """Each objective of deploy/prometheus/slo.yaml has a panel whose threshold is that objective, so
    changing a target there and forgetting the dashboard fails here."""
    if not SLO_FILE.is_file():
        pytest.skip("deploy/prometheus/slo.yaml does not exist yet")
    panels = _slo_panels()
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for objective in yaml.safe_load(SLO_FILE.read_text(encoding="utf-8"))["objectives"]:
        name = objective["name"]
        if "objective" in objective:  # a ratio SLO: its recording rules, its burn rate
            target, series = objective["objective"], f"slo:{name}:"
            assert f"slo:{name}:error_ratio_rate1h / (1 - {target})" in exprs, f"{name}: no burn-rate line"
        else:  # a threshold SLO on a gauge
            target = objective.get("max_age_seconds", objective.get("floor"))
            series = re.split(r"[{\s]", objective["sli"]["gauge"], maxsplit=1)[0]
        matching = [p for p in panels if any(series in t["expr"] for t in p["targets"]) and target in _thresholds(p)]
        assert matching, f"{name}: no SLO panel queries {series} with the threshold {target}"


# -- the ConfigMap --------------------------------------------------------------------------------


def test_the_configmap_carries_exactly_the_dashboard_files():
    (configmap,) = [d for d in yaml.safe_load_all(CONFIGMAP.read_text(encoding="utf-8")) if d]
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"  # what the Grafana sidecar looks for
    files = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")}
    assert configmap["data"] == files, (
        "deploy/k8s/grafana-dashboards.yaml is behind deploy/grafana/dashboards: "
        "kubectl kustomize deploy/grafana > deploy/k8s/grafana-dashboards.yaml"
    )
    (kustomization,) = [d for d in yaml.safe_load_all(GRAFANA_KUSTOMIZATION.read_text(encoding="utf-8")) if d]
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == configmap["metadata"]["name"]
    assert sorted(generator["files"]) == sorted(f"dashboards/{name}" for name in files)
    (base,) = [d for d in yaml.safe_load_all((K8S / "kustomization.yaml").read_text(encoding="utf-8")) if d]
    assert CONFIGMAP.name in base["resources"]
    assert len(json.dumps(configmap)) < APPLY_ANNOTATION_LIMIT, "split the dashboards over several ConfigMaps"


def test_the_configmap_is_what_kustomize_renders():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the ConfigMap's contents are still checked above")
    done = subprocess.run([kubectl, "kustomize", str(GRAFANA_KUSTOMIZATION.parent)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # compared as data: another kustomize version may lay the same YAML out differently
    assert yaml.safe_load(done.stdout) == yaml.safe_load(CONFIGMAP.read_text(encoding="utf-8"))
