"""ONNX through ONNX Runtime: optimum-onnx export, the ORT transformer optimizer (`graph: optimized`),
INT8 dynamic and calibrated static (QDQ), FP16 (CUDA). The recipes are recipes.py beside this file."""

from __future__ import annotations

from pathlib import Path

from bench.backends.base import Format
from bench.spec.quantize import OPENVINO_RECIPES


class OnnxFormat(Format):
    name = "onnx"
    precisions = frozenset({"fp32", "fp16", "int8-dynamic", "int8-static"})
    batch_dependent_precisions = frozenset({"int8-dynamic"})  # ORT DynamicQuantizeLinear: one scale per tensor
    has_graph_variants = True
    search_cost = {"fp32": 1, "int8-dynamic": 3, "fp16": 4, "int8-static": 5}
    node_quantized_precisions = frozenset({"int8-dynamic", "int8-static"})
    weight_suffixes = (".onnx", ".onnx_data")

    def calibrations(self, precision, quantize):
        return list(quantize.calibrators) if precision == "int8-static" else [""]

    def quant_recipes(self, precision, names):
        if precision not in ("int8-dynamic", "int8-static"):
            return [""]
        # OpenVINO's recipe names are NNCF's, not ORT recipes: ignored here, as ORT's are there.
        return list(dict.fromkeys("" if n == "default" else n for n in names if n not in OPENVINO_RECIPES)) or [""]

    def skip_reason(self, variant, measure):
        from bench.backends.probes import gpu_mismatches, ort_providers

        if not ort_providers():
            return "onnx: onnxruntime is not installed (pip install 'bench-bert[onnx]')"
        if variant.precision == "int8-static" and variant.graph == "optimized":
            return ("onnx int8-static on the optimized graph: ORT's static quantizer leaves the fused Attention in "
                    "float and its histogram calibrators fail on it; static QDQ uses the plain graph")
        if variant.device != "cuda":
            return None
        if mismatches := gpu_mismatches().get("onnxruntime"):
            return "; ".join(mismatches)  # names what to uninstall, rather than the symptom below
        if "CUDAExecutionProvider" not in ort_providers():
            return "cuda: onnxruntime has no CUDAExecutionProvider (pip install 'bench-bert[gpu]')"
        if measure.ort_gpu_provider == "tensorrt" and "TensorrtExecutionProvider" not in ort_providers():
            return "cuda: onnxruntime has no TensorrtExecutionProvider (measure.ort_gpu_provider: tensorrt)"
        if variant.precision.startswith("int8"):
            return ("onnx int8 on the CUDA provider: ORT has no CUDA kernels for these INT8 ops and silently "
                    "falls back to CPU; use format tensorrt, precision int8")
        return None

    def build(self, compressor, variant, model):
        from bench.backends.onnx import recipes

        graph = variant.graph
        build = {
            "fp32": lambda: recipes.base_graph(compressor, model, graph),
            "int8-dynamic": lambda: recipes.int8_dynamic(compressor, model, graph, variant.quant),
            "int8-static": lambda: recipes.int8_static(compressor, model, graph, variant.calibration,
                                                       recipe=variant.quant),
            "fp16": lambda: recipes.fp16(compressor, model, graph),
        }
        return build[variant.precision]()

    def runtime(self, path: Path, device, threads, precision, gpu_provider):
        from bench.backends.onnx.runtime import OrtRuntime

        return OrtRuntime(Path(path) / "model.onnx", device, threads, gpu_provider)
