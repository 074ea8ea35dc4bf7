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
        meter = loaded.energy
        if meter is not None and meter.unavailable is None:
            meter.start()
        loaded.samples = samples = time_calls(loaded.timed, loaded.stream, m.warmup, m.min_iterations,
                                              m.min_seconds)
        # Energy over the warm-up and the timed calls alike: every one of them is an inference.
        energy = {} if meter is None else meter.fields(meter.stop() if meter.unavailable is None else None,
                                                        m.warmup + len(samples))
        return {**latency_stats(samples), "latency_raw_ms": np.round(samples, 4).tolist(), **energy,
                # A planted slowdown is part of what was measured: the row says so, and compare notes it.
                "latency_input": f"dev-stream-bs1+planted-{planted_ms:g}ms" if planted_ms else "dev-stream-bs1",
                "tokenization_timed": False,
                "mean_tokens": round(float(np.mean([e["input_ids"].shape[1] for e in loaded.encodings])), 2),
                "scenario": "SingleStream"}
