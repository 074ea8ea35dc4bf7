"""Which static INT8 format is fast on this CPU: quantization settings of one ONNX model, measured in
one process in interleaved rounds against its FP32 graph and its dynamic INT8, with dev accuracy.

    BENCH_DATA_DIR=../shared/data python scripts/static_int8_formats.py suites/int8-why.yaml \\
        --results-dir /tmp/why --json /tmp/why/static-formats.json

Builds (or reuses) the suite's student ONNX FP32 (plain and optimized graphs) and dynamic INT8 from the
artifact cache, then quantizes statically with onnxruntime.quantization on the suite's own calibration
examples (300 train sentences, never dev) in each configuration of CONFIGS: QDQ or QOperator, S8 or U8
activations, every MatMul or only those with constant weights (MatMulConstBOnly), per-tensor or
per-channel, the plain or the optimized graph. Every graph is loaded as bench's runtime loads it (all
ORT optimisations, sequential, the suite's threads). Rounds: each session times the same
`--calls` dev examples in turn, order rotating; per round the session's median ms per call; the
speedup over the plain FP32 graph is the per-round ratio's median with its order-statistic interval.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# name -> (graph, quantize_static options); every one calibrated with MinMax on the same examples.
CONFIGS = {
    "qdq-s8s8-all (bench default)": ("plain", {"format": "QDQ", "act": "s8", "const_b_only": False}),
    "qdq-s8s8-weights-only": ("plain", {"format": "QDQ", "act": "s8", "const_b_only": True}),
    "qdq-u8s8-weights-only": ("plain", {"format": "QDQ", "act": "u8", "const_b_only": True}),
    "qdq-s8s8-weights-only-per-channel": ("plain", {"format": "QDQ", "act": "s8", "const_b_only": True,
                                                    "per_channel": True}),
    "qdq-s8s8-weights-only, pre-processed": ("plain", {"format": "QDQ", "act": "s8", "const_b_only": True,
                                                       "pre_process": True}),
    "qoperator-u8s8-weights-only, pre-processed": ("plain", {"format": "QOperator", "act": "u8",
                                                             "const_b_only": True, "pre_process": True}),
    "qdq-s8s8-weights-only on optimized": ("optimized", {"format": "QDQ", "act": "s8", "const_b_only": True}),
}


def quantize(src: Path, out: Path, texts, tokenizer, max_length: int, opts: dict) -> float:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from bench.backends.onnx.quantize import SentenceReader

    names = [i.name for i in ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-static-") as tmp:
        if opts.get("pre_process"):  # ORT's recommended symbolic shape inference + optimisation first
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(src), str(Path(tmp) / "pre.onnx"))
            src = Path(tmp) / "pre.onnx"
        quantize_static(src, out, SentenceReader(tokenizer, texts, names, max_length),
                        op_types_to_quantize=["MatMul", "Attention"],
                        quant_format=QuantFormat.QDQ if opts["format"] == "QDQ" else QuantFormat.QOperator,
                        activation_type=QuantType.QInt8 if opts["act"] == "s8" else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=opts.get("per_channel", False),
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT,
                                       "MatMulConstBOnly": opts["const_b_only"]},
                        calibration_cache_path=Path(tmp) / "calib.cache")
    return time.perf_counter() - t0


def session(path: Path, threads: int):
    from bench.backends.onnx.runtime import OrtRuntime

    return OrtRuntime(path, "cpu", threads).session  # exactly as bench's measuring child loads it


def node_counts(sess_path: Path, threads: int) -> dict:
    """Op types of the graph as ORT runs it (after its load-time optimisations)."""
    import onnx
    import onnxruntime as ort

    from bench.backends.onnx.runtime import session_options

    with tempfile.TemporaryDirectory() as tmp:
        o = session_options(threads)
        o.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(sess_path), o, providers=["CPUExecutionProvider"])
        graph = onnx.load(o.optimized_model_filepath, load_external_data=False).graph
    counts: dict[str, int] = {}
    for n in graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", type=Path)
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument("--cache-dir", type=Path)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--calls", type=int, default=60)
    p.add_argument("--json", type=Path)
    a = p.parse_args()

    from transformers import AutoTokenizer

    from bench.build.compress import Compressor
    from bench.build.pipeline import build_all
    from bench.data.load import load_task_data
    from bench.launch.rounds import median_interval
    from bench.plan import make_plan
    from bench.spec.suite import load_suite
    from bench.store.artifacts import ArtifactStore, cache_root
    from bench.store.envinfo import _cpu

    suite = load_suite(a.suite)
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    store = ArtifactStore(cache_root(a.results_dir, a.cache_dir))
    plan = make_plan(suite, str(a.suite))
    built = build_all(suite, plan, data, store)
    comp = Compressor(suite, data, store)
    student = built.models["student"]
    graphs = {"plain": comp.onnx_export(student).path / "model.onnx",
              "optimized": comp.onnx_optimized(student).path / "model.onnx"}
    threads = suite.measure.threads[0]
    tokenizer = AutoTokenizer.from_pretrained(graphs["plain"].parent)
    texts = comp.calibration_texts()
    work = Path(tempfile.mkdtemp(prefix="bench-static-formats-"))
    models = {"fp32 plain": graphs["plain"], "fp32 optimized": graphs["optimized"],
              "int8-dynamic plain (bench)": comp.onnx_int8_dynamic(student, "plain").path / "model.onnx"}
    build_s = {}
    failed = {}
    for name, (graph, opts) in CONFIGS.items():
        out = work / f"{len(models)}.onnx"
        try:
            build_s[name] = round(quantize(graphs[graph], out, texts, tokenizer, suite.data.max_length, opts), 1)
            models[name] = out
        except Exception as exc:  # noqa: BLE001  (the quantizer's own failures are a result here)
            failed[name] = f"{type(exc).__name__}: {exc}"[:300]
    # Dev accuracy and the stream, tokenised once.
    sentences, labels = list(data.sentences("validation")), np.asarray(data.labels("validation"))
    names = ("input_ids", "attention_mask", "token_type_ids")
    stream = [{k: v for k, v in tokenizer([s], return_tensors="np", truncation=True,
                                          max_length=suite.data.max_length).items() if k in names}
              for s in sentences]
    sessions = {name: session(path, threads) for name, path in models.items()}
    accuracy = {}
    for name, sess in sessions.items():
        inputs = {i.name for i in sess.get_inputs()}
        preds = [int(np.argmax(sess.run(None, {k: v for k, v in x.items() if k in inputs})[0])) for x in stream]
        accuracy[name] = float(np.mean(np.asarray(preds) == labels))
    feeds = {name: [{k: v for k, v in x.items() if k in {i.name for i in s.get_inputs()}} for x in stream]
             for name, s in sessions.items()}
    order = list(sessions)
    per_round = {name: [] for name in order}
    for r in range(a.rounds):
        rotated = order[r % len(order):] + order[: r % len(order)]
        for name in rotated:
            sess, fx = sessions[name], feeds[name]
            times = []
            for i in range(a.calls):
                x = fx[(r * a.calls + i) % len(fx)]
                t0 = time.perf_counter_ns()
                sess.run(None, x)
                times.append((time.perf_counter_ns() - t0) / 1e6)
            per_round[name].append(float(np.median(times)))
    base = np.asarray(per_round["fp32 plain"])
    dyn = np.asarray(per_round["int8-dynamic plain (bench)"])
    rows = []
    for name in order:
        ms = np.asarray(per_round[name])
        up = median_interval(base / ms)
        vs_dyn = median_interval(dyn / ms)
        counts = node_counts(models[name], threads)
        rows.append({"config": name, "p50_ms": round(float(np.median(ms)), 4), "speedup_vs_fp32_plain": up[:3],
                     "speedup_vs_dynamic": vs_dyn[:3], "dev_accuracy": accuracy[name],
                     "build_s": build_s.get(name), "ort_nodes": {k: v for k, v in counts.items() if k in (
                         "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
                         "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMul", "QAttention",
                         "Attention", "MultiHeadAttention", "FusedMatMul", "QGemm", "SkipLayerNormalization",
                         "LayerNormalization", "EmbedLayerNormalization", "BiasGelu", "FastGelu", "Gelu",
                         "Softmax")}})
    cpu = _cpu()
    print(f"Machine: {cpu['model']}, {cpu['logical_cores']} logical cores, flags "
          f"{', '.join(f for f, on in cpu.get('flags', {}).items() if on)}; {threads} threads; "
          f"{a.rounds} rounds x {a.calls} batch-1 dev calls per session; dev {len(labels)} rows\n")
    print("| config | p50 ms | speedup vs fp32 plain [interval] | vs dynamic INT8 [interval] | dev acc % | "
          "nodes ORT runs |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        s, d = r["speedup_vs_fp32_plain"], r["speedup_vs_dynamic"]
        nodes = ", ".join(f"{k} {v}" for k, v in sorted(r["ort_nodes"].items()))
        print(f"| {r['config']} | {r['p50_ms']:.3f} | {s[0]:.2f}× [{s[1]:.2f}, {s[2]:.2f}] | "
              f"{d[0]:.2f}× [{d[1]:.2f}, {d[2]:.2f}] | {100 * r['dev_accuracy']:.2f} | {nodes} |")
    for name, why in failed.items():
        print(f"| {name} | quantizer failed: {why} | | | | |")
    if a.json:
        a.json.write_text(json.dumps({"command": " ".join(sys.argv), "cpu": cpu, "rows": rows, "failed": failed},
                                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
