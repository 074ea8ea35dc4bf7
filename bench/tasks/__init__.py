"""What a task is (table.py: GLUE and user tasks, their metrics), where models come from (sources.py), and
ONNX models measured as they are (onnx_source.py).
"""
