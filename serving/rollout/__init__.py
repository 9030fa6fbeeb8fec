"""Which model serves whom: the served models, variant routing, and the canary (pure state machine, driver, MLflow side)."""
