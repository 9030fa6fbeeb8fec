"""The Prometheus rules: promtool checks and unit-tests them, the generated SLO rules match the SLO
file, every alert has a runbook of its own named after it (``docs/runbooks/<alert name>.md``), and
every metric an expression reads is one the code exports (serving's registry, the batch jobs'
catalogue, or a recording rule).

promtool comes from Debian's ``prometheus`` package; without it the promtool tests skip, or fail
under SETLIST_REQUIRE_SERVERS=1 (as CI sets), like the tests that need Redis.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.utils import floatToGoString
from typer.testing import CliRunner

from ops import rules
from setlist.cli import App
from setlist.errors import BadInput, InputMissing

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
INSTALL_HINT = "promtool is missing: install Debian's prometheus package (apt-get install -y prometheus)"
PROMTOOL_TIMEOUT_S = 30
SEVERITIES = {"page", "ticket"}
#: What each kind of metric family exports, as Prometheus names the series.
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
    "info": ("_info",),
}
ALWAYS = {"up"}  # Prometheus' own series for every target

runner = CliRunner()


# --- reading the rules --------------------------------------------------------------------------


def _rules() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                yield path, rule


def _alerts() -> list[dict[str, Any]]:
    return [rule for _, rule in _rules() if "alert" in rule]


def _recordings() -> dict[str, str]:
    return {rule["record"]: rule["expr"] for _, rule in _rules() if "record" in rule}


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# a name not glued to a number (30m, 1e3) and not a function call
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (what is left once strings, label matchers, ranges,
    grouping clauses, keywords and function calls are set aside)."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {n for n in _NAME.findall(text) if n.lower() not in _KEYWORDS}


def underlying(expr: str, recordings: dict[str, str]) -> set[str]:
    """The exported series an expression reads, through any recording rules it uses."""
    out: set[str] = set()
    for name in metric_names(expr):
        out |= underlying(recordings[name], recordings) if name in recordings else {name}
    return out


def exported() -> set[str]:
    """Every series name the code exports: serving's default registry and the jobs' catalogue."""
    from prometheus_client import REGISTRY

    import serving.metrics  # noqa: F401  # defines serving's series in the default registry
    from setlist.jobmetrics import CATALOGUE

    names = set(CATALOGUE)
    for family in REGISTRY.collect():
        names |= {s.name for s in family.samples}  # a labelled family has samples only once used
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def test_metric_names_reads_only_series_names():
    expr = (
        'sum by (field) (rate(a_total{x="b c",le="0.01"}[10m] offset 30m)) > 3 * sum(b_count) '
        "and on (instance) time() - c_seconds > 2 * 3600 or slo:x:error_ratio_rate5m > (14.4 * 0.001)"
    )
    assert metric_names(expr) == {"a_total", "b_count", "c_seconds", "slo:x:error_ratio_rate5m"}


# --- promtool -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("SETLIST_REQUIRE_SERVERS") == "1":
            pytest.fail(INSTALL_HINT, pytrace=False)
        pytest.skip(INSTALL_HINT)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, cwd=ROOT)


def test_promtool_accepts_every_rules_file(promtool):
    assert RULE_FILES, "no rules files under deploy/prometheus/rules"
    done = _run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool, test_file):
    done = _run(promtool, "test", "rules", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_in_a_promtool_test():
    fired: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            fired |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert {a["alert"] for a in _alerts()} - fired == set()


# --- the generated SLO rules --------------------------------------------------------------------


def test_generated_slo_rules_are_up_to_date():
    slo_file = ROOT / rules.SLO_FILE
    expected = rules.render(rules.load(slo_file), rules.display(slo_file))
    committed = (ROOT / rules.RULES_FILE).read_text(encoding="utf-8")
    assert committed == expected, "deploy/prometheus/rules/slo.rules.yml is out of date: run `make rules`"


def test_burn_factors_are_the_workbooks_for_30_days_and_scale_with_the_period():
    assert [str(rules.burn_factor(b, "30d")) for b in rules.BURN_WINDOWS] == ["14.4", "6", "3", "1"]
    # a shorter period keeps the same share of the budget per alert window: a smaller factor
    assert rules.burn_factor(rules.BURN_WINDOWS[0], "15d") == Decimal("7.2")
    assert {b.long for b in rules.BURN_WINDOWS} | {b.short for b in rules.BURN_WINDOWS} == set(rules.WINDOWS)


def test_every_ratio_slo_records_each_window_and_alerts_at_both_severities():
    slos = rules.load(ROOT / rules.SLO_FILE)
    names = {rule.get("record") or rule.get("alert") for group in rules.groups(slos) for rule in group["rules"]}
    for slo in slos.objectives:
        if isinstance(slo, rules.RatioSLO):
            assert {rules.recorded(slo, w) for w in rules.WINDOWS} <= names
            camel = rules.camel(slo.name)
            assert {f"Setlist{camel}FastBurn", f"Setlist{camel}SlowBurn"} <= names
        else:
            assert f"Setlist{rules.camel(slo.name)}Breached" in names


def test_a_latency_threshold_is_written_as_the_client_writes_its_bucket():
    slos = rules.parse(_slo_doc(), "slo.yaml")
    latency = next(s for s in slos.objectives if s.name == "rank_latency")
    assert isinstance(latency, rules.RatioSLO)
    assert 'setlist_rpc_latency_seconds_bucket{rpc="Rank",le="0.01"}[5m]' in latency.sli.error_ratio("5m")


def test_the_model_floor_adds_model_and_metric_to_the_gauge():
    slos = rules.parse(_slo_doc(), "slo.yaml")
    quality = next(s for s in slos.objectives if s.name == "model_quality")
    assert isinstance(quality, rules.ThresholdSLO)
    assert quality.gauge == 'setlist_model_metric{metric="ndcg_at_10",model="setlist-ranker"}'
    assert (quality.comparison, quality.limit) == ("<", 0.05)


def test_rendering_is_deterministic():
    slos = rules.parse(_slo_doc(), "slo.yaml")
    assert rules.render(slos, "slo.yaml") == rules.render(rules.parse(_slo_doc(), "slo.yaml"), "slo.yaml")


def _slo_doc() -> dict[str, Any]:
    return yaml.safe_load((ROOT / rules.SLO_FILE).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d["objectives"][0].pop("sli"), "objective 'rank_availability' has no sli"),
        (lambda d: d["objectives"][1].pop("threshold_seconds"), "objective 'rank_latency' has no threshold_seconds"),
        (lambda d: d["objectives"][0].update(objective=99.9), "objective must be between 0 and 1"),
        (lambda d: d["objectives"][3].pop("max_age_seconds"), "needs exactly one of objective, max_age_seconds, floor"),
        (lambda d: d["objectives"][2]["sli"].update(errors="x_total"), "needs exactly one of errors, good"),
        (lambda d: d["objectives"][4]["sli"].update(metric="recall_at_10"), "selects metric otherwise"),
        (lambda d: d["objectives"].append(d["objectives"][0]), "'rank_availability' is declared twice"),
        (lambda d: d.update(window="a month"), "window must be a duration"),
        (lambda d: d.pop("objectives"), "slo.yaml has no objectives"),
        (lambda d: d["objectives"][3].update(runbook="docs/runbooks/x.md"), "runbook is not a setting"),
    ],
)
def test_a_bad_slo_file_is_one_clear_error(change, message):
    doc = _slo_doc()
    change(doc)
    with pytest.raises(BadInput, match=re.escape(message)):
        rules.parse(doc, "slo.yaml")


# --- the command ------------------------------------------------------------------------------------

app = App(add_completion=False)
app.command("rules")(rules.command)
app.command("other")(lambda: None)  # a second command, so `rules` is invoked by name as under `python -m ops`


def test_the_command_writes_then_checks(tmp_path):
    out = tmp_path / "slo.rules.yml"
    slo_file = ROOT / rules.SLO_FILE
    written = runner.invoke(app, ["rules", "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text(encoding="utf-8") == (ROOT / rules.RULES_FILE).read_text(encoding="utf-8")
    assert runner.invoke(app, ["rules", "--check", "--out", str(out), "--slo-file", str(slo_file)]).exit_code == 0

    out.write_text(out.read_text(encoding="utf-8").replace("14.4", "14"), encoding="utf-8")
    stale = runner.invoke(app, ["rules", "--check", "--out", str(out)])
    assert stale.exit_code == 1
    assert stale.stderr.strip().startswith("error: ") and "is out of date" in stale.stderr
    assert len(stale.stderr.strip().splitlines()) == 1


def test_the_command_says_what_is_wrong_in_one_line(tmp_path):
    missing = runner.invoke(app, ["rules", "--slo-file", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == InputMissing.exit_code
    assert missing.stderr.strip() == f"error: no SLO file at {tmp_path / 'nope.yaml'}"

    doc = _slo_doc()
    del doc["objectives"][1]["sli"]["histogram"]
    del doc["objectives"][1]["sli"]["selector"]
    bad = tmp_path / "slo.yaml"
    bad.write_text(yaml.safe_dump(doc), encoding="utf-8")
    broken = runner.invoke(app, ["rules", "--slo-file", str(bad), "--out", str(tmp_path / "o")])
    assert broken.exit_code == BadInput.exit_code
    assert broken.stderr.strip() == f"error: {bad}: objective 'rank_latency': sli has no total"
    assert not (tmp_path / "o").exists()

    bad.write_text("window: [30d\n", encoding="utf-8")
    unreadable = runner.invoke(app, ["rules", "--slo-file", str(bad), "--out", str(tmp_path / "o")])
    assert unreadable.exit_code == BadInput.exit_code and "is not readable YAML" in unreadable.stderr
    assert "Traceback" not in unreadable.output


# --- alerts, runbooks and the metric catalogue ----------------------------------------------------------


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_every_alert_has_a_severity_and_its_annotations(alert):
    assert alert.get("labels", {}).get("severity") in SEVERITIES
    assert {"summary", "description", "runbook_url"} <= set(alert.get("annotations", {}))


_LINK = re.compile(r"\]\(([^()\s]+)\)")
_QUOTED = re.compile(r'"([^"]+)"')


def _page(name: str) -> str:
    return (RUNBOOKS / f"{name}.md").read_text(encoding="utf-8")


def _first_heading(text: str) -> str:
    return next((line for line in text.splitlines() if line.startswith("#")), "")


def _names(text: str, metric: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(metric)}(?![\w:])", text) is not None


def _links(text: str) -> set[str]:
    """The pages a runbook links, by file name (links inside docs/runbooks/ are relative)."""
    return {target.split("#")[0] for target in _LINK.findall(text) if "://" not in target}


def _panel_titles() -> set[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield panel["title"]
            yield from walk(panel.get("panels", []))

    titles: set[str] = set()
    for path in DASHBOARDS.glob("*.json"):
        titles |= set(walk(json.loads(path.read_text(encoding="utf-8"))["panels"]))
    return titles


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_every_alert_has_a_runbook_of_its_own_that_names_it_and_a_metric_it_reads(alert):
    name = alert["alert"]
    url = alert["annotations"]["runbook_url"]
    assert url == f"docs/runbooks/{name}.md", f"{name}: its runbook must be a page named after it, not {url}"
    page = ROOT / url
    assert page.is_file(), f"{name}: no runbook at {url}"
    text = page.read_text(encoding="utf-8")
    assert name in _first_heading(text), f"{url}: the first heading does not name {name}"
    metrics = underlying(alert["expr"], _recordings())
    reads = metrics | {re.sub(r"_(bucket|count|sum)$", "", m) for m in metrics}
    if any(_names(text, m) for m in reads):
        return
    # a partner alert's page may leave the metric to the page it sends the reader to: that page, another
    # alert's runbook, must then name a metric this alert reads
    alerts = {a["alert"] for a in _alerts()}
    linked = {p.removesuffix(".md") for p in _links(text)} & alerts - {name}
    assert any(_names(_page(p), m) for p in linked for m in reads), (
        f"{url} names none of the metrics {name} reads, nor links a runbook that does: {sorted(metrics)}"
    )


def test_every_runbook_belongs_to_an_alert():
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    alerts = {a["alert"] for a in _alerts()}
    assert pages - alerts == set(), "runbooks no alert links (a page per alert, named after it)"
    assert alerts - pages == set()


def test_the_runbook_index_lists_every_runbook():
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    pages = {p.name for p in RUNBOOKS.glob("*.md")} - {"README.md"}
    assert pages
    assert pages - _links(index) == set()


def test_every_link_between_runbooks_resolves():
    broken = {
        f"{page.name} -> {target}"
        for page in RUNBOOKS.glob("*.md")
        for target in _links(page.read_text(encoding="utf-8"))
        if target and not (page.parent / target).exists()
    }
    assert broken == set()


@pytest.mark.parametrize("page", sorted(p.stem for p in RUNBOOKS.glob("*.md") if p.name != "README.md"))
def test_every_runbook_names_dashboard_panels_that_exist(page):
    text = _page(page)
    match = re.search(r"^\*\*Dashboard:\*\*(.*?)(?:\n\n|\n\*\*|\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{page}.md has no **Dashboard:** line"
    titles = _QUOTED.findall(match.group(1))
    assert titles, f"{page}.md names no dashboard panel"
    assert set(titles) - _panel_titles() == set(), f"{page}.md names panels no dashboard has"


def test_every_metric_in_the_rules_is_exported():
    known = exported() | set(_recordings()) | ALWAYS
    used = {name: path.name for path, rule in _rules() for name in metric_names(rule["expr"])}
    assert {n: f for n, f in used.items() if n not in known} == {}


_BUCKET_READ = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)_bucket\{[^{}]*\ble="([^"]+)"')


def _histogram_bounds() -> dict[str, set[str]]:
    """Each of serving's histograms by name, with its bucket bounds as the exporter writes ``le``."""
    from prometheus_client import Histogram

    import serving.metrics

    return {
        h._name: {floatToGoString(b) for b in h._upper_bounds}  # noqa: SLF001  # the client keeps them there
        for h in vars(serving.metrics).values()
        if isinstance(h, Histogram)
    }


def test_every_bucket_the_rules_read_exists():
    bounds = _histogram_bounds()
    used = {(name, le) for _, rule in _rules() for name, le in _BUCKET_READ.findall(rule["expr"])}
    assert {"setlist_rpc_latency_seconds", "setlist_journal_write_seconds"} <= {name for name, _ in used}
    assert {(name, le) for name, le in used if le not in bounds.get(name, set())} == set()
