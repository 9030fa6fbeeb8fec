"""``python -m ops status|rules|schedule|cost|settings``: the loop at a glance, the SLO rules, the one-machine
scheduler, what the loop costs, the settings in force."""

from __future__ import annotations

from ops import rules, schedule, settings_report, status
from ops.cost import command as cost
from setlist.cli import App

app = App(add_completion=False, help="Operating Setlist: status, SLO alert rules, scheduled jobs, cost, settings.")
app.command("status", reads_only=True)(status.command)
app.command("rules")(rules.command)
app.command("schedule")(schedule.command)
app.command("cost")(cost.command)
app.command("settings", reads_only=True)(settings_report.command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
