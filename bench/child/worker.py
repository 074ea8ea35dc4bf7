"""Child-process entry point: `python -m bench.child.worker SPEC.json RESULT.json`.

Loads one variant's artifact through its runtime, predicts every eval split (the primary first; the
parent scores the predictions), then batch-1 latency over the primary split's real examples (SingleStream; a
pair task's two sentences are one sequence), optionally the batch x length grid and the Offline
scenario. The spec is a `ChildSpec` and the result a `ChildReport` (bench/schema/child.py: the measurements
and the predictions, which the parent scores), both validated here as well as in the parent. A background
thread samples the child's memory throughout (bench/measure/memory.py). Test only: BENCH_TEST_SLOWDOWN_MS
plants a known slowdown in the timed calls (`planted_slowdown_ms`), and the row's `latency_input` says so.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from bench import backends
from bench.common.lifetime import die_with_parent
from bench.measure.stream import load_stream
from bench.schema.child import ChildReport, ChildSpec


def memory_fields(sampler, rss_before: int, fmt: str) -> dict:
    """The child's memory so far: RSS before load, VmHWM, the sampled peak, ru_maxrss, GPU peaks."""
    from bench.measure.memory import mb, peak_fields, ru_maxrss_bytes, torch_cuda_peaks, vmhwm_bytes

    fields = {"rss_before_load_mb": mb(rss_before), "peak_rss_mb": mb(vmhwm_bytes()),
              **peak_fields(sampler.peaks()), "ru_maxrss_mb": mb(ru_maxrss_bytes())}
    if backends.get(fmt).torch_cuda_memory:
        fields |= torch_cuda_peaks()  # {} on CPU
    return fields


def measure(spec: ChildSpec, loaded: dict | None = None) -> dict:
    """The row's measured fields. `loaded`, when given, receives the timed call and the stream
    (`run`, `stream`) for the speedup rounds this process serves afterwards."""
    from bench.measure.memory import PeakSampler, nvml_probes

    rss_before = psutil.Process().memory_info().rss
    # RSS (and, on cuda, GPU memory through NVML) sampled from before the load to the end.
    sampler = PeakSampler(nvml_probes() if spec.variant.device == "cuda" else None).start()
    try:
        row = _measure(spec, sampler, rss_before, loaded)
    finally:
        sampler.stop()
    from bench.measure.memory import mb, vmhwm_bytes

    # peak_rss_mb is read after the SingleStream loop; the grid and Offline passes come later and
    # can go higher. The parent checks max_memory_mb against this one.
    row["peak_rss_all_phases_mb"] = mb(vmhwm_bytes())
    return row


def _measure(spec: ChildSpec, sampler, rss_before: int, loaded: dict | None) -> dict:
    from bench.backends.runtime import predict_logits
    from bench.launch.environment import malloc_env
    from bench.measure.energy import EnergyMeter
    from bench.measure.flops import flops_for_config
    from bench.scenarios.base import Loaded
    from bench.scenarios.end_to_end import EndToEnd
    from bench.scenarios.grid import Grid
    from bench.scenarios.offline import Offline
    from bench.scenarios.single_stream import SingleStream
    from bench.tasks.table import predictions

    m, path = spec.measure, Path(spec.artifact_dir)
    task, splits, max_length = spec.task_def(), spec.splits(), spec.max_length
    texts = splits[0].texts  # the primary eval split: the latency stream, the grid and Offline
    phases, started = {}, time.perf_counter()

    def lap(name: str) -> None:  # the wall seconds since the previous phase ended
        phases[name] = time.perf_counter() - started - sum(phases.values())

    runtime, tokenizer, encodings, stream, load_time = load_stream(spec)
    row = {"load_time_s": round(load_time, 4), "params": runtime.params}
    lap("load")
    if getattr(runtime, "size_bytes", None):
        row["size_bytes"] = runtime.size_bytes  # a conversion done at load (PyTorch int8)
    t0 = time.perf_counter()
    runtime.run(stream[0])  # the first call after load: cold caches, lazy initialisation
    row["first_call_ms"] = round((time.perf_counter() - t0) * 1e3, 3)

    def predicted(batch_size: int) -> list[np.ndarray]:
        return [predictions(task, predict_logits(runtime, tokenizer, s.texts, max_length, batch_size))
                for s in splits]

    batched = predicted(m.eval_batch_size)
    # Accuracy as deployed: where the numerics depend on the batch (dynamic INT8), the judged predictions
    # are SingleStream's own batch 1; the batched ones stay beside them (the Offline view).
    deployed_batch = 1 if backends.get(spec.variant.format).batch_dependent(spec.variant.precision) \
        else m.eval_batch_size
    deployed = predicted(1) if deployed_batch == 1 and m.eval_batch_size != 1 else batched
    lap("accuracy")
    row["score_batch_size"] = deployed_batch
    if deployed is not batched:
        row["batched_predictions"] = batched[0].tolist()
        row["batched_batch_size"] = m.eval_batch_size
    if spec.predictions_path:
        import json

        Path(spec.predictions_path).write_text(json.dumps(deployed[0].tolist()))
    prepared = Loaded(spec, runtime, tokenizer, texts, encodings, stream, sampler,
                      energy=EnergyMeter.for_device(spec.variant.device))
    single = SingleStream()
    row |= single.run(prepared)
    lap(single.name)
    samples = prepared.samples
    if loaded is not None:
        loaded.update(run=prepared.timed, stream=stream)
    # Batch-1 deployment memory (load, accuracy pass, SingleStream loop): read before the grid and
    # the Offline passes.
    row |= memory_fields(sampler, rss_before, spec.variant.format)
    for scenario in (EndToEnd(), Grid(), Offline()):
        if scenario.wanted(m):
            row |= scenario.run(prepared)
            lap(scenario.name)
    if m.op_profile:  # a profiled session of its own, after every timed loop
        from bench.child.op_profile import profile_spec

        row |= profile_spec(spec, runtime, tokenizer, stream)
        lap("op_profile")
    row["eval_predictions"] = [p.tolist() for p in deployed]  # the parent scores them (ChildReport)
    flops = flops_for_config(path)
    if flops is not None:
        # The loop called stream[i % len(stream)] in order, so call i had that example's length.
        lengths = [e["input_ids"].shape[1] for e in encodings]
        total = sum(flops(lengths[i % len(lengths)]) for i in range(len(samples)))
        row["gflops_per_s"] = round(total / (float(np.sum(samples)) / 1e3) / 1e9, 3)
        for cell in row.get("latency_grid", []):
            cell["gflops_per_s"] = round(flops(cell["seq_len"], cell["batch"]) / (cell["p50_ms"] / 1e3) / 1e9, 3)
    row["providers"] = getattr(runtime, "providers", None)
    row["onnx_opset"] = getattr(runtime, "opset", None)
    row["onnx_op_domains"] = getattr(runtime, "op_domains", None)
    if getattr(runtime, "session_options", None):
        row["ort_session_options"] = runtime.session_options
    if getattr(runtime, "inference_precision", None):
        row["inference_precision"] = runtime.inference_precision  # OpenVINO: what the compiled model runs at
        row["openvino_config"] = runtime.compile_config
    # Which cores the child may run on: with fewer cores than threads, numbers are not comparable.
    row["cpu_affinity"] = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    row["interop_threads"] = 1
    row["allocator"] = m.allocator
    row["malloc_env"] = malloc_env()
    row["measure_phase_s"] = {k: round(v, 2) for k, v in phases.items()}
    row["status"] = "ok"
    return row


def main(argv: list[str]) -> int:
    """SPEC RESULT [--serve-rounds [CPUS]]: with --serve-rounds, once the result is written this process
    answers the speedup rounds of bench/child/round_worker.py on its stdout (pinned to CPUS, as the
    reference side is) with the variant it already has loaded, until the parent says quit."""
    die_with_parent()
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    serve = len(argv) > 2 and argv[2] == "--serve-rounds"
    if serve:
        from bench.child.round_worker import protocol_stream

        replies = protocol_stream()
    spec = ChildSpec.model_validate_json(spec_path.read_bytes())
    loaded: dict = {}
    # The child's end of the boundary: a field the schema does not declare, or one it requires and
    # the measurement did not produce, fails here with its name, before anything is written.
    result = ChildReport.model_validate(measure(spec, loaded))
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(result.model_dump_json(exclude_unset=True))
    tmp.replace(result_path)
    if serve:
        from bench.child.round_worker import pin_all_threads, serve_loaded

        if len(argv) > 3:
            pin_all_threads({int(c) for c in argv[3].split(",")})
        serve_loaded(spec, loaded["run"], loaded["stream"], sys.stdin, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
