"""bench.gate.check: profiles and budgets on crafted rows (built from the golden baseline rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.common.errors import BenchError
from bench.gate.check import NOT_MEASURED, check_run, format_markdown, load_profile
from bench.store.results import read_rows

GOLDEN = Path(__file__).resolve().parent / "golden"
TEACHER, STUDENT, TARGET = "teacher-pytorch-fp32-cpu-t1", "student-pytorch-fp32-cpu-t1", "student-onnx-int8-dynamic-cpu-t1"


def _rows(**target) -> list[dict]:
    """teacher pytorch fp32 (91.5 %), student pytorch fp32 (90 %) and a student int8 row with `target` fields."""
    by_id = {r["variant_id"]: r for r in read_rows(GOLDEN / "baseline")}
    int8 = dict(by_id["student-onnx-fp32-cpu-t1"], variant_id=TARGET, precision="int8-dynamic",
                size_mb=7.0, peak_rss_mb=300.0, latency_p95_ms=1.2, accuracy=0.895)
    int8.update(target)
    return [by_id[TEACHER], by_id[STUDENT], int8]


@pytest.fixture
def run_dir(tmp_path):
    def make(rows: list[dict]) -> Path:
        d = tmp_path / "run"
        d.mkdir(exist_ok=True)
        (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return d

    return make


@pytest.fixture
def profile(tmp_path):
    def make(**budgets):
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump(budgets))
        return load_profile(path)

    return make


def _target(result) -> dict:
    return result.table.set_index("variant").loc[TARGET].to_dict()


@pytest.mark.parametrize("budget, limit, field, passing, failing, cell, reason", [
    ("max_size_mb", 40, "size_mb", 40.0, 45.2, "FAIL: 45.2 MB > 40 MB", "size 45.2 MB > max 40 MB"),
    ("max_peak_rss_mb", 600, "peak_rss_mb", 599.0, 700.0, "FAIL: 700 MB > 600 MB", "peak RSS 700 MB > max 600 MB"),
    ("max_p95_ms_bs1", 10, "latency_p95_ms", 9.5, 12.5, "FAIL: 12.5 ms > 10 ms",
     "batch-1 p95 latency 12.5 ms > max 10 ms"),
    ("max_accuracy_drop_vs_teacher_pts", 1.5, "accuracy", 0.900, 0.895, "FAIL: 2.00 (point) pts > 1.5 pts",
     "accuracy drop vs teacher pytorch fp32 2.00 pts > max 1.5 pts (point estimate: no predictions for an interval)"),
    ("max_accuracy_drop_vs_fp32_pts", 1.0, "accuracy", 0.890, 0.885, "FAIL: 1.50 (point) pts > 1 pts",
     "accuracy drop vs student pytorch fp32 1.50 pts > max 1 pts (point estimate: no predictions for an interval)"),
    ("max_opset", 17, "onnx_opset", 17, 18, "FAIL: 18 > 17", "ONNX opset 18 > max 17"),
    ("min_int8_matmul_coverage_pct", 90, "int8_matmul_coverage_pct", 95.0, 40.0, "FAIL: 40% < 90%",
     "int8 MatMul coverage 40% < min 90%"),
])
def test_each_budget_passes_and_fails(run_dir, profile, budget, limit, field, passing, failing, cell, reason):
    p = profile(threads=1, device="cpu", **{budget: limit})
    ok = _target(check_run(run_dir(_rows(**{field: passing})), p, [TARGET]))
    assert ok["verdict"] == "PASS" and ok["reasons"] == "" and ok["not_measured"] == ""
    assert ok[budget].startswith("pass: ")

    result = check_run(run_dir(_rows(**{field: failing})), p, [TARGET])
    bad = _target(result)
    assert bad["verdict"] == "FAIL" and bad[budget] == cell and bad["reasons"] == reason
    assert result.exit_code == 1 and not result.passed
    assert f"- {TARGET} (seed 42): {reason}" in format_markdown(result)


def test_value_exactly_at_budget_passes(run_dir, profile):
    # 91.5 - 90.0 is 1.5000000000000013 points in floats; it must still pass a 1.5-point budget.
    result = check_run(run_dir(_rows(accuracy=0.900)), profile(max_accuracy_drop_vs_teacher_pts=1.5), [TARGET])
    assert _target(result)["verdict"] == "PASS"


def test_missing_metric_is_not_measured_never_a_pass(run_dir, profile):
    p = profile(threads=1, max_opset=17, min_int8_matmul_coverage_pct=90, max_size_mb=40)
    result = check_run(run_dir(_rows()), p, [TARGET])
    row = _target(result)
    assert row["max_opset"] == NOT_MEASURED == "n/a (not measured)"
    assert row["min_int8_matmul_coverage_pct"] == NOT_MEASURED
    assert row["not_measured"] == "max_opset, min_int8_matmul_coverage_pct"
    assert row["max_size_mb"] == "pass: 7 MB" and row["verdict"] == "PASS"
    md = format_markdown(result)
    assert "### Not measured (neither pass nor fail)" in md
    assert f"- {TARGET} (seed 42): max_opset, min_int8_matmul_coverage_pct" in md


def test_missing_reference_row_is_not_measured(run_dir, profile):
    rows = [r for r in _rows() if r["variant_id"] != TEACHER]
    row = _target(check_run(run_dir(rows), profile(max_accuracy_drop_vs_teacher_pts=1.0), [TARGET]))
    assert row["max_accuracy_drop_vs_teacher_pts"] == "n/a (no teacher pytorch fp32 row)"
    assert row["verdict"] == "PASS" and row["not_measured"] == "max_accuracy_drop_vs_teacher_pts"


def test_failed_row_fails_with_its_status(run_dir, profile):
    rows = _rows(status="failed", error="exit code 1: boom\nmore", latency_p95_ms=None)
    row = _target(check_run(run_dir(rows), profile(max_p95_ms_bs1=10), [TARGET]))
    assert row["verdict"] == "FAIL" and row["reasons"] == "not measured: failed (exit code 1: boom)"


def test_threads_and_device_select_rows(run_dir, profile):
    rows = _rows()
    rows.append(dict(rows[2], variant_id="student-onnx-int8-dynamic-cpu-t2", threads=2, latency_p95_ms=99.0))
    rows.append(dict(rows[2], variant_id="student-onnx-int8-dynamic-cuda-t1", device="cuda", latency_p95_ms=99.0))
    result = check_run(run_dir(rows), profile(threads=1, device="cpu", max_p95_ms_bs1=10))
    assert list(result.table["variant"]) == ["student-onnx-int8-dynamic-cpu-t1", STUDENT, TEACHER]
    assert result.passed and result.exit_code == 0
    cuda = check_run(run_dir(rows), profile(device="cuda", max_p95_ms_bs1=10))
    assert list(cuda.table["variant"]) == ["student-onnx-int8-dynamic-cuda-t1"]
    assert cuda.table["reasons"].iloc[0] == "batch-1 p95 latency 99 ms > max 10 ms"


def test_unknown_or_unselected_variant_is_bad_input(run_dir, profile):
    rows = _rows()
    with pytest.raises(BenchError, match="nope-cpu-t1 not among the rows profile p judges"):
        check_run(run_dir(rows), profile(threads=1), ["nope-cpu-t1"])
    with pytest.raises(BenchError, match=r"no rows with threads=2, device=any"):
        check_run(run_dir(rows), profile(threads=2))


def test_unknown_profile_key_names_file_and_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("threads: 1\nmax_sise_mb: 40\n")
    with pytest.raises(BenchError, match=rf"{path}: unknown key 'max_sise_mb'"):
        load_profile(path)


@pytest.mark.parametrize("text, words", [
    ("max_size_mb: big\n", "max_size_mb: expected a number >= 0, got 'big'"),
    ("threads: 1.5\n", "threads: expected a positive integer"),
    ("- 1\n", "a profile is a mapping"),
    ("threads: [\n", "not valid YAML"),
])
def test_bad_profile_values_raise(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BenchError, match=words.replace("[", r"\[")):
        load_profile(path)


def test_unknown_profile_name_raises():
    with pytest.raises(BenchError, match=r"unknown profile 'no-such-profile' \(known: edge-cpu-1t, gpu-t4-like, "
                                         r"onnx-portable, server-cpu"):
        load_profile("no-such-profile")
    with pytest.raises(BenchError, match="profile file not found: missing.yaml"):
        load_profile("missing.yaml")


def test_shipped_profiles():
    edge = load_profile("edge-cpu-1t")
    assert (edge.name, edge.threads, edge.device, edge.max_size_mb, edge.max_peak_rss_mb, edge.max_p95_ms_bs1,
            edge.max_accuracy_drop_vs_teacher_pts, edge.max_accuracy_drop_vs_fp32_pts) == (
        "edge-cpu-1t", 1, "cpu", 40, 600, 10, 1.5, 1.0)
    server = load_profile("server-cpu")
    assert (server.threads, server.device, server.max_p95_ms_bs1, server.max_accuracy_drop_vs_teacher_pts) == (
        2, "cpu", 50, 1.0)
    gpu = load_profile("gpu-t4-like")
    assert (gpu.threads, gpu.device, gpu.max_p95_ms_bs1, gpu.max_size_mb, gpu.max_accuracy_drop_vs_teacher_pts) == (
        None, "cuda", 5, 200, 1.0)
    assert gpu.budgets() == ["max_size_mb", "max_p95_ms_bs1", "max_accuracy_drop_vs_teacher_pts"]


def test_edge_profile_on_golden_run():
    result = check_run(GOLDEN / "accuracy_drop", load_profile("edge-cpu-1t"))
    verdicts = dict(zip(result.table["variant"], result.table["verdict"], strict=True))
    assert verdicts == {"student-onnx-fp32-cpu-t1": "FAIL", STUDENT: "PASS",
                        "teacher-onnx-fp32-cpu-t1": "FAIL", TEACHER: "FAIL"}
    reasons = dict(zip(result.table["variant"], result.table["reasons"], strict=True))
    assert reasons["student-onnx-fp32-cpu-t1"] == ("accuracy drop vs teacher pytorch fp32 2.50 pts > "
                                                      "max 1.5 pts (point estimate: no predictions for an interval)")
    assert reasons[TEACHER] == "size 417.7 MB > max 40 MB; peak RSS 1210 MB > max 600 MB"
    assert "**FAIL**: 3 of 4 variants over budget" in format_markdown(result)


def test_operator_domains_budget(tmp_path):
    from bench.gate.check import check_run, load_profile

    rows = [json.loads(x) for x in (GOLDEN / "baseline" / "results.jsonl").read_text().splitlines()]
    domains = {"teacher-onnx-fp32-cpu-t1": ["ai.onnx"], "student-onnx-fp32-cpu-t1": ["ai.onnx", "com.microsoft"]}
    rows = [r | {"onnx_op_domains": domains.get(r["variant_id"])} for r in rows]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = check_run(tmp_path, load_profile("onnx-portable")).table.set_index("variant")
    assert table.loc["teacher-onnx-fp32-cpu-t1", "verdict"] == "PASS"
    student = table.loc["student-onnx-fp32-cpu-t1"]
    assert student["verdict"] == "FAIL" and "operator domain(s) com.microsoft not in" in student["reasons"]
    assert table.loc["teacher-pytorch-fp32-cpu-t1", "allowed_op_domains"] == "n/a (not measured)"
