"""The shipped smoke suite, exactly as CI and a newcomer run it (real SST-2 subset when
BENCH_DATA_DIR is set, the bundled fixture otherwise)."""

from pathlib import Path

from bench.cli import main
from bench.results import read_rows

SMOKE = Path(__file__).resolve().parent.parent / "suites" / "smoke.yaml"


def test_smoke_suite_runs_whole_chain(tmp_path):
    assert main(["run", str(SMOKE), "--results-dir", str(tmp_path), "--run-id", "ci"]) == 0
    rows = read_rows(tmp_path / "smoke" / "ci")
    assert sorted(r["variant_id"] for r in rows) == [
        "student-onnx-fp32-cpu-t2", "student-pytorch-fp32-cpu-t2",
        "teacher-onnx-fp32-cpu-t2", "teacher-pytorch-fp32-cpu-t2",
    ]
    assert all(r["status"] == "ok" and r["latency_n"] >= 100 for r in rows)
    assert all(r["parity_max_abs_diff"] < 1e-4 for r in rows if r["format"] == "onnx")
