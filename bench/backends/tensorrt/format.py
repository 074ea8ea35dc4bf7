"""TensorRT engines (CUDA only) from the fp32, fp16 or static QDQ int8 ONNX graph."""

from __future__ import annotations

from pathlib import Path

from bench.backends.base import Format


class TensorRTFormat(Format):
    name = "tensorrt"
    precisions = frozenset({"fp32", "fp16", "int8"})
    devices = frozenset({"cuda"})
    weight_suffixes = (".engine", ".plan")

    def calibrations(self, precision, quantize):
        # An INT8 engine is built from a calibrated QDQ graph: the suite's first calibrator.
        return [quantize.calibrators[0]] if precision == "int8" else [""]

    def skip_reason(self, variant, measure):
        from bench.backends.probes import gpu_mismatches, tensorrt_importable

        if not tensorrt_importable():
            return "tensorrt: the Python package is not importable (pip install 'bench-bert[gpu]' on an NVIDIA machine)"
        if mismatches := gpu_mismatches().get("tensorrt"):
            return "; ".join(mismatches)
        return None

    def build(self, compressor, variant, model):
        from bench.backends.tensorrt import recipes

        return recipes.engine(compressor, model, variant.precision)

    def runtime(self, path: Path, device, threads, precision, gpu_provider):
        from bench.backends.tensorrt.runtime import TensorRTRuntime

        return TensorRTRuntime(Path(path) / "model.engine")
