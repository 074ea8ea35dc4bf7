"""The whole chain on tiny models and the hand-written fixture: build, measure, resume, report."""

import json
import re

from bench.cli import main
from bench.store.results import read_rows


def test_run_end_to_end_then_reuse_everything(tiny_suite, tmp_path, capsys):
    suite = tiny_suite()
    results = tmp_path / "results"
    assert main(["run", str(suite), "--results-dir", str(results), "--run-id", "one"]) == 0
    run_dir = results / "tiny" / "one"
    rows = read_rows(run_dir)
    assert sorted(r["variant_id"] for r in rows) == sorted(
        f"{m}-{f}-fp32-cpu-t1" for m in ("teacher", "student") for f in ("pytorch", "onnx"))
    for r in rows:
        assert r["status"] == "ok", r.get("error")
        assert r["eval_samples"] == 64 and 0.0 <= r["accuracy"] <= 1.0
        assert sum(map(sum, r["confusion_matrix"])) == 64
        assert r["latency_n"] >= 20 and len(r["latency_raw_ms"]) == r["latency_n"]
        assert 0 < r["latency_p50_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"]
        assert r["threads"] == 1 and r["tokenization_timed"] is False
        assert r["size_mb"] > 0 and r["params"] > 0 and r["peak_rss_mb"] > r["rss_before_load_mb"] > 0
    by_id = {r["variant_id"]: r for r in rows}
    for model in ("teacher", "student"):
        pt, ox = by_id[f"{model}-pytorch-fp32-cpu-t1"], by_id[f"{model}-onnx-fp32-cpu-t1"]
        assert ox["parity_max_abs_diff"] < 1e-4
        # Same weights through two runtimes: same predictions on the whole eval split.
        assert pt["confusion_matrix"] == ox["confusion_matrix"]
        assert abs(pt["params"] - ox["params"]) / pt["params"] < 0.01
    assert by_id["student-pytorch-fp32-cpu-t1"]["params"] < by_id["teacher-pytorch-fp32-cpu-t1"]["params"]

    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["environment"]["versions"]["torch"]
    assert not any(s["reused"] for name, s in run["stages"].items() if name != "measure")

    # Second run of the same suite: every artifact reused, nothing rebuilt.
    assert main(["run", str(suite), "--results-dir", str(results), "--run-id", "two"]) == 0
    run2 = json.loads((results / "tiny" / "two" / "run.json").read_text())
    assert all(s["reused"] for name, s in run2["stages"].items() if name != "measure")
    assert {s["artifact"] for s in run2["stages"].values() if "artifact" in s} == \
        {s["artifact"] for s in run["stages"].values() if "artifact" in s}

    # Resuming run "one" measures nothing again and duplicates no row.
    assert main(["run", str(suite), "--results-dir", str(results), "--run-id", "one"]) == 0
    assert len(read_rows(run_dir)) == 4

    capsys.readouterr()
    assert main(["report", str(run_dir), "--out", str(tmp_path / "reports")]) == 0
    report = re.sub(r" +", " ", (tmp_path / "reports" / "one" / "index.md").read_text())
    assert "| teacher | pytorch | fp32 | plain | cpu | 1 |" in report and "| student | onnx | fp32 | plain | cpu | 1 |" in report
    assert "speedup, p50 ratio" in report and "## Decision" in report


def test_changing_student_field_rebuilds_only_student(tiny_suite, tmp_path):
    suite = tiny_suite()
    results = tmp_path / "results"
    assert main(["run", str(suite), "--results-dir", str(results), "--run-id", "a"]) == 0
    suite.write_text(suite.read_text().replace("layers: [1]", "layers: [0]"))
    assert main(["run", str(suite), "--results-dir", str(results), "--run-id", "b"]) == 0
    stages = json.loads((results / "tiny" / "b" / "run.json").read_text())["stages"]
    assert stages["teacher_finetune"]["reused"] and stages["teacher_logits"]["reused"]
    assert stages["teacher-onnx-fp32"]["reused"]
    assert not stages["student_distill"]["reused"] and not stages["student-onnx-fp32"]["reused"]


def test_bad_source_writes_nothing(tiny_suite, tmp_path, capsys):
    suite = tiny_suite()
    suite.write_text(suite.read_text().replace("tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=800", "package:nope_pkg"))
    results = tmp_path / "results"
    assert main(["run", str(suite), "--results-dir", str(results)]) == 2
    assert "teacher.source: package 'nope_pkg' is not installed" in capsys.readouterr().err
    assert not results.exists()


def test_report_on_non_run_dir(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.jsonl" in capsys.readouterr().err
