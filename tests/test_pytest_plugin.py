"""`pytest --bench-suite SUITE --benchmark-json OUT`: every variant becomes a pytest-benchmark test."""

import json
import subprocess
import sys


def test_bench_suite_option_produces_benchmark_json(tiny_suite, tmp_path):
    suite = tiny_suite()
    suite.write_text(suite.read_text().replace("variants:\n  - {model: [teacher, student], format: [pytorch, onnx],",
                                               "variants:\n  - {model: [student], format: [pytorch, onnx],"))
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--bench-suite", str(suite),
         "--bench-results-dir", str(tmp_path / "results"), "--benchmark-json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 passed" in proc.stdout
    report = json.loads(out.read_text())
    names = sorted(b["name"] for b in report["benchmarks"])
    assert names == ["test_variant[student-onnx-fp32-cpu-t1]", "test_variant[student-pytorch-fp32-cpu-t1]"]
    for b in report["benchmarks"]:
        assert b["group"] == "tiny" and b["stats"]["rounds"] == 20
        assert 0 <= b["extra_info"]["accuracy"] <= 1 and b["extra_info"]["tokenization_timed"] is False
