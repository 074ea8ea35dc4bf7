"""Trained model → the deployable artifact each variant measures.

    pytorch fp32            the trained model folder itself
    pytorch int8/fp16/bf16  the trained weights, converted at load (parity recorded at build)
    onnx fp32 plain         optimum export                           ─┐
    onnx fp32 optimized     ORT transformer optimizer on the export   ├─ "base graph" for:
    onnx int8-dynamic       quantize_dynamic(base graph)              │
    onnx int8-static-<cal>  quantize_static QDQ(base graph, train calibration examples)
    onnx fp16               float16 conversion(base graph)           ─┘
    tensorrt fp32|fp16|int8 engine from the plain fp32 | fp16 | QDQ int8 graph

Each step is an artifact in the content-hash cache, with its parents' keys in its own key, and
each records parity against the FP32 PyTorch source on dev examples (pairs for a pair task) and its
build time. The recipes are each backend's own (bench/backends/<format>/recipes.py, chosen by the
format's `build`); the Compressor is what they share: the suite, data and store, the parity set and
check, the libraries in every key, and the calibration examples.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import backends
from bench.backends.onnx import recipes as onnx_recipes
from bench.backends.pytorch import recipes as pytorch_recipes
from bench.backends.tensorrt import recipes as tensorrt_recipes
from bench.data.load import TaskData
from bench.data.splits import split_texts
from bench.schema.variant import Variant
from bench.spec.measure import DEFAULT_THREADS
from bench.spec.suite import Suite
from bench.store.artifacts import Artifact, ArtifactStore
from bench.store.envinfo import library_versions
from bench.tasks.table import Texts

# Libraries whose version can change what a conversion produces.
CONVERTERS = ["torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt"]


class Compressor:
    def __init__(self, suite: Suite, data: TaskData, store: ArtifactStore):
        self.suite, self.data, self.store = suite, data, store
        # The first parity_samples examples of the primary eval split (all of them when 0).
        self.parity_texts = split_texts(data, "validation").head(suite.measure.parity_samples or None)
        self.max_length = suite.data.max_length

    # ------------------------------------------------------------------ helpers
    def parity_spec(self) -> dict:
        """In every conversion's key: the parity set, and the versions of the libraries that convert
        (an onnxruntime or optimum upgrade must not reuse graphs the old one produced)."""
        return {"parity_samples": len(self.parity_texts), "data": self.data.fingerprint,
                "libs": library_versions(CONVERTERS)}

    def parity(self, model: Artifact, out: Path, fmt: str, name: str, atol: float | None,
                device: str = "cpu", precision: str = "fp32", runtime_dir: Path | None = None) -> dict:
        from bench.backends.runtime import load_runtime
        from bench.build.parity import check_parity

        candidate = load_runtime(fmt, runtime_dir or out, device, threads=DEFAULT_THREADS, precision=precision)
        return check_parity(model.path, candidate, name, self.parity_texts, self.max_length, atol, device,
                            reference_format=model.info.get("format", "pytorch"))

    # ------------------------------------------------------------------ calibration examples
    def calibration_texts(self) -> Texts:
        """The first N train examples of a fixed shuffle; never an example (sentence, or pair) of any
        eval split (checked)."""
        return self._train_slice(0, self.suite.quantize.calibration_samples)

    def held_out_texts(self, n: int) -> Texts:
        """The n train examples after the calibration ones in the same shuffle: seen neither by the
        calibrator nor in any eval split (the sensitivity pass ranks nodes on them, bench/tune/node_ranking.py)."""
        start = self.suite.quantize.calibration_samples
        return self._train_slice(start, start + n)

    def held_out_labels(self, n: int) -> list:
        """The labels of held_out_texts(n), in the same order."""
        labels = self.data.labels("train")
        start = self.suite.quantize.calibration_samples
        return [labels[i] for i in self._train_positions(start, start + n)]

    def _train_slice(self, start: int, stop: int) -> Texts:
        return split_texts(self.data, "train").take(self._train_positions(start, stop))

    def _train_positions(self, start: int, stop: int) -> list[int]:
        import random

        from bench.data.splits import eval_splits

        train = split_texts(self.data, "train")
        dev = {s.texts.example(i) for s in eval_splits(self.data) for i in range(len(s.texts))}
        order = list(range(len(train)))
        random.Random(self.suite.seed).shuffle(order)
        picked = [i for i in order if train.example(i) not in dev][start:stop]
        assert not dev.intersection(train.example(i) for i in picked)
        return picked

    def calibration_sentences(self) -> list[str]:
        """The calibration examples as one string each (Texts.joined)."""
        return self.calibration_texts().joined()

    # ------------------------------------------------------------------ the built-in backends' recipes
    # Each format calls its own recipes module (bench/backends/<name>/recipes.py); these names are for the
    # callers that hold a Compressor (bench tune's sensitivity pass, the tests).
    def onnx_export(self, model: Artifact) -> Artifact:
        return onnx_recipes.export(self, model)

    def onnx_optimized(self, model: Artifact) -> Artifact:
        return onnx_recipes.optimized(self, model)

    def base_graph(self, model: Artifact, graph: str) -> Artifact:
        return onnx_recipes.base_graph(self, model, graph)

    def int8_dynamic_recipe(self, recipe: str = "") -> tuple[dict, Callable]:
        return onnx_recipes.int8_dynamic_recipe(self, recipe)

    def onnx_int8_dynamic(self, model: Artifact, graph: str, recipe: str = "") -> Artifact:
        return onnx_recipes.int8_dynamic(self, model, graph, recipe)

    def int8_static_recipe(self, calibrator: str, symmetric: bool = False, recipe: str = "") -> tuple[dict, Callable]:
        return onnx_recipes.int8_static_recipe(self, calibrator, symmetric, recipe)

    def onnx_int8_static(self, model: Artifact, graph: str, calibrator: str, symmetric: bool = False,
                         recipe: str = "") -> Artifact:
        return onnx_recipes.int8_static(self, model, graph, calibrator, symmetric, recipe)

    def onnx_fp16(self, model: Artifact, graph: str) -> Artifact:
        return onnx_recipes.fp16(self, model, graph)

    def pytorch_converted(self, model: Artifact, precision: str, device: str) -> Artifact:
        return pytorch_recipes.converted(self, model, precision, device)

    def tensorrt_profile(self) -> dict:
        return tensorrt_recipes.engine_profile(self)

    def tensorrt_engine(self, model: Artifact, precision: str) -> Artifact:
        return tensorrt_recipes.engine(self, model, precision)

    # ------------------------------------------------------------------ dispatch
    def artifact_for(self, variant: Variant, model: Artifact) -> Artifact:
        """The format decides which recipe above makes the variant's artifact (bench/backends/)."""
        return backends.get(variant.format).build(self, variant, model)
