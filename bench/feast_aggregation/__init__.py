"""Can Feast 0.67's BatchFeatureView aggregations replace our windowed-aggregate engine?

``python -m bench.feast_aggregation [--sizes fixture,1m,3m]`` times both paths (steps.py), checks
their values against a brute-force reference (brute.py, correctness.py), records what each Feast
declaration does (capabilities.py) and writes bench/results/feast_aggregation.json.
"""
