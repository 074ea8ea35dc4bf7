"""End to end at batch 1 (`measure.end_to_end`), in the measuring child: text in, label out.

Each call tokenises one real dev example with the fast tokenizer bench deploys (bench/backends/tokenizer.py;
a pair is one sequence), converts it to the runtime's inputs, runs the model, and turns the logits into an
answer (softmax and argmax; a regression head's value as it is). The whole call is timed, and the
tokenizer's part on its own: once INT8 has made the model fast, the tokenizer's share of what a user
waits for grows, and the model-only p50 does not show it.
"""

from __future__ import annotations

import time

import numpy as np

from bench.scenarios.base import Loaded


def answer(logits: np.ndarray) -> tuple[int | float, float]:
    """(label, its probability) for a classification head; (value, 1.0) for a regression head."""
    row = np.asarray(logits, dtype=np.float64)[0]
    if row.shape[-1] == 1:
        return float(row[0]), 1.0
    p = np.exp(row - row.max())
    p /= p.sum()
    label = int(p.argmax())
    return label, float(p[label])


class EndToEnd:
    name = "end_to_end"

    def wanted(self, measure) -> bool:
        return measure.end_to_end is not None

    def run(self, loaded: Loaded) -> dict:
        cfg, runtime, tokenizer = loaded.spec.measure.end_to_end, loaded.runtime, loaded.tokenizer
        max_length = loaded.spec.max_length
        examples = [loaded.texts.take([i]) for i in range(len(loaded.texts))]  # not timed: the input as given
        clock = time.perf_counter_ns

        def call(example) -> tuple[int, int]:
            t0 = clock()
            encoding = example.encode(tokenizer, truncation=True, max_length=max_length)
            t1 = clock()
            answer(runtime.logits(runtime.run(runtime.prepare(encoding))))
            return t1 - t0, clock() - t0

        for i in range(cfg.warmup):
            call(examples[i % len(examples)])
        tokenize, total, started, i = [], [], time.perf_counter(), 0
        while i < cfg.min_iterations or time.perf_counter() - started < cfg.min_seconds:
            t, w = call(examples[i % len(examples)])
            tokenize.append(t)
            total.append(w)
            i += 1
        tok_ms, e2e_ms = np.asarray(tokenize) / 1e6, np.asarray(total) / 1e6
        p50, p95 = np.percentile(e2e_ms, [50, 95])
        return {"e2e_p50_ms": round(float(p50), 4), "e2e_p95_ms": round(float(p95), 4),
                "e2e_tokenize_p50_ms": round(float(np.median(tok_ms)), 4),
                "e2e_tokenizer_share_pct": round(100 * float(tok_ms.sum() / e2e_ms.sum()), 2),
                "e2e_calls": len(total)}
