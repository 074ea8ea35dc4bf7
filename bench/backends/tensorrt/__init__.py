"""TensorRT engines (CUDA only): the format (format.py), the engine builder (engine.py) and its runtime
(runtime.py).
"""
