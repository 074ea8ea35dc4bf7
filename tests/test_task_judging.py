"""The task's primary metric is what reports, `bench check` and `bench compare` judge (issue 12): rows of a
CoLA-like run (matthews_correlation), an MNLI-like run (a second eval split) and an STS-B-like run (pearson,
no accuracy), built from the golden SST-2 rows; the golden SST-2 rows themselves read as before."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.cli import main
from bench.gate.check import check_run, format_markdown, load_profile
from bench.gate.compare import DEFAULT_TOLERANCES, compare_runs
from bench.gate.compare import format_markdown as compare_markdown
from bench.gate.json_report import CompareReport, compare_report
from bench.gate.metrics import parse_tolerances
from bench.report import plots
from bench.report.write import summarise, write_report
from bench.store.results import open_run, read_rows

GOLDEN = Path(__file__).resolve().parent / "golden"
BASE = GOLDEN / "baseline"
MCC = "matthews_correlation"
STUDENT_ONNX = "student-onnx-fp32-cpu-t1"
# CoLA-like primary scores (the golden rows' accuracy stays as it is: a judge reading accuracy sees no change)
COLA = {"teacher-pytorch-fp32-cpu-t1": 0.60, "teacher-onnx-fp32-cpu-t1": 0.60,
        "student-pytorch-fp32-cpu-t1": 0.54, STUDENT_ONNX: 0.54}


def _scored(rows: list[dict], metric: str, scores: dict[str, float], task: str, **metrics) -> list[dict]:
    """Rows as the measuring child writes them now: metric, score and every metric on every split."""
    out = []
    for r in rows:
        score = scores[r["variant_id"]]
        extra = {k: v[r["variant_id"]] if isinstance(v, dict) else v for k, v in metrics.items()}
        out.append(r | {"task": task, "metric": metric, "score": score, "metrics": {metric: score, **extra}})
    return out


def _write(run_dir: Path, rows: list[dict], info: dict | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"run_id": run_dir.name, "suite": "golden"} | (info or {})
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


@pytest.fixture
def cola(tmp_path):
    """A CoLA-like baseline, and a current run whose student onnx lost 2 MCC points (accuracy unchanged)."""
    base = _write(tmp_path / "cola_base", _scored(read_rows(BASE), MCC, COLA, "cola"))
    dropped = COLA | {STUDENT_ONNX: 0.52}
    cur = _write(tmp_path / "cola_cur", _scored(read_rows(BASE), MCC, dropped, "cola"))
    return base, cur


# ------------------------------------------------------------------ Run.frame
def test_frame_fills_metric_and_score_for_old_rows_and_keeps_new_ones(cola):
    old = open_run(BASE).frame()
    assert set(old["metric"]) == {"accuracy"} and old["score"].equals(old["accuracy"])
    new = open_run(cola[0]).frame().set_index("variant_id")
    assert set(new["metric"]) == {MCC} and new.loc[STUDENT_ONNX, "score"] == 0.54
    assert new.loc[STUDENT_ONNX, "accuracy"] == 0.9  # the golden row's own accuracy, untouched


def test_failed_old_row_reads_as_accuracy_without_a_score(tmp_path):
    rows = read_rows(BASE)
    rows[1] = {k: rows[1][k] for k in ("schema_version", "run_id", "suite", "task", "variant_id", "model",
                                       "format", "precision", "device", "threads", "seed")} | {
        "status": "failed", "error": "boom"}
    df = open_run(_write(tmp_path / "r", rows)).frame().set_index("variant_id")
    assert df.loc[rows[1]["variant_id"], "metric"] == "accuracy"
    assert pd.isna(df.loc[rows[1]["variant_id"], "score"])


# ------------------------------------------------------------------ report
def test_report_judges_the_primary_metric(cola, tmp_path, monkeypatch):
    rows = read_rows(cola[0])
    for r in rows:  # training facts on the PyTorch rows: the Training table and its % of teacher
        if r["format"] == "pytorch":
            r |= {"train_s_per_epoch": 10.0, "train_rows": 100}
    run = _write(tmp_path / "cola_trained", rows)
    labels = []
    finish = plots._finish
    monkeypatch.setattr(plots, "_finish", lambda fig, path, **kw: (labels.append(fig.axes[0].get_ylabel()),
                                                                   finish(fig, path, **kw))[1])
    md = write_report(run, tmp_path / "reports", name="cola").read_text()
    header = md.split("## Variants")[1].splitlines()[2]
    assert "| matthews_correlation ×100 |" in re.sub(r" +", " ", header) and "accuracy %" not in header
    assert "Δ vs teacher (pts)" in header and "% of teacher" in header
    s = summarise(open_run(run).frame()).set_index("label")
    student = s.loc["student onnx fp32 t1"]
    assert student["score_pct"] == pytest.approx(54.0)
    assert student["retained_pct"] == pytest.approx(54 / 60 * 100)  # of the teacher's MCC, not its accuracy
    assert student["delta_pts"] == pytest.approx(-6.0)
    training = md.split("## Training")[1]
    assert "dev matthews_correlation ×100" in training and "% of teacher" in training
    assert re.search(r"\| student .*\|\s+90\s+\|", training)  # 54 / 60 MCC points, not 90 / 91.5 accuracy
    assert "Dev matthews_correlation (×100) of the PyTorch FP32 model" in training
    assert "matthews_correlation ×100: the task's primary metric" in md
    assert labels[:2] == ["dev matthews_correlation (×100)"] * 2  # size and latency vs the score


def test_report_per_seed_lines_use_the_score(cola, tmp_path):
    second = _write(tmp_path / "seed43", [r | {"seed": 43, "score": r["score"] - 0.01} for r in read_rows(cola[0])])
    md = write_report([cola[0], second], tmp_path / "reports", name="both").read_text()
    assert "## matthews_correlation ×100 per seed" in md and "- student onnx fp32 t1: 54.00, 53.00" in md
    assert "Accuracy per seed" not in md


def test_report_shows_other_eval_splits(tmp_path):
    acc = {r["variant_id"]: r["accuracy"] for r in read_rows(BASE)}
    mismatched = {v: round(a - 0.01, 3) for v, a in acc.items()}
    rows = _scored(read_rows(BASE), "accuracy", acc, "mnli", **{"accuracy@validation_mismatched": mismatched})
    md = write_report(_write(tmp_path / "mnli", rows), tmp_path / "reports", name="mnli").read_text()
    section = md.split("## Other eval splits")[1].split("## ")[0]
    assert "accuracy@validation_mismatched ×100" in section
    assert re.search(r"\| student onnx fp32 t1\s+\|\s+89\s+\|", section)
    assert "| accuracy % |" in re.sub(r" +", " ", md)  # the primary split is still accuracy


def test_regression_task_without_accuracy(tmp_path):
    pearson = {v: s - 0.04 for v, s in COLA.items()}
    rows = []
    for r in _scored(read_rows(BASE), "pearson", pearson, "stsb", spearmanr=0.5):
        for k in ("accuracy", "precision_score", "recall", "f1", "confusion_matrix"):
            r.pop(k)
        rows.append(r | {"parity_label_agreement": None})
    run = _write(tmp_path / "stsb", rows)
    md = write_report(run, tmp_path / "reports", name="stsb").read_text()
    assert "| pearson ×100 |" in re.sub(r" +", " ", md)
    s = summarise(open_run(run).frame()).set_index("label")
    assert s.loc["student onnx fp32 t1", "score_pct"] == pytest.approx(50.0)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"max_accuracy_drop_vs_teacher_pts": 5.0}))
    reasons = check_run(run, load_profile(p)).table.set_index("variant")["reasons"]
    assert reasons[STUDENT_ONNX] == ("pearson drop vs teacher pytorch fp32 6.00 pts > max 5 pts (point estimate: no "
                                     "predictions for an interval)")


def test_mixed_metrics_are_said_in_one_line(cola, tmp_path):
    md = write_report([BASE, cola[0]], tmp_path / "reports", name="mixed").read_text()
    [line] = [ln for ln in md.splitlines() if "mix primary metrics" in ln]
    assert line.startswith("These rows mix primary metrics (accuracy, matthews_correlation)")
    assert "| score ×100 |" in re.sub(r" +", " ", md)


# ------------------------------------------------------------------ bench check
def _check_rows(target_score: float) -> list[dict]:
    rows = {r["variant_id"]: r for r in read_rows(BASE)}
    int8 = dict(rows[STUDENT_ONNX], variant_id="student-onnx-int8-dynamic-cpu-t1", precision="int8-dynamic",
                accuracy=0.915)  # the teacher's accuracy: only the score has dropped
    picked = [rows["teacher-pytorch-fp32-cpu-t1"], rows["student-pytorch-fp32-cpu-t1"], int8]
    scores = COLA | {int8["variant_id"]: target_score}
    return _scored(picked, MCC, scores, "cola")


def test_check_drop_budget_judges_the_score(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"max_accuracy_drop_vs_teacher_pts": 1.5, "max_accuracy_drop_vs_fp32_pts": 5.0}))
    result = check_run(_write(tmp_path / "r", _check_rows(0.58)), load_profile(p))
    row = result.table.set_index("variant").loc["student-onnx-int8-dynamic-cpu-t1"]
    assert row["verdict"] == "FAIL" and row["max_accuracy_drop_vs_teacher_pts"] == "FAIL: 2.00 (point) pts > 1.5 pts"
    assert row["reasons"] == ("matthews_correlation drop vs teacher pytorch fp32 2.00 pts > max 1.5 pts (point "
                              "estimate: no predictions for an interval)")
    assert row["max_accuracy_drop_vs_fp32_pts"] == "pass: -4.00 (point) pts"  # 4 MCC points above the student pytorch
    assert "matthews_correlation drop vs teacher" in format_markdown(result)
    ok = check_run(_write(tmp_path / "r2", _check_rows(0.59)), load_profile(p))
    assert ok.table.set_index("variant").loc["student-onnx-int8-dynamic-cpu-t1", "verdict"] == "PASS"


def test_check_reference_scored_on_another_metric_is_not_measured(tmp_path):
    rows = _check_rows(0.58)
    rows[0] = {k: v for k, v in rows[0].items() if k not in ("metric", "score", "metrics")}  # an old teacher row
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"max_accuracy_drop_vs_teacher_pts": 1.5}))
    row = check_run(_write(tmp_path / "r", rows), load_profile(p)).table.set_index("variant").loc[
        "student-onnx-int8-dynamic-cpu-t1"]
    assert row["max_accuracy_drop_vs_teacher_pts"] == (
        "n/a (teacher pytorch fp32 row scored accuracy, not matthews_correlation)")
    assert row["verdict"] == "PASS" and row["not_measured"] == "max_accuracy_drop_vs_teacher_pts"


# ------------------------------------------------------------------ bench compare
@pytest.mark.parametrize("item", ["matthews_correlation=1pt", "accuracy=1pt", "score=1pt"])
def test_compare_catches_a_two_point_mcc_drop(cola, item):
    c = compare_runs(*cola, parse_tolerances([item]))
    assert c.regressed and c.primary_metric == MCC
    bad = c.details[c.details["verdict"] == "regressed"]
    assert list(zip(bad["variant"], bad["metric"], bad["field"], strict=True)) == [
        (f"{STUDENT_ONNX} seed=42", MCC, "score")]
    assert bad["change"].iloc[0] == pytest.approx(-2.0) and bad["tolerance"].iloc[0] == 1.0
    assert set(c.tolerances) == {"latency_p50", "speedup", "accuracy"}  # judged once, under the primary slot
    md = compare_markdown(c)
    assert "matthews_correlation −1pt." in md and "matthews_correlation baseline ×100" in md
    assert "acc baseline %" not in md


def test_compare_metric_own_name_wins_and_default_applies_to_the_score(cola):
    assert compare_runs(*cola, DEFAULT_TOLERANCES).regressed  # the 0.5-point default, on MCC
    assert not compare_runs(*cola, parse_tolerances(["matthews_correlation=3pt", "accuracy=0.5pt"])).regressed
    # Judged on accuracy (unchanged) the same runs would pass: the score is what is judged.
    assert set(compare_runs(*cola, parse_tolerances(["f1=0.5pt"])).details.query("metric == 'f1'")["verdict"]) \
        == {"ok"}


def test_compare_json_names_the_metric(cola, tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["compare", str(cola[0]), str(cola[1]), "--tolerance", "matthews_correlation=1pt",
                 "--json", str(out)]) == 1
    report = CompareReport.model_validate_json(out.read_text())
    assert report.primary_metric == MCC
    tol = {t.metric: t for t in report.tolerances}
    assert set(tol) == {"latency_p50", "speedup", MCC} and (tol[MCC].field, tol[MCC].value, tol[MCC].default) == (
        "score", 1.0, True)
    [reg] = report.regressions
    assert reg.metric == MCC and reg.message.startswith(f"{STUDENT_ONNX} seed=42: {MCC} regressed: baseline 0.54, "
                                                        "current 0.52 (-2.00 pts; tolerance −1pt)")
    assert "| matthews_correlation |" in re.sub(r" +", " ", capsys.readouterr().out)


def test_compare_metric_that_is_not_the_primary_reads_the_metrics_dict(cola, tmp_path):
    # On SST-2 rows, matthews_correlation is no metric of the task: not compared, and said so.
    c = compare_runs(BASE, GOLDEN / "noise", parse_tolerances(["matthews_correlation=1pt"]))
    assert not c.regressed and c.primary_metric == "accuracy"
    assert set(c.details.query("metric == 'matthews_correlation'")["verdict"]) == {"n/a"}
    assert "matthews_correlation not compared: not measured in baseline and current" in c.table["note"].iloc[0]
    # On rows that carry it in `metrics` (a CoLA-like run, accuracy primary here), it is judged.
    rows = _scored(read_rows(BASE), "accuracy", {r["variant_id"]: r["accuracy"] for r in read_rows(BASE)}, "x",
                   matthews_correlation=COLA)
    worse = _scored(read_rows(BASE), "accuracy", {r["variant_id"]: r["accuracy"] for r in read_rows(BASE)}, "x",
                    matthews_correlation=COLA | {STUDENT_ONNX: 0.52})
    c = compare_runs(_write(tmp_path / "b", rows), _write(tmp_path / "c", worse),
                     parse_tolerances(["matthews_correlation=1pt"]))
    bad = c.details[c.details["verdict"] == "regressed"]
    assert list(bad["metric"]) == [MCC] and list(bad["field"]) == [MCC]


def test_compare_across_different_metrics_is_not_judged(cola):
    c = compare_runs(BASE, cola[1], DEFAULT_TOLERANCES)
    assert c.primary_metric == "score" and not c.regressed
    assert set(c.table["accuracy_verdict"]) == {"n/a"} and c.table["accuracy_delta_pts"].isna().all()
    assert "primary metric differs (baseline accuracy, current matthews_correlation)" in c.table["note"].iloc[0]
    assert compare_report(c).primary_metric == "score"


def test_old_sst2_rows_keep_their_names(tmp_path):
    c = compare_runs(BASE, GOLDEN / "accuracy_drop", parse_tolerances(["score=0.5pt"]))
    assert c.primary_metric == "accuracy" and c.regressed
    report = compare_report(c)
    assert report.primary_metric == "accuracy" and {t.metric for t in report.tolerances} == {"latency_p50",
                                                                                              "speedup", "accuracy"}
    assert {r.metric for r in report.regressions} == {"accuracy"}
    md = compare_markdown(c)
    assert "accuracy −0.5pt." in md and "| acc baseline % |" in re.sub(r" +", " ", md)
