"""Where a variant's time goes: per-operator time from the runtime's own profiler, by op type and kind.

ONNX Runtime: a second session on the same model with `enable_profiling` (the profiler slows every
call, so the timed session never has it on), the kernel events (`cat: Node`, `*_kernel_time`) of the
profiled calls summed per op type. PyTorch: `torch.profiler` (CPU activities) around the same calls,
self time per operator. OpenVINO: its performance counters (PERF_COUNT) on a second compilation, per
executed layer type and kernel precision. All after warmup, at batch 1 over the real dev stream. TensorRT
per-layer time needs an IProfiler and is not wired: its rows have no profile.

Each op type has a kind, which is what explains a compression step:

- `int8 matmul`: integer compute (QLinearMatMul, MatMulInteger, DynamicQuantizeMatMul, QAttention,
  quantized::linear_dynamic, ...)
- `quantize/dequantize`: conversions between float and int8 (QuantizeLinear, DequantizeLinear,
  DynamicQuantizeLinear, aten::quantize_per_tensor, ...)
- `fused`: ONNX Runtime contrib ops a fusion made (Attention, SkipLayerNormalization, FastGelu,
  BiasGelu, FusedMatMul, EmbedLayerNormalization, ...) and PyTorch's fused attention
  (aten::_scaled_dot_product_*)
- `float matmul`: MatMul/Gemm, aten::addmm/mm/bmm/matmul
- `other`: everything else (elementwise, reshapes, softmax, layer norm left unfused, ...)

`python -m bench.child.op_profile SPEC.json OUT.json` profiles one variant in its own process (what
`bench profile` runs).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench.schema.op_kinds import kind_of


def summarise(total_ms: dict[str, float], counts: dict[str, int], calls: int, source: str) -> dict:
    """Row fields from summed ms and node counts per op type over `calls` inferences."""
    kernel = sum(total_ms.values())
    ops = [{"op": op, "kind": kind_of(op), "ms_per_inference": round(ms / calls, 5),
            "share_pct": round(100 * ms / kernel, 2) if kernel else 0.0,
            "nodes_per_inference": round(counts.get(op, 0) / calls, 2)}
           for op, ms in sorted(total_ms.items(), key=lambda kv: -kv[1])]
    return {"op_profile": ops, "op_profile_kernel_ms": round(kernel / calls, 5), "op_profile_calls": calls,
            "op_profile_source": source}


def profile_onnx(runtime, stream: list, calls: int, warmup: int = 5) -> dict:
    import onnxruntime as ort

    from bench.backends.onnx.runtime import session_options

    options = session_options(runtime.session_options["intra_op_num_threads"])
    with tempfile.TemporaryDirectory(prefix="bench-ortprof-") as tmp:
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(runtime.model_path), options, providers=runtime.providers)
        for i in range(warmup + calls):
            session.run(None, stream[i % len(stream)])
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    since = runs[-calls] if len(runs) >= calls else 0  # the profiled calls, not the warmup
    total, counts = defaultdict(float), defaultdict(int)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= since:
            op = e["args"]["op_name"]
            total[op] += e["dur"] / 1e3  # µs -> ms
            counts[op] += 1
    return summarise(total, counts, calls, f"onnxruntime profiler ({runtime.providers[0]})")


def profile_torch(runtime, stream: list, calls: int, warmup: int = 5) -> dict:
    from torch.profiler import ProfilerActivity, profile

    for i in range(warmup):
        runtime.run(stream[i % len(stream)])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(calls):
            runtime.run(stream[i % len(stream)])
    total, counts = {}, {}
    for event in prof.key_averages():
        if event.self_cpu_time_total > 0:
            total[event.key] = event.self_cpu_time_total / 1e3
            counts[event.key] = event.count
    return summarise(total, counts, calls, "torch.profiler (CPU self time)")


def profile_openvino(runtime, stream: list, calls: int, warmup: int = 5) -> dict:
    """OpenVINO's performance counters: a second compilation with PERF_COUNT on (same threads, hint and
    inference precision), real time per executed layer summed by layer type and the precision its kernel ran
    at (`FullyConnected (i8)`: the plugin's fused layers, not the IR's ops)."""
    from bench.backends.openvino.runtime import compile_for

    compiled, _ = compile_for(runtime.core, runtime.model_path, runtime.device, runtime.threads, runtime.precision,
                              "LATENCY", PERF_COUNT=True)
    request = compiled.create_infer_request()
    for i in range(warmup):
        request.infer(stream[i % len(stream)], share_inputs=True)
    total, counts = defaultdict(float), defaultdict(int)
    for i in range(calls):
        request.infer(stream[i % len(stream)], share_inputs=True)
        for layer in request.get_profiling_info():  # this call's counters
            if str(layer.status).endswith(".EXECUTED"):
                op = f"{layer.node_type} ({layer.exec_type.rsplit('_', 1)[-1].lower()})"  # brgemm_avx512_I8 -> i8
                total[op] += layer.real_time.total_seconds() * 1e3
                counts[op] += 1
    return summarise(total, counts, calls, f"openvino performance counters ({runtime.device})")


def profile_runtime(runtime, stream: list, calls: int) -> dict:
    """The op profile of a loaded CPU runtime (bench.backends.runtime), or {} where none is wired (GPU, TensorRT)."""
    if runtime.name == "onnxruntime" and runtime.providers[0] == "CPUExecutionProvider":
        return profile_onnx(runtime, stream, calls)
    if runtime.name == "pytorch" and runtime.device.type == "cpu":
        return profile_torch(runtime, stream, calls)
    if runtime.name == "openvino":
        return profile_openvino(runtime, stream, calls)
    return {}


def profile_spec(spec, runtime, tokenizer, stream: list) -> dict:
    """The profile `spec.measure.op_profile` asks for: batch 1 over the dev stream, or every call on
    `batch` dev examples padded to `seq_len` tokens (a grid cell's shape)."""
    cfg = spec.measure.op_profile
    if cfg.batch > 1 or cfg.seq_len:
        texts = spec.eval_sets[0].split().texts
        cell = texts.take([i % len(texts) for i in range(cfg.batch)])
        length = cfg.seq_len or spec.max_length
        stream = [runtime.prepare(cell.encode(tokenizer, truncation=True, max_length=length, padding="max_length"))]
    out = profile_runtime(runtime, stream, cfg.calls)
    if out:
        out["op_profile_shape"] = f"{cfg.batch}x{cfg.seq_len}" if cfg.batch > 1 or cfg.seq_len else "dev-stream-bs1"
    return out


def main(argv: list[str]) -> int:
    from bench.common.lifetime import die_with_parent
    from bench.measure.stream import load_stream
    from bench.schema.child import ChildSpec
    from bench.spec.suite import OpProfileConfig

    die_with_parent()
    spec = ChildSpec.model_validate_json(Path(argv[0]).read_bytes())
    if spec.measure.op_profile is None:
        spec.measure.op_profile = OpProfileConfig()
    runtime, tokenizer, _, stream, _ = load_stream(spec)
    result = profile_spec(spec, runtime, tokenizer, stream)
    tmp = Path(argv[1]).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
