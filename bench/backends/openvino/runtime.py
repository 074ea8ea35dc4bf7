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


def compile_for(core, model_path: Path | ov.Model, device: str, threads: int, precision: str, hint: str, **extra):
    """The IR compiled with `hint` (LATENCY or THROUGHPUT), fixed threads and the inference precision pinned;
    with what the compiled model reports about itself (never the hints asked for)."""
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint, **extra}
    if precision in INFERENCE_PRECISION:
        config["INFERENCE_PRECISION_HINT"] = INFERENCE_PRECISION[precision]
    compiled = core.compile_model(model_path if isinstance(model_path, ov.Model) else str(model_path), device, config)
    facts = {"device": device, "openvino": ov.get_version(),
             "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
             "inference_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
             "num_streams": int(compiled.get_property("NUM_STREAMS")),
             "inference_precision": _type_name(compiled.get_property("INFERENCE_PRECISION_HINT")),
             # dynamic: any [batch, sequence] the IR was exported with (static buckets measured in docs/openvino.md)
             "shapes": "static" if compiled.inputs[0].get_partial_shape().is_static else "dynamic"}
    wanted = config.get("INFERENCE_PRECISION_HINT")
    if wanted is not None and facts["inference_precision"] != wanted:
        raise RuntimeError(f"{model_path}: OpenVINO compiled at {facts['inference_precision']}, not the {wanted} "
                           f"asked for (precision {precision})")
    return compiled, facts


def _quantization_parameters(op) -> list[str]:
    """Names of the constants `op` takes as quantization parameters rather than weights."""
    sources = [i.get_source_output().get_node() for i in op.inputs()]
    kind = op.get_type_name()
    if kind == "FakeQuantize":  # data, input_low, input_high, output_low, output_high
        return [n.get_friendly_name() for n in sources[1:] if n.get_type_name() == "Constant"]
    if kind in ("Multiply", "Subtract") and any(_is_decompressed_weight(n) for n in sources):
        return [n.get_friendly_name() for n in sources if n.get_type_name() == "Constant"]
    return []


def _is_decompressed_weight(node) -> bool:
    """Convert(8-bit Constant), or Subtract(that, zero point): an 8-bit weight on its way back to float."""
    if node.get_type_name() == "Subtract":
        return any(_is_decompressed_weight(i.get_source_output().get_node()) for i in node.inputs())
    if node.get_type_name() != "Convert":
        return False
    src = node.input(0).get_source_output().get_node()
    return src.get_type_name() == "Constant" and src.get_output_element_type(0) in (ov.Type.i8, ov.Type.u8)


class OpenVinoRuntime:
    name = "openvino"

    def __init__(self, model_path: Path, threads: int, precision: str = "fp32", device: str = "CPU"):
        self.model_path, self.threads, self.precision, self.device = Path(model_path), threads, precision, device
        self.core = ov.Core()
        self.compiled, self.compile_config = compile_for(self.core, self.model_path, device, threads, precision,
                                                         "LATENCY")
        self.request = self.compiled.create_infer_request()
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.output = self.compiled.output(0)
        self.inference_precision = self.compile_config["inference_precision"]  # the row records it

    @cached_property
    def params(self) -> int:
        """Weight elements: float and 8-bit constants with more than one element (read after the load,
        from the IR, as ONNX rows count initialisers), not NNCF's quantization parameters: a FakeQuantize's
        ranges, and the scales and zero points that dequantize an 8-bit weight (Convert -> Subtract/Multiply)."""
        weight_types = {ov.Type.f32, ov.Type.f16, ov.Type.bf16, ov.Type.i8, ov.Type.u8}
        ops = self.core.read_model(str(self.model_path)).get_ordered_ops()
        excluded = {name for op in ops for name in _quantization_parameters(op)}
        total = 0
        for op in ops:
            if op.get_type_name() == "Constant" and op.get_output_element_type(0) in weight_types \
                    and op.get_friendly_name() not in excluded:
                n = int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
                total += n if n > 1 else 0
        return total

    def for_throughput(self) -> OpenVinoThroughput:
        """The same IR compiled with the throughput hint (streams, parallel requests) for the Offline scenario:
        what an OpenVINO user runs for offline work."""
        return OpenVinoThroughput(self)

    def prepare(self, encoding: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(encoding[k], dtype=np.int64) for k in self.input_names}

    def run(self, native):
        # Synchronous: returns when the result is ready. Inputs shared (no copy in the timed call); the
        # output is copied out of the request's buffer, so results of earlier calls stay valid.
        return self.request.infer(native, share_inputs=True, share_outputs=False)[self.output]

    def logits(self, output) -> np.ndarray:
        return np.asarray(output).astype(np.float32, copy=False)


class OpenVinoThroughput:
    """The THROUGHPUT-hint compilation: the plugin splits the threads into streams, and `run_all` keeps its
    optimal number of requests in flight (an AsyncInferQueue) until every input has run. `close()` releases
    the compilation and its stream threads (the callback holds no reference back to this object)."""

    def __init__(self, latency: OpenVinoRuntime):
        self.compiled, facts = compile_for(latency.core, latency.model_path, latency.device, latency.threads,
                                           latency.precision, "THROUGHPUT")
        requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.queue = ov.AsyncInferQueue(self.compiled, requests)
        self.config = facts | {"infer_requests": requests}
        self.prepare = latency.prepare
        done: dict = {"outputs": None, "count": 0}
        self._done = done

        def finished(request, index):  # runs once per completed request
            done["count"] += 1
            if done["outputs"] is not None:
                done["outputs"][index] = np.array(request.get_output_tensor(0).data, dtype=np.float32)

        self.queue.set_callback(finished)

    def run_all(self, natives: list, keep_outputs: bool = False) -> list | None:
        """Every input through the queue; returns when all have finished (their outputs, in order, if asked)."""
        self._done.update(outputs={} if keep_outputs else None, count=0)
        for i, x in enumerate(natives):
            self.queue.start_async(x, i, share_inputs=True)
        self.queue.wait_all()
        if self._done["count"] != len(natives):  # a failed request never calls back: never time it as done
            raise RuntimeError(f"{len(natives) - self._done['count']} of {len(natives)} OpenVINO requests failed")
        return [self._done["outputs"][i] for i in range(len(natives))] if keep_outputs else None

    def close(self) -> None:
        self.queue = self.compiled = None
