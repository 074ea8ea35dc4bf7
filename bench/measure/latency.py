"""Latency: warm up, then loop until both a minimum iteration count and a minimum duration are met.

Every per-call time is kept (raw values go into the results row); statistics are computed from
them with numpy. Only `run` is inside the timed region: tokenisation and the conversion to native
inputs happen before the loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def time_calls(run: Callable, inputs: Sequence, warmup: int, min_iterations: int, min_seconds: float,
               max_iterations: int = 1_000_000) -> np.ndarray:
    """Call run(inputs[i % len(inputs)]) repeatedly; return per-call wall times in milliseconds."""
    for i in range(warmup):
        run(inputs[i % len(inputs)])
    times_ns: list[int] = []
    clock = time.perf_counter_ns
    started = clock()
    deadline = started + int(min_seconds * 1e9)
    i = 0
    while i < max_iterations and (i < min_iterations or clock() < deadline):
        x = inputs[i % len(inputs)]
        t0 = clock()
        run(x)
        times_ns.append(clock() - t0)
        i += 1
    return np.asarray(times_ns, dtype=np.float64) / 1e6


def median_ci(samples_ms: np.ndarray, confidence: float = 0.95, resamples: int = 1000) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median (scipy), seeded so reruns agree."""
    from scipy.stats import bootstrap

    s = np.asarray(samples_ms, dtype=np.float64)
    if len(s) < 2:
        return float(s[0]), float(s[0])
    ci = bootstrap((s,), np.median, n_resamples=resamples, confidence_level=confidence, method="percentile",
                   random_state=0, vectorized=True).confidence_interval
    return float(ci.low), float(ci.high)


def latency_stats(samples_ms: np.ndarray, prefix: str = "latency") -> dict:
    s = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p95, p99 = np.percentile(s, [50, 90, 95, 99])
    mean = float(s.mean())
    stdev = float(s.std(ddof=1)) if len(s) > 1 else 0.0
    return {
        f"{prefix}_p50_ms": float(p50),
        f"{prefix}_p90_ms": float(p90),
        f"{prefix}_p95_ms": float(p95),
        f"{prefix}_p99_ms": float(p99),
        f"{prefix}_mean_ms": mean,
        f"{prefix}_stdev_ms": stdev,
        f"{prefix}_cv": stdev / mean if mean > 0 else 0.0,
        f"{prefix}_min_ms": float(s.min()),
        f"{prefix}_max_ms": float(s.max()),
        f"{prefix}_n": int(len(s)),
        **dict(zip((f"{prefix}_p50_ci95_low_ms", f"{prefix}_p50_ci95_high_ms"), median_ci(s), strict=True)),
    }
