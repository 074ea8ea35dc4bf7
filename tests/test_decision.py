"""One rule for `bench check`, `bench tune` and the report's decision block: an accuracy drop passes when the
upper end of its paired bootstrap interval is within the budget (the point shown beside it); the passing rows
rank by interleaved speedup. The decision block opens index.md and index.html."""

import json
import re
import shutil
from pathlib import Path

import pytest

from bench.gate.check import check_run, format_markdown, load_profile
from bench.gate.decision import Speed, decide, summary_lines
from bench.report.write import write_report

GOLDEN = Path(__file__).resolve().parent / "golden"
TEACHER, STUDENT_ONNX = "teacher-pytorch-fp32-cpu-t1", "student-onnx-fp32-cpu-t1"
SST2_TASK = {"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy", "f1"]}


def _with_predictions(tmp_path: Path) -> Path:
    """The golden baseline (teacher 91.5 %, student ONNX 90.0 % on 200 examples) with the per-example
    predictions a real run keeps: the student gets wrong 3 examples the teacher gets right (point drop 1.5)."""
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / "baseline", run)
    logs = run / "logs"
    logs.mkdir()
    labels = [1] * 200
    teacher = [1] * 183 + [0] * 17
    student = [0] * 3 + [1] * 180 + [0] * 17
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    for row in rows:
        preds = student if row["model"] == "student" else teacher
        spec = {"variant": {k: row[k] for k in ("model", "format", "precision", "device", "threads")},
                "artifact_dir": ".", "task": SST2_TASK, "max_length": 8,
                "eval_sets": [{"name": "validation", "first": ["x"] * 200, "labels": labels}]}
        (logs / f"{row['variant_id']}.spec.json").write_text(json.dumps(spec))
        (logs / f"{row['variant_id']}.predictions.json").write_text(json.dumps(preds))
    return run


def _profile(tmp_path: Path, **budgets) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in budgets.items()))
    return path


def test_a_point_inside_the_bar_with_an_interval_past_it_fails(tmp_path):
    run = _with_predictions(tmp_path)
    profile = load_profile(_profile(tmp_path, max_accuracy_drop_vs_teacher_pts=2.0))
    result = check_run(run, profile, [STUDENT_ONNX])
    drop = result.drops[0]["max_accuracy_drop_vs_teacher_pts"]
    assert drop.point == pytest.approx(1.5) and drop.low < 1.5 < 2.0 < drop.high  # 3 discordant examples
    assert result.table.loc[0, "verdict"] == "FAIL"
    cell = result.table.loc[0, "max_accuracy_drop_vs_teacher_pts"]
    assert cell.startswith("FAIL: 1.50 [") and "> 2 pts" in cell  # both numbers shown
    assert "reaches above max 2 pts" in result.reason_lists[0][0]
    assert "upper end" in format_markdown(result)
    # The same rows with a bar above the interval pass.
    wide = check_run(run, load_profile(_profile(tmp_path, max_accuracy_drop_vs_teacher_pts=round(drop.high + 0.01, 2))),
                     [STUDENT_ONNX])
    assert wide.table.loc[0, "verdict"] == "PASS"


def test_without_predictions_the_point_is_judged_and_says_so(tmp_path):
    result = check_run(GOLDEN / "baseline", load_profile(_profile(tmp_path, max_accuracy_drop_vs_teacher_pts=2.0)),
                       [STUDENT_ONNX])
    assert result.table.loc[0, "verdict"] == "PASS"
    assert result.table.loc[0, "max_accuracy_drop_vs_teacher_pts"] == "pass: 1.50 (point) pts"


def test_speed_ranks_by_interleaved_speedup_then_interval_then_p50():
    fast_noisy = Speed(10.05, 9.0, 11.0, 1.62)
    static = Speed(8.91, 8.5, 9.3, 1.601)  # lower isolated p50, slower interleaved: ranks second
    tie = Speed(10.05, 9.5, 10.6, 1.7)  # the same median, a higher low end: first
    no_rounds = Speed(None, None, None, 0.5)  # measured without interleave: after every interleaved row
    ranked = sorted([fast_noisy, static, tie, no_rounds], key=lambda s: s.key)
    assert ranked == [tie, fast_noisy, static, no_rounds]
    assert tie.overlaps(fast_noisy) and not tie.overlaps(static)


def test_decision_ships_the_fastest_passing_row_and_names_the_runner_up(tmp_path):
    run = _with_predictions(tmp_path)
    profile = load_profile(_profile(tmp_path, threads=1, max_size_mb=500, max_accuracy_drop_vs_teacher_pts=5))
    d = decide(run, profile)
    assert d.chosen.variant == STUDENT_ONNX  # the fastest row (p50 1.5 ms), within 5 points
    assert d.runner_up.variant == "student-pytorch-fp32-cpu-t1"
    lines = summary_lines(d)
    assert lines[0].startswith(f"**Ship `{STUDENT_ONNX}`**") and "1.50 [" in lines[0]
    assert any(line.startswith("- Runner-up `student-pytorch-fp32-cpu-t1`: slower") for line in lines)


def test_when_nothing_passes_the_closest_rows_say_what_they_fail(tmp_path):
    d = decide(_with_predictions(tmp_path), load_profile(_profile(tmp_path, max_size_mb=1)))
    assert d.chosen is None
    lines = summary_lines(d)
    assert lines[0].startswith("**Nothing passes profile `p`**")
    assert len(lines) == 4 and all("fails: size" in line for line in lines[1:])


def test_the_report_opens_with_the_decision(tmp_path):
    run = _with_predictions(tmp_path)
    out = write_report(run, tmp_path / "reports", name="r", profile="edge-cpu-1t").parent
    md, page = (out / "index.md").read_text(), (out / "index.html").read_text()
    assert re.findall(r"^## (.+)$", md, flags=re.M)[:2] == ["Decision for profile edge-cpu-1t",
                                                            "Pareto front: speed vs accuracy"]
    first_h2 = page.index("<h2>")
    assert page[first_h2:].startswith("<h2>Decision for profile edge-cpu-1t</h2>")
    assert page.index('<section class="decision">') < first_h2
    assert "<strong>Ship <code>" in page or "<strong>Nothing passes profile <code>" in page


def test_a_bad_profile_is_one_line_and_writes_nothing(tmp_path):
    from bench.common.errors import BenchError

    with pytest.raises(BenchError, match="unknown profile 'edge-nope'"):
        write_report(GOLDEN / "baseline", tmp_path / "reports", name="r", profile="edge-nope")
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("budgets", [{"threads": 1, "max_size_mb": 500, "max_accuracy_drop_vs_teacher_pts": 5},
                                     {"max_size_mb": 1}], ids=["ships", "nothing-passes"])
def test_the_decision_is_on_the_first_screen_in_chromium(tmp_path, budgets):
    """As a person opens it: index.html at 1400x900 in headless Chromium shows the decision box (its green
    border) in the top screen, whether a variant ships or nothing passes."""
    import subprocess

    from conftest import skip_or_fail_in_ci
    from matplotlib.image import imread

    if shutil.which("chromium") is None:
        skip_or_fail_in_ci("chromium not installed (apt-get install chromium); scripts/screenshot_report.sh needs it")
    out = write_report(_with_predictions(tmp_path), tmp_path / "reports", name="r",
                       profile=str(_profile(tmp_path, **budgets))).parent
    shot = tmp_path / "top.png"
    script = Path(__file__).resolve().parent.parent / "scripts" / "screenshot_report.sh"
    subprocess.run(["bash", str(script), str(out / "index.html"), str(shot), "1400x900"], check=True, timeout=120)
    pixels = (imread(shot)[:, :, :3] * 255).round().astype(int)
    border = (abs(pixels - (0x22, 0xAA, 0x77)).sum(axis=2) <= 12)  # section.decision's #2a7 border
    rows = border.any(axis=1).nonzero()[0]
    assert len(rows) and rows.min() < 300, "the decision box is not at the top of the page"


def test_a_row_failing_only_on_its_interval_is_called_undecided(tmp_path):
    """Both students' point drop (1.5) is within a 2-point bar, their interval is not: nothing passes, and the
    block says the eval split is what stands between them and the bar, not a measured drop."""
    d = decide(_with_predictions(tmp_path), load_profile(_profile(tmp_path, max_size_mb=100,
                                                                  max_accuracy_drop_vs_teacher_pts=2.0)))
    assert d.chosen is None
    assert {e.variant for e in d.undecided()} == {STUDENT_ONNX, "student-pytorch-fp32-cpu-t1"}
    last = summary_lines(d)[-1]
    assert last.startswith("- Undecided, not failed: `student-onnx-fp32-cpu-t1`, `student-pytorch-fp32-cpu-t1`")
    assert "on 200 eval examples" in last and "More eval examples would decide it" in last
    # A bar the points do not meet is a failure, not undecided.
    tight = decide(d.run_dir, load_profile(_profile(tmp_path, max_size_mb=100, max_accuracy_drop_vs_teacher_pts=1.0)))
    assert tight.undecided() == [] and not summary_lines(tight)[-1].startswith("- Undecided")


def test_a_suite_profile_that_does_not_exist_is_one_line(tmp_path):
    from bench.common.errors import BenchError
    from bench.spec.suite import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text((Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml").read_text() + "profile: edge-nope\n")
    with pytest.raises(BenchError) as err:
        load_suite(suite)
    message = str(err.value)
    assert "profile" in message and "unknown profile 'edge-nope'" in message and "\n" not in message
    assert load_suite(Path(__file__).resolve().parents[1] / "suites" / "sst2-cpu.yaml").profile == "edge-cpu-1t"
