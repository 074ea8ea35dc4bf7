import sys

import numpy as np
import pytest

from bench.measure.isolate import run_isolated
from bench.measure.latency import latency_stats, time_calls
from bench.results import append_row, read_rows


def test_stats_match_numpy():
    rng = np.random.default_rng(0)
    s = rng.lognormal(1.0, 0.3, size=1001)
    st = latency_stats(s)
    assert st["latency_p50_ms"] == pytest.approx(np.median(s))
    assert st["latency_p99_ms"] == pytest.approx(np.percentile(s, 99))
    assert st["latency_stdev_ms"] == pytest.approx(np.std(s, ddof=1))
    assert st["latency_cv"] == pytest.approx(np.std(s, ddof=1) / np.mean(s))
    assert st["latency_n"] == 1001 and st["latency_min_ms"] == s.min()


def test_loop_meets_min_iterations_and_min_seconds():
    calls = []
    samples = time_calls(calls.append, [1, 2, 3], warmup=4, min_iterations=10, min_seconds=0.0)
    assert len(samples) == 10 and len(calls) == 14
    assert calls[4:7] == [1, 2, 3]  # cycles through the inputs
    import time

    samples = time_calls(lambda x: time.sleep(0.001), [0], warmup=0, min_iterations=1, min_seconds=0.05)
    assert len(samples) >= 10 and samples.sum() >= 45  # kept going until ~50 ms had passed
    assert (samples >= 1.0).all()  # each call slept >= 1 ms


def _spec(threads=1):
    return {"variant": {"threads": threads}}


def test_child_crash_becomes_failed_result(tmp_path, monkeypatch):
    # A spec that the worker cannot use: the child exits non-zero and its last log line is kept.
    result = run_isolated({"variant": {"threads": 1, "format": "nope", "device": "cpu", "precision": "fp32"},
                           "artifact_dir": str(tmp_path), "measure": {"ort_gpu_provider": "cuda"},
                           "sentences": ["x"], "labels": [0], "max_length": 8},
                          tmp_path, "v", timeout_s=120)
    assert result["status"] == "failed" and "exit code 1" in result["error"]
    assert "ValueError: no runtime adapter for format 'nope'" in result["error"]


def test_child_timeout_becomes_timeout_result(tmp_path, monkeypatch):
    import bench.measure.isolate as isolate

    monkeypatch.setattr(isolate, "worker_command", lambda *_: [sys.executable, "-c", "import time; time.sleep(60)"])
    result = run_isolated(_spec(), tmp_path, "v", timeout_s=1)
    assert result["status"] == "timeout" and "timeout_s=1" in result["error"]


def test_results_append_and_partial_line_ignored(tmp_path):
    append_row(tmp_path, {"variant_id": "a", "status": "ok"})
    append_row(tmp_path, {"variant_id": "b", "status": "ok"})
    with open(tmp_path / "results.jsonl", "ab") as fh:
        fh.write(b'{"variant_id": "c", "sta')  # a write cut short by kill -9
    rows = read_rows(tmp_path)
    assert [r["variant_id"] for r in rows] == ["a", "b"] and rows[0]["schema_version"] == 1


def test_append_after_a_partial_line_keeps_both_rows(tmp_path):
    append_row(tmp_path, {"variant_id": "a", "status": "ok"})
    with open(tmp_path / "results.jsonl", "ab") as fh:
        fh.write(b'{"variant_id": "b", "sta')  # killed mid-write
    append_row(tmp_path, {"variant_id": "c", "status": "ok"})  # the resumed run appends
    assert [r["variant_id"] for r in read_rows(tmp_path)] == ["a", "c"]


def test_median_confidence_interval_brackets_the_median():
    from bench.measure.latency import median_ci

    rng = np.random.default_rng(1)
    s = rng.lognormal(1.0, 0.3, size=2000)
    low, high = median_ci(s)
    assert low < np.median(s) < high and high - low < 0.1 * np.median(s)
    assert median_ci(s) == (low, high)  # seeded: the same interval on a rerun
    wide = median_ci(s[:50])
    assert wide[1] - wide[0] > high - low  # fewer samples, wider interval
    st = latency_stats(s)
    assert (st["latency_p50_ci95_low_ms"], st["latency_p50_ci95_high_ms"]) == (low, high)
