"""Every GLUE task through the whole chain on fixtures in the real layouts (no real data for them here):
fine-tune a tiny teacher, export it to ONNX, measure it in its own process, then report, check and
compare on the task's own metric."""

from __future__ import annotations

import json

import onnx
import pytest
import yaml
from glue_fixtures import write_glue_fixture

from bench.cli import main
from bench.store.results import read_rows
from bench.tasks.table import GLUE_TASKS

PRIMARY = {"cola": "matthews_correlation", "sst2": "accuracy", "mrpc": "f1", "qqp": "f1", "stsb": "pearson",
           "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy", "wnli": "accuracy"}


@pytest.mark.parametrize("task", sorted(GLUE_TASKS))
def test_task_runs_end_to_end_on_its_fixture(task, tmp_path, capsys):
    write_glue_fixture(task, tmp_path / "data" / task)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": f"e2e-{task}", "task": task, "data": {"path": str(tmp_path / "data" / task), "max_length": 32},
        "teacher": {"source": "tiny:layers=1,hidden=16,heads=2,intermediate=32,vocab=300",
                    "finetune": {"epochs": 2, "lr": 3e-3, "batch_size": 8, "logging_steps": 5}},
        "variants": [{"model": "teacher", "format": "onnx"}],
        "measure": {"threads": [1], "warmup": 1, "min_iterations": 5, "min_seconds": 0, "timeout_s": 300}}))
    results = tmp_path / "results"
    assert main(["run", str(suite), "--results-dir", str(results), "--run-id", "a"]) == 0
    run_dir = results / f"e2e-{task}" / "a"
    [row] = read_rows(run_dir)
    spec = GLUE_TASKS[task]
    assert row["status"] == "ok" and row["task"] == task and row["metric"] == PRIMARY[task]
    assert set(spec.metrics) <= set(row["metrics"]) and row["score"] == row["metrics"][PRIMARY[task]]
    if task == "mnli":
        assert "accuracy@validation_mismatched" in row["metrics"]
    if task == "stsb":
        assert "spearmanr" in row["metrics"] and row.get("accuracy") is None
    # Pair tasks feed both segments to the graph: token_type_ids is one of its inputs.
    [art] = (results / "artifacts").glob("onnx-teacher-*")
    inputs = {i.name for i in onnx.load(str(art / "model.onnx"), load_external_data=False).graph.input}
    assert ("token_type_ids" in inputs) or not spec.is_pair

    capsys.readouterr()
    assert main(["report", str(run_dir), "--out", str(tmp_path / "reports"), "--name", "r"]) == 0
    md = (tmp_path / "reports" / "r" / "index.md").read_text()
    assert ("accuracy %" if PRIMARY[task] == "accuracy" else f"{PRIMARY[task]} ×100") in md

    profile = tmp_path / "p.yaml"
    profile.write_text("max_size_mb: 100\n")
    assert main(["check", str(run_dir), "--profile", str(profile), "--json", str(tmp_path / "check.json")]) == 0
    assert main(["compare", str(run_dir), str(run_dir), "--json", str(tmp_path / "cmp.json")]) == 0
    assert json.loads((tmp_path / "cmp.json").read_text())["primary_metric"] == PRIMARY[task]
