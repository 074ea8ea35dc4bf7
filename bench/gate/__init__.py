"""Readers that judge runs: `bench compare` (compare.py, metrics.py), `bench check` (check.py,
accuracy_drop.py), the decision (decision.py) and their JSON (json_report.py).
"""
