"""Code shared by ingestion, features, training, validation and serving.

Kept deliberately small: settings, the event contract, pseudonymization, the event log and the
feature/artifact contracts that training and serving must agree on.
"""

from prometheus_client import values as _prometheus_values

# Importing Feast sets PROMETHEUS_MULTIPROC_DIR for the whole process (feast.metrics, meant for its
# own pre-fork server), and prometheus_client then keeps every metric's value in a per-pid file keyed
# by name and labels: a second registry in the same process (a job run twice, two servers in one
# test) would start from the first one's counts. Setlist never uses multiprocess mode (each serving
# worker exports its own endpoint, serving.metrics), so values stay in memory whatever was imported
# first.
_prometheus_values.ValueClass = _prometheus_values.MutexValue
