"""`measure.server` through `bench run`, `bench report`, `bench check` and `bench serve` on the tiny suite:
the served rows carry their Server entries (answers equal to the accuracy pass), the report has the
latency-vs-load plot and the max-QPS column, `min_server_qps` judges them, a rerun measures nothing
again, and `bench serve RUN_DIR --variant ID` serves exactly the artifact that was measured."""

from __future__ import annotations

import pytest
from conftest import FIXTURE_DATA, TINY_SUITE

from bench.gate.check import check_run, load_profile
from bench.report.write import write_report
from bench.run.suite_run import run_suite
from bench.serve.spec import from_run_dir
from bench.store.results import read_rows

pytestmark = pytest.mark.slow  # a tiny-suite run with two served variants: ~60 s

SERVED = TINY_SUITE.replace(
    "timeout_s: 300,", "timeout_s: 300, server: {{target_qps: [10, 30], duration_s: 2, p99_bound_ms: 200, "
                       "variants: ['*-onnx-*'], batching: [{{max_batch: 1}}, {{max_batch: 4, max_wait_ms: 2}}]}},")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    suite = root / "suite.yaml"
    suite.write_text(SERVED.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48))
    return run_suite(suite, root / "results", run_id="r", cache_dir=root / "cache"), suite, root


def test_served_rows_carry_server_entries_and_the_others_none(run):
    run_dir, _, _ = run
    rows = {r["variant_id"]: r for r in read_rows(run_dir)}
    for vid, r in rows.items():
        if "-onnx-" not in vid:
            assert "server" not in r and "server_max_qps" not in r
            continue
        assert [e["batching"] for e in r["server"]] == ["off", "max_batch=4,max_wait_ms=2"]
        for e in r["server"]:
            assert e["scenario"] == "Server" and e["status"] == "ok"
            assert e["label_agreement"] == 1.0 and e["answers_compared"] > 0
            assert [x["target_qps"] for x in e["loads"]] == [10, 30] and e["max_qps"] == 30
        assert r["server_max_qps"] == 30 and r["server_p99_bound_ms"] == 200
        assert (run_dir / "logs" / f"{vid}.predictions.json").is_file()


def test_report_plots_latency_against_load_and_check_budgets_min_server_qps(run, tmp_path):
    run_dir, _, _ = run
    index = write_report(run_dir, tmp_path / "reports")
    text = index.read_text()
    assert (index.parent / "latency_vs_load.png").stat().st_size > 10_000
    assert "## Server scenario" in text and "max QPS (Server, p99 bound)" in text
    profile = tmp_path / "serving.yaml"
    profile.write_text("min_server_qps: 30\n")
    result = check_run(run_dir, load_profile(profile))
    assert result.exit_code == 0
    profile.write_text("min_server_qps: 31\n")
    result = check_run(run_dir, load_profile(profile))
    assert result.exit_code == 1 and "Server-scenario max QPS (p99 <= 200 ms) 30 qps < min 31 qps" in str(
        result.reason_lists)


def test_a_rerun_measures_nothing_again_and_bench_serve_resolves_the_measured_artifact(run):
    run_dir, suite, root = run
    before = len(read_rows(run_dir))
    run_suite(suite, root / "results", run_id="r", cache_dir=root / "cache")
    assert len(read_rows(run_dir)) == before
    rows = {r["variant_id"]: r for r in read_rows(run_dir)}
    spec = from_run_dir(run_dir, "student-onnx-fp32-cpu-t1")
    assert spec.artifact_dir.name == rows["student-onnx-fp32-cpu-t1"]["artifact"]
    assert spec.format == "onnx" and spec.threads == 1 and spec.max_length == 48
    assert spec.label_names == ["negative", "positive"] and not spec.pair
