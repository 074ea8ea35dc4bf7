"""What the measuring processes time: a variant's runtime and the real dev stream at batch 1, prepared
before any timing, and the test-only planted slowdown (BENCH_TEST_SLOWDOWN_MS)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.schema.child import ChildSpec

SLOWDOWN_ENV = "BENCH_TEST_SLOWDOWN_MS"


def load_stream(spec: ChildSpec):
    """The variant's runtime and the real dev stream at batch 1 (the primary eval split): each example
    tokenised (unpadded) and converted to the runtime's inputs before any timing. Returns (runtime,
    tokenizer, encodings, stream, load seconds)."""
    from bench.backends.runtime import load_runtime
    from bench.backends.tokenizer import FastTokenizer

    variant, path = spec.variant, Path(spec.artifact_dir)
    t0 = time.perf_counter()
    runtime = load_runtime(variant.format, path, variant.device, variant.threads, variant.precision,
                           spec.measure.ort_gpu_provider)
    load_time = time.perf_counter() - t0
    tokenizer = FastTokenizer(path)
    texts = spec.eval_sets[0].split().texts
    encodings = [texts.take([i]).encode(tokenizer, truncation=True, max_length=spec.max_length)
                 for i in range(len(texts))]
    return runtime, tokenizer, encodings, [runtime.prepare(e) for e in encodings], load_time


def planted_slowdown_ms() -> float:
    """TEST ONLY (scripts/gate_noise.py, tests/test_gate.py): `BENCH_TEST_SLOWDOWN_MS=X` adds a busy-wait
    of X ms to every timed SingleStream call, a known regression to prove the compare gate catches.
    Rows measured with it say so in `latency_input` (`dev-stream-bs1+planted-Xms`)."""
    text = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{SLOWDOWN_ENV}={text!r}: expected a number of milliseconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{SLOWDOWN_ENV}={text!r}: expected a finite number of milliseconds >= 0")
    return value


def slowed(run, ms: float):
    """`run` followed by a busy-wait of `ms` (spinning, not sleeping: sleep overshoots by tens of µs)."""
    wait_ns, clock = int(ms * 1e6), time.perf_counter_ns

    def slowed(x):
        out = run(x)
        until = clock() + wait_ns
        while clock() < until:
            pass
        return out

    return slowed
