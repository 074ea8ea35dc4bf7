"""TensorRT engines from the plain ONNX graph: fp32 from the export, fp16 from the FP16 graph, int8 from a
symmetric calibrated QDQ graph (bench/backends/onnx/recipes.py makes each), with the optimisation profile
every scenario needs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.backends.onnx import recipes as onnx_recipes

if TYPE_CHECKING:
    from bench.build.compress import Compressor
    from bench.store.artifacts import Artifact


def engine_profile(c: Compressor) -> dict:
    """[batch, sequence] shapes the engine must accept: parity batches (16), the accuracy pass, the
    grid and the Offline batches, up to the suite's max_length (or the grid's longest cell)."""
    from bench.backends.tensorrt.engine import profile_for

    m, grid = c.suite.measure, c.suite.measure.grid
    return profile_for(max(m.eval_batch_size, 16, *(grid.batch_sizes if grid else [1]),
                           *(m.offline.batch_sizes if m.offline else [1])),
                       max(c.max_length, *(grid.seq_lens if grid else [1])))


def engine(c: Compressor, model: Artifact, precision: str) -> Artifact:
    from bench.backends.onnx.export import copy_sidecars
    from bench.backends.tensorrt.engine import build_engine, gpu_name, tensorrt_version

    if precision == "int8":  # TensorRT's explicit quantization needs zero-point 0: a symmetric QDQ graph
        graph = onnx_recipes.int8_static(c, model, "plain", c.suite.quantize.calibrators[0], symmetric=True)
    elif precision == "fp16":
        graph = onnx_recipes.fp16(c, model, "plain")
    else:
        graph = onnx_recipes.export(c, model)
    profile = engine_profile(c)
    spec = {"tensorrt": tensorrt_version(), "gpu": gpu_name(), "profile": profile, **c.parity_spec()}

    def build(out: Path) -> dict:
        copy_sidecars(graph.path, out)
        info = build_engine(graph.path / "model.onnx", out / "model.engine", profile)
        return {**info, **c.parity(model, out, "tensorrt", f"tensorrt-{precision}-{model.kind}", None, "cuda")}

    return c.store.get_or_build(f"tensorrt-{precision}-{model.kind}", spec, [graph], build)
