"""Which model serves whom: the served models, variant routing, and the canary (its pure state
machine, its driver and its MLflow side)."""
