"""TensorRT engine execution with the TensorRT 10/11 tensor-address API on a dedicated CUDA
stream; `run` synchronises the stream, so timings cover the whole GPU work."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


def set_input_shapes(context, shapes: dict[str, tuple], limits: dict[str, tuple]) -> None:
    """context.set_input_shape for each input, checked: TensorRT answers False for a shape outside the
    optimisation profile and leaves the output shape at -1, which would fail later with no hint.
    `limits`: input name -> (min, max) shapes, for the message."""
    for name, shape in shapes.items():
        if not context.set_input_shape(name, tuple(shape)):
            low, high = limits.get(name, ("?", "?"))
            raise ValueError(f"tensorrt: input {name} of shape {_dims(shape)} is outside the engine's optimisation "
                             f"profile ({_dims(low)} .. {_dims(high)})")


class TensorRTRuntime:
    name = "tensorrt"

    def __init__(self, engine_path: Path):
        import tensorrt as trt
        import torch

        self._torch = torch
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{engine_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_name = next(n for n in names if not is_input[n])
        # (min, max) of profile 0 per input: what set_input_shapes names when a batch falls outside.
        self.limits = {n: tuple(self.engine.get_tensor_profile_shape(n, 0))[::2] for n in self.input_names}
        to_torch = {trt.DataType.INT64: torch.int64, trt.DataType.INT32: torch.int32,
                    trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        self.dtypes = {n: to_torch[self.engine.get_tensor_dtype(n)] for n in names}
        self.params = None  # an engine does not expose its weights

    def prepare(self, encoding: dict[str, np.ndarray]):
        torch = self._torch
        return {n: torch.from_numpy(np.ascontiguousarray(encoding[n])).to("cuda", self.dtypes[n])
                for n in self.input_names}

    def run(self, native):
        torch = self._torch
        set_input_shapes(self.context, {n: tuple(t.shape) for n, t in native.items()}, self.limits)
        for name, tensor in native.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.dtypes[self.output_name],
                          device="cuda")
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return out

    def logits(self, output) -> np.ndarray:
        return output.float().cpu().numpy()
