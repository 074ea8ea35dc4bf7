"""The CI gate as teams adopt it: any metric with a tolerance, --json (pydantic models, committed JSON
Schemas), GitHub annotations, the CPU note, and the planted-slowdown switch of the measuring child."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.common.errors import BenchError
from bench.gate.compare import DEFAULT_TOLERANCES, Tolerance, compare_runs, format_markdown, parse_tolerances
from bench.gate.json_report import SCHEMAS, CheckReport, CompareReport, compare_annotations, compare_report, schema_text
from bench.store.results import read_rows

GOLDEN = Path(__file__).resolve().parent / "golden"
BASE = GOLDEN / "baseline"
DOCS = Path(__file__).resolve().parent.parent / "docs"
P95 = "student-onnx-fp32-cpu-t1 seed=42"  # regressed_p95: its slower half x1.15
SIZE = "teacher-onnx-fp32-cpu-t1 seed=42"  # regressed_size: 0.1 MB larger
GATE = ["--tolerance", "latency_p95=10%", "--tolerance", "size_mb=0"]


def _write(run_dir: Path, rows: list[dict], info: dict | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if info is not None:
        (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


@pytest.fixture
def both_regressions(tmp_path) -> Path:
    """regressed_p95's rows with regressed_size's teacher-onnx row: a p95 and a size regression."""
    grown = {r["variant_id"]: r for r in read_rows(GOLDEN / "regressed_size")}
    rows = [grown[r["variant_id"]] if r["variant_id"] == SIZE.split()[0] else r
            for r in read_rows(GOLDEN / "regressed_p95")]
    return _write(tmp_path / "both", rows)


def test_p95_and_size_regressions_fail_the_gate_and_the_json_names_both(both_regressions, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["compare", str(BASE), str(both_regressions), *GATE, "--json", str(out)]) == 1
    report = CompareReport.model_validate_json(out.read_text())  # the output is the model's
    assert report.verdict == "regressed" and report.exit_code == 1
    assert {(r.variant, r.metric) for r in report.regressions} == {(P95, "latency_p95"), (SIZE, "size_mb")}
    by = {v.variant: v for v in report.variants}
    p95 = by[P95].metrics["latency_p95"]
    assert p95.verdict == "regressed" and p95.change == pytest.approx(15.0, abs=0.5) and p95.p_value < 0.01
    assert by[P95].metrics["latency_p50"].verdict == "ok"  # +7.5 %: the default gate alone passes it
    size = by[SIZE].metrics["size_mb"]
    assert (size.baseline, size.current, size.tolerance, size.unit, size.p_value) == (417.9, 418.0, 0.0, "%", None)
    assert {t.metric: (t.value, t.unit, t.better, t.significance, t.default) for t in report.tolerances} == {
        "latency_p50": (10.0, "%", "lower", "mann-whitney-u", True), "accuracy": (0.5, "pt", "higher", None, True),
        "speedup": (10.0, "%", "higher", "mann-whitney-u", True),  # judged where both sides have rounds
        "latency_p95": (10.0, "%", "lower", "mann-whitney-u", False), "size_mb": (0.0, "%", "lower", None, False)}
    md = capsys.readouterr().out
    assert "**REGRESSED**: 2 of 4 variants" in md
    assert "Also judged: latency_p95 +10% with p < 0.01; size_mb +0%." in md
    [line] = [ln for ln in md.splitlines() if ln.startswith(f"| {SIZE} ") and "size_mb" in ln]
    assert "| 417.9 " in line and "| 418 " in line and "| +0.02% " in line and "| **REGRESSED** |" in line
    # Without the extra tolerances the same runs pass: p50 and accuracy are within the defaults.
    assert main(["compare", str(BASE), str(both_regressions)]) == 0


@pytest.mark.parametrize("folder, metric, variant", [("regressed_p95", "latency_p95", P95),
                                                     ("regressed_size", "size_mb", SIZE)])
def test_each_golden_regression_alone(folder, metric, variant):
    c = compare_runs(BASE, GOLDEN / folder, parse_tolerances(["latency_p95_ms=10%", "size_mb=0"]))  # _ms: same
    assert c.regressed
    bad = c.details[c.details["verdict"] == "regressed"]
    assert list(zip(bad["variant"], bad["metric"], strict=True)) == [(variant, metric)]
    assert c.table.set_index("variant").loc[variant, f"{metric}_verdict"] == "regressed"
    assert not compare_runs(BASE, GOLDEN / folder, DEFAULT_TOLERANCES).regressed


def test_unchanged_run_passes_a_zero_size_tolerance_and_defaults_keep_their_markdown():
    c = compare_runs(BASE, GOLDEN / "noise", parse_tolerances(["size_mb=0", "peak_rss_mb=0%"]))
    assert not c.regressed and set(c.details["verdict"]) == {"ok"}
    assert "### Other metrics" in format_markdown(c)
    default = format_markdown(compare_runs(BASE, GOLDEN / "noise", DEFAULT_TOLERANCES))
    assert "Other metrics" not in default and "Also judged" not in default


def test_metric_names_units_and_bare_zero():
    t = parse_tolerances(["latency_p95_ms=10%", "latency_p50_ms=5%", "size_mb=0", "accuracy=0", "f1=1pt",
                          "gflops_per_s=5%", "int8_matmul_coverage_pct=2pt"])
    assert set(t) == {"latency_p50", "latency_p95", "accuracy", "size_mb", "f1", "gflops_per_s",
                      "int8_matmul_coverage_pct", "speedup"}  # speedup, latency_p50, accuracy: the defaults
    assert (t["speedup"].given, t["latency_p50"].given) == (False, True)
    assert t["latency_p50"] == Tolerance(5.0, "%") and t["size_mb"] == Tolerance(0.0, "%")
    assert t["accuracy"] == Tolerance(0.0, "pt") and t["latency_p95"].metric == "latency_p95_ms"
    assert t["gflops_per_s"].direction == "min" and t["gflops_per_s"].judge(100.0, 94.0) == "regressed"
    assert t["gflops_per_s"].judge(100.0, 96.0) == "ok"
    assert t["int8_matmul_coverage_pct"].judge(95.0, 93.5) == "ok"  # already in percent: 1.5 points
    assert t["int8_matmul_coverage_pct"].judge(95.0, 92.9) == "regressed"
    assert t["size_mb"].judge(25.6, 25.6) == "ok" and t["size_mb"].judge(25.6, 25.6001) == "regressed"
    assert t["size_mb"].judge(25.6, 20.0) == "ok"  # shrinking is never a regression


@pytest.mark.parametrize("item, words", [
    ("size_mb=5", "expected METRIC=NUMBER% or METRIC=NUMBERpt (or METRIC=0)"),  # only 0 goes without a unit
    ("size_mb=1pt", "size_mb takes a tolerance in %"),
    ("latency_p95=2pt", "latency_p95 takes a tolerance in %"),
    ("f1=5%", "f1 takes a tolerance in pt"),
    ("latency_p42=10%", "unknown metric 'latency_p42'"),
])
def test_bad_tolerances_name_the_problem(item, words):
    with pytest.raises(BenchError) as info:
        parse_tolerances([item])
    assert words in str(info.value) and repr(item) in str(info.value) and "\n" not in str(info.value)


def test_committed_json_schemas_are_the_models():
    for name, model in SCHEMAS.items():
        assert (DOCS / name).read_text() == schema_text(model), f"docs/{name}: run python -m bench.gate.json_report --write"


def test_compare_annotations_and_step_summary(both_regressions, tmp_path, capsys, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["compare", str(BASE), str(both_regressions), *GATE, "--annotations"]) == 1
    lines = capsys.readouterr().out.splitlines()
    errors = [ln for ln in lines if ln.startswith("::error ")]
    assert len(errors) == 2 and not [ln for ln in lines if ln.startswith("::warning")]
    # Workflow-command escaping: ":" and "," in the title, "%" everywhere.
    assert errors[0].startswith("::error title=bench compare%3A latency_p95 regressed::"
                                f"{P95}: latency_p95 regressed: baseline 1.689, current 1.943 (+15.04%25, p=")
    assert "tolerance +10%25)" in errors[0]
    assert errors[1] == (f"::error title=bench compare%3A size_mb regressed::{SIZE}: size_mb regressed: baseline 417.9, "
                         "current 418 (+0.02%25; tolerance +0%25)")
    assert "**REGRESSED**: 2 of 4 variants" in summary.read_text()


def test_cpu_difference_is_noted(tmp_path, capsys):
    rows = read_rows(BASE)
    env = {"cpu": {"model": "AMD EPYC 7763 64-Core Processor"}}
    base = _write(tmp_path / "b", rows, {"environment": env})
    cur = _write(tmp_path / "c", rows, {"environment": {"cpu": {"model": "Intel(R) Xeon(R) Platinum 8370C CPU"}}})
    c = compare_runs(base, cur, DEFAULT_TOLERANCES)
    note = ("baseline ran on 'AMD EPYC 7763 64-Core Processor', current on 'Intel(R) Xeon(R) Platinum 8370C CPU': "
            "latency ratios compare machines too")
    assert c.notes == [note] and not c.regressed
    assert f"### Notes\n\n- {note}\n" in format_markdown(c)
    report = compare_report(c)
    assert report.notes == [note] and report.verdict == "pass"
    assert compare_annotations(report) == ["::warning title=bench compare::" + note]
    assert compare_runs(base, _write(tmp_path / "same", rows, {"environment": env}), DEFAULT_TOLERANCES).notes == []


def test_run_json_records_the_cpu_model_not_the_architecture(monkeypatch, tmp_path):
    import platform

    from bench.store import envinfo

    monkeypatch.setattr(platform, "processor", lambda: "x86_64")  # what Ubuntu's Python says
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\nflags\t\t: fpu avx2 fma\n")
    monkeypatch.setattr(envinfo, "Path", lambda _: info)
    cpu = envinfo._cpu()
    assert cpu["model"] == "AMD EPYC 7763 64-Core Processor" and cpu["flags"]["avx2"] and not cpu["flags"]["avx512f"]
    info.write_text("processor\t: 0\nCPU part\t: 0xd0c\n")  # e.g. arm64: no model name
    assert envinfo._cpu()["model"] == "x86_64"


def test_planted_slowdown_in_the_current_run_is_noted(tmp_path):
    rows = read_rows(BASE)
    for r in rows:
        r["latency_input"] = "dev-stream-bs1+planted-0.5ms"
    c = compare_runs(BASE, _write(tmp_path / "planted", rows), DEFAULT_TOLERANCES)
    assert c.notes == ["latency_input differs in 4 of 4 variants: baseline 'dev-stream-bs1', current "
                       "'dev-stream-bs1+planted-0.5ms' (a planted test slowdown, BENCH_TEST_SLOWDOWN_MS)"]
    assert any(ln.startswith("::warning title=bench compare::latency_input differs")
               for ln in compare_annotations(compare_report(c)))


def test_fail_on_missing_reads_incomplete_in_json(tmp_path):
    rows = read_rows(BASE)
    failed = dict(rows[1], status="failed", error="exit code 1: boom", accuracy=None)
    cur = _write(tmp_path / "c", [rows[0], failed, rows[2], rows[3]])
    out = tmp_path / "o.json"
    assert main(["compare", str(BASE), str(cur), "--fail-on-missing", "--json", str(out), "--annotations"]) == 1
    report = CompareReport.model_validate_json(out.read_text())
    assert (report.verdict, report.exit_code, report.regressions) == ("incomplete", 1, [])
    assert report.failed == ["teacher-onnx-fp32-cpu-t1 seed=42: failed: exit code 1: boom"]
    assert main(["compare", str(BASE), str(cur), "--json", str(out)]) == 0
    assert CompareReport.model_validate_json(out.read_text()).verdict == "pass"


def test_check_json_annotations_and_step_summary(tmp_path, capsys, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    profile = tmp_path / "edge.yaml"
    profile.write_text("threads: 1\nmax_size_mb: 100\nmax_opset: 17\n")
    out = tmp_path / "check.json"
    assert main(["check", str(BASE), "--profile", str(profile), "--json", str(out), "--annotations"]) == 1
    report = CheckReport.model_validate_json(out.read_text())
    assert (report.verdict, report.exit_code, report.profile.name) == ("FAIL", 1, "edge")
    assert report.profile.budgets == {"max_size_mb": 100.0, "max_opset": 17.0}
    by = {v.variant_id: v for v in report.variants}
    teacher = by["teacher-onnx-fp32-cpu-t1"]
    assert teacher.verdict == "FAIL" and teacher.seed == 42
    assert teacher.reasons == ["size 417.9 MB > max 100 MB"]
    assert teacher.cells["max_size_mb"].status == "fail" and teacher.cells["max_opset"].status == "n/a"
    assert teacher.not_measured == ["max_opset"]
    student = by["student-onnx-fp32-cpu-t1"]
    assert student.verdict == "PASS" and student.cells["max_size_mb"].cell == "pass: 25.6 MB"
    lines = capsys.readouterr().out.splitlines()
    errors = [ln for ln in lines if ln.startswith("::error ")]
    assert errors == [f"::error title=bench check edge%3A {v} over budget::{v} (seed 42): size {mb} MB > max 100 MB"
                      for v, mb in (("teacher-onnx-fp32-cpu-t1", 417.9), ("teacher-pytorch-fp32-cpu-t1", 417.7))]
    assert len([ln for ln in lines if ln.startswith("::warning title=bench check edge%3A not measured::")]) == 4
    assert "## Edge check: profile `edge`" in summary.read_text()


def test_new_golden_folders_are_what_the_generator_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.HERE = tmp_path
    module.main()
    for name in ["regressed_p95", "regressed_size"]:
        for f in ["results.jsonl", "run.json"]:
            assert (tmp_path / name / f).read_bytes() == (GOLDEN / name / f).read_bytes(), f"{name}/{f}"


def _spec(artifact: Path) -> dict:
    return {"variant": {"model": "student", "threads": 1, "format": "onnx", "device": "cpu", "precision": "fp32"},
            "artifact_dir": str(artifact),
            "task": {"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy", "f1"]},
            "eval_sets": [{"name": "validation", "first": ["a warm , funny film .", "dull ."] * 5, "second": None,
                           "labels": [1, 0] * 5}], "max_length": 32,
            "measure": {"ort_gpu_provider": "cuda", "warmup": 1, "min_iterations": 10, "min_seconds": 0,
                        "eval_batch_size": 4}}


def test_planted_slowdown_is_timed_and_recorded_in_the_row(tiny_onnx_artifact, tmp_path, monkeypatch):
    from bench.launch.isolate import run_isolated
    from bench.measure.stream import SLOWDOWN_ENV

    assert SLOWDOWN_ENV == "BENCH_TEST_SLOWDOWN_MS"
    monkeypatch.setenv(SLOWDOWN_ENV, "2.5")
    r = run_isolated(_spec(tiny_onnx_artifact), tmp_path / "planted", "v", timeout_s=120)
    assert r.status == "ok", r.error
    assert r.latency_input == "dev-stream-bs1+planted-2.5ms"  # never passes silently
    assert r.latency_min_ms >= 2.5 and min(r.latency_raw_ms) >= 2.5  # inside the timed region
    monkeypatch.setenv(SLOWDOWN_ENV, "fast")
    bad = run_isolated(_spec(tiny_onnx_artifact), tmp_path / "bad", "v", timeout_s=120)
    assert bad.status == "failed" and "BENCH_TEST_SLOWDOWN_MS='fast'" in bad.error


def test_gate_noise_report_renders():
    # The study script parses and its report renders from a stored result (no runs here).
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "gate_noise.py"
    spec = importlib.util.spec_from_file_location("gate_noise", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verdicts = {"exit": 0, "variants": {"a": "ok"}}
    res = {"machine": {"cpu": "X", "logical_cores": 2, "physical_cores": 2, "platform": "Linux"},
           "suite": "s.yaml", "pairs": 1, "median_p50_ms": {"a": 0.1},
           "false_positives": [{g: verdicts for g in module.GATES}],
           "unchanged_p50_ms": {"u0": {"a": 0.1}, "u1": {"a": 0.11}},
           "unchanged_speedup": {"u0": {"a": 5.0}, "u1": {"a": 5.1}},
           "detection": {20.0: {"ms": 0.02, "effective_pct": {"a": 20.0}, "pairs": [
               {**{g: {"exit": 1, "variants": {"a": "regressed"}} for g in module.DETECT},
                "p50_ratio": {"a": 1.2}, "speedup_ratio": {"a": 0.83}}]}},
           "runs": [{"load1_before": 1.0, "wall_s": 20.0}]}
    text = module.report(res)
    assert "| speedup 10% (default) | 0/1 | 0/1 | 0/1 |" in text and "| p50 10% | 0/1 | 0/1 | 0/1 |" in text
    assert "| a | speedup × | 5 | 5.05 | 5.1 | 1.4 % | +2.0 % |" in text
    assert "| 20 % of ref = 0.02 ms | a | 20.0 % | 1.200× | 0.830× | 1/1 | 1/1 | 1/1 | 1/1 |" in text
    assert "- a (p50 0.1 ms): speedup 10% (default): 20.0 %; speedup 0%: 20.0 %; p50 10%: 20.0 %; p50 0%: 20.0 %" \
        in text


def _with_rounds(rows: list[dict], rounds: list[float]) -> list[dict]:
    import statistics

    return [dict(r, speedup_rounds=list(rounds), speedup_vs_reference=statistics.median(rounds)) for r in rows]


ROUNDS = [5.0, 5.1, 5.05, 4.95, 5.2, 5.0, 5.1, 4.9, 5.05, 5.15]


@pytest.mark.parametrize("current, verdict", [
    ([x * 0.8 for x in ROUNDS], "regressed"),  # every round 20 % lower
    ([x * 0.95 for x in ROUNDS], "ok"),  # significant, but inside the 10 % tolerance
    ([5.0] * 6 + [9.0] * 4, "not significant"),  # median -x% but the rounds overlap the baseline's
])
def test_default_gate_judges_the_interleaved_speedup_where_both_sides_have_it(tmp_path, current, verdict):
    base = _write(tmp_path / "b", _with_rounds(read_rows(BASE), [6.0] * 6 + [9.0] * 4 if verdict == "not significant"
                                                 else ROUNDS))
    cur = _write(tmp_path / "c", _with_rounds(read_rows(BASE), current))
    c = compare_runs(base, cur, parse_tolerances([]))
    assert set(c.details["metric"]) == {"speedup", "accuracy"}  # the p50 is not judged by default here
    up = c.details[c.details["metric"] == "speedup"]
    assert set(up["verdict"]) == {verdict}
    assert c.regressed == (verdict == "regressed") and set(c.table["latency_verdict"]) == {"not judged"}
    if verdict == "regressed":
        assert (up["p_value"] < 0.01).all() and up["change"].round(6).eq(-20.0).all()


def test_a_baseline_without_rounds_falls_back_to_the_p50(tmp_path):
    cur = _write(tmp_path / "c", _with_rounds(read_rows(BASE), ROUNDS))
    c = compare_runs(BASE, cur, parse_tolerances([]))
    assert set(c.details["metric"]) == {"latency_p50", "accuracy"}
    assert not c.regressed and "speedup" not in format_markdown(c).split("Tolerances:")[1].splitlines()[0]
