"""What this machine can run, asked once per process: a GPU through torch, onnxruntime's execution
providers, an importable TensorRT. The plan skips variants on these answers (bench.plan), with the reason."""

from __future__ import annotations

import importlib.util
from functools import cache


@cache
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@cache
def ort_providers() -> tuple[str, ...]:
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


@cache
def tensorrt_importable() -> bool:
    return importlib.util.find_spec("tensorrt") is not None
