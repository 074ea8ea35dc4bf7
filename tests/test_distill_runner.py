"""The distillation runner end to end on tiny models and the hand-written fixture: named students,
every loss term, the three init strategies, several seeds, and the report's seed statistics."""

import json

import pytest
from conftest import FIXTURE_DATA

from bench.cli import main
from bench.store.results import read_rows

SUITE = """
name: distill
seed: 7
seeds: [1, 2]
data: {{source: glue-tsv, path: "{data}", max_length: 32}}
teacher:
  source: "tiny:layers=4,hidden=32,heads=2,intermediate=64,vocab=300"
  seed: 7
  finetune: {{epochs: 1, lr: 1e-3, batch_size: 16, logging_steps: 5}}
students:
  plain:
    layers: [0, 2]
    distill: {{epochs: 1, lr: 1e-3, batch_size: 16, alpha_soft: 0, alpha_hard: 1}}
  all-terms:
    layers: [1, 3]
    distill: {{epochs: 1, lr: 1e-3, batch_size: 16, alpha_hidden: 1.0, hidden_loss: mse, alpha_attn: 5.0,
              max_train_samples: 100, logging_steps: 2}}
  random:
    init: random
    layers: [0, 1]
    distill: {{epochs: 1, lr: 1e-3, batch_size: 16, alpha_hidden: 1.0, layer_map: [0, 3]}}
  wider:
    init: pretrained
    source: "tiny:layers=2,hidden=48,heads=2,intermediate=64,vocab=300"
    distill: {{epochs: 1, lr: 1e-3, batch_size: 16}}
variants:
  - {{model: [teacher, plain, all-terms, random, wider], format: pytorch}}
measure: {{threads: [1], warmup: 1, min_iterations: 5, min_seconds: 0}}
"""


@pytest.fixture
def distill_suite(write_suite):
    return write_suite(SUITE.format(data=FIXTURE_DATA / "sst2"))


@pytest.mark.slow  # ~70 s: two named students, every loss term, two seeds (the default run was at 10:27)
def test_named_students_every_term_two_seeds(distill_suite, tmp_path):
    results = tmp_path / "results"
    assert main(["run", str(distill_suite), "--results-dir", str(results), "--run-id", "r"]) == 0
    rows = read_rows(results / "distill" / "r")
    assert sorted((r["model"], r["seed"]) for r in rows) == sorted(
        (m, s) for m in ("teacher", "plain", "all-terms", "random", "wider") for s in (1, 2))
    assert all(r["status"] == "ok" for r in rows)
    by = {(r["model"], r["seed"]): r for r in rows}
    assert by[("plain", 1)]["train_loss_terms"] == "hard"
    assert by[("all-terms", 1)]["train_loss_terms"] == "soft+hard+hidden+attn"
    assert by[("all-terms", 1)]["train_rows"] == 100
    assert by[("random", 1)]["train_loss_terms"] == "soft+hard+hidden"
    # One teacher (teacher.seed) for both seeds; one student per seed.
    assert by[("teacher", 1)]["artifact"] == by[("teacher", 2)]["artifact"]
    for name in ("plain", "all-terms", "random", "wider"):
        assert by[(name, 1)]["artifact"] != by[(name, 2)]["artifact"]
    artifacts = results / "artifacts"
    manifest = json.loads((artifacts / by[("all-terms", 1)]["artifact"] / "manifest.json").read_text())
    assert manifest["info"]["layer_map"] == [1, 3]  # uniform: the 2 student layers meet teacher layers 1 and 3
    history = json.loads((artifacts / by[("all-terms", 1)]["artifact"] / "train_log.json").read_text())
    logged = [h for h in history if "loss" in h]
    assert logged and all({"loss_hard", "loss_soft", "loss_hidden", "loss_attn"} <= set(h) for h in logged)
    config = json.loads((artifacts / by[("wider", 1)]["artifact"] / "config.json").read_text())
    assert config["hidden_size"] == 48
    assert not list(artifacts.glob(".work/*")), "checkpoints are removed once an artifact is published"

    report = tmp_path / "reports"
    assert main(["report", str(results / "distill" / "r"), "--out", str(report), "--name", "d"]) == 0
    text = (report / "d" / "index.md").read_text()
    assert "± std" in text and "Accuracy per seed" in text
    training = text.split("## Training")[1].split("##")[0]
    lines = {line.split("|")[1].strip(): line for line in training.splitlines() if line.startswith("| ")}
    # The teacher is pinned by teacher.seed: trained once, counted once; each student twice.
    assert [c.strip() for c in lines["teacher"].split("|")][4] == "1"
    assert [c.strip() for c in lines["all-terms"].split("|")][2:5] == ["soft+hard+hidden+attn", "100", "2"]
