"""Models as they are: a fine-tuned folder with `finetune: null`, a student distilled from it, an ONNX
file measured without export, `bench quick`, and the one-line errors for what does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURE_DATA

from bench.cli import main
from bench.store.results import read_rows

MEASURE = {"threads": [1], "warmup": 1, "min_iterations": 5, "min_seconds": 0, "timeout_s": 300, "parity_samples": 16}
DATA = {"path": str(FIXTURE_DATA / "sst2"), "max_length": 48, "max_train_samples": 160, "max_eval_samples": 64}
TINY = "tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=800"


def _write(path: Path, suite: dict) -> Path:
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory) -> dict:
    """A tiny teacher fine-tuned by bench itself, and its ONNX export: 'what users already have'."""
    tmp = tmp_path_factory.mktemp("byo")
    suite = _write(tmp / "train.yaml", {
        "name": "train-it", "data": DATA,
        "teacher": {"source": TINY, "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 16, "logging_steps": 5}},
        "variants": [{"model": "teacher", "format": ["pytorch", "onnx"]}], "measure": MEASURE})
    assert main(["run", str(suite), "--results-dir", str(tmp / "results"), "--run-id", "a"]) == 0
    arts = tmp / "results" / "artifacts"
    [folder] = [p for p in arts.glob("teacher-*") if p.is_dir()]
    [onnx] = [p for p in arts.glob("onnx-teacher-*") if p.is_dir()]
    return {"tmp": tmp, "folder": folder, "onnx": onnx / "model.onnx"}


def test_as_is_teacher_trains_nothing_and_a_student_distils_from_it(fine_tuned, tmp_path, monkeypatch):
    import bench.train.finetune as finetune

    def no_training(*args, **kwargs):
        raise AssertionError("an as-is teacher must not be trained")

    monkeypatch.setattr(finetune, "finetune", no_training)
    suite = _write(tmp_path / "s.yaml", {
        "name": "as-is", "data": DATA, "teacher": {"source": str(fine_tuned["folder"]), "finetune": None},
        "student": {"layers": [1], "distill": {"epochs": 1, "lr": 1e-3, "batch_size": 16, "logging_steps": 5}},
        "variants": [{"model": ["teacher", "student"], "format": "pytorch"}], "measure": MEASURE})
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r"), "--run-id", "x"]) == 0
    rows = {r["model"]: r for r in read_rows(tmp_path / "r" / "as-is" / "x")}
    assert rows["teacher"]["status"] == rows["student"]["status"] == "ok"
    assert rows["teacher"]["train_rows"] is None  # nothing trained the teacher
    assert rows["student"]["train_rows"] == 160
    [teacher] = [p for p in (tmp_path / "r" / "artifacts").glob("teacher-*") if "logits" not in p.name]
    assert json.loads((teacher / "manifest.json").read_text())["info"]["as_is"] is True
    assert not list((tmp_path / "r" / "artifacts").glob(".work/teacher-*"))  # no Trainer checkpoints either


def test_onnx_source_is_measured_without_export_and_quantized(fine_tuned, tmp_path):
    suite = _write(tmp_path / "s.yaml", {
        "name": "onnx-src", "data": DATA, "teacher": {"source": str(fine_tuned["onnx"]), "finetune": None},
        "variants": [{"model": "teacher", "format": "onnx", "precision": ["fp32", "int8-dynamic"]}],
        "measure": MEASURE})
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r"), "--run-id", "x"]) == 0
    rows = {r["precision"]: r for r in read_rows(tmp_path / "r" / "onnx-src" / "x")}
    assert rows["fp32"]["status"] == rows["int8-dynamic"]["status"] == "ok"
    arts = tmp_path / "r" / "artifacts"
    assert not list(arts.glob("onnx-teacher-*"))  # never re-exported
    assert rows["fp32"]["artifact"].startswith("teacher-")  # the imported graph itself
    assert rows["int8-dynamic"]["int8_matmul_ops"] > 0 and rows["int8-dynamic"]["parity_label_agreement"] >= 0.8


def _one_line_exit_2(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: "), err
    return err[0]


def test_a_head_that_does_not_fit_the_task_is_one_line(fine_tuned, tmp_path, capsys):
    config = json.loads((fine_tuned["folder"] / "config.json").read_text())
    bad = tmp_path / "three-labels"
    bad.mkdir()
    for f in fine_tuned["folder"].iterdir():
        if f.suffix in (".json", ".txt", ".safetensors") and f.name != "manifest.json":
            (bad / f.name).write_bytes(f.read_bytes())
    config |= {"num_labels": 3, "id2label": {"0": "a", "1": "b", "2": "c"}, "label2id": {"a": 0, "b": 1, "c": 2}}
    (bad / "config.json").write_text(json.dumps(config))
    suite = _write(tmp_path / "s.yaml", {"name": "bad", "data": DATA, "teacher": {"source": str(bad), "finetune": None},
                                         "variants": [{"model": "teacher", "format": "pytorch"}], "measure": MEASURE})
    line = _one_line_exit_2(capsys, ["run", str(suite), "--results-dir", str(tmp_path / "r")])
    assert "teacher.source" in line and "3-label head" in line and "needs 2 labels" in line
    assert not (tmp_path / "r").exists()  # nothing written


def test_an_onnx_file_without_the_tokenizer_inputs_is_one_line(fine_tuned, tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    folder = tmp_path / "weird"
    folder.mkdir()
    for f in fine_tuned["onnx"].parent.iterdir():
        if f.suffix in (".json", ".txt"):
            (folder / f.name).write_bytes(f.read_bytes())
    graph = helper.make_graph([helper.make_node("Identity", ["pixels"], ["logits"])], "g",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])])
    onnx.save(helper.make_model(graph), str(folder / "model.onnx"))
    suite = _write(tmp_path / "s.yaml", {"name": "bad", "data": DATA,
                                         "teacher": {"source": str(folder / "model.onnx"), "finetune": None},
                                         "variants": [{"model": "teacher", "format": "onnx"}], "measure": MEASURE})
    line = _one_line_exit_2(capsys, ["plan", str(suite)])
    assert "takes inputs ['pixels']" in line and "input_ids" in line


def test_onnx_model_in_pytorch_format_is_refused(fine_tuned, tmp_path, capsys):
    suite = _write(tmp_path / "s.yaml", {"name": "bad", "data": DATA,
                                         "teacher": {"source": str(fine_tuned["onnx"]), "finetune": None},
                                         "variants": [{"model": "teacher", "format": "pytorch"}], "measure": MEASURE})
    line = _one_line_exit_2(capsys, ["plan", str(suite)])
    assert "variants[0].format: teacher is an ONNX model" in line
