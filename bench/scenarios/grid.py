"""`measure.grid`: latency per (batch, sequence length) cell, in the measuring child."""

from __future__ import annotations

import numpy as np

from bench.scenarios.base import Loaded


class Grid:
    name = "grid"

    def wanted(self, measure) -> bool:
        return measure.grid is not None

    def run(self, loaded: Loaded) -> dict:
        return {"latency_grid": measure_grid(loaded.runtime, loaded.tokenizer, loaded.texts,
                                             loaded.spec.measure.grid.model_dump())}


def measure_grid(runtime, tokenizer, texts, grid: dict) -> list[dict]:
    """p50/p90 per (batch, sequence length) cell on real examples (Texts, or a list of sentences) cut or
    padded to that length."""
    import itertools

    from bench.measure.latency import time_calls
    from bench.tasks.table import as_texts

    texts = as_texts(texts)
    cells = []
    for batch, seq_len in itertools.product(grid["batch_sizes"], grid["seq_lens"]):
        cell = texts.take([i % len(texts) for i in range(batch)])
        native = runtime.prepare(cell.encode(tokenizer, truncation=True, max_length=seq_len, padding="max_length"))
        # One warm-up call: the cell's shape is fixed, so its first call (allocations for the new shape) is
        # the cold one. On sst2-cpu the b32 x 128 cells are half the grid's time: each call counts.
        samples = time_calls(runtime.run, [native], warmup=1, min_iterations=grid["min_iterations"],
                             min_seconds=grid["min_seconds"])
        p50, p90 = np.percentile(samples, [50, 90])
        cells.append({"batch": batch, "seq_len": seq_len, "p50_ms": round(float(p50), 4),
                      "p90_ms": round(float(p90), 4), "n": int(len(samples)),
                      "samples_per_s": round(batch / (p50 / 1e3), 2),
                      "tokens_per_s": round(batch * seq_len / (p50 / 1e3), 1)})
    return cells
