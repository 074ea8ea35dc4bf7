"""OpenVINO artifacts from a trained model, each a step in the artifact cache with parity against the FP32
PyTorch source (like every recipe, bench/build/compress.py):

    ir fp32         openvino.convert_model(the ONNX export) -> openvino_model.xml/.bin, FP32 weights
    ir bf16, fp16   the FP32 IR's files (hard links), parity-checked at that inference precision
    ir int8-static  nncf.quantize(the FP32 IR, train calibration examples, transformer preset)
    ir int8-static+accuracy-control   nncf.quantize_with_accuracy_control (accuracy_control.py)

Why from the ONNX export rather than optimum-intel's export (OVModelForSequenceClassification): the ONNX
recipe's graph is already parity-checked and cached, so the IR is that graph and nothing else (the
comparison with ONNX Runtime is then runtime against runtime on one graph); optimum-intel would trace the
PyTorch model a second time through its own export path and patches, with its own version pins, and adds a
heavy dependency the conversion does not need. An ONNX source (`teacher.source: model.onnx`) converts the
same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.backends.onnx import recipes as onnx_recipes

if TYPE_CHECKING:
    from bench.build.compress import Compressor
    from bench.store.artifacts import Artifact

MODEL_XML = "openvino_model.xml"
# NNCF's post-training quantization settings in the INT8 artifact's key (NNCF defaults otherwise).
NNCF_MODEL_TYPE = "transformer"
CALIBRATION_BATCH = 1  # one example per calibration item, unpadded: the shapes SingleStream runs


def versions() -> dict:
    from bench.store.envinfo import library_versions

    # Not in the Compressor's CONVERTERS: adding them there would change every existing artifact's key.
    return library_versions(["openvino", "nncf"])


def fp32(c: Compressor, model: Artifact) -> Artifact:
    """The ONNX export (or ONNX source) converted to IR, weights kept FP32 on disk."""
    from bench.backends.onnx.export import copy_sidecars

    graph = onnx_recipes.export(c, model)
    atol = c.suite.measure.parity_atol
    kind = f"openvino-fp32-{model.kind}"

    def build(out: Path) -> dict:
        import openvino as ov

        copy_sidecars(graph.path, out)
        ov_model = ov.convert_model(str(graph.path / "model.onnx"))
        # save_model compresses weights to FP16 by default: an fp32 artifact keeps FP32 weights.
        ov.save_model(ov_model, str(out / MODEL_XML), compress_to_fp16=False)
        return {"openvino_version": ov.get_version(), "compress_to_fp16": False,
                **c.parity(model, out, "openvino", kind, atol)}

    spec = {"converter": "openvino.convert_model(onnx)", "compress_to_fp16": False, "parity_atol": atol,
            "openvino_libs": versions(), **c.parity_spec()}
    return c.store.get_or_build(kind, spec, [graph], build)


def nncf_without_telemetry():
    """nncf, with its usage telemetry off for this process. NNCF sends events to Google Analytics unless a
    consent file in ~/intel says no (it creates its telemetry with the opt-in dialog disabled); bench sends
    nothing anywhere and writes nothing to the user's home, so it withdraws the consent in memory."""
    import nncf

    impl = getattr(getattr(getattr(nncf, "telemetry", None), "wrapper", None), "telemetry", None)
    impl = getattr(impl, "_impl", None)
    if impl is not None and hasattr(impl, "consent"):
        impl.consent = False
    return nncf


def encode_each(c: Compressor, texts, tokenizer, input_names: list[str]) -> list[dict]:
    """One tokenised example per item, unpadded (the shapes SingleStream runs), as the IR's int64 inputs."""
    import numpy as np

    items = []
    for i in range(len(texts)):
        enc = texts.take([i]).encode(tokenizer, truncation=True, max_length=c.max_length, return_tensors="np")
        items.append({k: np.ascontiguousarray(enc[k], dtype=np.int64) for k in input_names})
    return items


def calibration_inputs(c: Compressor, tokenizer, input_names: list[str]) -> list[dict]:
    """The compressor's calibration examples (the train examples static ONNX INT8 calibrates on)."""
    return encode_each(c, c.calibration_texts(), tokenizer, input_names)


def half(c: Compressor, model: Artifact, precision: str) -> Artifact:
    """bf16 or fp16: the FP32 IR run at that inference precision. The files are the FP32 IR's (hard links
    where the file system allows); the artifact of its own holds the parity measured at that precision."""
    from bench.backends.openvino.runtime import INFERENCE_PRECISION

    base = fp32(c, model)
    kind = f"openvino-{precision}-{model.kind}"

    def build(out: Path) -> dict:
        import os
        import shutil

        import openvino as ov

        from bench.store.artifacts import MANIFEST

        for f in base.path.iterdir():
            if f.is_file() and f.name != MANIFEST:
                try:
                    os.link(f, out / f.name)
                except OSError:
                    shutil.copy2(f, out / f.name)
        return {"openvino_version": ov.get_version(), "inference_precision": INFERENCE_PRECISION[precision],
                **c.parity(model, out, "openvino", kind, None, precision=precision)}

    spec = {"inference_precision": INFERENCE_PRECISION[precision], "openvino_libs": versions(), **c.parity_spec()}
    return c.store.get_or_build(kind, spec, [base], build)


def int8_static(c: Compressor, model: Artifact) -> Artifact:
    """NNCF post-training quantization of the FP32 IR with the transformer preset."""
    from bench.backends.onnx.export import copy_sidecars
    from bench.backends.onnx.quantize import calibration_hash

    base = fp32(c, model)
    texts = c.calibration_texts()
    kind = f"openvino-int8-static-{model.kind}"

    def build(out: Path) -> dict:
        import openvino as ov
        from transformers import AutoTokenizer

        nncf = nncf_without_telemetry()

        copy_sidecars(base.path, out)
        ov_model = ov.Core().read_model(str(base.path / MODEL_XML))
        names = [i.get_any_name() for i in ov_model.inputs]
        items = calibration_inputs(c, AutoTokenizer.from_pretrained(base.path), names)
        quantized = nncf.quantize(ov_model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(items))
        ov.save_model(quantized, str(out / MODEL_XML), compress_to_fp16=False)
        return {"openvino_version": ov.get_version(), "nncf_version": nncf.__version__,
                "calibration_hash": calibration_hash(texts), "calibration_samples": len(items),
                "quant_format": "nncf-fakequantize", **int8_facts(out / MODEL_XML),
                **c.parity(model, out, "openvino", kind, None)}

    spec = {"quantizer": "nncf.quantize", "model_type": NNCF_MODEL_TYPE, "calibration": calibration_hash(texts),
            "calibration_samples": len(texts), "calibration_batch": CALIBRATION_BATCH,
            "max_length": c.max_length, "openvino_libs": versions(), **c.parity_spec()}
    return c.store.get_or_build(kind, spec, [base], build)


def _fed_by_fake_quantize(op) -> bool:
    """An input of `op` comes through a FakeQuantize (or FakeConvert): NNCF quantized it."""
    return any(i.get_source_output().get_node().get_type_name() in ("FakeQuantize", "FakeConvert")
               for i in op.inputs())


def _ops(xml: Path) -> list:
    import openvino as ov

    return ov.Core().read_model(str(xml)).get_ordered_ops()


def quantized_ops(xml: Path) -> set[str]:
    """Names of the ops NNCF quantized (an input through a FakeQuantize), from the saved IR."""
    return {op.get_friendly_name() for op in _ops(xml)
            if op.get_type_name() not in ("FakeQuantize", "FakeConvert") and _fed_by_fake_quantize(op)}


def int8_facts(xml: Path) -> dict:
    """MatMuls fed by a FakeQuantize (quantized) or not, read from the saved IR."""
    matmuls = [op for op in _ops(xml) if op.get_type_name() == "MatMul"]
    q = sum(_fed_by_fake_quantize(op) for op in matmuls)
    return {"int8_matmul_ops": q, "fp_matmul_ops": len(matmuls) - q,
            "int8_matmul_coverage_pct": round(100 * q / len(matmuls), 1) if matmuls else None}
