"""The shipped smoke suite, exactly as CI and a newcomer run it (real SST-2 subset when
BENCH_DATA_DIR is set, the bundled fixture otherwise)."""

from pathlib import Path

from bench.cli import main
from bench.store.results import read_rows

SMOKE = Path(__file__).resolve().parent.parent / "suites" / "smoke.yaml"


def test_smoke_suite_runs_whole_chain(tmp_path):
    assert main(["run", str(SMOKE), "--results-dir", str(tmp_path), "--run-id", "ci"]) == 0
    rows = read_rows(tmp_path / "smoke" / "ci")
    by_id = {r["variant_id"]: r for r in rows}
    assert sorted(by_id) == sorted([
        "teacher-pytorch-fp32-cpu-t2", "teacher-onnx-fp32-cpu-t2",
        "student-pytorch-fp32-cpu-t2", "student-onnx-fp32-cpu-t2", "student-pytorch-int8-dynamic-cpu-t2",
        "student-onnx-int8-dynamic-cpu-t2", "student-onnx-int8-static-minmax-cpu-t2",
        "student-onnx-fp32-opt-cpu-t2", "student-onnx-int8-dynamic-opt-cpu-t2",
    ])
    assert all(r["status"] == "ok" and r["latency_n"] >= 100 for r in rows)
    # Every row's speedup over the teacher in PyTorch FP32, from 10 interleaved rounds (the gate's metric).
    assert all(len(r["speedup_rounds"]) == 10 and r["speedup_reference"] == "teacher-pytorch-fp32-cpu-t2"
               and r["speedup_ci_low"] <= r["speedup_vs_reference"] <= r["speedup_ci_high"] for r in rows)
    for vid in ("teacher-onnx-fp32-cpu-t2", "student-onnx-fp32-cpu-t2", "student-onnx-fp32-opt-cpu-t2"):
        assert by_id[vid]["parity_max_abs_diff"] < 1e-4
    assert by_id["student-onnx-fp32-opt-cpu-t2"]["graph_fully_fused"] is True
    cells = by_id["teacher-pytorch-fp32-cpu-t2"]["latency_grid"]
    assert [(c["batch"], c["seq_len"]) for c in cells] == [(1, 16), (1, 64), (8, 16), (8, 64)]
    assert all(c["n"] >= 10 and abs(c["samples_per_s"] * c["p50_ms"] / 1e3 / c["batch"] - 1) < 1e-3 for c in cells)
    for r in rows:  # Offline: the whole eval split once per batch size, sorted, dynamic padding
        n = r["eval_samples"]  # 200 real dev rows, or the whole 64-row fixture
        assert [(e["batch_size"], e["samples"], e["passes"]) for e in r["offline"]] == [(1, n, 1), (8, n, 1)]
        assert r["offline"][0]["padding_pct"] == 0 and r["offline"][1]["padding_pct"] > 0
        assert r["peak_rss_mb"] >= r["peak_rss_sampled_mb"] - 1
    from bench.report.write import write_report

    write_report(tmp_path / "smoke" / "ci", tmp_path / "reports", name="smoke")
    assert (tmp_path / "reports" / "smoke" / "latency_grid.png").is_file()
    md = (tmp_path / "reports" / "smoke" / "index.md").read_text()
    assert "## Latency grid (p50 ms, batch × sequence length)" in md and "## Offline throughput" in md
    assert by_id["student-onnx-int8-dynamic-opt-cpu-t2"]["int8_matmul_coverage_pct"] == 100.0
    assert by_id["student-onnx-int8-static-minmax-cpu-t2"]["calibration_samples"] == 100
    int8, fp32 = by_id["student-onnx-int8-dynamic-cpu-t2"], by_id["student-onnx-fp32-cpu-t2"]
    assert int8["size_mb"] < fp32["size_mb"] and int8["parity_label_agreement"] >= 0.9
