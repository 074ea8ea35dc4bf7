"""Sensitivity pass (`bench tune`): rank the nodes an INT8 variant quantizes by what each one alone costs.

For every node the INT8 graph quantizes, the FP32 base graph is quantized with that node alone (ORT's
`nodes_to_quantize`, the same recipe and calibration as the variant), and its logits are compared with the
FP32 graph's on held-out train examples: never a calibration example and never an eval example, so the
ranking is not tuned on the examples the candidate is then judged on. The cost is the mean squared logit
difference (continuous, so 256 examples separate nodes that a label count would tie), with the number of
examples whose label flips beside it. The tune then keeps the costliest nodes in float (`nodes_to_exclude`)
and measures the result as a new candidate.

Not ranked: the pooler's and classifier's Gemms, which ORT's dynamic quantizer first rewrites to MatMuls
under new names (`<name>_MatMul`) that `nodes_to_exclude` cannot name in the FP32 graph.

The ranking is an artifact in the content-hash cache (`sensitivity-<int8 artifact>`), keyed by the INT8
artifact and the held-out examples: a rerun ranks nothing again.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from bench.build.compress import Compressor
from bench.common.errors import BenchError
from bench.schema.variant import Variant
from bench.store.artifacts import Artifact

log = logging.getLogger(__name__)
BATCH = 32


class BudgetSpent(Exception):
    """The search's budget ran out in the middle of a ranking (nothing is cached; a rerun starts again)."""


@dataclass(frozen=True)
class NodeCost:
    node: str
    op_type: str
    logit_mse: float  # mean squared logit difference to the FP32 graph, this node alone quantized
    flips: int | None  # held-out examples whose label differs from the FP32 graph's (None: regression)


def quantized_nodes(base_path: Path, int8_path: Path, op_types) -> list[tuple[str, str]]:
    """(name, op type) of the FP32 graph's nodes of `op_types` that the INT8 graph quantized: replaced by an
    integer operator (dynamic and QOperator: `X` becomes `X_quant`), or kept with a DequantizeLinear on an
    input or output (QDQ; a dynamic Gather whose table is stored in INT8)."""
    base = onnx.load(str(base_path), load_external_data=False).graph
    int8 = onnx.load(str(int8_path), load_external_data=False).graph
    dq_out = {out for node in int8.node if node.op_type == "DequantizeLinear" for out in node.output}
    dq_in = {i for node in int8.node if node.op_type == "DequantizeLinear" for i in node.input}
    kept = {(node.name, node.op_type): node for node in int8.node}
    found = []
    for node in base.node:
        if node.op_type not in op_types:
            continue
        same = kept.get((node.name, node.op_type))
        if same is None or dq_out.intersection(same.input) or dq_in.intersection(same.output):
            found.append((node.name, node.op_type))
    return found


def _logits(path: Path, tokenizer, texts, max_length: int, threads: int) -> np.ndarray:
    from bench.backends.runtime import batched_logits, load_runtime

    return batched_logits(load_runtime("onnx", path, "cpu", threads), tokenizer, texts, max_length, BATCH)


def convert_for(comp: Compressor, variant: Variant):
    """(the variant's own INT8 conversion, which takes nodes_to_quantize; the op types it quantizes)."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    from bench.backends.onnx.quantize import STATIC_OP_TYPES

    q = comp.suite.quantize.resolved(variant.quant)
    if variant.precision == "int8-dynamic":
        return comp.int8_dynamic_recipe(variant.quant)[1], q.op_types or list(IntegerOpsRegistry)
    return comp.int8_static_recipe(variant.calibration, recipe=variant.quant)[1], q.op_types or STATIC_OP_TYPES


def rank_nodes(comp: Compressor, model: Artifact, variant: Variant, int8: Artifact, samples: int,
               threads: int = 2, deadline: float | None = None) -> list[NodeCost]:
    """The nodes `int8` (the variant's artifact) quantizes, costliest first; cached. `deadline`
    (time.perf_counter()): BudgetSpent when it passes between two nodes."""
    from transformers import AutoTokenizer

    from bench.backends.onnx.export import copy_sidecars
    from bench.backends.onnx.quantize import calibration_hash

    base = comp.base_graph(model, variant.graph)
    held_out = comp.held_out_texts(samples)
    if len(held_out) == 0:
        raise BenchError(f"tune.sensitivity.samples: no train example is left to rank nodes on once the "
                         f"{comp.suite.quantize.calibration_samples} calibration examples and the eval examples are "
                         "set aside")
    if len(held_out) < samples:
        log.warning("sensitivity: %d held-out train examples, not %d: train has no more beside the calibration "
                    "and eval examples", len(held_out), samples)

    def build(out: Path) -> dict:
        convert, op_types = convert_for(comp, variant)
        nodes = quantized_nodes(base.path / "model.onnx", int8.path / "model.onnx", op_types)
        tokenizer = AutoTokenizer.from_pretrained(base.path)
        reference = _logits(base.path, tokenizer, held_out, comp.max_length, threads)
        classify = reference.ndim == 2 and reference.shape[-1] > 1
        costs = []
        for i, (name, op_type) in enumerate(nodes, 1):
            if deadline is not None and time.perf_counter() > deadline:
                raise BudgetSpent(f"the budget was spent while ranking ({i - 1} of {len(nodes)} nodes)")
            with tempfile.TemporaryDirectory(prefix="bench-sens-") as tmp:
                copy_sidecars(base.path, Path(tmp))
                convert(base.path / "model.onnx", Path(tmp) / "model.onnx", nodes_to_quantize=[name])
                logits = _logits(Path(tmp), tokenizer, held_out, comp.max_length, threads)
            flips = int((logits.argmax(-1) != reference.argmax(-1)).sum()) if classify else None
            costs.append(NodeCost(name, op_type, float(np.mean((logits - reference) ** 2)), flips))
            log.info("sensitivity %s [%d/%d] %s: logit MSE %.3g, %s flips", variant.id, i, len(nodes), name,
                     costs[-1].logit_mse, flips)
        costs.sort(key=lambda c: -c.logit_mse)
        return {"held_out_samples": len(held_out), "ranking": [asdict(c) for c in costs]}

    # method 2: QDQ graphs give each quantized reader its own Q/DQ pair (bench/backends/onnx/quantize.py)
    spec = {"samples": len(held_out), "held_out": calibration_hash(held_out), "method": 2}
    artifact = comp.store.get_or_build(f"sensitivity-{int8.kind}", spec, [base, int8], build)
    return [NodeCost(**c) for c in artifact.info["ranking"]]
