"""Child-process entry point: `python -m bench.measure.worker SPEC.json RESULT.json`.

Loads one variant's artifact through its runtime, measures accuracy on the whole eval split, then
batch-1 latency over the real dev sentences, and writes a plain dict of metrics.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from bench.artifacts import write_json_atomic


def _mb(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 2)


def peak_rss_bytes() -> int:
    """This process's own RSS high-water mark. Linux's VmHWM belongs to the address space, which
    execve replaces; ru_maxrss would also carry the parent's peak across fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(spec: dict) -> dict:
    from bench.measure.accuracy import classification_metrics, predict_labels
    from bench.measure.flops import flops_for_config
    from bench.measure.latency import latency_stats, time_calls
    from bench.runtimes import load_runtime
    from bench.runtimes.tokenizer import FastTokenizer

    variant, m = spec["variant"], spec["measure"]
    path = Path(spec["artifact_dir"])
    sentences, labels, max_length = spec["sentences"], spec["labels"], spec["max_length"]
    rss_before = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    runtime = load_runtime(variant["format"], path, variant["device"], variant["threads"], variant["precision"],
                           m["ort_gpu_provider"])
    load_time = time.perf_counter() - t0
    tokenizer = FastTokenizer(path)
    row = {"load_time_s": round(load_time, 4), "params": runtime.params}
    if getattr(runtime, "size_bytes", None):
        row["size_bytes"] = runtime.size_bytes  # a conversion done at load (PyTorch int8)

    # Real dev stream at batch 1: each sentence tokenised (unpadded) and converted before timing.
    encodings = [tokenizer([s], truncation=True, max_length=max_length) for s in sentences]
    stream = [runtime.prepare(e) for e in encodings]
    t0 = time.perf_counter()
    runtime.run(stream[0])  # the first call after load: cold caches, lazy initialisation
    row["first_call_ms"] = round((time.perf_counter() - t0) * 1e3, 3)

    preds = predict_labels(runtime, tokenizer, sentences, max_length, m["eval_batch_size"])
    samples = time_calls(runtime.run, stream, m["warmup"], m["min_iterations"], m["min_seconds"])
    row["rss_before_load_mb"] = _mb(rss_before)
    row["peak_rss_mb"] = _mb(peak_rss_bytes())  # batch-1 deployment memory: read before the grid and imports
    if m.get("grid"):
        row["latency_grid"] = measure_grid(runtime, tokenizer, sentences, m["grid"])
    row |= classification_metrics(labels, preds)
    row |= latency_stats(samples)
    row["latency_raw_ms"] = np.round(samples, 4).tolist()
    row["latency_input"] = "dev-stream-bs1"
    row["tokenization_timed"] = False
    row["mean_tokens"] = round(float(np.mean([e["input_ids"].shape[1] for e in encodings])), 2)
    flops = flops_for_config(path)
    if flops is not None:
        # The loop called stream[i % len(stream)] in order, so call i had that sentence's length.
        lengths = [e["input_ids"].shape[1] for e in encodings]
        total = sum(flops(lengths[i % len(lengths)]) for i in range(len(samples)))
        row["gflops_per_s"] = round(total / (float(np.sum(samples)) / 1e3) / 1e9, 3)
        for cell in row.get("latency_grid", []):
            cell["gflops_per_s"] = round(flops(cell["seq_len"], cell["batch"]) / (cell["p50_ms"] / 1e3) / 1e9, 3)
    row["providers"] = getattr(runtime, "providers", None)
    row["onnx_opset"] = getattr(runtime, "opset", None)
    row["onnx_op_domains"] = getattr(runtime, "op_domains", None)
    row["scenario"] = "SingleStream"  # MLPerf terms: one query at a time over the dev stream
    # Which cores the child may run on: with fewer cores than threads, numbers are not comparable.
    row["cpu_affinity"] = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    row["interop_threads"] = 1
    row["status"] = "ok"
    return row


def measure_grid(runtime, tokenizer, sentences: list[str], grid: dict) -> list[dict]:
    """p50/p90 per (batch, sequence length) cell on real sentences cut or padded to that length."""
    import itertools

    from bench.measure.latency import time_calls

    cells = []
    for batch, seq_len in itertools.product(grid["batch_sizes"], grid["seq_lens"]):
        texts = [sentences[i % len(sentences)] for i in range(batch)]
        native = runtime.prepare(tokenizer(texts, truncation=True, max_length=seq_len, padding="max_length"))
        samples = time_calls(runtime.run, [native], warmup=2, min_iterations=grid["min_iterations"],
                             min_seconds=grid["min_seconds"])
        p50, p90 = np.percentile(samples, [50, 90])
        cells.append({"batch": batch, "seq_len": seq_len, "p50_ms": round(float(p50), 4),
                      "p90_ms": round(float(p90), 4), "n": int(len(samples)),
                      "samples_per_s": round(batch / (p50 / 1e3), 2),
                      "tokens_per_s": round(batch * seq_len / (p50 / 1e3), 1)})
    return cells


def _die_with_parent() -> None:
    """If `bench run` is killed (even with SIGKILL), its measuring child must not live on."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            sys.exit(1)


def main(argv: list[str]) -> int:
    _die_with_parent()
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    write_json_atomic(result_path, measure(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
