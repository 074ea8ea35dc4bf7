"""`bench plan`'s bill (what a run builds, rows, wall-time estimate), data validated before anything is
written, progress lines, and an artifact cache kept outside the results folder (as CI would)."""

import json
import logging
import platform
import re

import pytest
from conftest import REPO

from bench.cli import main
from bench.run.bill import fmt_duration
from bench.run.cost_model import read_history


def _break_data(suite, folder):
    suite.write_text(re.sub(r"path: [^,]+,", f"path: {folder},", suite.read_text()))


@pytest.mark.parametrize("folder,error", [("no-such-folder", "data.path: no such directory"),
                                          ("empty", "empty/train.tsv: no such file")])
def test_bad_data_path_writes_nothing(tiny_suite, tmp_path, capsys, folder, error):
    suite = tiny_suite()
    (tmp_path / "empty").mkdir()  # a folder, but no GLUE files (like data.path: /etc)
    _break_data(suite, tmp_path / folder)
    results, cache = tmp_path / "results", tmp_path / "cache"
    assert main(["run", str(suite), "--results-dir", str(results), "--cache-dir", str(cache)]) == 2
    assert error in capsys.readouterr().err
    assert not results.exists() and not cache.exists()
    assert main(["plan", str(suite), "--results-dir", str(results)]) == 2
    assert error in capsys.readouterr().err
    assert not results.exists()


def test_bad_data_line_is_named_before_the_run_dir_exists(tiny_suite, tmp_path, capsys):
    suite = tiny_suite()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.tsv").write_text("sentence\tlabel\ngood film\t1\nbad film\tx\n")
    (bad / "dev.tsv").write_text("sentence\tlabel\nfine\t0\n")
    _break_data(suite, bad)
    results = tmp_path / "results"
    assert main(["run", str(suite), "--results-dir", str(results)]) == 2
    assert "train.tsv:3: label 'x' is not an integer" in capsys.readouterr().err
    assert not results.exists()


def test_plan_bills_the_distillation_ablation(sst2_dir, tmp_path, capsys):
    suite = REPO / "suites" / "sst2-distill-ablation.yaml"
    assert main(["plan", str(suite), "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("suite sst2-distill-ablation: 6 variant(s) to measure, 0 skipped") and "18 rows" in first
    assert "rows: 18 (6 variant(s) x 3 seed(s))" in out
    assert "to build: 1 teacher fine-tune, 1 teacher logits pass, 15 student trainings;" in out
    students = re.findall(r"^  build +train +(\S+) distillation +student-[0-9a-f]{16}$", out, re.M)
    assert sorted(students) == sorted(["plain-ft", "kd", "kd-hidden", "kd-hidden-attn", "random-kd"] * 3)
    # The teacher (seed fixed at 42) is built once; seeds 43 and 44 reuse it.
    assert len(re.findall(r"^  cached +train +teacher fine-tune .*built earlier in this run", out, re.M)) == 2
    assert "estimated wall time: no earlier runs on this machine" in out
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()  # a plan writes nothing


def test_cache_outside_results_is_reused_with_progress(tiny_suite, tmp_path, capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="bench")
    suite, cache = tiny_suite(), tmp_path / "ci-cache"
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r1"), "--cache-dir", str(cache)]) == 0
    assert not (tmp_path / "r1" / "artifacts").exists() and any(cache.glob("teacher-*"))
    messages = [r.getMessage() for r in caplog.records]
    progress = [m for m in messages if m.startswith("measure ")]
    assert len(progress) == 4
    assert re.fullmatch(r"measure \S+-cpu-t1 \(1/4, elapsed \d\d:\d\d, ETA --:--\)", progress[0])
    assert re.fullmatch(r"measure \S+-cpu-t1 \(4/4, elapsed \d\d:\d\d, ETA \d\d:\d\d\)", progress[3])
    assert any(re.fullmatch(r"built teacher_finetune in \d+\.\d s", m) for m in messages)
    assert any(re.fullmatch(r"built student-onnx-fp32 in \d+\.\d s", m) for m in messages)

    # The first run's results are gone (a fresh CI checkout); the cache is restored: nothing is built.
    caplog.clear()
    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r2"), "--run-id", "warm"]) == 0
    run = json.loads((tmp_path / "r2" / "tiny" / "warm" / "run.json").read_text())
    stages = {k: v for k, v in run["stages"].items() if k != "measure"}
    assert stages and all(s["reused"] for s in stages.values())
    assert run["artifact_cache"] == str(cache.resolve())
    assert any(m.startswith("reused teacher_finetune (cached") for m in (r.getMessage() for r in caplog.records))
    assert not any(m.startswith("built ") for m in (r.getMessage() for r in caplog.records))

    capsys.readouterr()
    assert main(["plan", str(suite), "--results-dir", str(tmp_path / "r2")]) == 0
    out = capsys.readouterr().out
    steps = re.findall(r"^  (build|cached) ", out, re.M)
    assert steps and set(steps) == {"cached"}
    assert "to build: nothing; 5 artifact(s) cached" in out  # teacher, logits, student, 2 ONNX exports
    # r2 holds one run on this host, with nothing built: the estimate is the measured wall of its 4 variants
    # plus that run's own overhead (its wall time outside every stage).
    measured = sum(run["stages"]["measure"]["per_variant_s"].values())
    overhead = run["wall_s"] - sum(s["wall_s"] for s in run["stages"].values())
    assert f"estimated wall time: {fmt_duration(measured + overhead)} (training 00:00, other builds 00:00, " \
        f"measure {fmt_duration(measured)}, overhead {fmt_duration(overhead)}; cost model fitted to 1 earlier " \
        "run(s) on this machine)" in out


def test_history_uses_only_runs_of_this_host(tmp_path):
    def write(name, host, stages):
        d = tmp_path / "s" / name
        d.mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"suite": "s", "environment": {"hostname": host}, "stages": stages}))

    stage = {"artifact": "student-0123456789abcdef", "reused": False, "wall_s": 9.0, "build_time_s": 8.0}
    write("a", platform.node(), {"student_distill@seed1": stage,
                                 "measure": {"wall_s": 3, "per_variant_s": {"student-onnx-fp32-cpu-t1@seed1": 3}}})
    write("b", platform.node(), {"student_distill": stage | {"build_time_s": 4.0},
                                 "teacher_finetune": stage | {"reused": True}})
    write("c", "another-host", {"student_distill": stage | {"build_time_s": 1000.0}})
    found = read_history(tmp_path)
    times = {k: [x.seconds for x in v] for k, v in found.samples.items()}
    assert found.runs == 2
    assert times[("stage", "s", "student_distill")] == [8.0, 4.0]
    assert times[("kind", "*", "student")] == [8.0, 4.0]
    assert times[("variant", "s", "student-onnx-fp32-cpu-t1")] == [3]
    assert ("stage", "s", "teacher_finetune") not in times  # reused: no build time to learn from
    assert fmt_duration(65) == "01:05" and fmt_duration(3725) == "1:02:05"
