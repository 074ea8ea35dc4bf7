"""OpenVINO (CPU): FP32 IR converted from the parity-checked ONNX export, INT8 by NNCF post-training
quantization calibrated on the train examples static ONNX INT8 uses. The recipes are recipes.py beside
this file, the adapter runtime.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bench.backends.base import Format

MISSING = "openvino: the package is not installed (pip install 'bench-bert[openvino]')"


def openvino_importable() -> bool:
    return importlib.util.find_spec("openvino") is not None


class OpenVinoFormat(Format):
    name = "openvino"
    precisions = frozenset({"fp32", "int8-static"})  # int8 through NNCF post-training quantization
    devices = frozenset({"cpu"})
    weight_suffixes = (".xml", ".bin")  # IR topology and weights

    def calibrations(self, precision, quantize):
        # NNCF picks its own range estimators (the transformer preset), not ORT's calibrators: one variant.
        return [""]

    def skip_reason(self, variant, measure):
        if not openvino_importable():
            return MISSING
        if variant.precision == "int8-static" and importlib.util.find_spec("nncf") is None:
            return "openvino int8-static: nncf is not installed (pip install 'bench-bert[openvino]')"
        return None

    def build(self, compressor, variant, model):
        from bench.backends.openvino import recipes

        return recipes.ir(compressor, model, variant.precision)

    def runtime(self, path: Path, device, threads, precision, gpu_provider):
        from bench.backends.openvino.runtime import OpenVinoRuntime

        return OpenVinoRuntime(Path(path) / "openvino_model.xml", threads, precision)
