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

On a Ray cluster (`bench tune --cluster`) each node is scored by one task, all submitted at once, with the
serial loop's own function (`node_cost`): the same costs, sorted the same way (ties keep the node order).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from bench.build.compress import Compressor
from bench.common.errors import BenchError
from bench.schema.variant import Variant
from bench.spec.cluster import ClusterConfig
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


@dataclass(frozen=True)
class Scoring:
    """What scoring one node needs besides its name, the same for every node (put once in Ray's object store)."""

    convert: Callable  # the variant's own conversion (convert_for), which takes nodes_to_quantize
    base_dir: Path  # the FP32 base graph's folder
    tokenizer: object
    held_out: object  # Texts
    max_length: int
    threads: int  # the serial loop's, in the tasks too: the same ORT thread count, the same logits
    reference: np.ndarray  # the FP32 graph's logits on `held_out`


def node_cost(s: Scoring, name: str, op_type: str) -> NodeCost:
    """The cost of quantizing node `name` alone: the serial loop and the cluster's tasks both call this."""
    from bench.backends.onnx.export import copy_sidecars

    with tempfile.TemporaryDirectory(prefix="bench-sens-") as tmp:
        out = Path(tmp)
        copy_sidecars(s.base_dir, out)
        # The quantizers read the cache folder through a private view, so concurrent tasks can share it.
        s.convert(s.base_dir / "model.onnx", out / "model.onnx", nodes_to_quantize=[name])
        logits = _logits(out, s.tokenizer, s.held_out, s.max_length, s.threads)
    classify = s.reference.ndim == 2 and s.reference.shape[-1] > 1
    flips = int((logits.argmax(-1) != s.reference.argmax(-1)).sum()) if classify else None
    return NodeCost(name, op_type, float(np.mean((logits - s.reference) ** 2)), flips)


def rank_nodes(comp: Compressor, model: Artifact, variant: Variant, int8: Artifact, samples: int,
               threads: int = 2, deadline: float | None = None, cluster: ClusterConfig | None = None
               ) -> list[NodeCost]:
    """The nodes `int8` (the variant's artifact) quantizes, costliest first; cached. `deadline`
    (time.perf_counter()): BudgetSpent when it passes between two nodes. `cluster`: the suite's cluster
    section when Ray is connected (`bench tune --cluster`): one task per node, in parallel."""
    from transformers import AutoTokenizer

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
        scoring = Scoring(convert, base.path, tokenizer, held_out, comp.max_length, threads, reference)
        info = {}
        if cluster is None:
            costs = []
            for i, (name, op_type) in enumerate(nodes, 1):
                if deadline is not None and time.perf_counter() > deadline:
                    raise BudgetSpent(f"the budget was spent while ranking ({i - 1} of {len(nodes)} nodes)")
                costs.append(node_cost(scoring, name, op_type))
                _log_cost(variant, i, len(nodes), costs[-1])
        else:
            costs, ray_nodes = _costs_on_cluster(scoring, nodes, cluster, deadline, variant)
            info["ray_nodes"] = ray_nodes  # where the tasks ran (provenance; the tests check it)
        # Stable on the node order, so ties rank the same in both paths.
        order = sorted(range(len(costs)), key=lambda i: (-costs[i].logit_mse, i))
        return {"held_out_samples": len(held_out), "ranking": [asdict(costs[i]) for i in order], **info}

    # method 2: QDQ graphs give each quantized reader its own Q/DQ pair (bench/backends/onnx/quantize.py)
    spec = {"samples": len(held_out), "held_out": calibration_hash(held_out), "method": 2}
    artifact = comp.store.get_or_build(f"sensitivity-{int8.kind}", spec, [base, int8], build)
    return [NodeCost(**c) for c in artifact.info["ranking"]]


def _log_cost(variant: Variant, i: int, n: int, cost: NodeCost) -> None:
    log.info("sensitivity %s [%d/%d] %s: logit MSE %.3g, %s flips", variant.id, i, n, cost.node, cost.logit_mse,
             cost.flips)


def _node_cost_task(scoring: Scoring, name: str, op_type: str, artifact_url: str | None) -> tuple[NodeCost, str]:
    """On a cluster node: the node's cost, and the Ray node it was scored on."""
    import ray

    if artifact_url:  # nodes without a shared folder: the base graph into this node's cache, checked
        from bench.store.mirror import fetch

        fetch(scoring.base_dir, artifact_url)
    return node_cost(scoring, name, op_type), ray.get_runtime_context().get_node_id()


def _costs_on_cluster(scoring: Scoring, nodes: list[tuple[str, str]], cluster: ClusterConfig,
                      deadline: float | None, variant: Variant) -> tuple[list[NodeCost], list[str]]:
    """Every node's cost as one Ray task, in the nodes' order; the distinct Ray nodes they ran on."""
    import ray

    if not nodes:
        return [], []
    if deadline is not None and time.perf_counter() > deadline:
        raise BudgetSpent(f"the budget was spent while ranking (0 of {len(nodes)} nodes)")
    if cluster.artifact_url:  # the base graph is not always a built artifact the build node published
        from bench.store.mirror import publish

        if publish(scoring.base_dir, cluster.artifact_url):
            log.info("published %s at %s", scoring.base_dir.name, cluster.artifact_url)
    # Builds run where build_resource is: so does this quantization, one core per task.
    resources = {cluster.build_resource: 1} if cluster.build_resource else {}
    task = ray.remote(_node_cost_task)
    shared = ray.put(scoring)  # once, not once per task
    log.info("sensitivity %s: ranking %d nodes as %d tasks on the cluster", variant.id, len(nodes), len(nodes))
    refs = [task.options(num_cpus=1, resources=resources, max_retries=cluster.retries, name=f"bench-sensitivity {name}"
                         ).remote(shared, name, op_type, cluster.artifact_url) for name, op_type in nodes]
    timeout = None if deadline is None else max(0.0, deadline - time.perf_counter())
    _, waiting = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    if waiting:  # the deadline passed first
        for ref in waiting:
            ray.cancel(ref, force=True)
        raise BudgetSpent(f"the budget was spent while ranking ({len(refs) - len(waiting)} of {len(nodes)} nodes)")
    from bench.run.cluster import task_result

    results = [task_result(ref) for ref in refs]  # the scoring's own error, raised here as it would be locally
    for i, (cost, _) in enumerate(results, 1):
        _log_cost(variant, i, len(nodes), cost)
    return [cost for cost, _ in results], sorted({node for _, node in results})
