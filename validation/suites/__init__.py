"""Expectation suites written as code: one small module per kind of data."""
