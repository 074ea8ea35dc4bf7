"""Roofline: analytic FLOPs of a BERT-family forward pass, and this machine's matmul peak.

FLOPs count multiply-adds as 2 and exclude the embedding lookups (gathers, no arithmetic worth
counting); attention is included. Per sequence of L tokens, hidden H, intermediate I, N layers,
C labels:

    per layer:  Q, K, V, output projections 4 · 2·L·H²  +  QKᵀ and attention·V 2 · 2·L²·H
                + feed-forward 2 · 2·L·H·I
    pooler 2·H² (the [CLS] token only), classifier 2·H·C
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def bert_forward_flops(seq_len: int, hidden: int, layers: int, intermediate: int, num_labels: int = 2,
                       batch: int = 1) -> int:
    per_layer = 8 * seq_len * hidden**2 + 4 * seq_len**2 * hidden + 4 * seq_len * hidden * intermediate
    return batch * (layers * per_layer + 2 * hidden**2 + 2 * hidden * num_labels)


def flops_for_config(config_dir: Path):
    """A function (seq_len, batch) -> FLOPs for the BERT config.json in config_dir, or None."""
    path = Path(config_dir) / "config.json"
    if not path.is_file():
        return None
    c = json.loads(path.read_text())
    if not all(k in c for k in ("hidden_size", "num_hidden_layers", "intermediate_size")):
        return None
    labels = len(c.get("id2label", {})) or 2
    return lambda seq_len, batch=1: bert_forward_flops(seq_len, c["hidden_size"], c["num_hidden_layers"],
                                                       c["intermediate_size"], labels, batch)


def _best_gflops(matmul, size: int, seconds: float) -> float:
    for _ in range(3):
        matmul()  # warm up the kernels and the allocator
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        matmul()
        best = max(best, 2 * size**3 / (time.perf_counter() - t0) / 1e9)
    return best


def _torch_matmul(threads: int, size: int):
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    return lambda: torch.matmul(a, b)


def _ort_matmul(threads: int, size: int):
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    spec = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {n: np.random.default_rng(0).random((size, size), dtype=np.float32) for n in "ab"}
    return lambda: session.run(None, feed)


def matmul_peak_gflops(threads: int, size: int = 1024, seconds: float = 2.0) -> dict[str, float]:
    """Best fp32 GFLOP/s of a size×size matmul with `threads` threads, per library: torch.matmul and
    ONNX Runtime's MatMul (MLAS), whose SGEMM can be much faster than torch's on the same CPU."""
    found = {"torch": _best_gflops(_torch_matmul(threads, size), size, seconds)}
    try:
        found["onnxruntime"] = _best_gflops(_ort_matmul(threads, size), size, seconds)
    except ImportError:
        pass  # onnxruntime is optional
    return {k: round(v, 2) for k, v in found.items()}
