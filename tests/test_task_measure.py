"""Measurement for every task (bench/tasks/table.py): sentence pairs through the child's tokenizer, the
latency stream, the grid and Offline; each task's own metrics on every eval split; parity and
calibration on pairs; the child's spec carries the task and its eval splits."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from pydantic import ValidationError

from bench.launch.isolate import run_isolated
from bench.schema import Row
from bench.schema.child import ChildResult, ChildSpec
from bench.tasks.table import GLUE_TASKS, EvalSplit, Texts

WORDS = ("the film is warm and funny but the plot goes nowhere a man plays guitar on stage "
         "two dogs run across a field of snow while the jokes fall flat").split()
VARIANT = {"model": "student", "format": "onnx", "precision": "fp32", "device": "cpu", "threads": 1}
FAST = {"ort_gpu_provider": "cuda", "warmup": 1, "min_iterations": 5, "min_seconds": 0, "eval_batch_size": 4}


def _sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) + " ." for _ in range(n)]


def _pairs(n: int, seed: int) -> Texts:
    return Texts(_sentences(n, seed), _sentences(n, seed + 100))


@pytest.fixture(scope="module")
def pair_berts(tmp_path_factory):
    """Tiny random BERTs (token_type_ids inputs) with a 3-label head and a regression head: the
    PyTorch folder and its ONNX export."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig

    from bench.backends.onnx.export import export_onnx
    from bench.tasks.sources import tiny_tokenizer

    root = tmp_path_factory.mktemp("pair-berts")
    tok = tiny_tokenizer(_sentences(200, 0), 300)
    out = {}
    for name, head in (("nli", {"num_labels": 3}), ("sts", {"num_labels": 1, "problem_type": "regression"})):
        config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=128, **head)
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config)
        model.save_pretrained(root / name / "pt")
        tok.save_pretrained(root / name / "pt")
        (root / name / "onnx").mkdir()
        export_onnx(root / name / "pt", root / name / "onnx")
        tok.save_pretrained(root / name / "onnx")
        out[name] = root / name
    return out


def _reference_logits(onnx_dir, texts: Texts, max_length: int = 64) -> np.ndarray:
    """Logits one example at a time, through AutoTokenizer and a bare ONNX Runtime session."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(onnx_dir)
    sess = ort.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    rows = []
    for i in range(len(texts)):
        enc = tok(*texts.example(i), truncation=True, max_length=max_length, return_tensors="np")
        rows.append(sess.run(None, {k: enc[k].astype(np.int64) for k in names})[0][0])
    return np.array(rows)


def _eval_set(name: str, texts: Texts, labels) -> dict:
    return ChildSpec.eval_set_fields(EvalSplit(name, texts, list(labels)))


# ---------------------------------------------------------------- the child's tokenizer on pairs

@pytest.mark.parametrize("max_length", [10, 64])
def test_fast_tokenizer_encodes_pairs_as_autotokenizer(pair_berts, max_length):
    from transformers import AutoTokenizer

    from bench.backends.tokenizer import FastTokenizer

    path = pair_berts["nli"] / "onnx"
    texts = _pairs(12, 1)
    ours, theirs = FastTokenizer(path), AutoTokenizer.from_pretrained(path)
    a = texts.encode(ours, truncation=True, max_length=max_length, padding=True)
    b = texts.encode(theirs, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert np.array_equal(a[key], b[key]), key
    assert a["token_type_ids"].max() == 1  # the second segment
    padded = texts.encode(ours, truncation=True, max_length=16, padding="max_length")
    assert padded["input_ids"].shape == (12, 16)
    with pytest.raises(ValueError, match="text_pair"):
        ours(texts.first, texts.second[:3])


# ---------------------------------------------------------------- the child scores each task

def test_child_scores_a_three_label_pair_task_on_both_eval_splits(pair_berts, tmp_path):
    # MNLI-like: premise/hypothesis pairs, three labels, accuracy on matched (primary) and mismatched.
    onnx_dir = pair_berts["nli"] / "onnx"
    matched, mismatched = _pairs(30, 2), _pairs(20, 3)
    rng = np.random.default_rng(4)
    y_m, y_mm = rng.integers(0, 3, 30).tolist(), rng.integers(0, 3, 20).tolist()
    spec = {"variant": VARIANT, "artifact_dir": str(onnx_dir), "max_length": 64,
            "task": ChildSpec.task_fields(GLUE_TASKS["mnli"]),
            "eval_sets": [_eval_set("validation_matched", matched, y_m),
                          _eval_set("validation_mismatched", mismatched, y_mm)],
            "measure": FAST | {"grid": {"batch_sizes": [2], "seq_lens": [16], "min_iterations": 2, "min_seconds": 0},
                               "offline": {"batch_sizes": [4], "sort_by_length": True, "min_seconds": 0}}}
    r = run_isolated(spec, tmp_path, "mnli", timeout_s=300)
    assert r.status == "ok", r.error
    ref_m = _reference_logits(onnx_dir, matched).argmax(-1)
    ref_mm = _reference_logits(onnx_dir, mismatched).argmax(-1)
    assert r.metric == "accuracy" and r.eval_samples == 30
    assert r.score == r.accuracy == r.metrics["accuracy"] == pytest.approx(np.mean(ref_m == y_m))
    assert r.metrics["accuracy@validation_mismatched"] == pytest.approx(np.mean(ref_mm == y_mm))
    assert set(r.metrics) == {"accuracy", "accuracy@validation_mismatched"}
    # Binary details only for two labels.
    assert r.precision_score is r.recall is r.f1 is r.confusion_matrix is None
    # Latency, grid and Offline ran on the primary split's pairs (one sequence each).
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(onnx_dir)
    lengths = [len(tok(*matched.example(i), truncation=True, max_length=64)["input_ids"]) for i in range(30)]
    assert r.mean_tokens == pytest.approx(np.mean(lengths), abs=0.01)
    assert [c.seq_len for c in r.latency_grid] == [16] and r.offline[0].samples == 30


def test_child_scores_a_regression_pair_task(pair_berts, tmp_path):
    # STS-B-like: a regression head (one output); its value is the prediction; Pearson and Spearman.
    from scipy.stats import pearsonr, spearmanr

    onnx_dir = pair_berts["sts"] / "onnx"
    texts = _pairs(40, 5)
    labels = np.round(np.random.default_rng(6).uniform(0, 5, 40), 2).tolist()
    spec = {"variant": VARIANT, "artifact_dir": str(onnx_dir), "max_length": 64, "measure": FAST,
            "task": ChildSpec.task_fields(GLUE_TASKS["stsb"]), "eval_sets": [_eval_set("validation", texts, labels)]}
    r = run_isolated(spec, tmp_path, "stsb", timeout_s=300)
    assert r.status == "ok", r.error
    ref = _reference_logits(onnx_dir, texts)[:, 0]
    assert np.std(ref) > 0
    assert r.metric == "pearson" and r.score == r.metrics["pearson"]
    assert r.metrics["pearson"] == pytest.approx(pearsonr(labels, ref)[0], abs=1e-3)
    assert r.metrics["spearmanr"] == pytest.approx(spearmanr(labels, ref)[0], abs=1e-3)
    assert r.accuracy is None and r.f1 is None and r.confusion_matrix is None and r.eval_samples == 40
    # The row is complete without accuracy: a regression has none.
    identity = {"run_id": "r", "suite": "s", "task": "stsb", "variant_id": "v", "model": "student", "format": "onnx",
                "precision": "fp32", "device": "cpu", "threads": 1, "seed": 1}
    row = Row.for_write(identity, {"status": "ok", "artifact": "a", "size_mb": 1.0}, r.row_fields())
    assert row.metric == "pearson" and row.accuracy is None


def test_child_scores_a_single_sentence_task_by_matthews(tiny_onnx_artifact, tmp_path):
    # CoLA-like: one sentence, two labels, Matthews correlation primary, accuracy too.
    import onnxruntime as ort
    from sklearn.metrics import accuracy_score, matthews_corrcoef

    from bench.backends.tokenizer import FastTokenizer

    sentences = ["a warm , funny film .", "dull .", "the plot goes nowhere and the jokes fall flat .",
                 "one of the best films of the year", "flat"] * 6
    labels = np.random.default_rng(7).integers(0, 2, len(sentences)).tolist()
    spec = {"variant": VARIANT, "artifact_dir": str(tiny_onnx_artifact), "max_length": 32, "measure": FAST,
            "task": ChildSpec.task_fields(GLUE_TASKS["cola"]),
            "eval_sets": [_eval_set("validation", Texts(sentences), labels)]}
    r = run_isolated(spec, tmp_path, "cola", timeout_s=300)
    assert r.status == "ok", r.error
    tok = FastTokenizer(tiny_onnx_artifact)
    sess = ort.InferenceSession(str(tiny_onnx_artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    preds = [sess.run(None, tok([s], max_length=32))[0][0].argmax() for s in sentences]
    assert r.metric == "matthews_correlation" and r.score == r.metrics["matthews_correlation"]
    assert r.score == pytest.approx(matthews_corrcoef(labels, preds))
    assert r.accuracy == r.metrics["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert r.confusion_matrix is not None and sum(map(sum, r.confusion_matrix)) == len(sentences)


# ---------------------------------------------------------------- the spec at both ends

def _spec(**change) -> dict:
    spec = {"variant": VARIANT, "artifact_dir": ".", "max_length": 8, "task": ChildSpec.task_fields(GLUE_TASKS["mnli"]),
            "eval_sets": [_eval_set("validation_matched", _pairs(3, 8), [0, 1, 2])]}
    return {k: v for k, v in (spec | change).items() if v is not None}


def test_the_spec_without_eval_sets_is_rejected_at_both_ends(tmp_path):
    from bench.child import worker

    with pytest.raises(ValidationError, match="eval_sets"):
        ChildSpec.model_validate(_spec(eval_sets=None))
    with pytest.raises(ValidationError, match="eval_sets"):  # the parent validates before it starts the child
        run_isolated(_spec(eval_sets=None), tmp_path, "v", timeout_s=60)
    (tmp_path / "spec.json").write_text(json.dumps(_spec(eval_sets=None)))
    with pytest.raises(ValidationError, match="eval_sets"):  # and the child when it reads the file
        worker.main([str(tmp_path / "spec.json"), str(tmp_path / "result.json")])
    with pytest.raises(ValidationError, match="task"):
        ChildSpec.model_validate(_spec(task=None))


@pytest.mark.parametrize(("change", "message"), [
    ({"eval_sets": [{"name": "v", "first": ["a", "b"], "second": ["c"], "labels": [0, 1]}]}, "2 first but 1 second"),
    ({"eval_sets": [{"name": "v", "first": ["a", "b"], "second": None, "labels": [0]}]}, "2 examples but 1 labels"),
    ({"eval_sets": [{"name": "v", "first": ["a"], "second": ["b"], "labels": [3]}]}, "label 3 is not a label id"),
    ({"eval_sets": [{"name": "v", "first": ["a"], "second": ["b"], "labels": [0.5]}]}, "label 0.5 is not a label id"),
    ({"eval_sets": [{"name": "v", "first": ["a"], "second": ["b"], "labels": [0]},
                    {"name": "v", "first": ["a"], "second": ["b"], "labels": [0]}]}, "split names repeat"),
    ({"eval_sets": [{"name": "v", "first": ["a"], "second": ["b"], "labels": [0]},
                    {"name": "w", "first": ["a"], "second": None, "labels": [0]}]}, "some splits are sentence pairs"),
    ({"task": {"name": "x", "label_names": None, "metrics": ["rmse"]}}, "metrics"),
])
def test_a_spec_that_does_not_fit_its_task_is_rejected(change, message):
    with pytest.raises(ValidationError, match=message):
        ChildSpec.model_validate(_spec(**change))


def test_a_regression_spec_takes_float_labels():
    spec = ChildSpec.model_validate(_spec(task=ChildSpec.task_fields(GLUE_TASKS["stsb"]),
                                          eval_sets=[_eval_set("validation", _pairs(2, 9), [0.5, 4.25])]))
    task = spec.task_def()
    assert task.is_regression and task.is_pair and task.primary_metric == "pearson"
    assert spec.splits()[0].labels == [0.5, 4.25]


def test_child_result_needs_score_and_accuracy_only_for_classification():
    base = {"metric": "pearson", "score": 0.8, "metrics": {"pearson": 0.8}, "eval_samples": 3}
    fields = {"load_time_s": 0.1, "params": 1, "latency_p50_ms": 1.0, "latency_p90_ms": 1.0, "latency_p95_ms": 1.0,
              "latency_p99_ms": 1.0, "latency_mean_ms": 1.0, "latency_stdev_ms": 0.0, "latency_min_ms": 1.0,
              "latency_max_ms": 1.0, "latency_cv": 0.0, "latency_n": 1, "latency_raw_ms": [1.0],
              "latency_input": "dev-stream-bs1", "tokenization_timed": False, "mean_tokens": 3.0, "first_call_ms": 1.0,
              "rss_before_load_mb": 1.0, "peak_rss_mb": 1.0}
    assert ChildResult.model_validate(fields | base).accuracy is None  # a regression has no accuracy
    with pytest.raises(ValidationError, match="accuracy"):
        ChildResult.model_validate(fields | base | {"metric": "matthews_correlation"})
    with pytest.raises(ValidationError, match="score"):
        ChildResult.model_validate(fields | {k: v for k, v in base.items() if k != "score"})
    # The pre-task shape (accuracy, no metric, no score) reads as metric accuracy.
    legacy = ChildResult.model_validate(fields | {"accuracy": 0.75, "eval_samples": 3})
    assert (legacy.metric, legacy.score) == ("accuracy", 0.75)


# ---------------------------------------------------------------- parity and calibration on pairs

def test_parity_on_pairs_and_no_label_agreement_for_a_regression(pair_berts):
    from bench.backends.runtime import load_runtime
    from bench.build.parity import check_parity
    from bench.common.errors import ParityError

    texts = _pairs(20, 10)
    for name in ("nli", "sts"):
        onnx_rt = load_runtime("onnx", pair_berts[name] / "onnx", "cpu", 1)
        info = check_parity(pair_berts[name] / "pt", onnx_rt, name, texts, 64, atol=1e-4)
        assert info["parity_max_abs_diff"] < 1e-4 and info["parity_samples"] == 20
        assert info["parity_label_agreement"] == (1.0 if name == "nli" else None)
    # Above atol: a loud failure that counts examples, not sentences.
    with pytest.raises(ParityError, match="20 dev examples"):
        check_parity(pair_berts["sts"] / "pt", onnx_rt, "sts", texts, 64, atol=1e-15)


class _ShiftedSecondRuntime:
    """A runtime whose logits depend on token_type_ids: proves parity feeds them."""

    def __init__(self, inner):
        self.inner = inner

    def prepare(self, enc):
        return self.inner.prepare(enc), enc["token_type_ids"]

    def run(self, native):
        return self.inner.run(native[0]), native[1]

    def logits(self, out):
        return self.inner.logits(out[0]) + out[1].sum(-1, keepdims=True)


def test_parity_sees_the_second_segment(pair_berts):
    from bench.backends.runtime import load_runtime
    from bench.backends.tokenizer import FastTokenizer
    from bench.build.parity import parity

    rt = load_runtime("onnx", pair_berts["sts"] / "onnx", "cpu", 1)
    tok = FastTokenizer(pair_berts["sts"] / "onnx")
    texts = _pairs(6, 11)
    assert parity(rt, _ShiftedSecondRuntime(rt), tok, Texts(texts.first), 64)["parity_max_abs_diff"] == 0
    assert parity(rt, _ShiftedSecondRuntime(rt), tok, texts, 64)["parity_max_abs_diff"] >= 1


def test_calibration_reader_feeds_pairs_and_hashes_them(pair_berts):
    from transformers import AutoTokenizer

    from bench.backends.onnx.quantize import SentenceReader, calibration_hash

    tok = AutoTokenizer.from_pretrained(pair_berts["nli"] / "pt")
    texts = _pairs(5, 12)
    reader = SentenceReader(tok, texts, ["input_ids", "attention_mask", "token_type_ids"], 64)
    items = []
    while (item := reader.get_next()) is not None:
        items.append(item)
    # 5 examples: one batch of 5 (the largest size up to CALIBRATION_BATCH that divides the count)
    assert len(items) == 1 and items[0]["input_ids"].shape[0] == 5
    assert all(row.max() == 1 for row in items[0]["token_type_ids"])
    by_three = SentenceReader(tok, _pairs(6, 12), ["input_ids", "attention_mask", "token_type_ids"], 64, batch=3)
    shapes = [by_three.get_next()["input_ids"].shape, by_three.get_next()["input_ids"].shape, by_three.get_next()]
    assert shapes[0] == shapes[1] and shapes[0][0] == 3 and shapes[2] is None  # one shape for the calibrators
    single = Texts(texts.first)
    assert calibration_hash(single) == calibration_hash(texts.first)  # SST-2's hashes (and cache keys) unchanged
    assert calibration_hash(texts) != calibration_hash(single)


class _PairData:
    """TaskData as the contract has it (texts(), eval_splits()), without loading anything."""

    def __init__(self, train: Texts, dev: list[EvalSplit]):
        self._train, self._dev, self.fingerprint = train, dev, "f"

    def texts(self, split):
        return self._train if split == "train" else next(s.texts for s in self._dev if s.name == split)

    def eval_splits(self):
        return self._dev


def test_calibration_texts_come_from_train_and_never_match_a_dev_example():
    from bench.build.compress import Compressor

    dev_m = Texts(["p1", "p2"], ["h1", "h2"])
    dev_mm = Texts(["q1"], ["k1"])
    # Train holds both dev pairs and the mismatched one, plus pairs sharing only one sentence with them.
    train = Texts(["p1", "p2", "q1", "p1", "x", "y"], ["h1", "h2", "k1", "other", "h1", "z"])
    data = _PairData(train, [EvalSplit("validation", dev_m, [0, 1]), EvalSplit("validation_mismatched", dev_mm, [2])])
    suite = types.SimpleNamespace(seed=3, measure=types.SimpleNamespace(parity_samples=1),
                                  data=types.SimpleNamespace(max_length=32),
                                  quantize=types.SimpleNamespace(calibration_samples=10))
    comp = Compressor(suite, data, store=None)
    picked = comp.calibration_texts()
    examples = {picked.example(i) for i in range(len(picked))}
    assert examples == {("p1", "other"), ("x", "h1"), ("y", "z")}
    assert comp.calibration_texts() == picked  # a fixed shuffle: the same artifact key
    assert comp.parity_texts == Texts(["p1"], ["h1"])  # parity on the primary split's first examples


# ---------------------------------------------------------------- bench run's spec from the data

def test_measure_spec_from_task_data_and_from_sentence_only_data(tmp_path):
    from bench.run.suite_run import measure_spec
    from bench.spec.suite import MeasureConfig

    variant = types.SimpleNamespace(as_dict=lambda: VARIANT, artifact_key="k")
    built = types.SimpleNamespace(artifacts={"k": types.SimpleNamespace(weights_dir=tmp_path)})
    suite = types.SimpleNamespace(task="sst2", data=types.SimpleNamespace(max_length=16), measure=MeasureConfig())

    class SentenceData:  # what TaskData was before tasks: sentences and labels of "validation"
        def sentences(self, split):
            return ["good .", "bad ."]

        def labels(self, split):
            return [1, 0]

    spec = measure_spec(suite, variant, built, SentenceData())
    assert spec.task.name == "sst2" and spec.task.metrics == ["accuracy", "f1"]
    assert [(s.name, s.first, s.second, s.labels) for s in spec.eval_sets] == [
        ("validation", ["good .", "bad ."], None, [1, 0])]

    mnli = GLUE_TASKS["mnli"]
    data = _PairData(Texts(["t"], ["u"]), [EvalSplit("validation_matched", Texts(["a"], ["b"]), [2]),
                                           EvalSplit("validation_mismatched", Texts(["c"], ["d"]), [0])])
    data.task = mnli
    spec = measure_spec(types.SimpleNamespace(**vars(suite), task_def=mnli), variant, built, data)
    assert spec.task.label_names == list(mnli.label_names)
    assert [s.name for s in spec.eval_sets] == ["validation_matched", "validation_mismatched"]
    assert spec.eval_sets[1].second == ["d"] and spec.task_def().is_pair
