"""Code shared by ingestion, features, training, validation and serving.

Kept deliberately small: settings, the event contract, pseudonymization, the event log and the
feature/artifact contracts that training and serving must agree on.
"""
