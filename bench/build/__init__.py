"""Build: the trained models (train/) and every variant's artifact (compress.py), through the artifact
cache; pipeline.py runs them in order.
"""
