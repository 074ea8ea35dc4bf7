"""Budgets (bench.gate.check) and tolerances (bench.gate.compare) as small objects, and edge profiles validated
by the strict pydantic base the suites use: one-line errors naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from bench.cli import main
from bench.common.errors import BenchError
from bench.gate.accuracy_drop import DropJudge
from bench.gate.check import BUDGETS, NOT_MEASURED, AccuracyDrop, AllowedSet, Budget, Profile, RunRows, load_profile
from bench.gate.compare import DEFAULT_TOLERANCES, Tolerance, compare_runs

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture
def write(tmp_path):
    def make(text: str) -> Path:
        path = tmp_path / "p.yaml"
        path.write_text(text)
        return path

    return make


# ------------------------------------------------------------------ profiles
@pytest.mark.parametrize("text, key", [
    ("max_size_mb: true\n", "max_size_mb"),  # a bool is not a number
    ("max_p95_ms_bs1: '10'\n", "max_p95_ms_bs1"),
    ("max_peak_rss_mb: -1\n", "max_peak_rss_mb"),
    ("max_accuracy_drop_vs_teacher_pts: .nan\n", "max_accuracy_drop_vs_teacher_pts"),
    ("threads: '1'\n", "threads"),  # a string is not an int
    ("threads: true\n", "threads"),
    ("threads: 0\n", "threads"),
    ("max_opset: 17.0\n", "max_opset"),
    ("device: 1\n", "device"),
    ("allowed_op_domains: ai.onnx\n", "allowed_op_domains"),
    ("allowed_op_domains: [ai.onnx, 1]\n", "allowed_op_domains"),
])
def test_bad_profile_value_is_one_line_naming_file_and_key(write, text, key):
    path = write(text)
    with pytest.raises(BenchError) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: expected ") and "\n" not in message


def test_bool_for_number_is_bad_input_exit_2(write, capsys):
    path = write("threads: 1\nmax_size_mb: true\n")
    assert main(["check", str(GOLDEN / "baseline"), "--profile", str(path)]) == 2
    assert "max_size_mb: expected a number >= 0, got True" in capsys.readouterr().err


@pytest.mark.parametrize("text, key", [("max_sise_mb: 40\n", "max_sise_mb"), ("name: edge\n", "name")])
def test_unknown_key_is_named(write, text, key):
    path = write(text)
    with pytest.raises(BenchError, match=rf"^{path}: unknown key '{key}' \(allowed: threads, device, "):
        load_profile(path)


def test_profile_is_strict_and_frozen(write):
    p = load_profile(write("threads: 2\nmax_size_mb: 40\nallowed_op_domains: [ai.onnx]\nmax_opset: null\n"))
    assert (p.name, p.threads, p.max_size_mb, p.allowed_op_domains, p.max_opset) == ("p", 2, 40.0, ("ai.onnx",), None)
    assert p.budgets() == ["max_size_mb", "allowed_op_domains"]
    with pytest.raises(ValidationError, match="frozen"):
        p.threads = 4
    with pytest.raises(ValidationError, match="max_size_mb"):
        Profile(name="x", max_size_mb=True)


# ------------------------------------------------------------------ budgets
def _just_past(budget: Budget, limit: float) -> float:
    return limit + 0.01 if budget.direction == "max" else limit - 0.01


SIMPLE = [b for b in BUDGETS.values() if type(b) is Budget]


def test_every_profile_key_but_the_selectors_is_a_budget():
    assert set(BUDGETS) == set(Profile.model_fields) - {"name", "threads", "device"}
    assert {b.direction for b in SIMPLE} == {"max", "min"}


@pytest.mark.parametrize("budget", SIMPLE, ids=lambda b: b.key)
def test_budget_at_bound_passes_and_just_past_fails(budget):
    limit = 17
    cell, reason = budget.judge(limit, {budget.metric: limit})
    assert cell.startswith("pass: ") and reason is None
    cell, reason = budget.judge(limit, {budget.metric: _just_past(budget, limit)})
    op = ">" if budget.direction == "max" else "<"
    assert cell.startswith("FAIL: ") and f" {op} {budget.direction} 17{budget.unit}" in reason
    # Well inside the bound, in the other direction, passes.
    inside = limit - 5 if budget.direction == "max" else limit + 5
    assert budget.judge(limit, {budget.metric: inside})[1] is None


def _ok_rows(teacher: float = 0.915, student: float = 0.90) -> pd.DataFrame:
    base = {"format": "pytorch", "precision": "fp32", "seed": 42, "device": "cpu", "threads": 1, "status": "ok"}
    return pd.DataFrame([base | {"model": "teacher", "accuracy": teacher}, base | {"model": "student", "accuracy": student}])


@pytest.mark.parametrize("key, ref", [("max_accuracy_drop_vs_teacher_pts", 0.915),
                                      ("max_accuracy_drop_vs_fp32_pts", 0.90)])
def test_accuracy_drop_at_bound_passes_and_just_past_fails(key, ref):
    budget = BUDGETS[key]
    assert isinstance(budget, AccuracyDrop) and budget.direction == "max"
    row = {"model": "student", "seed": 42, "device": "cpu", "threads": 1}
    rows = RunRows(_ok_rows(), DropJudge(None))  # no predictions kept: judged on the point, and says so
    at = budget.judge(1.5, row | {"accuracy": ref - 0.015}, rows)  # 1.5 pts in floats: 1.5000000000000013
    assert at[0].startswith("pass: ") and at[1] is None
    past = budget.judge(1.5, row | {"accuracy": ref - 0.0151}, rows)
    assert past[0] == "FAIL: 1.51 (point) pts > 1.5 pts"
    assert past[1].endswith("pytorch fp32 1.51 pts > max 1.5 pts (point estimate: no predictions for an interval)")
    # No reference row in the run: neither pass nor fail, and says which row is missing.
    model = "teacher" if "teacher" in key else "student"
    empty = RunRows(_ok_rows().iloc[0:0], DropJudge(None))
    assert budget.judge(1.5, row | {"accuracy": 0.5}, empty)[0] == f"n/a (no {model} pytorch fp32 row)"


def test_allowed_set_is_membership():
    budget = BUDGETS["allowed_op_domains"]
    assert isinstance(budget, AllowedSet)
    assert budget.judge(("ai.onnx", "com.microsoft"), {"onnx_op_domains": ["ai.onnx", "com.microsoft"]}) == (
        "pass: ai.onnx, com.microsoft", None)
    cell, reason = budget.judge(("ai.onnx",), {"onnx_op_domains": ["ai.onnx", "com.microsoft"]})
    assert cell == "FAIL: com.microsoft" and "com.microsoft not in allowed_op_domains ['ai.onnx']" in reason


@pytest.mark.parametrize("budget", list(BUDGETS.values()), ids=lambda b: b.key)
@pytest.mark.parametrize("value", ["absent", None, float("nan")])
def test_missing_metric_is_not_measured(budget, value):
    row = {"model": "student", "seed": 42, "device": "cpu", "threads": 1}
    if value != "absent":
        row[budget.metric] = value
    limit = ("ai.onnx",) if isinstance(budget, AllowedSet) else 1.0
    assert budget.judge(limit, row, _ok_rows()) == (NOT_MEASURED, None)


# ------------------------------------------------------------------ tolerances
def test_tolerances_know_metric_and_direction():
    lat, acc = DEFAULT_TOLERANCES["latency_p50"], DEFAULT_TOLERANCES["accuracy"]
    assert (lat.metric, lat.direction, acc.metric, acc.direction) == ("latency_p50_ms", "max", "accuracy", "min")
    assert lat.judge(10.0, 11.0) == "ok" and lat.judge(10.0, 11.01) == "regressed" and lat.judge(10.0, 5.0) == "ok"
    assert acc.judge(0.9, 0.895) == "ok" and acc.judge(0.9, 0.8949) == "regressed" and acc.judge(0.9, 1.0) == "ok"
    assert lat.judge(float("nan"), 1.0) == "n/a" and acc.judge(0.9, float("nan")) == "n/a"


def test_bare_tolerance_takes_its_metrics_direction():
    # Tolerance(2.0, "pt") built by hand for accuracy still judges a drop, not a rise.
    c = compare_runs(GOLDEN / "baseline", GOLDEN / "accuracy_drop", {"accuracy": Tolerance(0.5, "pt")})
    assert c.regressed and "regressed" in set(c.table["accuracy_verdict"])
    with pytest.raises(BenchError, match="accuracy takes a tolerance in pt"):
        compare_runs(GOLDEN / "baseline", GOLDEN / "noise", {"accuracy": Tolerance(0.5, "%")})
