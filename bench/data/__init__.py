"""A task's data: loading (load.py) and its splits as model inputs (splits.py)."""
