"""What a deployment pays beyond the steady-state p50: energy from real counters only (fake sysfs trees and a
fake NVML here), end-to-end latency with the tokenizer, and cold starts in fresh processes, through a run."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from conftest import FIXTURE_DATA, TINY_SUITE

from bench.measure.energy import EnergyMeter, find_counters, hwmon_counters, powercap_counters
from bench.run.suite_run import run_suite
from bench.scenarios.base import Measured
from bench.scenarios.cold_start import ColdStartStage
from bench.schema.child import ChildSpec
from bench.spec.measure import ColdStartConfig
from bench.store.results import read_rows


def _zone(root: Path, name: str, domain: str, uj: int, wrap_uj: int | None = 2**32) -> Path:
    zone = root / "class" / "powercap" / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(domain + "\n")
    (zone / "energy_uj").write_text(f"{uj}\n")
    if wrap_uj is not None:
        (zone / "max_energy_range_uj").write_text(f"{wrap_uj}\n")
    return zone


def test_powercap_reads_package_and_dram_zones_and_survives_a_wrap(tmp_path):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 2**32 - 1_000_000)  # 1 J before the wrap
    _zone(tmp_path, "intel-rapl:0:0", "core", 5)  # inside the package: not added again
    dram = _zone(tmp_path, "intel-rapl:0:1", "dram", 10_000_000)
    meter = EnergyMeter.for_device("cpu", root=tmp_path)
    assert [c.name for c in meter.counters] == ["powercap:intel-rapl:0 (package-0)", "powercap:intel-rapl:0:1 (dram)"]
    meter.start()
    (pkg / "energy_uj").write_text("2000000\n")  # wrapped: 1 J + 2 J since start
    (dram / "energy_uj").write_text("10500000\n")  # +0.5 J
    joules = meter.stop()
    assert joules == pytest.approx({"powercap:intel-rapl:0 (package-0)": 3.0, "powercap:intel-rapl:0:1 (dram)": 0.5})
    fields = meter.fields(joules, inferences=100)
    assert fields["energy_status"] == "measured" and fields["energy_mj_per_inference"] == pytest.approx(35.0)


def test_an_unreadable_counter_is_a_reason_never_an_estimate(tmp_path, monkeypatch):
    zone = _zone(tmp_path, "intel-rapl:0", "package-0", 123)
    real_read = Path.read_text

    def read_text(self, *a, **k):
        if self == zone / "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real_read(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)
    counters, why = find_counters("cpu", root=tmp_path)
    assert counters == [] and "energy_uj is not readable by this user" in why and "amd_energy" in why
    meter = EnergyMeter(counters, why)
    assert meter.fields(None, 10) == {"energy_status": f"unavailable: {why}"}


def test_no_counter_at_all_says_where_it_looked(tmp_path):
    counters, why = find_counters("cpu", root=tmp_path)
    assert counters == [] and why.startswith(f"powercap: {tmp_path}/class/powercap does not exist")


def test_amd_energy_hwmon_sockets_only(tmp_path):
    d = tmp_path / "class" / "hwmon" / "hwmon3"
    d.mkdir(parents=True)
    (d / "name").write_text("amd_energy\n")
    for i, (label, uj) in enumerate((("Ecore000", 7), ("Esocket0", 5_000_000)), start=1):
        (d / f"energy{i}_label").write_text(label + "\n")
        (d / f"energy{i}_input").write_text(f"{uj}\n")
    counters, problems = hwmon_counters(tmp_path)
    assert [c.name for c in counters] == ["hwmon:hwmon3/Esocket0"] and problems == []
    assert counters[0].read_j() == pytest.approx(5.0)
    assert powercap_counters(tmp_path)[0] == []


def test_nvml_total_energy_on_cuda(tmp_path, monkeypatch):
    state = {"mj": 1000}
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetTotalEnergyConsumption=lambda h: state["mj"])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = EnergyMeter.for_device("cuda", root=tmp_path)  # no CPU counters in this tree: the GPU's alone
    assert [c.name for c in meter.counters] == ["nvml:GPU0"] and meter.unavailable is None
    meter.start()
    state["mj"] += 2500
    assert meter.stop() == {"nvml:GPU0": pytest.approx(2.5)}
    assert EnergyMeter.for_device("cpu", root=tmp_path).unavailable is not None  # never the GPU's for a CPU row


EDGE = TINY_SUITE.replace(
    "  - {{model: [teacher, student], format: [pytorch, onnx], precision: fp32, device: cpu}}",
    "  - {{model: [teacher], format: [onnx], precision: fp32, device: cpu}}").replace(
    "timeout_s: 300,", "timeout_s: 300, cold_start: {{repeats: 2, timeout_s: 60}}, "
                       "end_to_end: {{warmup: 2, min_iterations: 30, min_seconds: 0.05}},")


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge")
    suite = root / "suite.yaml"
    suite.write_text(EDGE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48))
    return run_suite(suite, root / "results", run_id="r", cache_dir=root / "cache")


@pytest.mark.slow  # shares one tiny-suite run with cold starts (~25 s)
def test_rows_carry_cold_start_end_to_end_and_energy(edge_run):
    [row] = read_rows(edge_run)
    assert row["status"] == "ok", row.get("error")
    phases = row["cold_start_phases_ms"]
    assert list(phases) == ["interpreter", "import", "tokenizer_load", "model_load", "first_call", "second_call"]
    assert all(v > 0 for v in phases.values())
    assert len(row["cold_start_runs_ms"]) == 2 and row["cold_start_min_ms"] <= row["cold_start_ms"] \
        <= row["cold_start_max_ms"]
    # spawn to first answer is the sum of its phases (second call excluded), so longer than the model load
    assert row["cold_start_ms"] > phases["model_load"] + phases["first_call"]
    assert row["cold_start_file_cache"] == "model files evicted" and row["cold_start_peak_rss_mb"] > 0
    assert row["e2e_calls"] >= 30 and row["e2e_p50_ms"] <= row["e2e_p95_ms"]
    assert 0 < row["e2e_tokenize_p50_ms"] < row["e2e_p50_ms"] and 0 < row["e2e_tokenizer_share_pct"] < 100
    # This machine (and CI's) exposes no energy counter: the row says so, with the reason, and no number.
    counters, why = find_counters("cpu")
    if why is not None:
        assert row["energy_status"] == f"unavailable: {why}" and row.get("energy_mj_per_inference") is None
    else:
        assert row["energy_status"] == "measured" and row["energy_mj_per_inference"] >= 0


@pytest.mark.slow  # shares one tiny-suite run with cold starts (~25 s)
def test_a_cold_start_that_fails_is_an_entry_with_the_reason_not_a_hang(edge_run, tmp_path):
    spec = ChildSpec.model_validate_json(next((edge_run / "logs").glob("*.cold-start.spec.json")).read_bytes())
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in Path(spec.artifact_dir).iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    spec = spec.model_copy(update={"artifact_dir": broken})
    part = ColdStartStage(ColdStartConfig(repeats=2, timeout_s=60), tmp_path / "logs").measure(
        Measured(spec.variant, spec))
    assert part.cold_start_ms is None
    assert part.cold_start_error.startswith("start 1: exit code 1: ") and "log:" in part.cold_start_error


@pytest.mark.slow  # shares one tiny-suite run with cold starts (~25 s)
def test_report_check_and_compare_read_them(edge_run, tmp_path):
    from bench.gate.check import NOT_MEASURED, check_run
    from bench.gate.compare import compare_runs, parse_tolerances
    from bench.report.write import write_report
    from bench.spec.profile import load_profile

    md = write_report(edge_run, tmp_path / "reports", name="r").read_text()
    assert "## Beyond the p50: end to end, cold start, energy" in md and "cold_start.png" in md
    assert (tmp_path / "reports" / "r" / "cold_start.png").stat().st_size > 0

    profile = tmp_path / "cold.yaml"
    profile.write_text("max_cold_start_ms: 1\nmax_e2e_p95_ms: 10000\nmax_energy_mj_per_inference: 5\n")
    result = check_run(edge_run, load_profile(profile))
    [row] = result.table.to_dict("records")
    assert row["verdict"] == "FAIL" and "cold start (spawn to first answer)" in row["reasons"]
    assert row["max_e2e_p95_ms"].startswith("pass")
    if find_counters("cpu")[1] is not None:  # no readable counter: neither a pass nor a fail
        assert row["max_energy_mj_per_inference"] == NOT_MEASURED

    comparison = compare_runs(edge_run, edge_run, parse_tolerances(["cold_start=5%", "e2e_p95=5%"]))
    judged = set(zip(comparison.details["variant"], comparison.details["metric"], strict=True))
    assert {("teacher-onnx-fp32-cpu-t1 seed=7", "cold_start"), ("teacher-onnx-fp32-cpu-t1 seed=7", "e2e_p95")} <= judged
    assert not comparison.regressed


def test_cold_start_picks_variants_by_id_pattern(tmp_path):
    stage = ColdStartStage(ColdStartConfig(variants="*-t1"), tmp_path)
    assert stage.selected("student-onnx-int8-dynamic-opt-cpu-t1") and not stage.selected("student-onnx-fp32-cpu-t2")
    assert ColdStartStage(ColdStartConfig(), tmp_path).selected("anything-t2")
