"""LoRA (PEFT) as a training method: a tiny model trains with adapters, merges with parity, resumes after
kill -9 to the uninterrupted run's weights; a bad target module is one line at planning; the cache keys
tell methods and ranks apart; a LoRA-trained teacher's logits are its merged model's; the report compares
full fine-tuning with LoRA."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURE_DATA
from safetensors.torch import load_file
from test_resume_ddp import _env, _kill_after_checkpoint, _train_cmd, _weights
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from bench.build.pipeline import build_all
from bench.cli import main
from bench.common.errors import BenchError
from bench.data.load import load_task_data
from bench.plan import make_plan
from bench.spec.suite import LoraConfig, load_suite
from bench.store.artifacts import DryRunStore
from bench.store.results import read_rows
from bench.tasks.sources import load_for_classification, parse_source
from bench.train.distill import compute_teacher_logits
from bench.train.lora import merge_adapter, with_lora

TINY = "tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=300"
SUITE = f"""
name: lora
seed: 3
data: {{source: glue-tsv, path: "{FIXTURE_DATA / 'sst2'}", max_length: 32}}
teacher:
  source: "{TINY}"
  finetune: {{epochs: 2, lr: 1e-2, batch_size: 16, logging_steps: 5, checkpoint_steps: 5, method: lora, lora: LORA}}
variants:
  - {{model: teacher, format: pytorch}}
"""


def _suite(write_suite, lora: str = "{r: 4, alpha: 8}", name: str = "suite.yaml") -> Path:
    return write_suite(SUITE.replace("LORA", lora), name)


def _tiny_classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    return AutoModelForSequenceClassification.from_config(config)


def test_merged_weights_answer_like_the_peft_model_and_differ_from_the_base():
    base = _tiny_classifier()
    original = {k: v.clone() for k, v in base.state_dict().items()}
    model = with_lora(base, LoraConfig(r=4, alpha=8, target_modules=["query", "value"]), "teacher.finetune", 0)
    with torch.no_grad():  # B starts at zero (the adapter a no-op): give it a trained-looking value
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    batch = {"input_ids": torch.randint(0, 50, (8, 12)), "attention_mask": torch.ones(8, 12, dtype=torch.long)}
    merged, parity = merge_adapter(model, batch)
    assert parity["merge_parity_max_abs_diff"] < 1e-4 and parity["merge_parity_label_agreement"] == 1.0
    state = merged.state_dict()
    assert set(state) == set(original), "the merged model is the plain architecture, no adapter left"
    changed = {k for k in state if not torch.equal(state[k], original[k])}
    assert {k for k in changed if "query" in k or "value" in k} == {
        f"bert.encoder.layer.{i}.attention.self.{m}.weight" for i in (0, 1) for m in ("query", "value")}
    assert not [k for k in changed if "key" in k or "intermediate" in k], "frozen weights moved"


def test_a_target_module_the_model_lacks_is_an_error_naming_it():
    with pytest.raises(BenchError, match=r"teacher.finetune.lora.target_modules: no module named 'qkv'.*query"):
        with_lora(_tiny_classifier(), LoraConfig(target_modules=["qkv"]), "teacher.finetune", 0)


@pytest.mark.parametrize("section, lora", [
    ("teacher", "{target_modules: [query, qkv]}"),
    ("student", "{target_modules: [c_attn]}"),
])
def test_bad_target_module_is_one_line_and_exit_2(write_suite, tmp_path, capsys, section, lora):
    text = SUITE.replace("LORA", "{r: 4}")
    if section == "student":
        text = text.replace("variants:", f"student:\n  layers: [1]\n  distill: {{method: lora, lora: {lora}}}\n"
                                          "variants:")
    else:
        text = text.replace("{r: 4}", lora)
    suite = write_suite(text)
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    field = "teacher.finetune" if section == "teacher" else "student.distill"
    assert len(err) == 1 and f"{field}.lora.target_modules: no module named" in err[0], err
    assert not (tmp_path / "r").exists(), "nothing written for a suite that cannot run"


def test_lora_settings_need_method_lora(write_suite, capsys):
    suite = write_suite(SUITE.replace("method: lora, lora: LORA", "lora: {r: 4}"))
    assert main(["plan", str(suite)]) == 2
    assert "lora: LoRA settings need method: lora" in capsys.readouterr().err


def _teacher_keys(suite_path: Path) -> list[str]:
    suite = load_suite(suite_path)
    store = DryRunStore(Path("/nonexistent-bench-cache"))
    build_all(suite, make_plan(suite, str(suite_path)), load_task_data(suite.data, suite.task_def, suite.seed), store,
              suite.training_seeds[0])
    return [p.key for p in store.planned if p.kind == "teacher"]


def test_cache_keys_differ_between_methods_and_ranks(write_suite):
    full = write_suite(SUITE.replace(", method: lora, lora: LORA", ""), "full.yaml")
    keys = {
        "full": _teacher_keys(full),
        "r4": _teacher_keys(_suite(write_suite, "{r: 4}", "r4.yaml")),
        "r8": _teacher_keys(_suite(write_suite, "{r: 8}", "r8.yaml")),
        "r8-default": _teacher_keys(write_suite(SUITE.replace("lora: LORA", "lora: {r: 8}").replace(
            ", lora: {r: 8}", ""), "r8-default.yaml")),  # method: lora alone is LoraConfig's defaults (r 8)
        "r8-value": _teacher_keys(_suite(write_suite, "{r: 8, target_modules: [value]}", "r8v.yaml")),
    }
    keys["full-explicit"] = _teacher_keys(write_suite(SUITE.replace("method: lora, lora: LORA", "method: full"),
                                                      "full-explicit.yaml"))
    keys["r8-swapped"] = _teacher_keys(_suite(write_suite, "{r: 8, target_modules: [value, query]}", "r8s.yaml"))
    assert all(len(k) == 1 for k in keys.values())
    assert keys["full-explicit"] == keys["full"], "method: full written out keeps the key of suites without it"
    assert keys["r8-swapped"] == keys["r8"], "the target modules are a set"
    assert len({keys[n][0] for n in ("full", "r4", "r8", "r8-value")}) == 4
    assert keys["r8-default"] == keys["r8"]


LORA_RUN = f"""
name: lora-run
seed: 5
data: {{source: glue-tsv, path: "{FIXTURE_DATA / 'sst2'}", max_train_samples: 160, max_eval_samples: 64, max_length: 32}}
teacher:
  source: "{TINY}"
  finetune: {{epochs: 1, lr: 1e-2, batch_size: 16, logging_steps: 5, method: lora, lora: {{r: 4}}}}
students:
  full: {{layers: [1], distill: {{epochs: 1, lr: 1e-3, batch_size: 16, logging_steps: 5}}}}
  lora: {{layers: [1], distill: {{epochs: 1, lr: 1e-2, batch_size: 16, logging_steps: 5, method: lora}}}}
variants:
  - {{model: [teacher, full, lora], format: pytorch, precision: [fp32, int8-dynamic]}}
measure: {{threads: [1], warmup: 1, min_iterations: 5, min_seconds: 0, timeout_s: 300, parity_samples: 16}}
"""


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A LoRA teacher, and a student distilled from it both ways, measured in PyTorch FP32 and dynamic INT8."""
    root = tmp_path_factory.mktemp("lora-run")
    suite = root / "suite.yaml"
    suite.write_text(LORA_RUN)
    assert main(["run", str(suite), "--results-dir", str(root / "results"), "--run-id", "a", "-q"]) == 0
    return root


@pytest.mark.slow  # shares the module's tiny LoRA run (~50 s): kept out of the default run's budget
def test_rows_carry_the_method_and_the_training_cost(lora_run):
    rows = {r["variant_id"]: r for r in read_rows(lora_run / "results" / "lora-run" / "a")}
    teacher, full, lora = (rows[f"{m}-pytorch-fp32-cpu-t1"] for m in ("teacher", "full", "lora"))
    assert (teacher["train_method"], teacher["lora_r"], lora["train_method"], lora["lora_r"]) == ("lora", 4, "lora", 8)
    assert full["train_method"] == "full" and full["lora_r"] is None
    assert full["trainable_params"] == full["params"], "full fine-tuning trains every weight"
    assert 0 < lora["trainable_params"] < full["trainable_params"] / 5
    for row in (teacher, full, lora):  # a Python process with torch loaded holds well over 100 MB
        assert row["train_runtime_s"] > 0 and row["train_peak_rss_mb"] > 100
        assert 0 <= row["train_rss_growth_mb"] < row["train_peak_rss_mb"]
    assert teacher["merge_parity_max_abs_diff"] is not None and full["merge_parity_max_abs_diff"] is None
    assert lora["params"] == full["params"], "the merged student is the plain architecture"


@pytest.mark.slow  # shares the module's tiny LoRA run (~50 s): kept out of the default run's budget
def test_a_lora_teacher_distils_from_its_merged_model(lora_run):
    """The teacher artifact is the merged model (plain keys; the adapted weights moved, the frozen ones did not),
    and the cached logits students distil from are that model's."""
    store = lora_run / "results" / "artifacts"
    (teacher,) = [p for p in store.glob("teacher-*") if p.is_dir() and "logits" not in p.name]
    (logits,) = [p for p in store.glob("teacher-logits-*") if p.is_dir()]
    suite = load_suite(lora_run / "suite.yaml")
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    saved = load_file(teacher / "model.safetensors")
    assert not [k for k in saved if "lora_" in k or "base_model" in k or "modules_to_save" in k]
    start, _ = load_for_classification(parse_source(TINY), suite.task_def, corpus=data.sentences("train"),
                                       seed=suite.seed)  # the model before training, as the build made it
    before = start.state_dict()
    assert set(saved) <= set(before)
    moved = {k for k in saved if not torch.equal(saved[k], before[k])}
    assert {k for k in moved if ".attention.self." in k} == {
        f"bert.encoder.layer.{i}.attention.self.{m}.weight" for i in (0, 1) for m in ("query", "value")}
    assert "classifier.weight" in moved and not [k for k in moved if "intermediate" in k or ".key." in k]
    model = AutoModelForSequenceClassification.from_pretrained(teacher, use_safetensors=True)
    again = compute_teacher_logits(model, AutoTokenizer.from_pretrained(teacher), data.texts("train"), 32)
    np.testing.assert_allclose(np.load(logits / "train_logits.npy"), again, atol=1e-5)


@pytest.mark.slow  # shares the module's tiny LoRA run (~50 s): kept out of the default run's budget
def test_the_report_compares_full_and_lora(lora_run):
    run = lora_run / "results" / "lora-run" / "a"
    assert main(["report", str(run), "--out", str(lora_run / "report")]) == 0
    (index,) = (lora_run / "report").rglob("index.md")
    text = index.read_text()
    section = text.split("## Full fine-tuning vs LoRA", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|") and "---" not in line]
    header, body = lines[0], lines[1:]
    assert "trainable params" in header and "INT8 drop, PyTorch (pts)" in header and "Δ vs full (pts)" in header
    # The two students share an architecture (full and lora); the LoRA teacher has no full counterpart.
    assert sorted(line.split("|")[1].strip() for line in body) == ["full", "lora", "teacher"]


@pytest.mark.slow
def test_lora_killed_mid_training_resumes_to_the_uninterrupted_weights(write_suite, tmp_path):
    """2 epochs of 10 steps, a checkpoint every 5 (the adapter, the head and the optimizer): killed in the
    middle of the second epoch, the rerun resumes and ends with the merged weights of a straight run."""
    suite = _suite(write_suite)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    subprocess.run(_train_cmd(suite, straight), env=_env(), check=True, capture_output=True)
    _kill_after_checkpoint(suite, resumed, 15, tmp_path / "first.log")
    second = subprocess.run(_train_cmd(suite, resumed), env=_env(), capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from" in second.stderr
    (artifact,) = [p for p in (resumed / "artifacts").glob("teacher-*") if p.is_dir()]
    info = json.loads((artifact / "manifest.json").read_text())["info"]
    assert info["resumed_from_step"] >= 15 and info["train_steps"] == 20 and info["method"] == "lora"
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
