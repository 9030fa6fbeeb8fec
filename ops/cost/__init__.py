"""``python -m ops cost``: what the loop costs per day and per experiment arm, from measured resources.

- ``prices``: the cost file (``cost.yaml``, ``SETLIST_COST_FILE``): what a CPU-second, a GB-month, a
  Redis GB-hour and a million requests cost;
- ``usage``: what the data says per day and per arm (event log, impressions, the onboarding summary);
- ``measured``: what the processes say (serving's CPU counters or the last bench run, the batch jobs'
  CPU in their status files, Redis memory, the online store's file);
- ``model``: the arithmetic on those, pure and unit-tested;
- ``report``: the table, the PNG, the JSON and the MLflow run; ``command`` the CLI.

docs/cost.md says what is measured, how, how cost is allocated to arms, and what is not measured.
"""
