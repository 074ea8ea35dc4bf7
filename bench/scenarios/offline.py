"""Offline scenario (MLPerf terms): the whole primary eval split as fast as possible, at each batch size.

Batches are tokenised with dynamic padding (to the longest example of each batch; a pair is one
sequence) and converted to native inputs before the clock starts; only the runtime calls are timed.
With sort_by_length, examples are ordered by token count first, so batches hold similar lengths and
pad less. Throughput is reported over real (unpadded) tokens and over the padded tokens actually computed.
"""

from __future__ import annotations

import time

import numpy as np

from bench.measure.energy import EnergyMeter
from bench.measure.memory import PeakSampler, peak_fields
from bench.scenarios.base import Loaded
from bench.tasks.table import Texts, as_texts


class Offline:
    name = "offline"

    def wanted(self, measure) -> bool:
        return measure.offline is not None

    def run(self, loaded: Loaded) -> dict:
        return {"offline": measure_offline(loaded.runtime, loaded.tokenizer, loaded.texts, loaded.spec.max_length,
                                           loaded.spec.measure.offline.model_dump(), loaded.sampler, loaded.energy)}


def offline_batches(tokenizer, texts: Texts | list[str], max_length: int, batch_size: int,
                    sort_by_length: bool) -> list[dict[str, np.ndarray]]:
    texts = as_texts(texts)
    if sort_by_length:
        lengths = texts.encode(tokenizer, truncation=True, max_length=max_length, padding=True)["attention_mask"].sum(1)
        order = np.argsort(lengths, kind="stable")
    else:
        order = np.arange(len(texts))
    return [texts.take(order[s : s + batch_size]).encode(tokenizer, truncation=True, max_length=max_length,
                                                         padding=True) for s in range(0, len(order), batch_size)]


def measure_offline(runtime, tokenizer, texts: Texts | list[str], max_length: int, config: dict,
                    sampler: PeakSampler | None = None, energy: EnergyMeter | None = None) -> list[dict]:
    """One entry per batch size; passes over the whole set repeat until config["min_seconds"]. With readable
    energy counters, each entry has the energy per sample over its timed passes."""
    texts = as_texts(texts)
    # A runtime with a throughput mode of its own (OpenVINO's THROUGHPUT hint: streams, requests in flight)
    # runs Offline in it; the others call run() on one batch after another.
    throughput = runtime.for_throughput() if hasattr(runtime, "for_throughput") else None
    try:
        return _passes(runtime, throughput, tokenizer, texts, max_length, config, sampler, energy)
    finally:
        if throughput is not None:
            throughput.close()  # its compilation and stream threads: not kept for the passes that follow


def _passes(runtime, throughput, tokenizer, texts: Texts, max_length: int, config: dict,
            sampler: PeakSampler | None, energy: EnergyMeter | None) -> list[dict]:
    metered = energy is not None and energy.unavailable is None
    results = []
    run_all = throughput.run_all if throughput is not None else (lambda xs: [runtime.run(x) for x in xs])
    for batch_size in config["batch_sizes"]:
        batches = offline_batches(tokenizer, texts, max_length, batch_size, config["sort_by_length"])
        real = int(sum(b["attention_mask"].sum() for b in batches))
        padded = int(sum(b["input_ids"].size for b in batches))
        native = [runtime.prepare(b) for b in batches]
        run_all(native[-1:])  # one untimed call: the first call at a new shape pays lazy set-up
        if sampler is not None:
            sampler.reset()  # this pass's own memory peak
        passes, clock = 0, time.perf_counter
        if metered:
            energy.start()
        started = clock()
        while True:
            run_all(native)
            passes += 1
            wall = clock() - started
            if wall >= config["min_seconds"]:
                break
        joules = energy.stop() if metered else None
        entry = {"scenario": "Offline", "batch_size": batch_size, "sort_by_length": config["sort_by_length"],
                 "samples": len(texts), "batches": len(batches), "passes": passes, "wall_s": round(wall, 6),
                 "samples_per_s": round(passes * len(texts) / wall, 2),
                 "tokens_per_s": round(passes * real / wall, 1),
                 "padded_tokens_per_s": round(passes * padded / wall, 1),
                 "padding_pct": round(100 * (padded - real) / padded, 2)}
        if sampler is not None:
            entry |= peak_fields(sampler.peaks())
        if joules is not None:
            entry["energy_mj_per_sample"] = round(1e3 * sum(joules.values()) / (passes * len(texts)), 4)
        if throughput is not None:
            entry["runtime_config"] = throughput.config
        results.append(entry)
    return results
