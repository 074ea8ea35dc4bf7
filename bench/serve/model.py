"""The model behind the app: the variant's runtime (bench/backends/) and its tokenizer, loaded once."""

from __future__ import annotations

import numpy as np

from bench.serve.spec import ServeSpec
from bench.tasks.table import Texts


class Predictor:
    def __init__(self, spec: ServeSpec):
        from bench.backends.runtime import load_runtime
        from bench.backends.tokenizer import FastTokenizer

        self.spec = spec
        self.runtime = load_runtime(spec.format, spec.artifact_dir, spec.device, spec.threads, spec.precision,
                                    spec.gpu_provider)
        self.tokenizer = FastTokenizer(spec.artifact_dir)

    def texts(self, items: list) -> Texts:
        if self.spec.pair:
            return Texts([a for a, _ in items], [b for _, b in items])
        return Texts(list(items))

    def __call__(self, items: list) -> np.ndarray:
        """Logits for the items, in order: one padded batch through the variant's runtime, the same
        tokenisation as the accuracy pass of `bench run`."""
        from bench.backends.runtime import predict

        enc = dict(self.texts(items).encode(self.tokenizer, truncation=True, max_length=self.spec.max_length,
                                            padding=True, return_tensors="np"))
        return np.asarray(predict(self.runtime, enc))
