"""ONNX artifacts from a trained model, each a step in the artifact cache with parity against the FP32
PyTorch source (the recipe table is bench/build/compress.py's docstring):

    export          optimum-onnx export (an ONNX source is measured as it is)
    optimized       ORT transformer optimizer on the export        (`graph: optimized`)
    int8_dynamic    quantize_dynamic(base graph)
    int8_static     quantize_static QDQ(base graph, train calibration examples)
    fp16            float16 conversion(base graph)

`c` is the build's Compressor (bench.build.compress): the suite, data, store, parity set and calibration
examples every recipe shares.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.build.compress import Compressor
    from bench.store.artifacts import Artifact


def _where(recipe: str, nodes_to_quantize) -> str:
    """The setting node names come from, for the error when a graph lacks one."""
    if nodes_to_quantize:
        return "the sensitivity pass"
    return f"quantize.recipes.{recipe}.nodes_to_exclude" if recipe else "quantize.nodes_to_exclude"


def _recipe_spec(q, dynamic: bool, quant_format: str = "qdq") -> dict:
    """The recipe settings in an INT8 artifact's key, only where they differ from the defaults: graphs made
    with the defaults keep the cache keys they had before recipes existed."""
    spec = {}
    if q.nodes_to_exclude:
        spec["nodes_to_exclude"] = sorted(q.nodes_to_exclude)
    if dynamic and q.op_types:
        spec["op_types"] = list(q.op_types)
    if not dynamic and quant_format != "qdq":
        spec["quant_format"] = quant_format
    if not dynamic and quant_format == "qdq" and q.nodes_to_exclude:
        spec["qdq_pairs"] = "dedicated"  # how bench/backends/onnx/quantize.py writes QDQ graphs with exclusions
    return spec


def derived(c: Compressor, kind: str, spec: dict, base: Artifact, model: Artifact, convert, atol=None,
                  device: str = "cpu") -> Artifact:
    """An ONNX artifact made from `base` by convert(src_model, out_model) -> info, plus parity."""
    from bench.backends.onnx.export import copy_sidecars

    def build(out: Path) -> dict:
        copy_sidecars(base.path, out)
        info = convert(base.path / "model.onnx", out / "model.onnx") or {}
        return {**info, **c.parity(model, out, "onnx", f"{kind}-{model.kind}", atol, device)}

    return c.store.get_or_build(f"{kind}-{model.kind}", {**spec, **c.parity_spec()}, [base], build)


def export(c: Compressor, model: Artifact) -> Artifact:
    from bench.backends.onnx.export import export_onnx

    if model.info.get("format") == "onnx":
        return model  # an ONNX source (bench/tasks/onnx_source.py): measured as it is, never re-exported
    atol = c.suite.measure.parity_atol

    def build(out: Path) -> dict:
        export_onnx(model.path, out)
        return c.parity(model, out, "onnx", f"onnx-{model.kind}", atol)

    spec = {"opset": None, "parity_atol": atol, **c.parity_spec()}
    return c.store.get_or_build(f"onnx-{model.kind}", spec, [model], build)


def optimized(c: Compressor, model: Artifact) -> Artifact:
    from bench.backends.onnx.optimize import optimize_graph

    base = export(c, model)
    convert = lambda src, out: optimize_graph(src.parent, out.parent)  # noqa: E731
    return derived(c, "onnx-opt", {"optimizer": "ort-transformers", "opt_level": 0}, base, model,
                              convert, atol=c.suite.measure.parity_atol)


def base_graph(c: Compressor, model: Artifact, graph: str) -> Artifact:
    return optimized(c, model) if graph == "optimized" else export(c, model)


def int8_dynamic_recipe(c: Compressor, recipe: str = "") -> tuple[dict, Callable]:
    """(cache-key spec, convert(src, out, nodes_to_quantize=None) -> info) for dynamic INT8 with `recipe`;
    the sensitivity pass (bench/tune/node_ranking.py) converts with the same settings, one node at a time."""
    from bench.backends.onnx.quantize import quantize_int8_dynamic, resolve_dynamic_scheme

    q = c.suite.quantize.resolved(recipe)
    weight_type, reduce_range, why = resolve_dynamic_scheme(q.weight_type, q.reduce_range)
    spec = {"per_channel": q.per_channel, "reduce_range": reduce_range, **_recipe_spec(q, dynamic=True)}
    if weight_type != "s8":
        spec["weight_type"] = weight_type  # only when not the old default: S8 graphs keep their cache keys

    def convert(src, out, nodes_to_quantize=None):
        return {**quantize_int8_dynamic(src, out, q.per_channel, reduce_range, weight_type, q.op_types,
                                        q.nodes_to_exclude, nodes_to_quantize, _where(recipe, nodes_to_quantize)),
                "reduce_range_reason": why}

    return spec, convert


def int8_dynamic(c: Compressor, model: Artifact, graph: str, recipe: str = "") -> Artifact:
    spec, convert = int8_dynamic_recipe(c, recipe)
    return derived(c, "onnx-int8-dynamic", spec, base_graph(c, model, graph), model, convert)


def int8_static_recipe(c: Compressor, calibrator: str, symmetric: bool = False, recipe: str = ""
                       ) -> tuple[dict, Callable]:
    """(cache-key spec, convert(src, out, nodes_to_quantize=None) -> info) for calibrated static INT8."""
    from transformers import AutoTokenizer

    from bench.backends.onnx.quantize import (
        CALIBRATION_BATCH,
        STATIC_OP_TYPES,
        calibration_hash,
        quantize_int8_static,
        resolve_reduce_range,
    )

    q = c.suite.quantize.resolved(recipe)
    reduce_range, why = resolve_reduce_range(q.reduce_range) if not symmetric else (False, "symmetric QDQ")
    texts = c.calibration_texts()
    spec = {"calibrator": calibrator, "calibration": calibration_hash(texts), "per_channel": q.per_channel,
            "op_types": q.op_types or STATIC_OP_TYPES,
            **_recipe_spec(q, dynamic=False, quant_format="qdq" if symmetric else q.quant_format),
            "reduce_range": reduce_range, "percentile": q.percentile if calibrator == "percentile" else None,
            "calibration_batch": CALIBRATION_BATCH}
    if calibrator == "entropy":
        spec["entropy_bins"] = q.entropy_bins
    if symmetric:
        spec["symmetric"] = True  # only when set: asymmetric graphs keep their cache keys
    elif q.activation_type != "s8":
        spec["activation_type"] = q.activation_type  # S8-activation graphs keep their cache keys

    def convert(src, out, nodes_to_quantize=None):
        tokenizer = AutoTokenizer.from_pretrained(src.parent)
        info = quantize_int8_static(src, out, tokenizer, texts, c.max_length, calibrator, q.per_channel,
                                    reduce_range, q.percentile, symmetric, q.activation_type,
                                    "qdq" if symmetric else q.quant_format, q.op_types or STATIC_OP_TYPES,
                                    q.nodes_to_exclude, nodes_to_quantize, _where(recipe, nodes_to_quantize),
                                    q.entropy_bins)
        return {**info, "reduce_range_reason": why}

    return spec, convert


def int8_static(c: Compressor, model: Artifact, graph: str, calibrator: str, symmetric: bool = False,
                     recipe: str = "") -> Artifact:
    """Calibrated QDQ INT8; symmetric (zero-point 0 everywhere, no reduce_range) is the graph TensorRT
    builds its INT8 engine from."""
    spec, convert = int8_static_recipe(c, calibrator, symmetric, recipe)
    kind = f"onnx-int8-static-{calibrator}" + ("-symmetric" if symmetric else "")
    return derived(c, kind, spec, base_graph(c, model, graph), model, convert)


def fp16(c: Compressor, model: Artifact, graph: str) -> Artifact:
    from bench.backends.onnx.quantize import FP16_CONVERTER, convert_fp16

    # FP16 graphs are for GPUs (the CPU provider runs most fp16 ops as fp32 between Casts), so parity runs on CUDA.
    return derived(c, "onnx-fp16", {"keep_io_types": True, "converter": FP16_CONVERTER}, base_graph(c, model, graph),
                   model, convert_fp16, device="cuda")
