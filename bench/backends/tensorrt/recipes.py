"""TensorRT engines from the plain ONNX graph: fp32 from the export, fp16 from the FP16 graph, int8 from a
symmetric calibrated QDQ graph converted to FP16 (bench/backends/onnx/recipes.py makes the first three),
with the optimisation profile every scenario and bench serve need."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.backends.onnx import recipes as onnx_recipes

if TYPE_CHECKING:
    from bench.build.compress import Compressor
    from bench.store.artifacts import Artifact


def engine_profile(c: Compressor) -> dict:
    """[batch, sequence] shapes the engine must accept: parity batches (16), the accuracy pass, the
    grid and the Offline batches, the Server scenario's batching, and bench serve's largest request,
    up to the suite's max_length (or the grid's longest cell)."""
    from bench.backends.tensorrt.engine import profile_for
    from bench.spec.measure import SERVE_MAX_TEXTS

    m, grid = c.suite.measure, c.suite.measure.grid
    server = [b.max_batch for b in m.server.batching] if m.server else [1]
    return profile_for(max(m.eval_batch_size, 16, SERVE_MAX_TEXTS, *(grid.batch_sizes if grid else [1]),
                           *(m.offline.batch_sizes if m.offline else [1]), *server),
                       max(c.max_length, *(grid.seq_lens if grid else [1])))


def int8_source(c: Compressor, model: Artifact) -> Artifact:
    """The INT8 engine's source: the symmetric QDQ graph (zero-point 0, what explicit quantization needs)
    converted to FP16 at opset 19 (fp16 Q/DQ scales). A strongly typed build runs each layer at its graph
    type: from the FP32 QDQ graph everything but the quantized MatMuls would run FP32."""
    from bench.backends.onnx.quantize import FP16_CONVERTER, convert_fp16, float32_ops

    calibrator = c.suite.quantize.calibrators[0]
    qdq = onnx_recipes.int8_static(c, model, "plain", calibrator, symmetric=True)

    def convert(src: Path, out: Path) -> dict:
        info = convert_fp16(src, out, min_opset=19)
        return {**info, "float32_ops": float32_ops(out)}

    spec = {"keep_io_types": True, "converter": FP16_CONVERTER, "opset": 19}
    # Parity on ORT's CPU provider: it runs the graph (fp32 kernels between casts), and a CPU build can check it.
    return onnx_recipes.derived(c, f"onnx-int8-static-{calibrator}-symmetric-fp16", spec, qdq, model, convert)


def engine(c: Compressor, model: Artifact, precision: str) -> Artifact:
    from bench.backends.onnx.export import copy_sidecars
    from bench.backends.tensorrt.engine import build_engine, gpu_name, tensorrt_version

    if precision == "int8":
        graph = int8_source(c, model)
    elif precision == "fp16":
        graph = onnx_recipes.fp16(c, model, "plain")
    else:
        graph = onnx_recipes.export(c, model)
    profile, tf32 = engine_profile(c), precision != "fp32"  # fp32 means fp32: no TF32 matmuls
    spec = {"tensorrt": tensorrt_version(), "gpu": gpu_name(), "profile": profile, "tf32": tf32, **c.parity_spec()}

    def build(out: Path) -> dict:
        copy_sidecars(graph.path, out)
        info = build_engine(graph.path / "model.onnx", out / "model.engine", profile, tf32)
        return {**info, **c.parity(model, out, "tensorrt", f"tensorrt-{precision}-{model.kind}", None, "cuda")}

    return c.store.get_or_build(f"tensorrt-{precision}-{model.kind}", spec, [graph], build)
