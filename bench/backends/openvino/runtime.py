"""OpenVINO inference on CPU: one compiled model, the latency hint, fixed threads, and the inference
precision pinned where the variant's precision names it.

OpenVINO picks bf16 (or f16) as the inference precision by default on CPUs that have it, silently: an
"fp32" variant would run bf16. The precision is therefore set explicitly (`INFERENCE_PRECISION_HINT`) and
the compiled model's own value is read back (`inference_precision`, recorded in the row), so a row never
says fp32 when it ran bf16.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import openvino as ov

# The inference precision each variant precision runs its float ops at. int8-static: NNCF's INT8 ops, and
# the ops left in float at f32 as ONNX Runtime's static INT8 runs them (bf16 would be a variant of its own).
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8-static": "f32"}


def _type_name(value) -> str:
    """An ov.Type (or its string form) as OpenVINO's short name: f32, bf16, f16."""
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


class OpenVinoRuntime:
    name = "openvino"

    def __init__(self, model_path: Path, threads: int, precision: str = "fp32", device: str = "CPU"):
        self.model_path = Path(model_path)
        self.core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if precision in INFERENCE_PRECISION:
            config["INFERENCE_PRECISION_HINT"] = INFERENCE_PRECISION[precision]
        self.compiled = self.core.compile_model(str(self.model_path), device, config)
        self.request = self.compiled.create_infer_request()
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.output = self.compiled.output(0)
        # What the compiled model actually uses (never the hint asked for): the row records it.
        self.inference_precision = _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.compile_config = {
            "device": device, "openvino": ov.get_version(),
            "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
            "inference_num_threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
            "num_streams": int(self.compiled.get_property("NUM_STREAMS")),
            "inference_precision": self.inference_precision,
        }
        wanted = config.get("INFERENCE_PRECISION_HINT")
        if wanted is not None and self.inference_precision != wanted:
            raise RuntimeError(f"{model_path}: OpenVINO compiled at {self.inference_precision}, not the {wanted} "
                               f"asked for (precision {precision})")

    @cached_property
    def params(self) -> int:
        """Weight elements: float and 8-bit constants with more than one element (read after the load,
        from the IR, as ONNX rows count initialisers)."""
        weight_types = {ov.Type.f32, ov.Type.f16, ov.Type.bf16, ov.Type.i8, ov.Type.u8}
        total = 0
        for op in self.core.read_model(str(self.model_path)).get_ordered_ops():
            if op.get_type_name() == "Constant" and op.get_output_element_type(0) in weight_types:
                n = int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
                total += n if n > 1 else 0
        return total

    def prepare(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(encoding[k], dtype=np.int64) for k in self.input_names}

    def run(self, native):
        # Synchronous: returns when the result is ready. Inputs shared (no copy in the timed call); the
        # output is copied out of the request's buffer, so results of earlier calls stay valid.
        return self.request.infer(native, share_inputs=True, share_outputs=False)[self.output]

    def logits(self, output) -> np.ndarray:
        return np.asarray(output).astype(np.float32, copy=False)
