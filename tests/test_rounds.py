"""Interleaved speedup rounds: the order-statistic interval of the median, two real round processes
taking turns on hand-built ONNX models, the planted slowdown kept off the reference, a process that
cannot load, the shared cores, and the reference's drift."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_tiny_onnx_artifact
from scipy.stats import binom
from test_measure import SST2_TASK

from bench.launch.rounds import RoundError, RoundWorker, interleave, median_interval, shared_cpus
from bench.measure.stream import SLOWDOWN_ENV
from bench.scenarios.interleave import reference_drift
from bench.schema.child import ChildSpec

SENTENCES = ["a warm , funny film .", "dull .", "the plot goes nowhere and the jokes fall flat ."] * 10


def _spec(artifact, threads: int = 1) -> ChildSpec:
    return ChildSpec.model_validate({
        "variant": {"model": "student", "format": "onnx", "precision": "fp32", "device": "cpu", "threads": threads},
        "artifact_dir": str(artifact), "task": SST2_TASK,
        "eval_sets": [{"name": "validation", "first": SENTENCES, "labels": [1, 0, 0] * 10}],
        "max_length": 32, "measure": {"warmup": 2, "interleave": {"rounds": 6, "calls_per_round": 30, "warmup": 5}}})


@pytest.fixture(scope="module")
def small_and_big(tmp_path_factory):
    root = tmp_path_factory.mktemp("rounds")
    return (write_tiny_onnx_artifact(root / "small", hidden=32, layers=1),
            write_tiny_onnx_artifact(root / "big", hidden=512, layers=8))


def test_median_interval_is_the_order_statistic_interval():
    xs = np.array([7.0, 1.0, 9.0, 3.0, 5.0, 2.0, 8.0, 4.0, 10.0, 6.0])  # 1..10, shuffled
    median, low, high, coverage = median_interval(xs)
    # n = 10: [x(2), x(9)] misses the median when 0 or 1 values fall on one side.
    assert (median, low, high) == (5.5, 2.0, 9.0)
    assert coverage == pytest.approx(1 - 2 * binom.cdf(1, 10, 0.5)) and coverage >= 0.95
    assert median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0])[1:3] == (1.0, 6.0)  # n = 6: the whole range
    assert median_interval(np.arange(1.0, 21.0))[1:3] == (6.0, 15.0)  # n = 20: the textbook x(6), x(15)


def test_median_interval_covers_the_true_median_as_often_as_it_says():
    rng = np.random.default_rng(0)
    true_median = np.log(2)  # of an exponential(1): skewed, as round ratios often are
    hits = [low <= true_median <= high for low, high in
            (median_interval(rng.exponential(size=10))[1:3] for _ in range(4000))]
    assert np.mean(hits) == pytest.approx(1 - 2 * binom.cdf(1, 10, 0.5), abs=0.01)


def test_two_round_processes_take_turns_and_rank_the_bigger_model_slower(small_and_big, tmp_path):
    small, big = small_and_big
    reference = RoundWorker(_spec(big), tmp_path, "ref", timeout_s=120, planted=False)
    variant = RoundWorker(_spec(small), tmp_path, "var", timeout_s=120)
    try:
        assert reference.ready["stream"] == variant.ready["stream"] == len(SENTENCES)
        assert len(variant.round(0, 7)) == 7  # one time per call
        rounds = interleave(reference, variant, rounds=6, calls=30)
    finally:
        reference.close()
        variant.close()
    assert len(rounds.ratios) == 6 and len(rounds.at) == 6
    # 8 layers of 512x512 per token against 1 of 32x32: every round says the small one is faster.
    assert min(rounds.ratios) > 1.5, rounds.ratios
    assert reference.proc.returncode == variant.proc.returncode == 0  # "quit" ends them cleanly


def test_a_planted_slowdown_reaches_the_variant_and_never_the_reference(small_and_big, tmp_path, monkeypatch):
    small, _ = small_and_big
    monkeypatch.setenv(SLOWDOWN_ENV, "2")  # +2 ms per timed call on a model that takes well under 1 ms
    reference = RoundWorker(_spec(small), tmp_path, "ref", timeout_s=120, planted=False)
    variant = RoundWorker(_spec(small), tmp_path, "var", timeout_s=120)
    try:
        rounds = interleave(reference, variant, rounds=6, calls=10)
    finally:
        reference.close()
        variant.close()
    assert max(rounds.variant_ms) > 2.0 > max(rounds.reference_ms), rounds
    assert max(rounds.ratios) < 0.5


def test_the_measuring_child_serves_the_variant_side_of_the_rounds_after_its_result(small_and_big, tmp_path,
                                                                                     monkeypatch):
    from bench.launch.isolate import run_isolated_serving
    from bench.schema.child import ChildResult

    small, big = small_and_big
    monkeypatch.setenv(SLOWDOWN_ENV, "2")  # the measured row and the rounds see the same planted slowdown
    result, serving = run_isolated_serving(_spec(small), tmp_path, "var", timeout_s=120)
    assert isinstance(result, ChildResult) and result.latency_p50_ms > 2.0
    assert serving is not None and serving.ready["stream"] == len(SENTENCES)
    assert (tmp_path / "var.result.json").is_file()  # the row's result is complete before the rounds
    reference = RoundWorker(_spec(big), tmp_path, "ref", timeout_s=120, planted=False)
    try:
        rounds = interleave(reference, serving, rounds=4, calls=10)
    finally:
        reference.close()
        serving.close()
    assert min(rounds.variant_ms) > 2.0 and len(rounds.ratios) == 4
    assert serving.proc.returncode == 0  # "quit" ends the measuring child cleanly
    # Without rounds the child exits after its result, as before.
    result, serving = run_isolated_serving(_spec(small), tmp_path / "plain", "var", timeout_s=120, serve_rounds=False)
    assert isinstance(result, ChildResult) and serving is None


def test_a_round_process_that_cannot_load_says_why(tmp_path):
    missing = tmp_path / "no-such-artifact"
    with pytest.raises(RoundError, match=r"var: exit code 1: .*\(log: .*var\.rounds\.log\)"):
        RoundWorker(_spec(missing), tmp_path, "var", timeout_s=60)


def test_both_sides_share_the_last_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert shared_cpus(1) == [3] and shared_cpus(2) == [2, 3]
    assert shared_cpus(4) == [] and shared_cpus(8) == []  # all cores anyway: nothing to pin


def test_reference_drift_is_flagged_only_beyond_the_noise_of_its_rounds():
    rng = np.random.default_rng(1)
    steady = list(1.0 + rng.normal(0, 0.02, 60))
    stepped = list(1.0 + rng.normal(0, 0.02, 30)) + list(1.3 + rng.normal(0, 0.02, 30))
    d = reference_drift(steady)
    assert not d["flagged"] and abs(d["drift_pct"]) < d["noise_floor_pct"] and d["window"] == 6
    d = reference_drift(stepped)
    assert d["flagged"] and d["drift_pct"] == pytest.approx(30, abs=5)
