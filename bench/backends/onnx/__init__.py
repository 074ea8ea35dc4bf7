"""ONNX through ONNX Runtime: the format (format.py), its artifact recipes (export.py, optimize.py,
quantize.py) and its runtime (runtime.py).
"""
