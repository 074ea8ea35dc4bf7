"""Accuracy as deployed: a variant whose numerics depend on the batch (dynamic INT8 picks one activation scale
per tensor over the whole batch) is scored on batch-1 predictions, as SingleStream deploys it; the batched
(Offline-style) score stays beside it. Other variants keep their batched accuracy pass."""

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench import backends
from bench.child import worker
from bench.schema.child import ChildReport, ChildSpec

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sst2" / "dev.tsv"
SST2_TASK = {"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy", "f1"]}


@pytest.fixture(scope="module")
def dynamic_int8_artifact(tiny_onnx_artifact, tmp_path_factory) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = tmp_path_factory.mktemp("tiny-int8")
    for f in tiny_onnx_artifact.iterdir():
        if f.name != "model.onnx":
            shutil.copy(f, out / f.name)
    quantize_dynamic(tiny_onnx_artifact / "model.onnx", out / "model.onnx", weight_type=QuantType.QInt8)
    return out


def _spec(artifact: Path, precision: str) -> ChildSpec:
    lines = [line.split("\t") for line in FIXTURE.read_text().splitlines()[1:]]
    return ChildSpec(variant={"model": "student", "format": "onnx", "precision": precision, "device": "cpu",
                              "threads": 1},
                     artifact_dir=artifact, task=SST2_TASK,
                     eval_sets=[{"name": "validation", "first": [s for s, _ in lines],
                                 "labels": [int(y) for _, y in lines]}],
                     max_length=32, measure={"warmup": 1, "min_iterations": 3, "min_seconds": 0, "eval_batch_size": 16})


def _one_at_a_time(artifact: Path, sentences: list[str]) -> list[int]:
    """Independent of bench's runtime: plain ORT, one sentence per call."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(artifact / "tokenizer.json"), pad_token="[PAD]")
    sess = ort.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    out = []
    for s in sentences:
        enc = tok(s, truncation=True, max_length=32, return_tensors="np", return_token_type_ids=True)
        feeds = {i.name: enc[i.name].astype(np.int64) for i in sess.get_inputs()}
        out.append(int(sess.run(None, feeds)[0].argmax(-1)[0]))
    return out


def test_only_dynamic_int8_depends_on_the_batch():
    assert backends.get("onnx").batch_dependent("int8-dynamic") and backends.get("pytorch").batch_dependent("int8-dynamic")
    assert not any(backends.get("onnx").batch_dependent(p) for p in ("fp32", "int8-static", "fp16"))
    assert not backends.get("tensorrt").batch_dependent("int8")  # static scales: batch-independent


def test_dynamic_int8_is_scored_one_example_at_a_time(dynamic_int8_artifact):
    spec = _spec(dynamic_int8_artifact, "int8-dynamic")
    report = ChildReport.model_validate(worker.measure(spec))
    assert report.score_batch_size == 1 and report.batched_batch_size == 16
    sentences = spec.eval_sets[0].first
    assert report.eval_predictions[0] == _one_at_a_time(dynamic_int8_artifact, sentences)
    result = report.scored(spec)
    labels = np.asarray(spec.eval_sets[0].labels)
    assert result.score == pytest.approx(float(np.mean(np.asarray(report.eval_predictions[0]) == labels)))
    assert result.batched_score == pytest.approx(float(np.mean(np.asarray(report.batched_predictions) == labels)))
    agreement = float(np.mean(np.asarray(report.batched_predictions) == np.asarray(report.eval_predictions[0])))
    assert result.batched_label_agreement == pytest.approx(agreement)


def test_fp32_keeps_its_batched_accuracy_pass(tiny_onnx_artifact):
    report = ChildReport.model_validate(worker.measure(_spec(tiny_onnx_artifact, "fp32")))
    assert report.score_batch_size == 16 and report.batched_predictions is None
    result = report.scored(_spec(tiny_onnx_artifact, "fp32"))
    assert result.batched_score is None and result.score_batch_size == 16
