"""OpenVINO (CPU): FP32 IR converted from the parity-checked ONNX export; bf16/fp16 inference of that IR where
the CPU has the instructions; INT8 by NNCF post-training quantization calibrated on the train examples static
ONNX INT8 uses, or by NNCF's accuracy control (`quant: accuracy-control`). The recipes are recipes.py beside
this file, the adapter runtime.py."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from bench.backends.base import Format
from bench.spec.quantize import OPENVINO_RECIPES

MISSING = "openvino: the package is not installed (pip install 'bench-bert[openvino]')"
# The CPU plugin's OPTIMIZATION_CAPABILITIES entry each half precision needs (else it would run f32).
HALF_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}


def openvino_importable() -> bool:
    return importlib.util.find_spec("openvino") is not None


@cache
def cpu_capabilities() -> frozenset[str]:
    import openvino as ov

    return frozenset(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoFormat(Format):
    name = "openvino"
    precisions = frozenset({"fp32", "bf16", "fp16", "int8-static"})  # int8 through NNCF
    devices = frozenset({"cpu"})
    weight_suffixes = (".xml", ".bin")  # IR topology and weights
    cpu_half_precisions = frozenset(HALF_CAPABILITY)  # where the CPU has the instructions (skip_reason)
    # bench tune: an IR conversion costs about an ONNX export; NNCF's quantization about static ONNX INT8's
    # (accuracy control, `quant:`, after the plain one: cheap_first sorts recipes last).
    search_cost = {"fp32": 2, "bf16": 2, "fp16": 2, "int8-static": 6}

    def calibrations(self, precision, quantize):
        # NNCF picks its own range estimators (the transformer preset), not ORT's calibrators: one variant.
        return [""]

    def quant_recipes(self, precision, names):
        if precision != "int8-static":
            return [""]
        picked = ["" if n == "default" else n for n in names if n == "default" or n in OPENVINO_RECIPES]
        return list(dict.fromkeys(picked)) or [""]  # ORT's recipe names are ignored here

    def skip_reason(self, variant, measure):
        if not openvino_importable():
            return MISSING
        if variant.precision == "int8-static" and importlib.util.find_spec("nncf") is None:
            return "openvino int8-static: nncf is not installed (pip install 'bench-bert[openvino]')"
        needed = HALF_CAPABILITY.get(variant.precision)
        if needed and needed not in cpu_capabilities():
            return (f"openvino {variant.precision}: this CPU's OpenVINO plugin lists no {needed} in "
                    f"OPTIMIZATION_CAPABILITIES ({', '.join(sorted(cpu_capabilities()))}); it would run f32")
        return None

    def build(self, compressor, variant, model):
        return ir(compressor, model, variant.precision, variant.quant)

    def runtime(self, path: Path, device, threads, precision, gpu_provider):
        from bench.backends.openvino.runtime import OpenVinoRuntime

        return OpenVinoRuntime(Path(path) / "openvino_model.xml", threads, precision)


def ir(compressor, model, precision: str, quant: str = ""):
    """The artifact of a precision and recipe (recipes.py; accuracy_control.py for `quant: accuracy-control`)."""
    from bench.backends.openvino import recipes

    if precision == "int8-static" and quant == "accuracy-control":
        from bench.backends.openvino.accuracy_control import int8_accuracy_control

        return int8_accuracy_control(compressor, model)
    if precision in HALF_CAPABILITY:
        return recipes.half(compressor, model, precision)
    return {"fp32": recipes.fp32, "int8-static": recipes.int8_static}[precision](compressor, model)
