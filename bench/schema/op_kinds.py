"""An operator's kind, which is what explains a compression step (bench/child/op_profile.py lists
them): the op profile's rows carry it, and the report and `bench profile` sum time by it."""

from __future__ import annotations

KINDS = ("int8 matmul", "quantize/dequantize", "fused", "float matmul", "other")
_QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "aten::quantize_per_tensor",
        "aten::quantize_per_tensor_dynamic", "aten::dequantize", "aten::quantize_per_channel"}
_INT8 = {"QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QGemm", "QAttention",
         "QEmbedLayerNormalization", "QOrderedMatMul", "ConvInteger", "QLinearConv"}
_FUSED = {"Attention", "MultiHeadAttention", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
          "EmbedLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "QuickGelu", "FusedMatMul", "FusedGemm",
          "BiasSoftmax", "BiasAdd", "FusedConv", "GroupQueryAttention", "RotaryEmbedding"}
_FLOAT_MATMUL = {"MatMul", "Gemm", "aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::baddbmm"}


# OpenVINO's CPU plugin layers, named `<layer type> (<kernel precision>)` (bench/child/op_profile.py).
_OV_MATMUL = {"FullyConnected", "FullyConnectedQuantizedLegacy", "FullyConnectedQuantized", "MatMul", "Gemm"}
_OV_FUSED = {"Subgraph", "MHA", "ScaledDotProductAttention"}  # snippets (fused eltwise/attention), fused MHA
_INT_PRECISIONS = {"i8", "u8", "i4", "u4"}


def _openvino_kind(layer: str, precision: str) -> str:
    if layer in _OV_MATMUL:
        return "int8 matmul" if precision in _INT_PRECISIONS else "float matmul"
    if layer == "FakeQuantize":
        return "quantize/dequantize"
    return "fused" if layer in _OV_FUSED else "other"


def kind_of(op: str) -> str:
    if op.endswith(")") and " (" in op:
        return _openvino_kind(*op[:-1].split(" (", 1))
    if op in _QDQ:
        return "quantize/dequantize"
    if op in _INT8 or op.startswith(("QLinear", "quantized::")):
        return "int8 matmul"
    if op in _FUSED or op.startswith("aten::_scaled_dot_product"):  # PyTorch's fused attention kernels
        return "fused"
    if op in _FLOAT_MATMUL:
        return "float matmul"
    return "other"


def by_kind(ops: list[dict]) -> dict[str, float]:
    """ms per inference per kind (every kind present, 0 where none)."""
    out = dict.fromkeys(KINDS, 0.0)
    for o in ops:
        out[o["kind"]] += o["ms_per_inference"]
    return out
