"""Training for every task: heads from the task (3-class MNLI, STS-B regression), sentence pairs with
token_type_ids through fine-tuning, teacher logits and general distillation, the task's primary
metric in the training info, and the regression distillation loss by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURE_DATA
from datasets import Dataset, DatasetDict

from bench.data.load import TaskData, tokenize
from bench.spec.suite import FinetuneConfig
from bench.spec.training import DistillConfig
from bench.tasks.sources import head_config, load_for_classification, parse_source
from bench.tasks.table import GLUE_TASKS, Task, compute_metrics
from bench.train.distill import compute_teacher_logits, distill, init_student_from_teacher
from bench.train.finetune import finetune, task_metrics, training_arguments
from bench.train.losses import distillation_loss, hard_loss, soft_target_loss

TINY = "tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=500"
SENTENCES = [line.split("\t")[0] for line in (FIXTURE_DATA / "sst2" / "train.tsv").read_text().splitlines()[1:]]


def pair_data(task: Task, n_train: int = 64, n_eval: int = 32) -> TaskData:
    """A pair task's TaskData in the contract's columns: text, text_pair, label (ids, or float scores)."""
    rng = np.random.default_rng(0)

    def split(n: int, offset: int) -> Dataset:
        first = [SENTENCES[(offset + i) % len(SENTENCES)] for i in range(n)]
        second = [SENTENCES[(offset + 3 * i + 1) % len(SENTENCES)] for i in range(n)]
        labels = (rng.uniform(0, 5, n).tolist() if task.is_regression
                  else rng.integers(0, task.num_labels, n).tolist())
        return Dataset.from_dict({"text": first, "text_pair": second, "label": labels})

    splits = DatasetDict(train=split(n_train, 0), validation=split(n_eval, 80))
    return TaskData(task=task, splits=splits, fingerprint=f"test-{task.name}", origin="test")


def tiny_model(data: TaskData, seed: int = 0):
    return load_for_classification(parse_source(TINY), data.task, corpus=data.sentences("train"), seed=seed)


class TokenTypeProbe:
    """Records the token_type_ids that reach the model's embeddings in training batches."""

    def __init__(self, model):
        self.seen: list[torch.Tensor] = []
        model.base_model.embeddings.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        if module.training and kwargs.get("token_type_ids") is not None:
            self.seen.append(kwargs["token_type_ids"].detach().cpu())


CFG = FinetuneConfig(epochs=1, lr=1e-3, batch_size=16, logging_steps=2)


def test_heads_follow_the_task():
    mnli = head_config(GLUE_TASKS["mnli"])
    assert mnli == {"num_labels": 3, "id2label": {0: "entailment", 1: "neutral", 2: "contradiction"},
                    "label2id": {"entailment": 0, "neutral": 1, "contradiction": 2}}
    assert head_config(GLUE_TASKS["stsb"]) == {"num_labels": 1, "id2label": {0: "score"}, "label2id": {"score": 0},
                                                "problem_type": "regression"}
    # An int is a plain classification head: 2 keeps SST-2's names (every existing caller).
    assert head_config(2) == head_config(GLUE_TASKS["sst2"])
    assert head_config(4)["id2label"] == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2", 3: "LABEL_3"}


def test_pairs_are_tokenized_as_two_segments():
    data = pair_data(GLUE_TASKS["mnli"])
    _, tok = tiny_model(data)
    enc = tokenize(data.splits["train"], tok, max_length=48)
    assert "text" not in enc.column_names and "text_pair" not in enc.column_names
    sep = tok.sep_token_id
    for ids, types in zip(enc["input_ids"], enc["token_type_ids"], strict=True):
        first_sep = ids.index(sep)
        # [CLS] first [SEP] -> segment 0; second [SEP] -> segment 1
        assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
        assert 1 in types


def test_mnli_like_three_class_head_trains_on_pairs(tmp_path):
    data = pair_data(GLUE_TASKS["mnli"])
    model, tok = tiny_model(data)
    assert model.config.num_labels == 3 and model.config.id2label[1] == "neutral"
    probe = TokenTypeProbe(model)
    info = finetune(model, tok, data, CFG, max_length=48, seed=0, out_dir=tmp_path)
    # The second segment reached the embeddings in every training batch.
    assert len(probe.seen) == info["train_steps"] == 4 and all(int(t.max()) == 1 for t in probe.seen)
    assert info["dev_metric"] == "accuracy" and info["dev_score"] == info["dev_accuracy"]
    assert 0 <= info["dev_score"] <= 1
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["id2label"] == {"0": "entailment", "1": "neutral", "2": "contradiction"}


def test_stsb_like_regression_scores_pearson(tmp_path, monkeypatch):
    from scipy.stats import pearsonr
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import bench.train.finetune as ft

    scored = []  # what the Trainer's compute_metrics scored: (gold, predictions)

    def recording(task, labels, preds):
        scored.append((np.asarray(labels), np.asarray(preds)))
        return compute_metrics(task, labels, preds)

    monkeypatch.setattr(ft, "compute_metrics", recording)
    data = pair_data(GLUE_TASKS["stsb"])
    model, tok = tiny_model(data)
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    info = finetune(model, tok, data, CFG, max_length=48, seed=0, out_dir=tmp_path)
    assert info["dev_metric"] == "pearson" and "dev_accuracy" not in info
    assert np.isfinite(info["train_loss"])
    # dev_score is the Pearson correlation between the gold dev scores and the model's own outputs
    # (not an argmax). Outputs are compared by value: a tiny random model's scores barely differ from
    # each other, so their correlation is too sensitive to rounding to compare across two computations.
    gold, preds = scored[-1]
    assert info["dev_score"] == round(float(pearsonr(gold, preds)[0]), 4)
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path, use_safetensors=True).eval()
    assert saved.config.problem_type == "regression"
    enc = data.texts("validation").encode(AutoTokenizer.from_pretrained(tmp_path), truncation=True, max_length=48,
                                          padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = saved(**enc).logits[:, 0].numpy()
    # The Trainer evaluates in length-grouped order: match examples by their (distinct) gold scores.
    labels = np.asarray(data.splits["validation"]["label"])
    mine, theirs = np.argsort(labels), np.argsort(gold)
    np.testing.assert_allclose(gold[theirs], labels[mine], rtol=1e-6)
    np.testing.assert_allclose(preds[theirs], scores[mine], atol=1e-5)


def test_regression_kd_loss_by_hand():
    s = torch.tensor([[0.5], [2.0]])
    t = torch.tensor([[1.0], [1.0]])
    y = torch.tensor([1.0, 4.0])
    soft = ((0.5 - 1.0) ** 2 + (2.0 - 1.0) ** 2) / 2  # 0.625: MSE to the teacher's outputs
    hard = ((0.5 - 1.0) ** 2 + (2.0 - 4.0) ** 2) / 2  # 2.125: MSE to the gold scores
    for temperature in (1.0, 4.0):  # no temperature for a regression
        got = distillation_loss(s, t, y, temperature, 0.3, 0.7, regression=True).item()
        assert got == pytest.approx(0.3 * soft + 0.7 * hard, rel=1e-6)
    assert soft_target_loss(s, t, 2.0, regression=True).item() == pytest.approx(soft)
    assert hard_loss(s, y.double(), regression=True).item() == pytest.approx(hard)


def test_teacher_logits_encode_pairs():
    data = pair_data(GLUE_TASKS["mnli"], n_train=20)
    model, tok = tiny_model(data)
    model.eval()
    texts = data.texts("train")
    logits = compute_teacher_logits(model, tok, texts, max_length=48, batch_size=8)
    assert logits.shape == (20, 3)
    with torch.no_grad():
        for i in (0, 7, 19):
            one = model(**tok(texts.first[i], texts.second[i], return_tensors="pt")).logits[0].numpy()
            np.testing.assert_allclose(logits[i], one, atol=1e-5)


def test_regression_distillation_end_to_end(tmp_path):
    data = pair_data(GLUE_TASKS["stsb"])
    teacher, tok = tiny_model(data)
    finetune(teacher, tok, data, CFG, max_length=48, seed=0, out_dir=tmp_path / "teacher")
    logits = compute_teacher_logits(teacher, tok, data.texts("train"), max_length=48)
    assert logits.shape == (64, 1)
    cfg = DistillConfig(epochs=1, lr=1e-3, batch_size=16, logging_steps=2, alpha_soft=0.5, alpha_hard=0.5,
                        alpha_hidden=1.0)
    student = init_student_from_teacher(teacher, [1])
    assert student.config.problem_type == "regression"
    info = distill(student, tok, data, logits, cfg, 48, 0, tmp_path / "student", teacher=teacher)
    assert info["dev_metric"] == "pearson" and -1 <= info["dev_score"] <= 1 and info["loss"] == "soft+hard+hidden"
    history = json.loads((tmp_path / "student" / "train_log.json").read_text())
    logged = [h for h in history if "loss_soft" in h]
    assert logged and all(np.isfinite(h["loss_soft"]) and h["loss_soft"] >= 0 for h in logged)


def test_metrics_and_early_stopping_use_the_primary_metric(tmp_path):
    cola = GLUE_TASKS["cola"]
    out = task_metrics(cola)((np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]]), np.array([0, 1, 1, 1])))
    assert set(out) == {"matthews_correlation", "accuracy"} and out["accuracy"] == 0.75
    stsb = task_metrics(GLUE_TASKS["stsb"])((np.array([[0.1], [0.4], [0.2]]), np.array([1.0, 4.0, 2.0])))
    assert set(stsb) == {"pearson", "spearmanr"} and stsb["spearmanr"] == pytest.approx(1.0)
    custom = Task("custom", ("text",), ("no", "yes"), ("f1",))  # no accuracy declared: still recorded
    assert task_metrics(custom)((np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 0]))) == {"f1": 0.0, "accuracy": 0.5}
    early = FinetuneConfig(epochs=1, early_stopping_patience=1, eval_steps=2)
    args = training_arguments(early, tmp_path, tmp_path / "logs", 0, cola.primary_metric)
    assert args.metric_for_best_model == "matthews_correlation" and args.greater_is_better


def test_general_distillation_on_pair_text(tmp_path):
    from bench.spec.suite import StudentConfig
    from bench.train.general import general_distill, read_texts

    data = pair_data(GLUE_TASKS["mnli"], n_train=32)
    texts = read_texts("task:train", data, "student.general")
    assert texts.second is not None and len(texts) == 32
    cfg = StudentConfig(init="teacher-layers", layers=[0],
                        general={"text": "task:train", "epochs": 1, "batch_size": 16, "logging_steps": 1})
    info = general_distill(parse_source(TINY), cfg, data, 48, 0, tmp_path, None, "student.general")
    assert info["train_rows"] == 32 and info["train_steps"] == 2
