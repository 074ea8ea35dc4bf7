"""One small adapter per runtime. Each takes tokenised numpy inputs and returns numpy logits, with
the conversion to native inputs (`prepare`) kept outside the timed call (`run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Runtime(Protocol):
    name: str
    input_names: list[str]
    params: int

    def prepare(self, encoding: dict[str, np.ndarray]) -> Any:
        """Tokenizer output (int64 arrays) -> native inputs; not timed."""

    def run(self, native: Any) -> Any:
        """One forward pass; returns when the result is ready (GPU work synchronised). Timed."""

    def logits(self, output: Any) -> np.ndarray:
        """Native output -> float32 numpy logits; not timed."""


def load_runtime(fmt: str, path: Path, device: str, threads: int, precision: str = "fp32",
                 gpu_provider: str = "cuda") -> Runtime:
    """The format's runtime for the artifact in `path` (bench/formats/ names the adapter)."""
    from bench import formats

    return formats.get(fmt).runtime(Path(path), device, threads, precision, gpu_provider)


def predict(runtime: Runtime, encoding: dict[str, np.ndarray]) -> np.ndarray:
    return runtime.logits(runtime.run(runtime.prepare(encoding)))


def batched_logits(runtime: Runtime, tokenizer, texts, max_length: int, batch_size: int) -> np.ndarray:
    """Logits of `texts` (Texts, or a list of sentences) in padded batches of `batch_size`, in order."""
    from bench.measure.accuracy import as_texts

    texts = as_texts(texts)
    out = []
    for start in range(0, len(texts), batch_size):
        enc = dict(texts.take(range(start, min(start + batch_size, len(texts)))).encode(
            tokenizer, truncation=True, max_length=max_length, padding=True, return_tensors="np"))
        out.append(predict(runtime, enc))
    return np.concatenate(out)
