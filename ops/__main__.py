"""``python -m ops status|rules|schedule|cost``: the loop at a glance, the SLO rules, the one-machine scheduler,
what the loop costs."""

from __future__ import annotations

from ops import rules, schedule, status
from ops.cost import command as cost
from setlist.cli import App

app = App(add_completion=False, help="Operating Setlist: status, SLO alert rules, scheduled jobs, cost.")
app.command("status")(status.command)
app.command("rules")(rules.command)
app.command("schedule")(schedule.command)
app.command("cost")(cost.command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
