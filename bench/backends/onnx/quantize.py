"""ONNX precision conversions: INT8 dynamic and static (QDQ, calibrated on train examples) with
onnxruntime.quantization, and FP16 with onnxruntime's float16 converter."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx

log = logging.getLogger(__name__)


def cpu_has_vnni() -> bool:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def resolve_reduce_range(setting) -> tuple[bool, str]:
    """ORT documents u8s8 saturation (VPMADDUBSW) on AVX2/AVX-512 CPUs without VNNI; 7-bit weights
    (reduce_range) avoid it. With VNNI the full range is exact and slightly more accurate."""
    if setting != "auto":
        return bool(setting), "set in the suite"
    vnni = cpu_has_vnni()
    return (not vnni), ("auto: CPU has VNNI" if vnni else "auto: CPU lacks VNNI")


def resolve_dynamic_scheme(weight_type, reduce_range) -> tuple[str, bool, str]:
    """(weight type `s8`|`u8`, reduce_range, why) for dynamic INT8, whose activations are always U8.
    Without VNNI, ORT's u8s8 kernels multiply with VPMADDUBSW, whose 16-bit sums saturate: S8 weights
    then need 7-bit range (reduce_range) and lose accuracy (-2.6 points on SST-2 on an AVX2 box of this
    class), while u8u8 kernels do not saturate at full range (within 0.5 points there). With VNNI, u8s8
    is exact: S8 weights, full range."""
    vnni = cpu_has_vnni()
    chosen = weight_type if weight_type != "auto" else ("s8" if vnni else "u8")
    rr = bool(reduce_range) if reduce_range != "auto" else (chosen == "s8" and not vnni)
    if weight_type == reduce_range == "auto":
        why = ("auto: CPU has VNNI: S8 weights, full range" if vnni else
               "auto: CPU lacks VNNI: U8 weights (u8u8 kernels do not saturate), full range")
    else:
        cpu = "has" if vnni else "lacks"
        why = f"weight_type {weight_type}, reduce_range {reduce_range} in the suite (CPU {cpu} VNNI)"
    return chosen, rr, why


INT8_MATMUL_OPS = ("MatMulInteger", "QAttention", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")


def _quant_info(path: Path) -> dict:
    """How much of the matmul work runs in INT8: integer ops, plus (QDQ graphs) float MatMul/Attention
    nodes fed by DequantizeLinear, which ORT fuses into integer kernels at session load."""
    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    int8 = fp = 0
    for node in graph.node:
        if node.op_type in INT8_MATMUL_OPS:
            int8 += 1
        elif node.op_type in ("MatMul", "Gemm", "Attention"):
            if any(producer.get(name) == "DequantizeLinear" for name in node.input):
                int8 += 1
            else:
                fp += 1
    return {"int8_matmul_ops": int8, "fp_matmul_ops": fp,
            "int8_matmul_coverage_pct": round(100 * int8 / (int8 + fp), 1) if int8 + fp else 0.0}


@contextmanager
def _private_view(src: Path):
    """`src` as seen from a temporary folder of links to its folder's files. ORT's quantizer writes a
    shape-inferred copy beside its input (`<name>-inferred.onnx`) and deletes it: in the cache folder itself,
    two quantizations of one base graph at once (a cluster's tasks, two runs sharing a cache) would delete
    each other's, and a read-only cache could not be quantized from at all."""
    with tempfile.TemporaryDirectory(prefix="bench-quant-src-") as tmp:
        for f in src.parent.iterdir():
            (Path(tmp) / f.name).symlink_to(f.resolve())
        yield Path(tmp) / src.name


def quantize_int8_dynamic(src: Path, out: Path, per_channel: bool, reduce_range: bool, weight_type: str = "s8",
                          op_types=None, nodes_to_exclude=(), nodes_to_quantize=None,
                          where: str = "quantize.nodes_to_exclude") -> dict:
    """op_types None: ORT's default list; nodes_to_quantize (the sensitivity pass): only those nodes. `where`
    names the setting the node names came from, for the error when the graph lacks one."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _check_nodes(src, [*nodes_to_exclude, *(nodes_to_quantize or [])], where)
    # DefaultTensorType: the optimizer's fused ops (Attention, SkipLayerNormalization) have outputs
    # shape inference cannot type; without it the quantizer fails on fused graphs.
    with _private_view(src) as view:
        quantize_dynamic(view, out, weight_type=QuantType.QInt8 if weight_type == "s8" else QuantType.QUInt8,
                         per_channel=per_channel, reduce_range=reduce_range, op_types_to_quantize=op_types,
                         nodes_to_exclude=list(nodes_to_exclude), nodes_to_quantize=nodes_to_quantize,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return {"per_channel": per_channel, "reduce_range": reduce_range, "weight_type": weight_type,
            **_recipe_info("qoperator", op_types, nodes_to_exclude), **_quant_info(out)}


def _check_nodes(src: Path, names, where: str) -> None:
    """A node name the graph lacks would be ignored by ORT's quantizer without a word: refuse it."""
    if not names:
        return
    from bench.common.errors import BenchError

    present = {n.name for n in onnx.load(str(src), load_external_data=False).graph.node}
    missing = sorted(set(names) - present)
    if missing:
        raise BenchError(f"{where}: {src.parent.name}/{src.name} has no node "
                         f"{', '.join(map(repr, missing[:3]))}{' ...' if len(missing) > 3 else ''}")


def _recipe_info(quant_format: str, op_types, nodes_to_exclude) -> dict:
    return {"quant_format": quant_format, "op_types": list(op_types) if op_types else None,
            "nodes_excluded": sorted(nodes_to_exclude)}


# Matmul-like ops only: the attention-mask path (an Add of -3.4e38) breaks the histogram
# calibrators, and the pooler/classifier Gemms are too small to matter (and lose their calibrated
# input scale in fused graphs).
STATIC_OP_TYPES = ("MatMul", "Attention")


class SentenceReader:
    """CalibrationDataReader over tokenised examples (Texts: one sentence, or a pair as one sequence with
    token_type_ids), all padded to the longest of them: the histogram calibrators (entropy, percentile)
    stack every batch, so every batch has one shape. Batches of up to CALIBRATION_BATCH examples (the
    largest size that divides the count): the calibrators see the same values as one example per call
    (min/max and histograms are over all of them), in a tenth of the session calls."""

    def __init__(self, tokenizer, texts, input_names: list[str], max_length: int, batch: int | None = None):
        from bench.tasks.table import as_texts

        texts = as_texts(texts)
        longest = max(len(ids) for ids in texts.encode(tokenizer, truncation=True, max_length=max_length)["input_ids"])
        enc = texts.encode(tokenizer, truncation=True, max_length=longest, padding="max_length", return_tensors="np")
        n = len(texts)
        batch = batch or next(b for b in range(min(CALIBRATION_BATCH, n), 0, -1) if n % b == 0)
        self._items = [{k: enc[k][i : i + batch].astype(np.int64) for k in input_names} for i in range(0, n, batch)]
        self._iter = iter(self._items)

    def get_next(self):
        return next(self._iter, None)

    def rewind(self):
        self._iter = iter(self._items)


CALIBRATION_BATCH = 10
# ORT's entropy calibrator through quantize_static histograms into 128 bins and searches thresholds of
# 128 quantized bins: one candidate, the full range, so "entropy" wrote the same graph as minmax (same
# file, byte for byte, on sst2-cpu). bench runs that calibrator itself with more bins (docs/numbers.md).
ENTROPY_QUANTIZED_BINS = 128


def _entropy_ranges(src: Path, reader, op_types, bins: int, cache: Path) -> None:
    """KL-divergence (entropy) ranges over `bins` histogram bins, written where quantize_static reads its
    calibration cache (ORT's create_calibrator / save_tensors_data: its own calibrator, its own format)."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    calibrator = create_calibrator(src, list(op_types), augmented_model_path=str(cache.parent / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Entropy,
                                   extra_options={"num_bins": bins, "num_quantized_bins": ENTROPY_QUANTIZED_BINS})
    calibrator.collect_data(reader)
    save_tensors_data(calibrator.compute_data(), cache)
    reader.rewind()


def calibration_hash(texts) -> str:
    """sha256 of the calibration examples: one per line, a pair's sentences joined by a tab (a list of
    sentences, or single-sentence Texts, hashes as it always has)."""
    from bench.tasks.table import as_texts

    texts = as_texts(texts)
    lines = texts.first if texts.second is None else [f"{a}\t{b}" for a, b in zip(texts.first, texts.second,
                                                                                  strict=True)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def quantize_int8_static(src: Path, out: Path, tokenizer, texts, max_length: int, method: str,
                         per_channel: bool, reduce_range: bool, percentile: float, symmetric: bool = False,
                         activation_type: str = "u8", quant_format: str = "qdq", op_types=STATIC_OP_TYPES,
                         nodes_to_exclude=(), nodes_to_quantize=None, where: str = "quantize.nodes_to_exclude",
                         entropy_bins: int = 512) -> dict:
    """QDQ INT8 calibrated on `texts` (Texts, or a list of sentences), S8 weights and `activation_type`
    activations (u8: what ORT's CPU provider fuses into QLinearMatMul). symmetric=True: S8 activations and
    weights with zero-point 0, what TensorRT's explicit quantization requires. nodes_to_quantize (the
    sensitivity pass): only those nodes."""
    _check_nodes(src, [*nodes_to_exclude, *(nodes_to_quantize or [])], where)
    if symmetric:
        activation_type = "s8"
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    names = [i.name for i in ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()]
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if symmetric:
        extra |= {"ActivationSymmetric": True, "WeightSymmetric": True}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    if quant_format == "qdq" and (nodes_to_exclude or nodes_to_quantize):
        # One Q/DQ pair per quantized reader: with a shared pair ORT reroutes every reader of a quantized
        # tensor through it, so a node kept in float (the query MatMul beside quantized key/value ones)
        # would still read quantized-then-dequantized input.
        extra["DedicatedQDQPair"] = True
    with tempfile.TemporaryDirectory(prefix="bench-calib-") as tmp, _private_view(src) as view:
        # The calibrator writes an augmented copy of the model next to its cache; keep it out of `out`.
        reader, cache = SentenceReader(tokenizer, texts, names, max_length), Path(tmp) / "calib.cache"
        if method == "entropy":
            _entropy_ranges(view, reader, op_types, entropy_bins, cache)
        quantize_static(view, out, reader,
                        op_types_to_quantize=list(op_types), nodes_to_exclude=list(nodes_to_exclude),
                        nodes_to_quantize=nodes_to_quantize,
                        quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
                        activation_type=QuantType.QInt8 if activation_type == "s8" else QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        per_channel=per_channel, reduce_range=reduce_range, calibrate_method=methods[method],
                        extra_options=extra, calibration_cache_path=cache)
    return {"calibrator": method, "calibration_samples": len(texts),
            **({"entropy_bins": entropy_bins} if method == "entropy" else {}),
            "calibration_hash": calibration_hash(texts), "per_channel": per_channel,
            "reduce_range": reduce_range, "symmetric": symmetric, "activation_type": activation_type,
            **_recipe_info(quant_format, None if tuple(op_types) == STATIC_OP_TYPES else op_types, nodes_to_exclude),
            **_quant_info(out)}


def nonzero_zero_points(path: Path) -> list[str]:
    """Names of the Q/DQ zero-point initialisers that are not all zero (TensorRT refuses those)."""
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name: t for t in graph.initializer}
    names = {n.input[2] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2}
    return sorted(n for n in names if n in inits and numpy_helper.to_array(inits[n]).any())


FP16_CONVERTER = "ort-onnxmodel"  # in the fp16 artifact's key: graphs from the older converter are not reused


def convert_fp16(src: Path, out: Path, min_opset: int | None = None) -> dict:
    """FP16 through ORT's OnnxModel, the route of its optimizer's --float16: symbolic shape inference knows
    the fused contrib ops (Attention, SkipLayerNormalization) that ONNX shape inference leaves untyped, on
    the plain and the optimized graph alike. keep_io_types: int64 inputs and float32 logits, so callers need
    not change. min_opset 19: Q/DQ nodes may then carry fp16 scales (QuantizeLinear-13 takes float only)."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if min_opset is not None and opset is not None and opset < min_opset:
        from onnx import version_converter

        model, opset = version_converter.convert_version(model, min_opset), min_opset
    wrapped = OnnxModel(model)
    wrapped.convert_float_to_float16(keep_io_types=True)
    wrapped.save_model_to_file(str(out))
    return {"keep_io_types": True, "fp16_converter": FP16_CONVERTER, "opset": opset}


def float32_ops(path: Path) -> list[str]:
    """Names of the nodes that compute in float32 (an output typed float32 after shape inference); Casts
    excluded: keep_io_types' casts at the graph's edges are float32 on purpose."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types |= {t.name: t.data_type for t in graph.initializer}
    return [n.name or n.op_type for n in graph.node if n.op_type != "Cast"
            and any(types.get(o) == onnx.TensorProto.FLOAT for o in n.output)]
