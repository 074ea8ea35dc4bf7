"""TensorRT engines from ONNX with the TensorRT 10/11 Python API.

Every network is built strongly typed: precision comes from the ONNX graph itself, so FP16 engines
are built from the FP16 graph (keep_io_types) and INT8 engines from the static QDQ graph (explicit
quantization, no TensorRT calibrator). One optimisation profile covers min/opt/max batch and
sequence length. The engine is a cached artifact keyed by (ONNX artifact hash, TensorRT version,
GPU name, profile), and its build time is recorded separately from measurement.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

def profile_for(max_batch: int, max_length: int) -> dict:
    """[batch, sequence] shapes: batch 1 at typical lengths is what latency measures; the max covers
    the accuracy pass (eval_batch_size) and the suite's max_length."""
    return {"min": [1, 1], "opt": [1, min(64, max_length)], "max": [max(1, max_batch), max_length]}


def tensorrt_version() -> str:
    import tensorrt as trt

    return trt.__version__


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def build_engine(onnx_path: Path, engine_path: Path, profile: dict, workspace_gb: float = 4.0) -> dict:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT could not parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    opt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        opt_profile.set_shape(name, tuple(profile["min"]), tuple(profile["opt"]), tuple(profile["max"]))
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    engine_path.write_bytes(bytes(serialized))
    return {"tensorrt_version": trt.__version__, "gpu": gpu_name(), "profile": profile, "strongly_typed": True}
