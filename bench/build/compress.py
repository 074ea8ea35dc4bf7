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
build time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import backends
from bench.store.artifacts import Artifact, ArtifactStore
from bench.data.load import TaskData
from bench.store.envinfo import library_versions
from bench.schema.variant import Variant
from bench.spec.suite import Suite
from bench.tasks.table import Texts

# Libraries whose version can change what a conversion produces.
CONVERTERS = ["torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt"]


def _where(recipe: str, nodes_to_quantize) -> str:
    """The setting node names come from, for the error when a graph lacks one."""
    if nodes_to_quantize:
        return "the sensitivity pass"
    return f"quantize.recipes.{recipe}.nodes_to_exclude" if recipe else "quantize.nodes_to_exclude"


def _recipe_spec(q, dynamic: bool, quant_format: str = "qdq") -> dict:
    """The recipe settings in an INT8 artifact's key, only where they differ from the defaults: graphs made
    with the defaults keep the cache keys they had before recipes existed."""
    spec = {}
    if q.nodes_to_exclude:
        spec["nodes_to_exclude"] = sorted(q.nodes_to_exclude)
    if dynamic and q.op_types:
        spec["op_types"] = list(q.op_types)
    if not dynamic and quant_format != "qdq":
        spec["quant_format"] = quant_format
    if not dynamic and quant_format == "qdq" and q.nodes_to_exclude:
        spec["qdq_pairs"] = "dedicated"  # how bench/backends/onnx/quantize.py writes QDQ graphs with exclusions
    return spec


class Compressor:
    def __init__(self, suite: Suite, data: TaskData, store: ArtifactStore):
        self.suite, self.data, self.store = suite, data, store
        from bench.data.splits import split_texts

        # The first parity_samples examples of the primary eval split (all of them when 0).
        self.parity_texts = split_texts(data, "validation").head(suite.measure.parity_samples or None)
        self.max_length = suite.data.max_length

    # ------------------------------------------------------------------ helpers
    def _parity_spec(self) -> dict:
        """In every conversion's key: the parity set, and the versions of the libraries that convert
        (an onnxruntime or optimum upgrade must not reuse graphs the old one produced)."""
        return {"parity_samples": len(self.parity_texts), "data": self.data.fingerprint,
                "libs": library_versions(CONVERTERS)}

    def _parity(self, model: Artifact, out: Path, fmt: str, name: str, atol: float | None,
                device: str = "cpu", precision: str = "fp32", runtime_dir: Path | None = None) -> dict:
        from bench.backends.onnx.export import check_parity
        from bench.backends.runtime import load_runtime

        candidate = load_runtime(fmt, runtime_dir or out, device, threads=2, precision=precision)
        return check_parity(model.path, candidate, name, self.parity_texts, self.max_length, atol, device,
                            reference_format=model.info.get("format", "pytorch"))

    def _derived_onnx(self, kind: str, spec: dict, base: Artifact, model: Artifact, convert, atol=None,
                      device: str = "cpu") -> Artifact:
        """An ONNX artifact made from `base` by convert(src_model, out_model) -> info, plus parity."""
        from bench.backends.onnx.export import copy_sidecars

        def build(out: Path) -> dict:
            copy_sidecars(base.path, out)
            info = convert(base.path / "model.onnx", out / "model.onnx") or {}
            return {**info, **self._parity(model, out, "onnx", f"{kind}-{model.kind}", atol, device)}

        return self.store.get_or_build(f"{kind}-{model.kind}", {**spec, **self._parity_spec()}, [base], build)

    # ------------------------------------------------------------------ ONNX
    def onnx_export(self, model: Artifact) -> Artifact:
        from bench.backends.onnx.export import export_with_parity

        if model.info.get("format") == "onnx":
            return model  # an ONNX source (bench/tasks/onnx_source.py): measured as it is, never re-exported
        atol = self.suite.measure.parity_atol

        def build(out: Path) -> dict:
            return export_with_parity(model.path, out, self.parity_texts, self.max_length, atol,
                                      name=f"onnx-{model.kind}")

        spec = {"opset": None, "parity_atol": atol, **self._parity_spec()}
        return self.store.get_or_build(f"onnx-{model.kind}", spec, [model], build)

    def onnx_optimized(self, model: Artifact) -> Artifact:
        from bench.backends.onnx.optimize import optimize_graph

        base = self.onnx_export(model)
        convert = lambda src, out: optimize_graph(src.parent, out.parent)  # noqa: E731
        return self._derived_onnx("onnx-opt", {"optimizer": "ort-transformers", "opt_level": 0}, base, model,
                                  convert, atol=self.suite.measure.parity_atol)

    def base_graph(self, model: Artifact, graph: str) -> Artifact:
        return self.onnx_optimized(model) if graph == "optimized" else self.onnx_export(model)

    def int8_dynamic_recipe(self, recipe: str = "") -> tuple[dict, Callable]:
        """(cache-key spec, convert(src, out, nodes_to_quantize=None) -> info) for dynamic INT8 with `recipe`;
        the sensitivity pass (bench/tune/node_ranking.py) converts with the same settings, one node at a time."""
        from bench.backends.onnx.quantize import quantize_int8_dynamic, resolve_dynamic_scheme

        q = self.suite.quantize.resolved(recipe)
        weight_type, reduce_range, why = resolve_dynamic_scheme(q.weight_type, q.reduce_range)
        spec = {"per_channel": q.per_channel, "reduce_range": reduce_range, **_recipe_spec(q, dynamic=True)}
        if weight_type != "s8":
            spec["weight_type"] = weight_type  # only when not the old default: S8 graphs keep their cache keys

        def convert(src, out, nodes_to_quantize=None):
            return {**quantize_int8_dynamic(src, out, q.per_channel, reduce_range, weight_type, q.op_types,
                                            q.nodes_to_exclude, nodes_to_quantize, _where(recipe, nodes_to_quantize)),
                    "reduce_range_reason": why}

        return spec, convert

    def onnx_int8_dynamic(self, model: Artifact, graph: str, recipe: str = "") -> Artifact:
        spec, convert = self.int8_dynamic_recipe(recipe)
        return self._derived_onnx("onnx-int8-dynamic", spec, self.base_graph(model, graph), model, convert)

    def calibration_texts(self) -> Texts:
        """The first N train examples of a fixed shuffle; never an example (sentence, or pair) of any
        eval split (checked)."""
        return self._train_slice(0, self.suite.quantize.calibration_samples)

    def held_out_texts(self, n: int) -> Texts:
        """The n train examples after the calibration ones in the same shuffle: seen neither by the
        calibrator nor in any eval split (the sensitivity pass ranks nodes on them, bench/tune/node_ranking.py)."""
        start = self.suite.quantize.calibration_samples
        return self._train_slice(start, start + n)

    def _train_slice(self, start: int, stop: int) -> Texts:
        import random

        from bench.data.splits import eval_splits, split_texts

        train = split_texts(self.data, "train")
        dev = {s.texts.example(i) for s in eval_splits(self.data) for i in range(len(s.texts))}
        order = list(range(len(train)))
        random.Random(self.suite.seed).shuffle(order)
        picked = [i for i in order if train.example(i) not in dev][start:stop]
        texts = train.take(picked)
        assert not dev.intersection(texts.example(i) for i in range(len(texts)))
        return texts

    def calibration_sentences(self) -> list[str]:
        """The calibration examples as one string each (Texts.joined)."""
        return self.calibration_texts().joined()

    def int8_static_recipe(self, calibrator: str, symmetric: bool = False, recipe: str = "") -> tuple[dict, Callable]:
        """(cache-key spec, convert(src, out, nodes_to_quantize=None) -> info) for calibrated static INT8."""
        from transformers import AutoTokenizer

        from bench.backends.onnx.quantize import (
            CALIBRATION_BATCH,
            STATIC_OP_TYPES,
            calibration_hash,
            quantize_int8_static,
            resolve_reduce_range,
        )

        q = self.suite.quantize.resolved(recipe)
        reduce_range, why = resolve_reduce_range(q.reduce_range) if not symmetric else (False, "symmetric QDQ")
        texts = self.calibration_texts()
        spec = {"calibrator": calibrator, "calibration": calibration_hash(texts), "per_channel": q.per_channel,
                "op_types": q.op_types or STATIC_OP_TYPES,
                **_recipe_spec(q, dynamic=False, quant_format="qdq" if symmetric else q.quant_format),
                "reduce_range": reduce_range, "percentile": q.percentile if calibrator == "percentile" else None,
                "calibration_batch": CALIBRATION_BATCH}
        if calibrator == "entropy":
            spec["entropy_bins"] = q.entropy_bins
        if symmetric:
            spec["symmetric"] = True  # only when set: asymmetric graphs keep their cache keys
        elif q.activation_type != "s8":
            spec["activation_type"] = q.activation_type  # S8-activation graphs keep their cache keys

        def convert(src, out, nodes_to_quantize=None):
            tokenizer = AutoTokenizer.from_pretrained(src.parent)
            info = quantize_int8_static(src, out, tokenizer, texts, self.max_length, calibrator, q.per_channel,
                                        reduce_range, q.percentile, symmetric, q.activation_type,
                                        "qdq" if symmetric else q.quant_format, q.op_types or STATIC_OP_TYPES,
                                        q.nodes_to_exclude, nodes_to_quantize, _where(recipe, nodes_to_quantize),
                                        q.entropy_bins)
            return {**info, "reduce_range_reason": why}

        return spec, convert

    def onnx_int8_static(self, model: Artifact, graph: str, calibrator: str, symmetric: bool = False,
                         recipe: str = "") -> Artifact:
        """Calibrated QDQ INT8; symmetric (zero-point 0 everywhere, no reduce_range) is the graph TensorRT
        builds its INT8 engine from."""
        spec, convert = self.int8_static_recipe(calibrator, symmetric, recipe)
        kind = f"onnx-int8-static-{calibrator}" + ("-symmetric" if symmetric else "")
        return self._derived_onnx(kind, spec, self.base_graph(model, graph), model, convert)

    def onnx_fp16(self, model: Artifact, graph: str) -> Artifact:
        from bench.backends.onnx.quantize import convert_fp16

        # FP16 graphs are for GPUs (the CPU provider lacks FP16 kernels), so parity runs on CUDA.
        return self._derived_onnx("onnx-fp16", {"keep_io_types": True}, self.base_graph(model, graph), model,
                                  convert_fp16, device="cuda")

    # ------------------------------------------------------------------ PyTorch and TensorRT
    def pytorch_converted(self, model: Artifact, precision: str, device: str) -> Artifact:
        """No new weights: the runtime converts at load. The artifact records parity and points at the source."""

        def build(out: Path) -> dict:
            parity = self._parity(model, out, "pytorch", f"pytorch-{precision}-{model.kind}", None, device=device,
                                  precision=precision, runtime_dir=model.path)
            return {"weights_dir": str(model.path), **parity}

        spec = {"precision": precision, "device": device, **self._parity_spec()}
        return self.store.get_or_build(f"pytorch-{precision}-{model.kind}", spec, [model], build)

    def tensorrt_profile(self) -> dict:
        """[batch, sequence] shapes the engine must accept: parity batches (16), the accuracy pass, the
        grid and the Offline batches, up to the suite's max_length (or the grid's longest cell)."""
        from bench.backends.tensorrt.engine import profile_for

        m, grid = self.suite.measure, self.suite.measure.grid
        return profile_for(max(m.eval_batch_size, 16, *(grid.batch_sizes if grid else [1]),
                               *(m.offline.batch_sizes if m.offline else [1])),
                           max(self.max_length, *(grid.seq_lens if grid else [1])))

    def tensorrt_engine(self, model: Artifact, precision: str) -> Artifact:
        from bench.backends.onnx.export import copy_sidecars
        from bench.backends.tensorrt.engine import build_engine, gpu_name, tensorrt_version

        if precision == "int8":  # TensorRT's explicit quantization needs zero-point 0: a symmetric QDQ graph
            graph = self.onnx_int8_static(model, "plain", self.suite.quantize.calibrators[0], symmetric=True)
        elif precision == "fp16":
            graph = self.onnx_fp16(model, "plain")
        else:
            graph = self.onnx_export(model)
        profile = self.tensorrt_profile()
        spec = {"tensorrt": tensorrt_version(), "gpu": gpu_name(), "profile": profile, **self._parity_spec()}

        def build(out: Path) -> dict:
            copy_sidecars(graph.path, out)
            info = build_engine(graph.path / "model.onnx", out / "model.engine", profile)
            return {**info, **self._parity(model, out, "tensorrt", f"tensorrt-{precision}-{model.kind}", None, "cuda")}

        return self.store.get_or_build(f"tensorrt-{precision}-{model.kind}", spec, [graph], build)

    # ------------------------------------------------------------------ dispatch
    def artifact_for(self, variant: Variant, model: Artifact) -> Artifact:
        """The format decides which recipe above makes the variant's artifact (bench/backends/)."""
        return backends.get(variant.format).build(self, variant, model)
