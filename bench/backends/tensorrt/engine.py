"""TensorRT engines from ONNX with the TensorRT 10/11 Python API.

Every network is built strongly typed (TensorRT 11 knows nothing else; 10.12+ deprecates the FP16/INT8
builder flags): precision comes from the ONNX graph itself, so FP16 engines are built from the FP16
graph and INT8 engines from the FP16 graph with symmetric Q/DQ nodes (explicit quantization, no
calibrator), whose non-quantized layers then run FP16 as the FP16 engine's do. FP32 engines are built
with TF32 off: TensorRT enables it by default, and an "fp32" row must not run 10-bit mantissas. One
optimisation profile covers min/opt/max batch and sequence length. The engine is a cached artifact keyed
by (ONNX artifact hash, TensorRT version, GPU name, profile, TF32), with the precisions its layers run
at (the engine inspector's view) in its info.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

def profile_for(max_batch: int, max_length: int) -> dict:
    """[batch, sequence] shapes: batch 1 at typical lengths is what latency measures; the max covers
    every batch the suite's scenarios and bench serve run, up to the suite's max_length."""
    return {"min": [1, 1], "opt": [1, min(64, max_length)], "max": [max(1, max_batch), max_length]}


def tensorrt_version() -> str:
    import tensorrt as trt

    return trt.__version__


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def _kind(datatype: str) -> str:
    """A tensor's type as the inspector writes it ('Row major linear FP16 format', 'Half', 'Int8', ...)."""
    text = datatype.lower()
    for kind, pattern in (("int8", r"int8"), ("fp8", r"fp8"), ("bf16", r"bf16|bfloat"), ("fp16", r"fp16|half"),
                          ("fp32", r"fp32|float")):
        if re.search(pattern, text):
            return kind
    return "other"  # int32/int64/bool: shapes, indices, masks


def _tensor_type(tensor) -> str:
    if not isinstance(tensor, dict):
        return ""
    # TensorRT 10 writes one "Format/Datatype" field; 11 splits it into "Format" and "DataType".
    return str(tensor.get("DataType") or tensor.get("Format/Datatype") or "")


def layer_precisions(info: dict) -> dict[str, int]:
    """Layers per precision from the engine inspector's JSON (ProfilingVerbosity.DETAILED): a layer with
    an INT8 input or output runs an INT8 kernel; otherwise it counts as its first output's float type.
    {} when the engine was built without layer detail (layers are then bare names)."""
    counts: dict[str, int] = {}
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict):
            continue
        kinds = [_kind(_tensor_type(t)) for t in [*layer.get("Inputs", []), *layer.get("Outputs", [])]]
        outputs = [_kind(_tensor_type(t)) for t in layer.get("Outputs", [])]
        kind = "int8" if "int8" in kinds else next((k for k in outputs if k != "other"), "other")
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def build_engine(onnx_path: Path, engine_path: Path, profile: dict, tf32: bool, workspace_gb: float = 4.0) -> dict:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # 10.x: strong typing is a flag; 11.x: always on (the flag, where it still exists, is ignored).
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(1 << int(strongly) if strongly is not None else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT could not parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector's per-layer types below
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    opt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        opt_profile.set_shape(name, tuple(profile["min"]), tuple(profile["opt"]), tuple(profile["max"]))
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    engine_path.write_bytes(bytes(serialized))
    engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(serialized))
    inspector = engine.create_engine_inspector()
    layers = layer_precisions(json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)))
    return {"tensorrt_version": trt.__version__, "gpu": gpu_name(), "profile": profile, "strongly_typed": True,
            "tf32": bool(config.get_flag(trt.BuilderFlag.TF32)), "layer_precisions": layers}
