"""One small adapter per runtime. Each takes tokenised numpy inputs and returns numpy logits, with
the conversion to native inputs (`prepare`) kept outside the timed call (`run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Runtime(Protocol):
    name: str
    input_names: list[str]
    params: int

    def prepare(self, encoding: dict[str, np.ndarray]) -> Any:
        """Tokenizer output (int64 arrays) -> native inputs; not timed."""

    def run(self, native: Any) -> Any:
        """One forward pass; returns when the result is ready (GPU work synchronised). Timed."""

    def logits(self, output: Any) -> np.ndarray:
        """Native output -> float32 numpy logits; not timed."""


def load_runtime(fmt: str, path: Path, device: str, threads: int, precision: str = "fp32",
                 gpu_provider: str = "cuda") -> Runtime:
    path = Path(path)
    if fmt == "pytorch":
        from bench.runtimes.torch_runtime import TorchRuntime

        return TorchRuntime(path, device, threads, precision)
    if fmt == "onnx":
        from bench.runtimes.ort_runtime import OrtRuntime

        return OrtRuntime(path / "model.onnx", device, threads, gpu_provider)
    if fmt == "tensorrt":
        from bench.runtimes.tensorrt_runtime import TensorRTRuntime

        return TensorRTRuntime(path / "model.engine")
    raise ValueError(f"no runtime adapter for format {fmt!r}")


def predict(runtime: Runtime, encoding: dict[str, np.ndarray]) -> np.ndarray:
    return runtime.logits(runtime.run(runtime.prepare(encoding)))
