"""Gate results: one row per expectation with observed vs expected and pass/warn/fail.

``GateResult`` is what the pipeline sees (``.passed``, ``.failures``) and what the CLI prints. It is
built from a GE validation result by ``from_validation`` so that callers never parse GE objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "skip"]
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
_MAX_CELL = 80


@dataclass(frozen=True)
class Row:
    expectation: str  # e.g. "expect_column_values_to_not_be_null(user_id)"
    observed: str
    expected: str
    status: Status
    # what operations export (setlist_drift, setlist_cardinality): the column checked, the
    # expectation's type, a drift check's measure, and the observed value when it is a number
    column: str | None = None
    check: str = ""
    measure: str | None = None
    value: float | None = None


@dataclass
class GateResult:
    gate: str
    rows: list[Row] = field(default_factory=list)
    skipped: str | None = None  # reason, when the gate's input does not exist
    notes: list[str] = field(default_factory=list)
    data_docs: Path | None = None

    @property
    def passed(self) -> bool:
        """True when nothing failed; warnings and skips do not fail a gate."""
        return not any(r.status == "fail" for r in self.rows)

    @property
    def failures(self) -> list[str]:
        return [r.expectation for r in self.rows if r.status == "fail"]

    @property
    def warnings(self) -> list[str]:
        return [r.expectation for r in self.rows if r.status == "warn"]

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "skipped"
        return "pass" if self.passed else "fail"

    def extend(self, other: GateResult) -> GateResult:
        self.rows.extend(other.rows)
        self.notes.extend(other.notes)
        self.data_docs = other.data_docs or self.data_docs
        return self

    def summary(self) -> str:
        if self.skipped is not None:
            return f"{self.gate}: skipped: {self.skipped}"
        counts = {s: sum(r.status == s for r in self.rows) for s in ("pass", "warn", "fail")}
        verdict = "PASS" if self.passed else "FAIL"
        text = f"{self.gate}: {verdict} ({counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail)"
        return text + (f" — failing: {', '.join(self.failures)}" if self.failures else "")

    def table(self, width: int = 140) -> Any:
        """A rich ``Table`` of the rows, fitted to ``width`` characters."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"gate: {self.gate}", show_lines=False, title_justify="left")
        widest = max((len(r.expectation) for r in self.rows), default=20)
        # Widths given outright: with only a minimum for the names, rich let the values take the rest
        # and cropped the table at the console's edge, status column and all (a log file's 140 columns)
        name = min(widest, 72, max(20, width - _FRAME - 2 * _VALUE_MIN))
        value = max(_VALUE_MIN, (width - name - _FRAME) // 2)
        table.add_column("expectation", overflow="fold", min_width=name)
        for column in ("observed", "expected"):
            table.add_column(column, overflow="fold", max_width=value)
        table.add_column("status", no_wrap=True)
        for r in self.rows:  # values like "datetime64[ms, UTC]" must not be read as markup
            table.add_row(
                escape(r.expectation), escape(r.observed), escape(r.expected), f"[{_STYLE[r.status]}]{r.status}[/]"
            )
        return table

    def render(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.markup import escape

        console = console or Console()
        if self.skipped is not None:
            console.print(f"[dim]{self.gate}: skipped: {self.skipped}[/]")
            return
        console.print(self.table(console.width))
        for note in self.notes:
            console.print(f"  note: {escape(note)}")
        console.print(escape(self.summary()))


#: a gate table's borders, padding and status column, in characters; and the least a value column gets
_FRAME = 19
_VALUE_MIN = 16


def from_validation(gate: str, validation: Any, data_docs: Path | None = None) -> GateResult:
    """Convert a GE ``ExpectationSuiteValidationResult``. Failed expectations with severity
    ``warning`` become ``warn``; anything else that failed (including errors) is ``fail``."""
    rows = []
    for r in validation.results:
        cfg = r.expectation_config
        severity = str(getattr(cfg.severity, "value", cfg.severity))
        status: Status = "pass" if r.success else ("warn" if severity == "warning" else "fail")
        observed = (r.result or {}).get("observed_value")
        rows.append(
            Row(
                name_of(cfg),
                _clip(_observed(r)),
                _clip(expected_of(cfg)),
                status,
                column=cfg.kwargs.get("column"),
                check=cfg.type,
                measure=cfg.kwargs.get("method", "psi") if "threshold" in cfg.kwargs else None,
                value=float(observed) if isinstance(observed, int | float) and not isinstance(observed, bool) else None,
            )
        )
    return GateResult(gate, rows, data_docs=data_docs)


def name_of(cfg: Any) -> str:
    kwargs = cfg.kwargs
    subject = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    name = f"{cfg.type}({subject})" if subject else cfg.type
    if (cfg.meta or {}).get("label"):
        name += f"[{cfg.meta['label']}]"
    return name


def expected_of(cfg: Any) -> str:
    k = {key: v for key, v in cfg.kwargs.items() if key not in ("batch_id", "column")}
    t = cfg.type
    cond = f" where {_condition(k.pop('row_condition'))}" if k.get("row_condition") else ""
    k.pop("condition_parser", None)
    mostly = k.pop("mostly", None)
    tail = (f" (mostly {mostly})" if mostly not in (None, 1, 1.0) else "") + cond
    if "threshold" in k:
        return f"{k.get('method', 'psi')} < {k['threshold']}" + tail
    if t.endswith("not_be_null"):
        return "no nulls" + tail
    if t.endswith("to_be_unique"):
        return "unique" + tail
    if "value_set" in k:
        neg = "not in" if "not_be_in_set" in t else "in"
        return f"{neg} {_short(k['value_set'])}" + tail
    if "min_value" in k or "max_value" in k:
        lo, hi = k.get("min_value"), k.get("max_value")
        left, right = "(" if k.get("strict_min") else "[", ")" if k.get("strict_max") else "]"
        return f"{left}{_fmt(lo) if lo is not None else '-inf'}, {_fmt(hi) if hi is not None else '+inf'}{right}" + tail
    if "column_set" in k:
        return f"contains {_short(k['column_set'])}"
    if "logical_type" in k:
        return str(k["logical_type"])
    if "feature_columns" in k:
        return "no identifier columns"
    return (", ".join(f"{key}={_fmt(v)}" for key, v in k.items()) or "present") + tail


def _condition(cond: Any) -> str:
    if isinstance(cond, dict):  # GE 1.x stores conditions as dicts
        if "pass_through_filter" in cond:
            return str(cond["pass_through_filter"])
        if {"column", "operator"} <= cond.keys():
            return f"{cond['column'].get('name')} {cond['operator']} {cond.get('parameter')!r}"
    return str(cond)


def _observed(r: Any) -> str:
    res = r.result or {}
    if "observed_value" in res:
        detail = (res.get("details") or {}).get("mismatched")  # first: long cells get clipped
        return (f"mismatched: {_fmt(detail)}; " if detail else "") + _fmt(res["observed_value"])
    if "unexpected_count" in res:
        n, pct = res.get("unexpected_count") or 0, res.get("unexpected_percent") or 0.0
        sample = res.get("partial_unexpected_list") or []
        text = f"{n} unexpected ({pct:.3g}%)"
        return text + (f", e.g. {_short(sample[:3])}" if n and sample else "")
    for info in (r.exception_info or {}).values():  # keyed by metric id when a metric failed
        if isinstance(info, dict) and info.get("exception_message"):
            return f"error: {info['exception_message'].splitlines()[0]}"
    if isinstance(r.exception_info, dict) and r.exception_info.get("exception_message"):
        return f"error: {r.exception_info['exception_message'].splitlines()[0]}"
    if r.success:
        return "-"
    return "column missing" if r.expectation_config.type == "expect_column_to_exist" else "error: not evaluated"


def _fmt(v: Any) -> str:
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # numpy scalar
        v = v.item()
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, datetime):
        return v.isoformat(timespec="seconds")
    if isinstance(v, (list, tuple, set, frozenset)):
        return _short(v)
    return str(v)


def _short(values: Iterable[Any], limit: int = 8) -> str:
    items = list(values)
    body = ", ".join(_fmt(v) if not hasattr(v, "tolist") else str(v.tolist()) for v in items[:limit])
    return "{" + body + (f", … +{len(items) - limit}" if len(items) > limit else "") + "}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"
