"""README's "Bring your own model, task and data" recipes, read from README.md (marked
`<!-- recipe: NAME -->`) and run: the models are swapped for tiny ones and the measurement is
shortened, everything else is the recipe as written."""

from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURE_DATA, REPO
from glue_fixtures import write_glue_fixture

from bench.cli import main
from bench.store.results import read_rows

# Whole recipes end to end (about 2 minutes): in the `pytest -m slow` step with the real-data tests.
pytestmark = pytest.mark.slow

MEASURE = {"threads": [1], "warmup": 1, "min_iterations": 5, "min_seconds": 0, "timeout_s": 300, "parity_samples": 16}
TINY = "tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=800"


def recipe(name: str) -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- recipe: {name} -->\n```\w+\n(.*?)```", text, re.S)
    assert m, f"README.md has no recipe {name!r}"
    return m.group(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A tiny SST-2 model fine-tuned by bench (a 'local folder'), and its ONNX export."""
    tmp = tmp_path_factory.mktemp("recipes")
    suite = tmp / "train.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "train-it", "data": {"path": str(FIXTURE_DATA / "sst2"), "max_length": 48},
        "teacher": {"source": TINY, "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 16, "logging_steps": 5}},
        "variants": [{"model": "teacher", "format": ["pytorch", "onnx"]}], "measure": MEASURE}))
    assert main(["run", str(suite), "--results-dir", str(tmp / "results"), "--run-id", "a"]) == 0
    arts = tmp / "results" / "artifacts"
    [folder] = [p for p in arts.glob("teacher-*") if p.is_dir()]
    [onnx] = [p for p in arts.glob("onnx-teacher-*") if p.is_dir()]
    return {"folder": folder, "onnx": onnx / "model.onnx"}


def _run_suite(doc: dict, tmp_path: Path) -> list[dict]:
    doc = doc | {"measure": MEASURE}
    doc.setdefault("data", {}).setdefault("max_length", 48)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["run", str(path), "--results-dir", str(tmp_path / "results"), "--run-id", "r"]) == 0
    rows = read_rows(tmp_path / "results" / doc["name"] / "r")
    assert rows and all(r["status"] == "ok" for r in rows)
    return rows


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "glue"
    (root / "sst2").mkdir(parents=True)
    for f in (FIXTURE_DATA / "sst2").iterdir():
        (root / "sst2" / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("BENCH_DATA_DIR", str(root))
    return root


def test_quick(models, tmp_path, data_dir):
    line = recipe("quick").strip().replace("./my-model", str(models["folder"]))
    done = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=os.environ | {"BENCH_DATA_DIR": str(data_dir)})
    assert done.returncode == 0, done.stderr[-2000:]
    [run_dir] = (tmp_path / "results").glob("quick-*/*")
    rows = read_rows(run_dir)
    assert {r["precision"] for r in rows} == {"fp32", "int8-dynamic"} and all(r["status"] == "ok" for r in rows)
    assert {r["format"] for r in rows} == {"pytorch", "onnx"}
    # The suite it leaves in the run folder reproduces the run with `bench run`.
    suite = run_dir / "suite.yaml"
    assert yaml.safe_load(suite.read_text())["teacher"]["finetune"] is None
    again = subprocess.run(["bench", "run", str(suite), "--run-id", "again"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=900, env=os.environ | {"BENCH_DATA_DIR": str(data_dir)})
    assert again.returncode == 0, again.stderr[-2000:]
    assert {r["variant_id"] for r in read_rows(run_dir.parent / "again")} == {r["variant_id"] for r in rows}


def test_checkpoint(models, tmp_path, data_dir, capsys):
    doc = yaml.safe_load(recipe("checkpoint"))
    hub = tmp_path / "hub.yaml"
    hub.write_text(yaml.safe_dump(doc))
    assert main(["plan", str(hub)]) == 2  # the hub id itself: one line while offline
    assert "the hub is offline" in capsys.readouterr().err
    doc["teacher"]["source"] = str(models["folder"])
    doc["student"]["layers"] = [0]  # the tiny teacher has 2 layers, not 12
    rows = _run_suite(doc, tmp_path)
    assert {r["model"] for r in rows} == {"teacher", "student"}


def test_onnx(models, tmp_path, data_dir):
    doc = yaml.safe_load(recipe("onnx"))
    doc["teacher"]["source"] = str(models["onnx"])
    rows = _run_suite(doc, tmp_path)
    assert {(r["precision"], r["graph"]) for r in rows} == {("fp32", "plain"), ("int8-dynamic", "plain"),
                                                           ("fp32", "optimized")}


def test_glue(tmp_path, data_dir):
    doc = yaml.safe_load(recipe("glue"))
    write_glue_fixture(doc["task"], data_dir / doc["task"])
    doc["teacher"] = {"source": TINY, "finetune": doc["teacher"]["finetune"] | {"batch_size": 8, "lr": 3e-3}}
    doc["student"]["layers"] = [0]
    rows = _run_suite(doc, tmp_path)
    assert {r["metric"] for r in rows} == {"f1"} and len(rows) == 8


def test_files(models, tmp_path, data_dir):
    doc = yaml.safe_load(recipe("files"))
    with open(FIXTURE_DATA / "sst2" / "train.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    for name, part in ((doc["data"]["train"], rows[: len(rows) // 2]), (doc["data"]["validation"], rows[len(rows) // 2:])):
        with open(tmp_path / name, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["review", "stars"])
            out.writerows([r["sentence"], ["negative", "positive"][int(r["label"])]] for r in part)
    doc["data"] |= {"train": str(tmp_path / doc["data"]["train"]), "validation": str(tmp_path / doc["data"]["validation"])}
    doc["teacher"]["source"] = str(models["folder"])
    result = _run_suite(doc, tmp_path)
    assert {r["task"] for r in result} == {"reviews"} and {r["metric"] for r in result} == {"accuracy"}
