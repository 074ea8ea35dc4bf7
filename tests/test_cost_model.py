"""`bench plan`'s cost model (bench/run/cost_model.py): times fitted to earlier runs on this host, training
stages scaled by train rows x epochs, measurements by eval rows, other builds as their kind's mean."""

from __future__ import annotations

import json
import platform

import pytest

from bench.build.pipeline import stage_work
from bench.data.load import load_task_data
from bench.plan import make_plan
from bench.run.bill import make_bill
from bench.run.cost_model import Sample, predict, read_history
from bench.spec.suite import load_suite


def test_predict_fits_a_line_through_two_sizes_and_scales_one():
    line = [Sample(10 + 0.1 * w, w) for w in (100, 400, 400)]
    assert predict(line, 1600) == pytest.approx(170)
    assert predict([Sample(50.0, 500)], 2000) == pytest.approx(200)  # one size: time per row
    assert predict([Sample(4.0, None), Sample(6.0, None)], 999) == 5.0  # no work recorded: the mean
    assert predict([Sample(4.0, 10)], None) == 4.0  # unknown work to come: the mean
    # A line that would go below zero at the origin falls back to time per row.
    assert predict([Sample(1.0, 100), Sample(100.0, 200)], 400) == pytest.approx((1 / 100 + 100 / 200) / 2 * 400)


def test_stage_work_is_rows_times_epochs():
    assert stage_work("teacher", {"train_rows": 160, "epochs": 2.0}) == 320
    assert stage_work("teacher-logits", {"rows": 160}) == 160
    assert stage_work("onnx-teacher", {"parity_samples": 16}) is None


def _write_run(root, name, suite, stages, wall_s, eval_rows=64, host=None):
    d = root / suite / name
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({
        "suite": suite, "environment": {"hostname": host or platform.node()}, "status": "finished",
        "data": {"train_rows": 0, "eval_rows": eval_rows}, "stages": stages, "wall_s": wall_s}))


def test_plan_scales_training_by_rows_and_measurement_by_eval_rows(tiny_suite, tmp_path):
    """Two earlier runs of the tiny suite at 100 and 400 train rows (teacher 10 + 0.1/row) and 32 and 64 eval
    rows (each variant 2 + 0.1/eval row): a plan for 160 train rows and 48 eval rows is on both lines."""
    def stage(artifact, seconds, work=None):
        return {"artifact": artifact, "reused": False, "wall_s": seconds, "build_time_s": seconds} | (
            {"work": work} if work else {})

    suite_path = tiny_suite(n_train=160, n_eval=48)
    suite = load_suite(suite_path)
    plan = make_plan(suite)
    for name, rows, eval_rows in (("small", 100, 32), ("large", 400, 64)):
        per_variant = {v.id: 2 + 0.1 * eval_rows for v in plan.variants}
        stages = {"teacher_finetune": stage(f"teacher-{name}", 10 + 0.1 * rows, rows),
                  "teacher_logits": stage(f"teacher-logits-{name}", 0.01 * rows, rows),
                  "student_distill": stage(f"student-{name}", 5 + 0.05 * rows, rows),
                  "teacher-onnx-fp32": stage(f"onnx-teacher-{name}", 3.0),
                  "student-onnx-fp32": stage(f"onnx-student-{name}", 1.0),
                  "measure": {"wall_s": sum(per_variant.values()), "per_variant_s": per_variant}}
        _write_run(tmp_path / "results", name, "tiny", stages, sum(s["wall_s"] for s in stages.values()) + 4, eval_rows)
    # Another machine's much slower run is not this machine's history.
    _write_run(tmp_path / "results", "elsewhere", "tiny", {"teacher_finetune": stage("teacher-x", 1e4, 100)}, 1e4,
               host="another-host")

    data = load_task_data(suite.data, suite.task_def, suite.seed)
    assert len(data.splits["train"]) == 160 and len(data.splits["validation"]) == 48
    e = make_bill(suite, plan, data, tmp_path / "empty-cache", tmp_path / "results").estimate
    assert e.runs == 2 and e.unknown_builds == 0 and e.unknown_measurements == 0
    assert e.training_s == pytest.approx((10 + 16) + 1.6 + (5 + 8))
    assert e.builds_s == pytest.approx(4.0)
    assert e.measure_s == pytest.approx(len(plan.variants) * (2 + 4.8))
    assert e.overhead_s == pytest.approx(4.0)
    assert e.total_s == pytest.approx(e.training_s + 4.0 + e.measure_s + 4.0)


def test_history_prefers_measurements_with_the_same_settings(tmp_path):
    per_variant = {"student-onnx-fp32-cpu-t1": 30.0}
    _write_run(tmp_path, "old", "s", {"measure": {"wall_s": 30, "per_variant_s": per_variant}}, 31)
    _write_run(tmp_path, "new", "s", {"measure": {"wall_s": 10, "per_variant_s": {"student-onnx-fp32-cpu-t1": 10.0},
                                                  "config_hash": "abc"}}, 11)
    samples = read_history(tmp_path).samples
    assert [x.seconds for x in samples[("variant", "s", "student-onnx-fp32-cpu-t1", "abc")]] == [10.0]
    assert sorted(x.seconds for x in samples[("variant", "s", "student-onnx-fp32-cpu-t1")]) == [10.0, 30.0]


def test_history_skips_measurements_whose_row_failed(tmp_path):
    per_variant = {"student-onnx-fp32-cpu-t1": 30.0, "teacher-onnx-fp32-cpu-t1": 2.0}
    _write_run(tmp_path, "r", "s", {"measure": {"wall_s": 32, "per_variant_s": per_variant}}, 33)
    rows = [{"variant_id": "student-onnx-fp32-cpu-t1", "seed": 42, "status": "ok"},
            {"variant_id": "teacher-onnx-fp32-cpu-t1", "seed": 42, "status": "failed"}]
    (tmp_path / "s" / "r" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = read_history(tmp_path).samples
    assert [x.seconds for x in samples[("variant", "s", "student-onnx-fp32-cpu-t1")]] == [30.0]
    assert ("variant", "s", "teacher-onnx-fp32-cpu-t1") not in samples  # 2 s to fail is not its cost


def test_a_build_is_estimated_from_the_most_recent_run_that_built_its_kind():
    old, new = Sample(30.0, None, "2026-12-01T10:00:00+0000"), Sample(10.0, None, "2026-12-02T10:00:00+0000")
    assert predict([old, new], None) == 10.0  # this version's conversion, not the average with the old one
    assert predict([old, new, Sample(12.0, None, new.at)], None) == 11.0  # a run that built it twice: their mean
