"""``python -m ops rules``: the SLO file turned into Prometheus recording and alert rules.

``deploy/prometheus/slo.yaml`` says what Setlist promises; this writes
``deploy/prometheus/rules/slo.rules.yml`` from it, so an objective is changed in one place and the
rules cannot drift from it (``--check``, run by the tests, fails when they differ).

Ratio SLOs get the multi-window, multi-burn-rate alerts of the Google SRE workbook ("Alerting on
SLOs"): the error ratio is recorded over every window an alert reads, and each alert needs a long
window (enough budget really spent) and a short one (still being spent: the alert resolves minutes
after the problem does). Threshold SLOs (feature age, model quality) have no budget to burn and
get one alert each. Every alert's runbook is ``docs/runbooks/<alert name>.md``.

Everything but ``load``, ``_write`` and ``command`` is pure, and the same SLO file always gives the
same text, byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
import yaml
from prometheus_client.utils import floatToGoString

from setlist.errors import BadInput, InputMissing, Refused
from setlist.yamlfile import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SLO_FILE = Path("deploy/prometheus/slo.yaml")
RULES_FILE = Path("deploy/prometheus/rules/slo.rules.yml")
RUNBOOKS = "docs/runbooks"

PAGE, TICKET = "page", "ticket"
SEVERITIES = (PAGE, TICKET)

#: Every window a burn-rate alert reads; each ratio SLI's error ratio is recorded over each.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

#: The workbook's burn-rate factors are for a 30-day period: 14.4 spends 2% of the budget in an
#: hour, 6 spends 5% in six hours, 3 and 1 spend 10% in a day and in three days.
WORKBOOK_PERIOD = "30d"


@dataclass(frozen=True)
class BurnWindow:
    """One condition of a burn-rate alert: the error ratio over both windows is ``factor`` times
    the budget's pace (for the workbook's 30-day period) or more."""

    severity: str
    long: str
    short: str
    factor: Decimal


BURN_WINDOWS = (
    BurnWindow(PAGE, "1h", "5m", Decimal("14.4")),
    BurnWindow(PAGE, "6h", "30m", Decimal("6")),
    BurnWindow(TICKET, "1d", "2h", Decimal("3")),
    BurnWindow(TICKET, "3d", "6h", Decimal("1")),
)
#: A page means the budget is gone within days, a ticket within the period.
BURN_SUFFIX = {PAGE: "FastBurn", TICKET: "SlowBurn"}

#: Threshold SLOs: how long the threshold must be crossed before the alert fires, unless the
#: objective says ``for:`` (a scrape during a model swap or a publish must not page anyone).
THRESHOLD_FOR = "10m"
THRESHOLD_SEVERITY = TICKET

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^([1-9][0-9]*)([smhdw])$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


# --- the SLO file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorsSLI:
    """Bad events counted directly."""

    total: str
    errors: str
    #: errors that are not the service's fault although their code is (a client over its quota)
    excused: str | None = None

    def error_ratio(self, window: str) -> str:
        errors = f"sum(rate({self.errors}[{window}]))"
        if self.excused:
            errors = f"({errors} - (sum(rate({self.excused}[{window}])) or vector(0)))"
        return f"{errors} / sum(rate({self.total}[{window}]))"


@dataclass(frozen=True)
class GoodSLI:
    """Good events counted; bad ones are the rest."""

    total: str
    good: str

    def error_ratio(self, window: str) -> str:
        # a backlog moved after a pause counts more good events in a window than the total arriving
        # in it; the ratio would go negative: that is no error, and no credit either
        return f"clamp_min(1 - sum(rate({self.good}[{window}])) / sum(rate({self.total}[{window}])), 0)"


@dataclass(frozen=True)
class LatencySLI:
    """A bad event is one slower than ``threshold_seconds``, a bucket bound of ``histogram``."""

    histogram: str
    selector: str
    threshold_seconds: float

    def error_ratio(self, window: str) -> str:
        # the bucket's le label is written the way the client library writes it ("0.01", "1.0")
        le = f'le="{floatToGoString(self.threshold_seconds)}"'
        matchers = f"{self.selector},{le}" if self.selector else le
        count = f"{self.histogram}_count{{{self.selector}}}" if self.selector else f"{self.histogram}_count"
        return f"1 - sum(rate({self.histogram}_bucket{{{matchers}}}[{window}])) / sum(rate({count}[{window}]))"


RatioSLI = ErrorsSLI | GoodSLI | LatencySLI


@dataclass(frozen=True)
class RatioSLO:
    name: str
    description: str
    objective: Decimal
    sli: RatioSLI

    @property
    def budget(self) -> Decimal:
        """The share of events allowed to be bad."""
        return 1 - self.objective


@dataclass(frozen=True)
class ThresholdSLO:
    """Broken while ``gauge`` is above ``limit`` (a maximum) or below it (a floor)."""

    name: str
    description: str
    gauge: str
    comparison: str  # ">" or "<": the broken side
    limit: float
    for_: str
    severity: str
    in_seconds: bool = False  # an age: shown as a duration


SLO = RatioSLO | ThresholdSLO


@dataclass(frozen=True)
class SLOFile:
    window: str
    objectives: tuple[SLO, ...]


def load(path: Path) -> SLOFile:
    """Read and check the SLO file; every mistake is one ``SetlistError`` line naming the file."""
    if not path.is_file():
        raise InputMissing(f"no SLO file at {path}")
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInput(f"{path} is not readable YAML: {' '.join(str(exc).split())}") from None
    return parse(doc, str(path))


def parse(doc: Any, origin: str) -> SLOFile:
    """The SLO file's content, checked; ``origin`` names it in messages."""
    if not isinstance(doc, Mapping):
        raise BadInput(f"{origin}: expected a mapping with window and objectives")
    window = _duration(_get(doc, "window", origin), f"{origin}: window")
    items = _get(doc, "objectives", origin)
    if not isinstance(items, list) or not items:
        raise BadInput(f"{origin}: objectives must be a non-empty list")
    objectives = tuple(_objective(item, i, origin) for i, item in enumerate(items))
    seen: set[str] = set()
    for slo in objectives:
        if slo.name in seen:
            raise BadInput(f"{origin}: objective {slo.name!r} is declared twice")
        seen.add(slo.name)
    return SLOFile(window, objectives)


def _objective(item: Any, index: int, origin: str) -> SLO:
    if not isinstance(item, Mapping):
        raise BadInput(f"{origin}: objective #{index + 1} is not a mapping")
    name = _get(item, "name", f"{origin}: objective #{index + 1}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"{origin}: objective name {name!r} is not snake_case")
    where = f"{origin}: objective {name!r}"
    description = str(item.get("description", "")).strip()
    if "runbook" in item:
        raise BadInput(f"{where}: runbook is not a setting: every alert's runbook is {RUNBOOKS}/<alert name>.md")
    sli = _get(item, "sli", where)
    if not isinstance(sli, Mapping):
        raise BadInput(f"{where}: sli must be a mapping")
    kinds = [k for k in ("objective", "max_age_seconds", "floor") if k in item]
    if len(kinds) != 1:
        raise BadInput(
            f"{where} needs exactly one of objective, max_age_seconds, floor (has {', '.join(kinds) or 'none'})"
        )
    if kinds[0] == "objective":
        objective = _number(item["objective"], f"{where}: objective")
        if not 0 < objective < 1:
            raise BadInput(f"{where}: objective must be between 0 and 1 (a share of good events), not {objective}")
        return RatioSLO(name, description, Decimal(str(objective)), _ratio_sli(item, sli, where))
    gauge = _selector(_get(sli, "gauge", f"{where}: sli"), f"{where}: sli.gauge")
    for_ = _duration(item.get("for", THRESHOLD_FOR), f"{where}: for")
    severity = item.get("severity", THRESHOLD_SEVERITY)
    if severity not in SEVERITIES:
        raise BadInput(f"{where}: severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    if kinds[0] == "max_age_seconds":
        limit = _number(item["max_age_seconds"], f"{where}: max_age_seconds")
        return ThresholdSLO(name, description, gauge, ">", limit, for_, severity, in_seconds=True)
    floor = _number(item["floor"], f"{where}: floor")
    labels = {k: str(sli[k]) for k in ("model", "metric") if k in sli}
    gauge = with_matchers(gauge, labels, f"{where}: sli")
    return ThresholdSLO(name, description, gauge, "<", floor, for_, severity)


def _ratio_sli(item: Mapping[str, Any], sli: Mapping[str, Any], where: str) -> RatioSLI:
    if "histogram" in sli:
        histogram = _get(sli, "histogram", f"{where}: sli")
        if not isinstance(histogram, str) or not _METRIC.match(histogram):
            raise BadInput(f"{where}: sli.histogram must be a metric name, not {histogram!r}")
        threshold = _number(_get(item, "threshold_seconds", where), f"{where}: threshold_seconds")
        if threshold <= 0:
            raise BadInput(f"{where}: threshold_seconds must be positive")
        matchers = str(sli.get("selector", "")).strip().strip("{}")
        return LatencySLI(histogram, matchers, threshold)
    total = _selector(_get(sli, "total", f"{where}: sli"), f"{where}: sli.total")
    if ("errors" in sli) == ("good" in sli):
        raise BadInput(f"{where}: sli needs exactly one of errors, good (beside total), or a histogram")
    if "errors" in sli:
        excused = _selector(sli["excused"], f"{where}: sli.excused") if sli.get("excused") else None
        return ErrorsSLI(total, _selector(sli["errors"], f"{where}: sli.errors"), excused)
    return GoodSLI(total, _selector(sli["good"], f"{where}: sli.good"))


def _get(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping or mapping[key] is None:
        raise BadInput(f"{where} has no {key}")
    return mapping[key]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{where} must be a number, not {value!r}")
    return float(value)


def _duration(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _DURATION.match(value):
        raise BadInput(f"{where} must be a duration like 30d, 6h or 10m, not {value!r}")
    return value


def seconds(duration: str) -> int:
    match = _DURATION.match(duration)
    assert match is not None, duration
    return int(match.group(1)) * _UNITS[match.group(2)]


def _selector(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SELECTOR.match(value.strip()):
        raise BadInput(f'{where} must be a PromQL series selector like name{{label="value"}}, not {value!r}')
    return value.strip()


def with_matchers(selector: str, labels: Mapping[str, str], where: str) -> str:
    """``selector`` with ``label="value"`` added for each label it does not match on yet; a label it
    already matches must match exactly that value."""
    match = _SELECTOR.match(selector)
    assert match is not None, selector
    name, inner = match.group(1), (match.group(3) or "").strip()
    parts = [inner] if inner else []
    for label, value in sorted(labels.items()):
        wanted = f"{label}={json.dumps(value)}"
        present = re.search(rf"(^|[,\s]){re.escape(label)}\s*(=~|!~|!=|=)", inner)
        if present is None:
            parts.append(wanted)
        elif wanted not in inner:
            raise BadInput(f"{where}: the gauge selects {label} otherwise than sli.{label}: {value!r}")
    return f"{name}{{{','.join(parts)}}}" if parts else name


# --- the rules ----------------------------------------------------------------------------------


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def runbook(alert: str) -> str:
    """The alert's runbook: a page of its own, named after it."""
    return f"{RUNBOOKS}/{alert}.md"


def recorded(slo: RatioSLO, window: str) -> str:
    """The recording rule that holds ``slo``'s error ratio over ``window``."""
    return f"slo:{slo.name}:error_ratio_rate{window}"


def burn_factor(burn: BurnWindow, period: str) -> Decimal:
    """The workbook's factor for ``period``: the same share of the budget spent per alert window."""
    return (burn.factor * seconds(period) / seconds(WORKBOOK_PERIOD)).normalize()


def _decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _percent(share: Decimal) -> str:
    return f"{_decimal(share * 100)}%"


def _limit(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def recording_rules(slo: RatioSLO) -> list[dict[str, Any]]:
    return [{"record": recorded(slo, w), "expr": slo.sli.error_ratio(w)} for w in WINDOWS]


def burn_alert(slo: RatioSLO, severity: str, period: str) -> dict[str, Any]:
    """One alert per severity: any of its window pairs burning too fast fires it."""
    budget = _decimal(slo.budget)
    conditions = []
    for burn in (b for b in BURN_WINDOWS if b.severity == severity):
        limit = f"({_decimal(burn_factor(burn, period))} * {budget})"
        conditions.append(f"(\n  {recorded(slo, burn.long)} > {limit}\nand\n  {recorded(slo, burn.short)} > {limit}\n)")
    pairs = ", ".join(
        f"{_decimal(burn_factor(b, period))}x over {b.long} and {b.short}"
        for b in BURN_WINDOWS
        if b.severity == severity
    )
    lasts = "within days" if severity == PAGE else "before the period ends"
    alert = f"Setlist{camel(slo.name)}{BURN_SUFFIX[severity]}"
    return {
        "alert": alert,
        "expr": "\nor\n".join(conditions) + "\n",
        "labels": {"severity": severity, "slo": slo.name},
        "annotations": {
            "summary": f"{slo.name}: at this error rate the {period} error budget is gone {lasts}",
            "description": (
                f"{slo.description} Objective {_decimal(slo.objective)}: {_percent(slo.budget)} of events may be "
                f"bad over {period}. The error ratio over the long window is "
                f"{{{{ $value | humanizePercentage }}}} (alerts at burn rates {pairs})."
            ),
            "runbook_url": runbook(alert),
        },
    }


def _human_seconds(value: float) -> str:
    """``93600`` as ``26h``: the largest unit that divides it."""
    for unit, size in sorted(_UNITS.items(), key=lambda u: -u[1]):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{_limit(value)}s"


def threshold_alert(slo: ThresholdSLO) -> dict[str, Any]:
    side = "above the maximum" if slo.comparison == ">" else "below the floor"
    value = "{{ $value | humanizeDuration }}" if slo.in_seconds else "{{ $value }}"
    limit = _human_seconds(slo.limit) if slo.in_seconds else _limit(slo.limit)
    alert = f"Setlist{camel(slo.name)}Breached"
    return {
        "alert": alert,
        "expr": f"{slo.gauge} {slo.comparison} {_limit(slo.limit)}",
        "for": slo.for_,
        "labels": {"severity": slo.severity, "slo": slo.name},
        "annotations": {
            "summary": f"{slo.name}: {value} is {side} of {limit}",
            "description": f"{slo.description} The SLO is broken for at least {slo.for_}.",
            "runbook_url": runbook(alert),
        },
    }


def groups(slos: SLOFile) -> list[dict[str, Any]]:
    """One group per ratio SLO (its recordings first: a group evaluates its rules in order, so the
    alerts read this round's ratios), then one group of the threshold alerts."""
    out: list[dict[str, Any]] = []
    for slo in slos.objectives:
        if isinstance(slo, RatioSLO):
            alerts = [burn_alert(slo, severity, slos.window) for severity in SEVERITIES]
            out.append({"name": f"slo-{slo.name}", "rules": recording_rules(slo) + alerts})
    thresholds = [threshold_alert(slo) for slo in slos.objectives if isinstance(slo, ThresholdSLO)]
    if thresholds:
        out.append({"name": "slo-thresholds", "rules": thresholds})
    return out


class _Dumper(yaml.SafeDumper):
    """Block-indented lists, and multi-line expressions as literal blocks, as people write rules."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(slos: SLOFile, source: str) -> str:
    """The rules file's text; ``source`` names the SLO file in its header."""
    header = (
        f"# Generated by `make rules` (python -m ops rules) from {source}: edit that file, then run\n"
        "# `make rules`. `make test` fails while this file is not what the SLO file generates.\n"
    )
    body = yaml.dump({"groups": groups(slos)}, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return header + body


def display(path: Path) -> str:
    """``path`` relative to the repository when it is inside it: the header must not name a machine."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # a reader (promtool, a config reload) never sees half a file


def command(
    check: bool = typer.Option(
        False, "--check", help="compare the rules file with what the SLO file generates; exit 1 when they differ"
    ),
    slo_file: Path = typer.Option(ROOT / SLO_FILE, "--slo-file", help="the SLO file", show_default=str(SLO_FILE)),
    out: Path = typer.Option(ROOT / RULES_FILE, "--out", help="the rules file", show_default=str(RULES_FILE)),
) -> None:
    """Generate the Prometheus SLO recording and alert rules from the SLO file."""
    slos = load(slo_file)
    text = render(slos, display(slo_file))
    if check:
        current = out.read_text(encoding="utf-8") if out.is_file() else None
        if current != text:
            state = "does not exist" if current is None else "is out of date"
            raise Refused(f"{display(out)} {state} with {display(slo_file)}: run `make rules`")
        typer.echo(f"{display(out)} is up to date with {display(slo_file)}")
        return
    _write(out, text)
    rules = sum(len(g["rules"]) for g in groups(slos))
    typer.echo(f"wrote {display(out)}: {rules} rules from {len(slos.objectives)} objectives")
