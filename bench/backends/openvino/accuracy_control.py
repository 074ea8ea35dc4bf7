"""OpenVINO INT8 with accuracy control (`quant: accuracy-control`): nncf.quantize_with_accuracy_control, the
closest peer of `bench tune`'s sensitivity pass.

NNCF quantizes the FP32 IR as the plain recipe does (same calibration examples, transformer preset), then
validates the FP32 and INT8 models on held-out train examples (never a calibration example, never an eval
one: the ones `bench tune` ranks nodes on), and while the drop of the task's primary metric exceeds
`quantize.accuracy_control.max_drop_pts` it ranks the quantized ops by how far each moves the outputs and
returns the costliest to float, one at a time. NNCF compiles both models at f32 to validate them.

The artifact records the ops it returned to float (quantized by the plain recipe, not here: the plain INT8
artifact is built first to compare against), and the metric on the validation examples before and after.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.backends.openvino import recipes
from bench.common.errors import BenchError
from bench.tasks.table import compute_metrics, predictions

if TYPE_CHECKING:
    from bench.build.compress import Compressor
    from bench.store.artifacts import Artifact


class Validator:
    """NNCF's validation_fn: the task's primary metric over (inputs, label) items, and each item's own score
    (1/0 for a right/wrong label, minus the absolute error for a regression), which NNCF ranks examples by
    (a primary metric of one example, Pearson or MCC, would be 0 for every one)."""

    def __init__(self, task):
        self.task = task

    def __call__(self, compiled, items) -> tuple[float, list[float]]:
        items = list(items)
        out = compiled.output(0)
        logits = np.concatenate([np.asarray(compiled(inputs)[out], dtype=np.float32) for inputs, _ in items])
        labels = [label for _, label in items]
        preds = predictions(self.task, logits)
        metric = compute_metrics(self.task, labels, preds)[self.task.primary_metric] if len(items) > 1 else 0.0
        each = (-np.abs(preds - np.asarray(labels, dtype=np.float64)) if self.task.is_regression
                else (preds == np.asarray(labels)).astype(np.float64))
        return float(metric), [float(x) for x in each]

    def score(self, model, items) -> float:
        """The metric of an IR (path or ov.Model) compiled at f32, as NNCF validates."""
        import openvino as ov

        compiled = ov.Core().compile_model(model if not isinstance(model, Path) else str(model), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})
        return self(compiled, items)[0]


def int8_accuracy_control(c: Compressor, model: Artifact) -> Artifact:
    from bench.backends.onnx.export import copy_sidecars
    from bench.backends.onnx.quantize import calibration_hash
    from bench.store.artifacts import canonical_hash

    ac = c.suite.quantize.accuracy_control
    texts = c.calibration_texts()
    n = ac.validation_samples
    held, labels = c.held_out_texts(n), c.held_out_labels(n)  # each a pass over the train split: once
    if len(held) < 2:  # NNCF needs a metric over a set; a small train split leaves nothing after calibration
        raise BenchError(f"quantize.accuracy_control.validation_samples: {len(held)} held-out train example(s) "
                         f"left after the {c.suite.quantize.calibration_samples} calibration ones; use more train "
                         "rows or fewer quantize.calibration_samples")
    base, plain = recipes.fp32(c, model), recipes.int8_static(c, model)
    kind = f"openvino-int8-accuracy-control-{model.kind}"

    def build(out: Path) -> dict:
        import openvino as ov
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters
        from transformers import AutoTokenizer

        nncf = recipes.nncf_without_telemetry()

        copy_sidecars(base.path, out)
        ov_model = ov.Core().read_model(str(base.path / recipes.MODEL_XML))
        names = [i.get_any_name() for i in ov_model.inputs]
        tok = AutoTokenizer.from_pretrained(base.path)
        calibration = recipes.calibration_inputs(c, tok, names)
        validation = list(zip(recipes.encode_each(c, held, tok, names), labels, strict=True))
        validate = Validator(c.data.task)
        restorer = AdvancedAccuracyRestorerParameters(
            ranking_subset_size=len(validation),  # rank the ops on every validation example
            **({"max_num_iterations": ac.max_iterations} if ac.max_iterations else {}))
        quantized = nncf.quantize_with_accuracy_control(
            ov_model, nncf.Dataset(calibration), nncf.Dataset(validation, lambda item: item[0]), validate,
            max_drop=ac.max_drop_pts / 100, drop_type=nncf.DropType.ABSOLUTE,
            model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration),
            advanced_accuracy_restorer_parameters=restorer)
        ov.save_model(quantized, str(out / recipes.MODEL_XML), compress_to_fp16=False)
        scores = {"fp32_score": validate.score(base.path / recipes.MODEL_XML, validation),
                  "int8_score_before": validate.score(plain.path / recipes.MODEL_XML, validation),
                  "int8_score": validate.score(quantized, validation)}
        reverted = sorted(recipes.quantized_ops(plain.path / recipes.MODEL_XML)
                          - recipes.quantized_ops(out / recipes.MODEL_XML))
        facts = {"max_drop_pts": ac.max_drop_pts, "validation_samples": len(validation),
                 "metric": c.data.task.primary_metric, **scores,
                 "drop_pts": round(100 * (scores["fp32_score"] - scores["int8_score"]), 3),
                 "reverted_ops": len(reverted)}
        return {"openvino_version": ov.get_version(), "nncf_version": nncf.__version__,
                "calibration_hash": calibration_hash(texts), "calibration_samples": len(calibration),
                "quant_format": "nncf-fakequantize", "nodes_excluded": reverted, "accuracy_control": facts,
                **recipes.int8_facts(out / recipes.MODEL_XML), **c.parity(model, out, "openvino", kind, None)}

    spec = {"quantizer": "nncf.quantize_with_accuracy_control", "model_type": recipes.NNCF_MODEL_TYPE,
            "calibration": calibration_hash(texts), "calibration_samples": len(texts),
            "calibration_batch": recipes.CALIBRATION_BATCH, "max_length": c.max_length,
            "validation": calibration_hash(held), "validation_labels": canonical_hash(labels)[:16],
            "max_drop_pts": ac.max_drop_pts, "drop_type": "absolute", "max_iterations": ac.max_iterations,
            "validation_fn": "primary metric, per-item correct/abs error", "ranking_subset": "all",
            "openvino_libs": recipes.versions(), **c.parity_spec()}
    return c.store.get_or_build(kind, spec, [base, plain], build)
