"""Honest fakes for the ports: unit tests swap them in through the one wiring function."""
