"""`bench tune`: the accuracy bar is judged on the upper end of the paired bootstrap interval (a candidate
whose point estimate passes but whose interval does not is rejected), a budget nothing meets returns the
closest candidates and exit 1, the chosen variant comes with a suite that plans exactly it, and a rerun
of the same tune builds and measures nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FIXTURE_DATA, TINY_SUITE

from bench.cli import main, parse_duration
from bench.common.errors import BenchError
from bench.gate.accuracy_drop import drop_interval
from bench.plan import make_plan
from bench.spec.suite import load_suite
from bench.tasks.table import GLUE_TASKS

SST2 = GLUE_TASKS["sst2"]


def _predictions(n: int, ref_wrong: int, cand_wrong: int, seed: int = 1):
    """Labels, a reference wrong on `ref_wrong` examples and a candidate wrong on those and `cand_wrong` more."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    wrong = rng.permutation(n)
    ref, cand = labels.copy(), labels.copy()
    ref[wrong[:ref_wrong]] ^= 1
    cand[wrong[: ref_wrong + cand_wrong]] ^= 1
    return labels, ref, cand


def test_the_interval_is_paired_and_its_upper_end_can_fail_where_the_point_passes():
    # 200 examples, the candidate wrong on 1 more: a point drop of 0.5 pts, but one example either way is
    # 0.5 pts, so the 95% interval reaches past 1 point.
    labels, ref, cand = _predictions(200, ref_wrong=20, cand_wrong=1)
    point, low, high = drop_interval(SST2, labels, ref, cand)
    assert point == pytest.approx(0.5) and low >= 0 and high > 1.0
    # The same 0.5-point drop over 5,000 examples: the interval stays within 1 point.
    labels, ref, cand = _predictions(5000, ref_wrong=500, cand_wrong=25)
    point, low, high = drop_interval(SST2, labels, ref, cand)
    assert point == pytest.approx(0.5) and 0 < low < point < high < 1.0
    # Paired: two models wrong on the same examples have a zero-width interval, whatever their accuracy.
    labels, ref, cand = _predictions(300, ref_wrong=90, cand_wrong=0)
    assert drop_interval(SST2, labels, ref, cand) == (0.0, 0.0, 0.0)


def test_other_metrics_are_recomputed_per_resample():
    labels, ref, cand = _predictions(400, ref_wrong=40, cand_wrong=12)
    point, low, high = drop_interval(GLUE_TASKS["cola"], labels, ref, cand, samples=300)  # Matthews correlation
    assert low < point < high and point > 0


def test_budget_durations_parse_and_bad_ones_are_one_line_errors():
    assert parse_duration("90") == 90 and parse_duration("30m") == 1800 and parse_duration("1.5h") == 5400
    for bad in ("soon", "-5m", "0", "10d"):
        with pytest.raises(BenchError, match="--budget: expected a duration"):
            parse_duration(bad)


def test_exclusion_recipes_of_different_bases_never_share_a_name(write_suite):
    from types import SimpleNamespace

    from bench.schema.variant import Variant
    from bench.tune.sensitivity import _with_excluded

    search = SimpleNamespace(suite=load_suite(write_suite(TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=16,
                                                                            n_eval=8))))
    plain = Variant("student", "onnx", "int8-dynamic", "cpu", 1)
    per_channel = Variant("student", "onnx", "int8-dynamic", "cpu", 1, quant="per-channel")
    a, b = _with_excluded(search, plain, ["n1"]), _with_excluded(search, per_channel, ["n1"])
    assert a.quant != b.quant and a.quant.startswith("x1-") and b.quant.startswith("x1-")
    q = search.suite.quantize
    assert q.resolved(a.quant).per_channel is False and q.resolved(b.quant).per_channel is True
    assert q.resolved(a.quant).nodes_to_exclude == q.resolved(b.quant).nodes_to_exclude == ["n1"]
    assert {a.id, b.id} <= {v.id for v in make_plan(search.suite).variants}  # each planned under its name


TUNED = TINY_SUITE + """tune:
  space:
    - {{model: student, format: [pytorch, onnx], precision: [fp32, int8-dynamic]}}
  max_drop_pts: 50
"""


@pytest.mark.slow  # a tiny-suite tune: ~40 s
def test_a_tune_chooses_reproduces_fails_with_the_closest_and_reruns_with_zero_rebuilds(tmp_path, capsys, caplog):
    suite = tmp_path / "suite.yaml"
    suite.write_text(TUNED.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48))
    roomy, strict = tmp_path / "roomy.yaml", tmp_path / "strict.yaml"
    roomy.write_text("threads: 1\nmax_size_mb: 100\n")
    strict.write_text("threads: 1\nmax_p95_ms_bs1: 0.0001\n")
    argv = ["tune", str(suite), "--results-dir", str(tmp_path / "results"), "--run-id", "t"]
    caplog.set_level("INFO", logger="bench")
    assert main([*argv, "--profile", str(roomy)]) == 0
    assert [r for r in caplog.records if r.getMessage().startswith("build ")]  # the first tune built
    run_dir = tmp_path / "results" / "tiny" / "t"
    tune = json.loads((run_dir / "tune.json").read_text())
    ids = [c["variant"] for c in tune["candidates"]]
    assert ids == ["student-pytorch-fp32-cpu-t1", "student-onnx-fp32-cpu-t1", "student-pytorch-int8-dynamic-cpu-t1",
                   "student-onnx-int8-dynamic-cpu-t1"]  # cheap first
    measured = {c["variant"]: c for c in tune["candidates"]}
    chosen = measured[tune["chosen"]]
    assert chosen["passes"] and chosen["objective"] == min(c["objective"] for c in measured.values() if c["passes"])
    assert chosen["drop_interval"][0] <= chosen["drop_pts"] <= chosen["drop_interval"][1]
    # The chosen suite plans exactly the chosen variant.
    plan = make_plan(load_suite(run_dir / "chosen-suite.yaml"))
    assert [v.id for v in plan.variants] == [tune["chosen"]]
    # The rows are a normal run: the reference and every candidate, each with its predictions.
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {r["variant_id"] for r in rows} == {"teacher-pytorch-fp32-cpu-t1", *ids}
    assert all((run_dir / "logs" / f"{r['variant_id']}.predictions.json").is_file() for r in rows)

    # A profile nothing meets: the closest candidates with what each failed, exit 1, no chosen suite.
    caplog.clear()
    assert main([*argv, "--profile", str(strict)]) == 1
    out = capsys.readouterr().out
    assert "Nothing passed" in out and "batch-1 p95 latency" in out and "> max 0.0001 ms" in out
    assert not (run_dir / "chosen-suite.yaml").exists()
    assert json.loads((run_dir / "tune.json").read_text())["closest"]
    # ... and that rerun built nothing and measured nothing again.
    assert not [r for r in caplog.records if r.getMessage().startswith("build ")]
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == len(rows)


# A teacher trained to a real decision boundary (the 1-epoch tiny one answers one class), so the 1-layer
# student's INT8 graphs fail a zero-point bar on accuracy alone: the sensitivity pass's bases.
SENSITIVE = TINY_SUITE.replace("finetune: {{epochs: 1, lr: 1.0e-3", "finetune: {{epochs: 12, lr: 3.0e-3") + """tune:
  space:
    - {{model: student, format: onnx, precision: [int8-dynamic, int8-static]}}
  max_drop_pts: 0
  sensitivity: {{steps: [1, 2], samples: 48, max_bases: 1}}
quantize: {{calibration_samples: 40}}
"""


@pytest.mark.slow  # a tiny-suite tune with a sensitivity pass: ~40 s
def test_the_sensitivity_pass_adds_candidates_that_keep_the_costliest_nodes_in_float(tmp_path, caplog):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SENSITIVE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48))
    profile = tmp_path / "p.yaml"
    profile.write_text("threads: 1\n")
    argv = ["tune", str(suite), "--profile", str(profile), "--results-dir", str(tmp_path / "results"), "--run-id", "s"]
    main(argv)
    run_dir = tmp_path / "results" / "tiny" / "s"
    tune = json.loads((run_dir / "tune.json").read_text())
    (base, ranking), = tune["sensitivity"].items()
    made = [c for c in tune["candidates"] if c["origin"]]
    assert made and all(c["origin"].startswith(f"sensitivity: {base} ") for c in made)
    rows = {json.loads(line)["variant_id"]: json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()}
    first = rows[made[0]["variant"]]
    assert first["quant_nodes_excluded"] == [ranking[0]["node"]] and first["quant"].startswith("x1-")
    assert [c["variant"].split("+")[1][:3] for c in made] == ["x1-", "x2-"]  # no step passed: both were tried
    assert "Sensitivity pass" in (run_dir / "tune.md").read_text()
    # A rerun ranks, builds and measures nothing again.
    caplog.clear()
    caplog.set_level("INFO", logger="bench")
    main(argv)
    assert not [r for r in caplog.records if r.getMessage().startswith(("build ", "sensitivity "))]
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == len(rows)
    # With the student's own FP32 in the space, failing the bar as well, the pass is not run: nodes in float
    # bring an INT8 graph towards its FP32 one, which fails too.
    suite.write_text(suite.read_text().replace("precision: [int8-dynamic, int8-static]}",
                                               "precision: [int8-dynamic, int8-static]}\n    - {model: student, "
                                               "format: pytorch, precision: fp32}"))
    main(argv)
    skipped = json.loads((run_dir / "tune.json").read_text())["sensitivity"][base]
    assert skipped.startswith("not run: student-pytorch-fp32-cpu-t1 (no quantization at all) fails the bar too")
