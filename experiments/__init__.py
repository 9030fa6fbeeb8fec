"""A/B experiments: joining impressions with feedback, the statistics, reports, simulation and drills.

Modules: ``data`` (join), ``stats`` (delta-method rates, CIs, SRM), ``analysis`` (report and verdicts),
``render`` (table, PNG, JSON), ``logbook`` (MLflow), ``report`` (the command), ``simulate``
(synthetic users), ``broken`` and ``drill`` (canary rehearsal).
"""
