import sys

import numpy as np
import pytest

from bench.launch.isolate import run_isolated
from bench.measure.latency import latency_stats, time_calls
from bench.store.results import SCHEMA_VERSION, append_row, read_rows

SST2_TASK = {"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy", "f1"]}


def test_stats_match_numpy():
    rng = np.random.default_rng(0)
    s = rng.lognormal(1.0, 0.3, size=1001)
    st = latency_stats(s)
    assert st["latency_p50_ms"] == pytest.approx(np.median(s))
    assert st["latency_p99_ms"] == pytest.approx(np.percentile(s, 99))
    assert st["latency_stdev_ms"] == pytest.approx(np.std(s, ddof=1))
    assert st["latency_cv"] == pytest.approx(np.std(s, ddof=1) / np.mean(s))
    assert st["latency_n"] == 1001 and st["latency_min_ms"] == s.min()


def test_loop_meets_min_iterations_and_min_seconds():
    calls = []
    samples = time_calls(calls.append, [1, 2, 3], warmup=4, min_iterations=10, min_seconds=0.0)
    assert len(samples) == 10 and len(calls) == 14
    assert calls[4:7] == [1, 2, 3]  # cycles through the inputs



def test_loop_runs_until_min_seconds_on_its_own_clock(monkeypatch):
    # A fake clock that each call advances by exactly 1 ms: the loop must stop after 50 calls, whatever
    # the load on the machine (a real sleep would make this a timing test that flakes on 2 busy cores).
    import types

    import bench.measure.latency as latency

    now = [0]
    monkeypatch.setattr(latency, "time", types.SimpleNamespace(perf_counter_ns=lambda: now[0]))

    def call(_):
        now[0] += 1_000_000

    samples = time_calls(call, [0], warmup=0, min_iterations=1, min_seconds=0.05)
    assert len(samples) == 50 and (samples == 1.0).all()


def _spec(threads=1):
    return {"variant": {"model": "student", "format": "onnx", "precision": "fp32", "device": "cpu", "threads": threads},
            "artifact_dir": ".", "task": SST2_TASK,
            "eval_sets": [{"name": "validation", "first": ["x"], "second": None, "labels": [0]}], "max_length": 8}


def test_child_crash_becomes_failed_result(tmp_path, monkeypatch):
    # A spec that the worker cannot use: the child exits non-zero and its last log line is kept.
    result = run_isolated({"variant": {"model": "student", "threads": 1, "format": "nope", "device": "cpu",
                                       "precision": "fp32"},
                           "artifact_dir": str(tmp_path), "measure": {"ort_gpu_provider": "cuda"},
                           "task": SST2_TASK,
                           "eval_sets": [{"name": "validation", "first": ["x"], "second": None, "labels": [0]}],
                           "max_length": 8},
                          tmp_path, "v", timeout_s=120)
    assert result.status == "failed" and "exit code 1" in result.error
    assert "ValueError: no runtime adapter for format 'nope'" in result.error


def test_child_timeout_becomes_timeout_result(tmp_path, monkeypatch):
    import bench.launch.isolate as isolate

    monkeypatch.setattr(isolate, "worker_command", lambda *_: [sys.executable, "-c", "import time; time.sleep(60)"])
    result = run_isolated(_spec(), tmp_path, "v", timeout_s=1)
    assert result.status == "timeout" and "timeout_s=1" in result.error


def test_results_append_and_partial_line_ignored(tmp_path):
    append_row(tmp_path, {"variant_id": "a", "status": "ok"})
    append_row(tmp_path, {"variant_id": "b", "status": "ok"})
    with open(tmp_path / "results.jsonl", "ab") as fh:
        fh.write(b'{"variant_id": "c", "sta')  # a write cut short by kill -9
    rows = read_rows(tmp_path)
    assert [r["variant_id"] for r in rows] == ["a", "b"] and rows[0]["schema_version"] == SCHEMA_VERSION


def test_append_after_a_partial_line_keeps_both_rows(tmp_path):
    append_row(tmp_path, {"variant_id": "a", "status": "ok"})
    with open(tmp_path / "results.jsonl", "ab") as fh:
        fh.write(b'{"variant_id": "b", "sta')  # killed mid-write
    append_row(tmp_path, {"variant_id": "c", "status": "ok"})  # the resumed run appends
    assert [r["variant_id"] for r in read_rows(tmp_path)] == ["a", "c"]


def test_median_confidence_interval_brackets_the_median():
    from bench.measure.latency import median_ci

    rng = np.random.default_rng(1)
    s = rng.lognormal(1.0, 0.3, size=2000)
    low, high = median_ci(s)
    assert low < np.median(s) < high and high - low < 0.1 * np.median(s)
    assert median_ci(s) == (low, high)  # seeded: the same interval on a rerun
    wide = median_ci(s[:50])
    assert wide[1] - wide[0] > high - low  # fewer samples, wider interval
    st = latency_stats(s)
    assert (st["latency_p50_ci95_low_ms"], st["latency_p50_ci95_high_ms"]) == (low, high)


# ---------------------------------------------------------------- statistics on fixed samples

def test_stats_on_a_hand_computed_sample():
    s = np.array([3.0, 1.0, 100.0, 2.0, 4.0])  # order must not matter
    st = latency_stats(s)
    # Linear interpolation between order statistics 1, 2, 3, 4, 100 at position q * (n - 1).
    assert st["latency_p50_ms"] == 3.0
    assert st["latency_p90_ms"] == pytest.approx(4 + 0.6 * 96)
    assert st["latency_p95_ms"] == pytest.approx(4 + 0.8 * 96)
    assert st["latency_p99_ms"] == pytest.approx(4 + 0.96 * 96)
    assert st["latency_mean_ms"] == 22.0
    assert st["latency_stdev_ms"] == pytest.approx((7610 / 4) ** 0.5)  # squared deviations sum to 7610
    assert st["latency_cv"] == pytest.approx((7610 / 4) ** 0.5 / 22)
    assert (st["latency_min_ms"], st["latency_max_ms"], st["latency_n"]) == (1.0, 100.0, 5)
    for q in (50, 90, 95, 99):
        assert st[f"latency_p{q}_ms"] == pytest.approx(np.percentile(s, q))
    assert st["latency_stdev_ms"] == pytest.approx(np.std(s, ddof=1))


def test_stats_of_a_single_sample():
    st = latency_stats(np.array([2.5]))
    assert st["latency_stdev_ms"] == 0.0 and st["latency_cv"] == 0.0
    assert st["latency_p50_ci95_low_ms"] == st["latency_p50_ci95_high_ms"] == 2.5


def test_median_ci_agrees_with_an_independent_numpy_bootstrap():
    from bench.measure.latency import median_ci

    s = np.random.default_rng(0).lognormal(1.0, 0.3, size=301)
    low, high = median_ci(s)
    rng = np.random.default_rng(123)  # another generator, 20x the resamples
    medians = np.median(s[rng.integers(0, len(s), (20_000, len(s)))], axis=1)
    ref_low, ref_high = np.percentile(medians, [2.5, 97.5])
    width = ref_high - ref_low
    assert abs(low - ref_low) < 0.1 * width and abs(high - ref_high) < 0.1 * width


# ---------------------------------------------------------------- memory sampling

def _touch(n_mb: int) -> bytes:
    return b"\x01" * (n_mb << 20)  # written, so resident (a bare bytearray could stay zero pages)


def test_sampler_sees_a_transient_allocation_and_resets():
    import time

    from bench.measure.memory import SAMPLE_INTERVAL_S, PeakSampler

    assert SAMPLE_INTERVAL_S <= 0.010
    def wait_for_samples(sampler, n: int) -> None:
        # Wait on the sampler's own count, not on wall time: a loaded machine may delay its thread.
        target, deadline = sampler.samples + n, time.monotonic() + 30
        while sampler.samples < target and time.monotonic() < deadline:
            time.sleep(0.005)
        assert sampler.samples >= target, "the sampler thread stopped sampling"

    with PeakSampler() as sampler:
        wait_for_samples(sampler, 2)
        before = sampler.peaks()["rss"]
        blob = _touch(300)
        wait_for_samples(sampler, 3)
        del blob
        wait_for_samples(sampler, 3)
        peak = sampler.peaks()["rss"]
        sampler.reset()
        wait_for_samples(sampler, 3)
        after_reset = sampler.peaks()["rss"]
    assert peak - before >= 290 * 2**20  # seen while it lived
    assert peak - after_reset >= 250 * 2**20  # freed, and reset forgets it


def test_sampler_drops_a_failing_probe_and_keeps_going():
    import time

    from bench.measure.memory import PeakSampler

    calls = []

    def flaky():
        calls.append(1)
        raise RuntimeError("driver gone")

    with PeakSampler({"gpu": flaky, "const": lambda: 7}) as sampler:
        deadline = time.monotonic() + 30
        while sampler.samples < 3 and time.monotonic() < deadline:  # its own count, not wall time
            time.sleep(0.005)
    assert sampler.samples >= 3 and len(calls) == 1 and sampler.peaks()["const"] == 7 and "gpu" not in sampler.peaks()
    assert sampler.peaks()["rss"] > 0


# A worker child whose model load allocates alloc_mb for ~0.1 s, then frees it.
_ALLOCATING_WORKER = """
import sys, time
import bench.backends.runtime as runtimes
real = runtimes.load_runtime
def load(*args, **kwargs):
    blob = b"\\x01" * ({alloc_mb} << 20)
    time.sleep(0.5)  # 100 sampling intervals: the child's sampler sees it even on a busy machine
    del blob
    return real(*args, **kwargs)
runtimes.load_runtime = load
from bench.child.worker import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("alloc_mb", [0, 300])
def test_worker_child_memory_fields(tiny_onnx_artifact, tmp_path, monkeypatch, alloc_mb):
    import bench.launch.isolate as isolate

    monkeypatch.setattr(isolate, "worker_command", lambda spec, result: [
        sys.executable, "-c", _ALLOCATING_WORKER.format(alloc_mb=alloc_mb), str(spec), str(result)])
    sentences = ["a warm , funny film .", "dull .", "the plot goes nowhere and the jokes fall flat ."] * 10
    spec = {"variant": {"model": "student", "threads": 1, "format": "onnx", "device": "cpu", "precision": "fp32"},
            "artifact_dir": str(tiny_onnx_artifact), "task": SST2_TASK,
            "eval_sets": [{"name": "validation", "first": sentences, "second": None, "labels": [1, 0, 0] * 10}],
            "max_length": 32, "measure": {"ort_gpu_provider": "cuda", "warmup": 2, "min_iterations": 20,
                                          "min_seconds": 0, "eval_batch_size": 8,
                                          "offline": {"batch_sizes": [1, 4], "sort_by_length": True,
                                                      "min_seconds": 0}}}
    r = run_isolated(spec, tmp_path, "v", timeout_s=120)
    assert r.status == "ok", r.error
    grew = r.peak_rss_sampled_mb - r.rss_before_load_mb
    assert (grew >= alloc_mb - 10) if alloc_mb else (grew < 150)
    assert r.peak_rss_mb >= r.peak_rss_sampled_mb - 1  # VmHWM is exact; sampling can only miss
    assert r.ru_maxrss_mb >= r.peak_rss_mb - 1
    # The Offline passes run after the load: their own (reset) peaks no longer hold the allocation.
    assert [e.batch_size for e in r.offline] == [1, 4]
    # Each Offline pass reports its own peak (the sampler is reset before it): it holds the loaded
    # model, so it is above the RSS before load, and it cannot exceed the whole child's peak.
    assert all(r.rss_before_load_mb < e.peak_rss_sampled_mb <= r.peak_rss_sampled_mb + 1
               for e in r.offline)
    assert r.ort_session_options["intra_op_num_threads"] == 1
    assert r.ort_session_options["enable_cpu_mem_arena"] is True and r.ort_session_options["io_binding"] is False


@pytest.mark.parametrize("allocator", ["system", "glibc-retain"])
def test_the_child_runs_under_the_allocator_policy_and_the_row_says_so(tiny_onnx_artifact, tmp_path, monkeypatch,
                                                                       allocator):
    from bench.launch.environment import ALLOCATOR_ENV, MALLOC_VARS

    for var in MALLOC_VARS:
        monkeypatch.delenv(var, raising=False)
    spec = {"variant": {"model": "student", "threads": 1, "format": "onnx", "device": "cpu", "precision": "fp32"},
            "artifact_dir": str(tiny_onnx_artifact), "task": SST2_TASK,
            "eval_sets": [{"name": "validation", "first": ["a warm , funny film .", "dull ."] * 5, "second": None,
                           "labels": [1, 0] * 5}], "max_length": 32,
            "measure": {"ort_gpu_provider": "cuda", "warmup": 1, "min_iterations": 5, "min_seconds": 0,
                        "eval_batch_size": 4, "allocator": allocator}}
    r = run_isolated(spec, tmp_path, "v", timeout_s=120)
    assert r.status == "ok", r.error
    assert r.allocator == allocator
    # What the child process itself saw at start-up, not what the parent meant to give it.
    assert r.malloc_env == ALLOCATOR_ENV[allocator]
    if allocator == "glibc-retain":
        assert r.malloc_env["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)


# A worker child whose Offline pass (the last phase) allocates 300 MB for a moment.
_LATE_ALLOCATING_WORKER = """
import sys
import bench.scenarios.offline as offline
real = offline.measure_offline
def late(*args, **kwargs):
    blob = b"\\x01" * (300 << 20)
    del blob
    return real(*args, **kwargs)
offline.measure_offline = late
from bench.child.worker import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_spike_in_the_last_phase_counts_against_max_memory_mb(tiny_onnx_artifact, tmp_path, monkeypatch):
    import bench.launch.isolate as isolate

    monkeypatch.setattr(isolate, "worker_command", lambda spec, result: [
        sys.executable, "-c", _LATE_ALLOCATING_WORKER, str(spec), str(result)])
    spec = {"variant": {"model": "student", "threads": 1, "format": "onnx", "device": "cpu", "precision": "fp32"},
            "artifact_dir": str(tiny_onnx_artifact), "task": SST2_TASK,
            "eval_sets": [{"name": "validation", "first": ["a warm , funny film .", "dull ."] * 5, "second": None,
                           "labels": [1, 0] * 5}], "max_length": 32,
            "measure": {"ort_gpu_provider": "cuda", "warmup": 1, "min_iterations": 5, "min_seconds": 0,
                        "eval_batch_size": 4, "offline": {"batch_sizes": [2], "sort_by_length": True,
                                                          "min_seconds": 0}}}
    r = run_isolated(spec, tmp_path / "free", "v", timeout_s=120)
    assert r.status == "ok", r.error
    assert r.peak_rss_mb - r.rss_before_load_mb < 200  # read before the Offline pass
    assert r.peak_rss_all_phases_mb - r.rss_before_load_mb >= 290
    budget = (r.peak_rss_mb + r.peak_rss_all_phases_mb) / 2
    limited = run_isolated(spec, tmp_path / "limited", "v", timeout_s=120, max_memory_mb=budget)
    assert limited.status == "memory-limit" and f"max_memory_mb={budget:g}" in limited.error


# ---------------------------------------------------------------- Offline scenario

class _RecordingRuntime:
    """Counts what each timed call received; sleeps per call so repeated passes take measurable time."""

    def __init__(self):
        self.calls = []

    def prepare(self, encoding):
        return encoding

    def run(self, native):
        self.calls.append(native)
        import time

        time.sleep(0.0005)


def test_offline_covers_the_dev_set_with_dynamic_padding(tiny_onnx_artifact):
    from bench.backends.tokenizer import FastTokenizer
    from bench.scenarios.offline import measure_offline

    tok = FastTokenizer(tiny_onnx_artifact)
    sentences = [" ".join(["good"] * n) for n in (9, 1, 5, 2, 8, 3, 7)]  # n words -> n + 2 tokens
    real = sum(n + 2 for n in (9, 1, 5, 2, 8, 3, 7))
    out = {}
    for sort in (False, True):
        rt = _RecordingRuntime()
        [e] = measure_offline(rt, tok, sentences, 64, {"batch_sizes": [3], "sort_by_length": sort,
                                                     "min_seconds": 0}, None)
        timed = rt.calls[1:]  # the first call is the untimed warm-up
        assert e["scenario"] == "Offline" and e["passes"] == 1 and e["batches"] == len(timed) == 3
        assert sum(b["input_ids"].shape[0] for b in timed) == len(sentences) == e["samples"]
        assert int(sum(b["attention_mask"].sum() for b in timed)) == real
        for b in timed:  # padded to the longest sentence of its own batch, not to max_length
            assert b["input_ids"].shape[1] == b["attention_mask"].sum(1).max()
        padded = sum(b["input_ids"].size for b in timed)
        assert e["padding_pct"] == pytest.approx(100 * (padded - real) / padded, abs=0.01)
        assert e["samples_per_s"] == pytest.approx(e["samples"] / e["wall_s"], rel=1e-2)
        assert e["tokens_per_s"] / e["padded_tokens_per_s"] == pytest.approx(real / padded, rel=1e-2)
        out[sort] = e
    assert out[True]["padding_pct"] < out[False]["padding_pct"]  # sorted batches pad less


def test_offline_repeats_whole_passes_until_min_seconds(tiny_onnx_artifact):
    from bench.backends.tokenizer import FastTokenizer
    from bench.scenarios.offline import measure_offline

    rt = _RecordingRuntime()
    [e] = measure_offline(rt, FastTokenizer(tiny_onnx_artifact), ["good film"] * 4, 32,
                          {"batch_sizes": [2], "sort_by_length": False, "min_seconds": 0.02})
    assert e["passes"] >= 2 and e["wall_s"] >= 0.02
    assert len(rt.calls) == 1 + 2 * e["passes"]  # whole passes only
    assert e["samples_per_s"] == pytest.approx(4 * e["passes"] / e["wall_s"], rel=1e-2)


def test_offline_config_is_strict(tiny_suite):
    from bench.common.errors import BenchError
    from bench.spec.suite import load_suite

    suite = tiny_suite()
    text = suite.read_text()
    suite.write_text(text.replace("parity_samples: 16}", "parity_samples: 16, offline: {batch_sizes: [1, 8]}}"))
    offline = load_suite(suite).measure.offline
    assert offline.batch_sizes == [1, 8] and offline.sort_by_length is True and offline.min_seconds == 0
    assert load_suite(suite).measure.model_dump()["offline"]["batch_sizes"] == [1, 8]
    suite.write_text(text.replace("parity_samples: 16}", "parity_samples: 16, offline: {batch_size: [1]}}"))
    with pytest.raises(BenchError, match=r"measure\.offline\.batch_size: unknown key"):
        load_suite(suite)
    suite.write_text(text)
    assert load_suite(suite).measure.offline is None  # off unless asked for


# ---------------------------------------------------------------- ONNX Runtime session

def test_ort_runtime_records_session_options_and_binds_when_asked(tiny_onnx_artifact):
    from bench.backends.runtime import load_runtime, predict
    from bench.backends.tokenizer import FastTokenizer

    rt = load_runtime("onnx", tiny_onnx_artifact, "cpu", 2)
    opts = rt.session_options
    assert (opts["intra_op_num_threads"], opts["inter_op_num_threads"], opts["execution_mode"]) == (2, 1, "ORT_SEQUENTIAL")
    assert opts["graph_optimization_level"] == "ORT_ENABLE_ALL" and opts["io_binding"] is False
    assert {"enable_cpu_mem_arena", "enable_mem_pattern", "enable_mem_reuse"} <= opts.keys()
    enc = FastTokenizer(tiny_onnx_artifact)(["a warm , funny film .", "dull ."], padding=True)
    native = rt.prepare(enc)
    assert isinstance(native, dict) and all(isinstance(v, np.ndarray) for v in native.values())  # CPU: plain arrays
    expected = predict(rt, enc)
    # The CUDA path's IO binding, exercised on the CPU device: same logits, output left as an OrtValue.
    rt._bind_device = "cpu"
    bound = rt.prepare(enc)
    out = rt.run(bound)
    assert not isinstance(out, np.ndarray)
    np.testing.assert_array_equal(rt.logits(out), expected)
    np.testing.assert_array_equal(rt.logits(rt.run(bound)), expected)  # a binding is reusable across calls


# ---------------------------------------------------------------- GPU memory (fakes: no GPU here)

def test_nvml_probes_with_a_fake_driver(monkeypatch):
    import os
    import types

    from bench.measure.memory import PeakSampler, nvml_probes, peak_fields

    used = {"GPU-abc": 5 << 30}
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: f"index-{i}",
        nvmlDeviceGetHandleByUUID=lambda uuid: uuid,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=used.get(h, 1 << 30)),
        nvmlDeviceGetComputeRunningProcesses=lambda h: [types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=300 << 20),
                                                        types.SimpleNamespace(pid=1, usedGpuMemory=7 << 30)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc,GPU-def")  # NVML ignores it; bench maps it
    probes = nvml_probes()  # the baseline: 5 GiB already used before the variant loads
    used["GPU-abc"] = 6 << 30
    assert probes["gpu_nvml_used"]() == 1 << 30 and probes["gpu_nvml_process"]() == 300 << 20  # own pid only
    with PeakSampler(probes) as sampler:
        pass
    fields = peak_fields(sampler.peaks())
    assert fields["gpu_nvml_used_peak_mb"] == 1024 and fields["gpu_nvml_process_peak_mb"] == 300
    used["GPU-abc"] = 4 << 30  # another process freed memory: not a negative peak
    assert probes["gpu_nvml_used"]() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    probes = nvml_probes()
    used["index-2"] = 3 << 30
    assert probes["gpu_nvml_used"]() == 2 << 30  # handle by index 2 (baseline 1 GiB)
    assert peak_fields({"gpu_nvml_process": 0}) == {}  # never listed: no field rather than 0
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert nvml_probes() == {}


def test_torch_cuda_peaks_only_when_cuda_was_used(monkeypatch):
    import types

    from bench.measure.memory import torch_cuda_peaks

    cuda = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True,
                                 max_memory_allocated=lambda: 3 << 20, max_memory_reserved=lambda: 4 << 20)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert torch_cuda_peaks() == {"gpu_max_memory_allocated_mb": 3.0, "gpu_max_memory_reserved_mb": 4.0}
    cuda.is_initialized = lambda: False  # torch imported, CUDA never touched
    assert torch_cuda_peaks() == {}
    monkeypatch.delitem(sys.modules, "torch")  # an ONNX Runtime child: torch is never imported for this
    assert torch_cuda_peaks() == {} and "torch" not in sys.modules
