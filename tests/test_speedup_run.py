"""`measure.interleave` through `bench run` and `bench compare`: every row carries its speedup over the
teacher in PyTorch FP32 from interleaved rounds, run.json the reference's drift, and the default gate
judges the speedup (not the p50) where both sides have it: an unchanged run passes, a planted slowdown
of the measured variants fails on the rounds' Mann-Whitney test."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURE_DATA, TINY_SUITE

from bench.gate.compare import compare_runs, format_markdown, parse_tolerances
from bench.measure.stream import SLOWDOWN_ENV
from bench.run.suite_run import run_suite
from bench.store.results import read_rows

pytestmark = pytest.mark.slow  # two tiny-suite runs with rounds: ~90 s

INTERLEAVED = TINY_SUITE.replace("timeout_s: 300,", "timeout_s: 300, interleave: {{rounds: 6, calls_per_round: 15, "
                                                    "warmup: 2}}, op_profile: {{calls: 20}},")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One unchanged run, then one with a planted 1 ms slowdown (tiny models take well under 1 ms)."""
    root = tmp_path_factory.mktemp("interleaved")
    suite = root / "suite.yaml"
    suite.write_text(INTERLEAVED.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48))
    base = run_suite(suite, root / "results", run_id="base", cache_dir=root / "cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SLOWDOWN_ENV, "1")
        slow = run_suite(suite, root / "results", run_id="slow", cache_dir=root / "cache")
    return base, slow, suite


def test_every_row_has_its_interleaved_speedup_and_run_json_the_drift(runs):
    base, _, _ = runs
    rows = {r["variant_id"]: r for r in read_rows(base)}
    assert set(rows) == {"teacher-pytorch-fp32-cpu-t1", "teacher-onnx-fp32-cpu-t1", "student-pytorch-fp32-cpu-t1",
                         "student-onnx-fp32-cpu-t1"}
    for r in rows.values():
        assert r["speedup_reference"] == "teacher-pytorch-fp32-cpu-t1" and r["speedup_round_calls"] == 15
        assert len(r["speedup_rounds"]) == 6 and r["speedup_ci_coverage"] >= 0.95
        assert r["speedup_ci_low"] <= r["speedup_vs_reference"] <= r["speedup_ci_high"]
        assert r["speedup_ci_low"] == min(r["speedup_rounds"])  # 6 rounds: the interval is their range
    # The reference against a second process of itself: the rounds' own noise, around 1.
    assert 0.5 < rows["teacher-pytorch-fp32-cpu-t1"]["speedup_vs_reference"] < 2
    drift = json.loads((base / "run.json").read_text())["reference_drift"]["teacher-pytorch-fp32-cpu-t1"]
    assert drift["rounds"] == 4 * 6 and {"drift_pct", "noise_floor_pct", "flagged"} <= set(drift)


def test_the_default_gate_judges_the_speedup_and_catches_a_planted_slowdown(runs):
    base, slow, _ = runs
    same = compare_runs(base, base, parse_tolerances([]))
    assert not same.regressed
    assert set(same.details["metric"]) == {"speedup", "accuracy"}  # the p50 is shown, not judged
    assert set(same.table["latency_verdict"]) == {"not judged"}
    c = compare_runs(base, slow, parse_tolerances([]))
    assert c.regressed
    bad = c.details[c.details["verdict"] == "regressed"]
    # Every variant, the reference's own row included: its rounds ran planted against an unplanted reference.
    assert set(bad["metric"]) == {"speedup"} and len(bad) == 4
    assert (bad["p_value"] < 0.01).all() and (bad["change"] < -10).all()
    md = format_markdown(c)
    assert "speedup over the reference −10%" in md and "| p (rounds) |" in md.replace("   ", " ").replace("  ", " ")
    # Asked for, the p50 is judged as well.
    both = compare_runs(base, slow, parse_tolerances(["latency_p50=10%"]))
    assert {"speedup", "latency_p50"} <= set(both.details.loc[both.details["verdict"] == "regressed", "metric"])


def test_rows_say_where_the_time_goes_and_the_report_explains_each_step(runs, tmp_path, capsys):
    from bench.cli import main
    from bench.report.write import write_report

    base, _, suite = runs
    rows = {r["variant_id"]: r for r in read_rows(base)}
    onnx, torch = rows["student-onnx-fp32-cpu-t1"], rows["student-pytorch-fp32-cpu-t1"]
    assert onnx["op_profile_source"].startswith("onnxruntime profiler") and onnx["op_profile_calls"] == 20
    assert torch["op_profile_source"] == "torch.profiler (CPU self time)"
    assert {o["kind"] for o in torch["op_profile"]} >= {"float matmul", "other"}
    md = write_report(base, tmp_path / "reports").read_text()
    assert "## Where the time goes" in md and "op_time_by_kind.png" in md
    assert "student onnx fp32 t1 vs student pytorch fp32 t1: op time " in md
    # One variant on its own, from the same cache: nothing is built again.
    root = base.parent.parent.parent
    cached = sorted(p.name for p in (root / "cache").iterdir())
    assert main(["profile", str(suite), "student-onnx-fp32-cpu-t1", "--results-dir", str(root / "results"),
                 "--cache-dir", str(root / "cache"), "--calls", "10", "--top", "3"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("## student-onnx-fp32-cpu-t1 (seed 7)") and "| float matmul |" in out.out
    assert sorted(p.name for p in (root / "cache").iterdir()) == cached
