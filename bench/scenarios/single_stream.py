"""SingleStream (MLPerf terms): one query at a time over the real dev stream at batch 1, in the
measuring child. The latency every row has; always run."""

from __future__ import annotations

import numpy as np

from bench.measure.latency import latency_stats, time_calls
from bench.measure.stream import planted_slowdown_ms, slowed
from bench.scenarios.base import Loaded


class SingleStream:
    name = "singlestream"

    def wanted(self, measure) -> bool:
        return True

    def run(self, loaded: Loaded) -> dict:
        m = loaded.spec.measure
        planted_ms = planted_slowdown_ms()
        loaded.timed = slowed(loaded.runtime.run, planted_ms) if planted_ms else loaded.runtime.run
        loaded.samples = samples = time_calls(loaded.timed, loaded.stream, m.warmup, m.min_iterations,
                                              m.min_seconds)
        return {**latency_stats(samples), "latency_raw_ms": np.round(samples, 4).tolist(),
                # A planted slowdown is part of what was measured: the row says so, and compare notes it.
                "latency_input": f"dev-stream-bs1+planted-{planted_ms:g}ms" if planted_ms else "dev-stream-bs1",
                "tokenization_timed": False,
                "mean_tokens": round(float(np.mean([e["input_ids"].shape[1] for e in loaded.encodings])), 2),
                "scenario": "SingleStream"}
