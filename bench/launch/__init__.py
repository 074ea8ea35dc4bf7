"""The parent side of measuring: a variant's isolated child (isolate.py) and the round workers of
interleaved timing (rounds.py).
"""
