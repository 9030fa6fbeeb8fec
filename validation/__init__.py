"""Data-quality gates (Great Expectations 1.x): raw events, feature batches, training sets,
online/offline parity, drift and cardinality.

The pipeline uses ``validation.api``; operators use ``python -m validation <gate>``.
"""

import os

# GE reads this when a context is created; analytics must never leave the machine. Set before any
# submodule imports great_expectations (a default only: an explicit environment value wins).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
