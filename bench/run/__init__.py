"""`bench run` and friends: orchestration (suite_run.py), the bill and cost model, `bench quick`, `bench
profile`.
"""
