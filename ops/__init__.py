"""Operating Setlist: the loop's status at a glance, the SLO rules, and the one-machine scheduler.

A driver above the pipeline (like experiments/ and bench/): it reads what the stages leave behind
(status files, the publish log, the model registry, serving's endpoints) and imports no stage.
"""
