"""The results schema in code (bench/schema): old files load, docs/schema.md's table is generated from it, and
the measuring child's boundary rejects a result with a missing or unknown field, naming it."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from bench.common.errors import BenchError
from bench.launch.isolate import run_isolated
from bench.schema import ROW_FIELDS, SCHEMA_VERSION, Row
from bench.schema.child import ChildReport, ChildResult, ChildSpec
from bench.schema.doc import schema_block, table
from bench.store.results import open_run

SST2_TASK = {"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy", "f1"]}
REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"


def test_docs_schema_table_is_generated_from_the_code():
    block = schema_block((REPO / "docs" / "schema.md").read_text())
    assert block is not None, "docs/schema.md lost its schema-table markers"
    assert block == table(), "docs/schema.md's schema table is stale: run `python -m bench.schema.doc --write`"


@pytest.mark.parametrize("run", sorted(p.name for p in GOLDEN.iterdir() if (p / "results.jsonl").is_file()))
def test_golden_runs_load_through_the_reader(run):
    loaded = open_run(GOLDEN / run)
    assert len(loaded.rows) == 4 and loaded.frame()["graph"].eq("plain").all()  # defaults for older rows


def _cell(value):
    """A results.csv cell back to its JSON value (pandas wrote lists and dicts as Python reprs)."""
    if isinstance(value, float) and pd.isna(value):
        return None
    if isinstance(value, str) and value[:1] in "[{":
        return ast.literal_eval(value)
    return value


@pytest.mark.parametrize("report", sorted(str(p.parent.relative_to(REPO)) for p in [
    *(REPO / "reports").glob("*/results.csv"), *(REPO / "docs" / "studies").glob("*/results.csv")]))
def test_committed_reports_rows_fit_the_schema(report):
    df = pd.read_csv(REPO / report / "results.csv")
    assert set(df.columns) <= set(ROW_FIELDS), set(df.columns) - set(ROW_FIELDS)
    for record in df.to_dict("records"):
        row = Row.model_validate({k: _cell(v) for k, v in record.items()})
        assert row.status == "ok" and row.latency_p50_ms > 0


@pytest.mark.parametrize("report", sorted(p.parent.name for p in (REPO / "reports").glob("*/results.csv")))
def test_committed_reports_were_written_by_the_schema_the_code_writes(report):
    versions = set(pd.read_csv(REPO / "reports" / report / "results.csv")["schema_version"])
    assert versions == {SCHEMA_VERSION}, (
        f"reports/{report} holds rows of results schema version {sorted(versions)}; the code writes "
        f"{SCHEMA_VERSION}: regenerate it from a run of the current code (bench run, then bench report)")


def _ok_result(**change) -> dict:
    golden = json.loads((GOLDEN / "baseline" / "results.jsonl").read_text().splitlines()[1])
    result = {k: v for k, v in golden.items() if k in ChildResult.model_fields}
    return result | change


def _ok_report(**change) -> dict:
    """What a child writes for that result: its measurements and one prediction per example (the spec below
    has one), without the task's metrics, which the parent computes."""
    report = {k: v for k, v in _ok_result().items() if k in ChildReport.model_fields} | {"eval_predictions": [[0]],
                                                                                       "score_batch_size": 32}
    return report | change


def test_child_result_missing_or_unknown_field_is_named():
    ChildResult.model_validate(_ok_result())  # the golden row's measured fields are a complete result
    missing = _ok_result()
    del missing["latency_p95_ms"]
    with pytest.raises(ValidationError, match="latency_p95_ms"):
        ChildResult.model_validate(missing)
    with pytest.raises(ValidationError, match="latency_p95"):
        ChildResult.model_validate(_ok_result(latency_p95="3.1"))  # a typo'd name is an unknown field
    with pytest.raises(ValidationError, match="accuracy"):
        ChildResult.model_validate(_ok_result(accuracy="high"))


# A worker that writes a result file of its own: the parent must refuse it, naming the field.
_FAKE_WORKER = """
import json, sys
json.dump(json.loads(sys.argv[3]), open(sys.argv[2], "w"))
"""


@pytest.mark.parametrize(("change", "field"), [({"latency_p50_ms": None}, "latency_p50_ms"),
                                               ({"bogus_ms": 1.0}, "bogus_ms"), ({"accuracy": 1.0}, "accuracy"),
                                               ({"eval_predictions": [[0, 1]]}, "eval_predictions")])
def test_parent_end_of_the_child_boundary_names_the_field(tmp_path, monkeypatch, change, field):
    import bench.launch.isolate as isolate

    result = {k: v for k, v in (_ok_report() | change).items() if v is not None}
    monkeypatch.setattr(isolate, "worker_command", lambda spec, out: [
        sys.executable, "-c", _FAKE_WORKER, str(spec), str(out), json.dumps(result)])
    spec = {"variant": {"model": "student", "format": "onnx", "precision": "fp32", "device": "cpu", "threads": 1},
            "artifact_dir": str(tmp_path), "task": SST2_TASK,
            "eval_sets": [{"name": "validation", "first": ["x"], "second": None, "labels": [0]}], "max_length": 8}
    got = run_isolated(spec, tmp_path, "v", timeout_s=60)
    assert got.status == "failed" and got.error.startswith(f"child result: {field}: "), got.error


def test_child_end_of_the_boundary_rejects_a_bad_spec_and_a_bad_result(tmp_path, monkeypatch, tiny_onnx_artifact):
    from bench.child import worker

    with pytest.raises(ValidationError, match="eval_sets"):
        ChildSpec.model_validate({"variant": {"model": "s", "format": "onnx", "precision": "fp32", "device": "cpu",
                                              "threads": 1}, "artifact_dir": ".", "max_length": 8,
                                "task": SST2_TASK})
    spec = ChildSpec(variant={"model": "student", "format": "onnx", "precision": "fp32", "device": "cpu", "threads": 1},
                     artifact_dir=tiny_onnx_artifact,
                     task=SST2_TASK,
                     eval_sets=[{"name": "validation", "first": ["a warm , funny film .", "dull ."], "labels": [1, 0]}],
                     max_length=16, measure={"warmup": 1, "min_iterations": 3, "min_seconds": 0})
    (tmp_path / "spec.json").write_text(spec.to_json())
    real = worker.measure
    monkeypatch.setattr(worker, "measure", lambda s, loaded=None: real(s, loaded) | {"latency_p99_9_ms": 1.0})  # unknown
    with pytest.raises(ValidationError, match="latency_p99_9_ms"):
        worker.main([str(tmp_path / "spec.json"), str(tmp_path / "result.json")])
    assert not (tmp_path / "result.json").exists()  # nothing written half-way
    monkeypatch.setattr(worker, "measure", real)
    assert worker.main([str(tmp_path / "spec.json"), str(tmp_path / "result.json")]) == 0
    report = ChildReport.model_validate_json((tmp_path / "result.json").read_bytes())
    assert "accuracy" not in ChildReport.model_fields and [len(p) for p in report.eval_predictions] == [2]
    assert report.scored(spec).eval_samples == 2  # the parent's scoring of the child's predictions


def test_a_written_row_needs_its_identity_and_measurements():
    identity = {"run_id": "r", "suite": "s", "task": "sst2", "variant_id": "v", "model": "student", "format": "onnx",
                "precision": "fp32", "device": "cpu", "threads": 1, "seed": 42}
    failed = Row.for_write(identity, {"status": "failed", "error": "boom", "artifact": "a", "size_mb": 1.0})
    assert failed.to_json_dict()["error"] == "boom"
    with pytest.raises(ValidationError, match="lacks required field.*accuracy"):
        Row.for_write(identity, {"status": "ok", "artifact": "a", "size_mb": 1.0})
    with pytest.raises(ValidationError, match="threads"):
        Row.for_write(identity | {"threads": None}, {"status": "failed", "artifact": "a", "size_mb": 1.0})
    with pytest.raises(ValidationError, match="colour"):
        Row.for_write(identity, {"status": "failed", "artifact": "a", "size_mb": 1.0, "colour": "red"})


def test_reader_names_the_file_line_and_field_of_a_bad_row(tmp_path):
    lines = (GOLDEN / "baseline" / "results.jsonl").read_text().splitlines()
    bad = json.loads(lines[1]) | {"latency_p50_ms": "fast"}
    (tmp_path / "results.jsonl").write_text("\n".join([lines[0], json.dumps(bad)]) + "\n")
    with pytest.raises(BenchError, match=r"results.jsonl:2: latency_p50_ms: "):
        open_run(tmp_path)
