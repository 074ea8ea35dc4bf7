"""One small adapter per runtime. Each takes tokenised numpy inputs and returns numpy logits, with
the conversion to native inputs (`prepare`) kept outside the timed call (`run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.tasks.table import Texts, as_texts


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
    """The format's runtime for the artifact in `path` (bench/backends/ names the adapter)."""
    from bench import backends

    return backends.get(fmt).runtime(Path(path), device, threads, precision, gpu_provider)


def predict(runtime: Runtime, encoding: dict[str, np.ndarray]) -> np.ndarray:
    return runtime.logits(runtime.run(runtime.prepare(encoding)))


def batched_logits(runtime: Runtime, tokenizer, texts, max_length: int, batch_size: int) -> np.ndarray:
    """Logits of `texts` (Texts, or a list of sentences) in padded batches of `batch_size`, in order."""
    texts = as_texts(texts)
    out = []
    for start in range(0, len(texts), batch_size):
        enc = dict(texts.take(range(start, min(start + batch_size, len(texts)))).encode(
            tokenizer, truncation=True, max_length=max_length, padding=True, return_tensors="np"))
        out.append(predict(runtime, enc))
    return np.concatenate(out)


def predict_logits(runtime: Runtime, tokenizer, texts: Texts | list[str], max_length: int, batch_size: int = 32
                   ) -> np.ndarray:
    """Logits for every example, in order: [n, num_labels] (num_labels 1 for a regression head)."""
    texts = as_texts(texts)
    # Length-sorted batches: same logits as any batching (padding is masked), far less compute.
    order = np.argsort(texts.char_lengths(), kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = dict(texts.take(idx).encode(tokenizer, truncation=True, max_length=max_length, padding=True,
                                          return_tensors="np"))
        logits = np.asarray(predict(runtime, enc))
        if out is None:
            out = np.empty((len(texts), *logits.shape[1:]), dtype=logits.dtype)
        out[idx] = logits
    return out


def predict_labels(runtime: Runtime, tokenizer, texts: Texts | list[str], max_length: int, batch_size: int = 32
                   ) -> np.ndarray:
    """Argmax labels (classification heads)."""
    return predict_logits(runtime, tokenizer, texts, max_length, batch_size).argmax(-1)
