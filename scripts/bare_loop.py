"""An independent timing loop, with no bench code anywhere near the clock: plain onnxruntime or
plain torch on a model folder, fixed (batch, seq_len) inputs, prints the p50 in ms.

    python scripts/bare_loop.py ARTIFACT_DIR --batch 1 --seq-len 64 --threads 2 --iterations 500

ARTIFACT_DIR holds model.onnx (onnxruntime) or config.json + model.safetensors (torch eager);
--runtime picks one when both are there. Inputs: token id 5 everywhere, token types 0, and an
attention mask that is all ones, or ones for the first --lengths[i] positions of row i (padding
changes the work: transformers skips the mask when nothing is padded). The session/threads set-up
is the one bench uses (ORT: all graph optimisations, sequential, inter-op 1; torch:
inference_mode, inter-op 1), so the two timings measure the same thing.
`scripts/timing_agreement.py` compares this with bench's grid cell.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def inputs(batch: int, seq_len: int, lengths: list[int]):
    import numpy as np

    lengths = [min(seq_len, lengths[i % len(lengths)]) for i in range(batch)] if lengths else [seq_len] * batch
    mask = (np.arange(seq_len)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    return {"input_ids": np.full((batch, seq_len), 5, dtype=np.int64), "attention_mask": mask,
            "token_type_ids": np.zeros((batch, seq_len), dtype=np.int64)}


def onnx_call(model_dir: Path, feed: dict, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    feed = {i.name: feed[i.name] for i in session.get_inputs()}
    return lambda: session.run(None, feed)


def torch_call(model_dir: Path, feed: dict, threads: int):
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True).eval()
    feed = {k: torch.from_numpy(v) for k, v in feed.items()}

    def call():
        with torch.inference_mode():
            return model(**feed).logits

    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--runtime", choices=["onnx", "pytorch"], default=None, help="default: onnx if model.onnx exists")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--lengths", default="", help="real tokens per row, e.g. 8,32,19 (cycled); default: no padding")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the p50 line")
    a = p.parse_args()
    runtime = a.runtime or ("onnx" if (a.model_dir / "model.onnx").is_file() else "pytorch")
    feed = inputs(a.batch, a.seq_len, [int(n) for n in a.lengths.split(",") if n])
    call = (onnx_call if runtime == "onnx" else torch_call)(a.model_dir, feed, a.threads)

    # ---- the timed core: nothing but the call between two clock reads
    for _ in range(a.warmup):
        call()
    times = []
    for _ in range(a.iterations):
        t0 = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    p50 = statistics.median(times)
    # ----

    if a.json:
        print(json.dumps({"runtime": runtime, "batch": a.batch, "seq_len": a.seq_len, "threads": a.threads,
                          "n": len(times), "p50_ms": p50}))
    else:
        print(f"p50_ms {p50:.4f} ({runtime}, batch {a.batch}, seq_len {a.seq_len}, threads {a.threads}, "
              f"n {len(times)})")


if __name__ == "__main__":
    main()
