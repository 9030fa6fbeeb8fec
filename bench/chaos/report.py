"""Counting what a drill did to the events, and the table and JSON of the whole run.

The count is made from the event log after the server has stopped gracefully (its journals then
roll every segment into the log): ``stored`` is how many of the sent event ids the log holds,
``lost`` how many acknowledged ids it does not hold, ``duplicated`` how many sent ids it holds more
than once. An event sent but never acknowledged may be stored or not; neither is a fault.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

from bench.chaos.load import Tally
from setlist.eventlog import EventLog

COLUMNS = (
    "scenario",
    "requests",
    "acknowledged",
    "stored",
    "lost",
    "duplicated",
    "failed requests",
    "recovery time",
)


@dataclass
class Row:
    scenario: str
    status: str = "ok"  # ok | skipped (could not run here) | error (the drill itself broke)
    requests: int | None = None
    acknowledged: int | None = None
    stored: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    failed_requests: int | None = None
    recovery_s: float | None = None
    #: None: nothing to recover from (the fault refuses nothing by design); False: it never did
    recovered: bool | None = None
    sent: int | None = None
    errors: dict[str, int] | None = None  # failed calls by gRPC status code
    # failed calls that waited on a stall of the journal's own disk (its write or fsync outlasting
    # SETLIST_JOURNAL_SLOW_WRITE_MS, as the server logged it): the machine's disk, not the drill's fault
    failed_in_disk_stalls: int | None = None
    note: str = ""

    @property
    def faulty(self) -> bool:
        """What fails ``make chaos``: an acknowledged event lost or an event stored twice, or a
        drill that could not be carried out."""
        return self.status == "error" or bool(self.lost) or bool(self.duplicated)


def counted(scenario: str, tally: Tally, events_dir: Path) -> Row:
    """The row of a finished drill: ``tally`` against what the event log holds."""
    sent = set(tally.sent)
    log = EventLog(events_dir).read(columns=["event_id"])
    copies = Counter(log["event_id"][log["event_id"].isin(sent)])
    return Row(
        scenario=scenario,
        requests=tally.requests,
        acknowledged=len(tally.acked),
        stored=len(copies),
        lost=sum(1 for e in set(tally.acked) if e not in copies),
        duplicated=sum(1 for n in copies.values() if n > 1),
        failed_requests=tally.failed,
        sent=len(sent),
        errors=dict(tally.errors),
    )


def table(rows: list[Row]) -> Table:
    t = Table(title="make chaos: Track under faults", title_justify="left")
    for name in COLUMNS:
        t.add_column(name, justify="left" if name == "scenario" else "right")
    for row in rows:
        if row.status != "ok":
            mark = "[yellow]skipped[/]" if row.status == "skipped" else "[red]error[/]"
            t.add_row(row.scenario, mark, *["—"] * (len(COLUMNS) - 2))
            continue
        t.add_row(
            row.scenario,
            _n(row.requests),
            _n(row.acknowledged),
            _n(row.stored),
            _n(row.lost, bad=True),
            _n(row.duplicated, bad=True),
            _n(row.failed_requests),
            _recovery(row),
        )
    return t


def notes(rows: list[Row]) -> list[str]:
    """One line per row that has something to say: why it was skipped or broke, what it saw."""
    return [f"{row.scenario}: {row.note}" for row in rows if row.note]


def _n(value: int | None, bad: bool = False) -> str:
    if value is None:
        return "—"
    return f"[red]{value:,}[/]" if bad and value else f"{value:,}"


def _recovery(row: Row) -> str:
    if row.recovered is None:
        return "—"
    if not row.recovered or row.recovery_s is None:
        return "[red]never[/]"
    return f"{row.recovery_s:.2f} s"


def write_json(rows: list[Row], path: Path, command: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "passed": not any(r.faulty for r in rows),
        "rows": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
