"""PyTorch eager: the format (format.py) and its runtime (runtime.py)."""
