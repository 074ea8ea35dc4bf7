#!/usr/bin/env bash
# One command that verifies every GPU row (docs/gpu.md): environment report, the GPU-marked tests, a tiny-model
# suite with every GPU variant and scenario, checks on its rows, one Markdown verdict. About 10 minutes.
# On a machine without a CUDA GPU it says so in one line and exits 0.
#
#   bash scripts/gpu_check.sh [OUT_DIR]        (default gpu-check/; PYTHON=... picks the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False): nothing to check"
    exit 0
fi

OUT="$(realpath -m "${1:-gpu-check}")"
mkdir -p "$OUT"
VERDICT="$OUT/verdict.md"
export BENCH_CACHE_DIR="$OUT/artifacts" BENCH_RESULTS_DIR="$OUT/results"

# 1. The environment: torch's CUDA, ORT's providers in a torch-free process (as the measuring child sees
#    them), TensorRT, NVML's device, and the install mismatches bench plan would name.
"$PY" - > "$OUT/environment.md" <<'EOF'
import json, subprocess, sys
import torch
print(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
ort = subprocess.run([sys.executable, "-c", "import json, onnxruntime as o; print(json.dumps([o.__version__, "
                      "o.get_available_providers(), 'torch' in __import__('sys').modules]))"],
                     capture_output=True, text=True)
print(f"- onnxruntime (torch-free process): {ort.stdout.strip() or ort.stderr.strip().splitlines()[-1:]}")
try:
    import tensorrt
    print(f"- tensorrt {tensorrt.__version__}")
except ImportError as e:
    print(f"- tensorrt: not importable ({e})")
try:
    import pynvml
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    print(f"- NVML: driver {pynvml.nvmlSystemGetDriverVersion()}, {pynvml.nvmlDeviceGetMemoryInfo(h).total >> 20} MiB")
except Exception as e:  # noqa: BLE001
    print(f"- NVML: unavailable ({type(e).__name__}: {e})")
from bench.backends import probes
lines = [line for group in probes.gpu_mismatches().values() for line in group]
print("- install mismatches: " + ("none" if not lines else "; ".join(lines)))
print(f"- onnxruntime distributions: {', '.join(probes.ort_distributions()) or 'none'}")
EOF

# 2. The GPU-marked tests (each backend through the real child).
set +e
timeout 240 "$PY" -m pytest -q -m "gpu or tensorrt" -p no:cacheprovider > "$OUT/pytest.log" 2>&1
PYTEST_RC=$?
set -e

# 3. A tiny-model suite with every GPU variant and scenario; the ORT TensorRT provider is a suite-wide
#    setting (measure.ort_gpu_provider), so its rows come from a second suite.
write_suite() {  # NAME PROVIDER SCENARIOS VARIANTS...
    local name=$1 provider=$2 scenarios=$3
    shift 3
    {
        echo "name: $name"
        echo "task: sst2"
        echo "seed: 7"
        echo "data: {source: glue-tsv, path: $PWD/tests/fixtures/sst2, max_train_samples: 400, max_eval_samples: 128, max_length: 64}"
        echo "teacher: {source: 'tiny:layers=2,hidden=64,heads=2,intermediate=128,vocab=2000', finetune: {epochs: 2, lr: 2.0e-3, batch_size: 32}}"
        echo "variants:"
        for v in "$@"; do echo "  - $v"; done
        echo "quantize: {calibrators: [minmax], calibration_samples: 100}"
        echo "measure:"
        echo "  threads: [1]"
        echo "  warmup: 5"
        echo "  min_iterations: 50"
        echo "  min_seconds: 0.5"
        echo "  timeout_s: 300"
        echo "  ort_gpu_provider: $provider"
        echo "  grid: {batch_sizes: [1, 8, 64], seq_lens: [16, 64], min_iterations: 10, min_seconds: 0.1}"
        echo "  offline: {batch_sizes: [1, 64], sort_by_length: true}"
        if [ -n "$scenarios" ]; then echo "$scenarios"; fi
    } > "$OUT/$name.yaml"
}
# Interleave for every row; the Server scenario (batching up to 64) on the two fastest candidates.
ACROSS="  interleave: {rounds: 6, calls_per_round: 50}
  server: {target_qps: [100], duration_s: 5, p99_bound_ms: 100, batching: [{max_batch: 1}, {max_batch: 64, max_wait_ms: 2}],
           variants: [teacher-tensorrt-fp16-cuda-t1, teacher-onnx-fp16-cuda-t1]}"
write_suite gpu-check cuda "$ACROSS" \
    "{model: teacher, format: pytorch, precision: [fp32, fp16, bf16], device: cuda}" \
    "{model: teacher, format: onnx, precision: [fp32, fp16], device: cuda}" \
    "{model: teacher, format: onnx, precision: [fp32, fp16], graph: optimized, device: cuda}" \
    "{model: teacher, format: tensorrt, precision: [fp32, fp16, int8], device: cuda}"
write_suite gpu-check-ort-trt tensorrt "" \
    "{model: teacher, format: pytorch, precision: fp32, device: cuda}" \
    "{model: teacher, format: onnx, precision: [fp32, fp16], device: cuda}"

RUNS=()
for name in gpu-check gpu-check-ort-trt; do
    limit=$([ "$name" = gpu-check ] && echo 240 || echo 90)
    "$PY" -m bench plan "$OUT/$name.yaml" > "$OUT/$name.plan.txt" 2>&1 || true
    set +e
    timeout "$limit" "$PY" -m bench run "$OUT/$name.yaml" > "$OUT/$name.run.log" 2>&1
    set -e
    run_dir=$(ls -td "$OUT/results/$name"/*/ 2>/dev/null | head -1 || true)
    RUNS+=("$name=${run_dir}")
done

# 4. Checks on the rows, and the verdict.
"$PY" - "$VERDICT" "$OUT" "$PYTEST_RC" "${RUNS[@]}" <<'EOF'
import json, sys
from pathlib import Path

verdict, out, pytest_rc, runs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
checks = []  # (ok, what)

def check(ok, what):
    checks.append((bool(ok), what))

check(pytest_rc == 0, f"pytest -m 'gpu or tensorrt' exit code {pytest_rc} (pytest.log)")
rows = {}
for item in runs:
    name, _, run_dir = item.partition("=")
    path = Path(run_dir) / "results.jsonl"
    if not run_dir or not path.is_file():
        check(False, f"{name}: no results.jsonl ({name}.run.log)")
        continue
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[(name, row["variant_id"])] = row
    planned = (out / f"{name}.plan.txt").read_text()
    check("skip " not in planned, f"{name}: no variant skipped by the plan ({name}.plan.txt)")

for (suite, vid), row in sorted(rows.items()):
    ok = row.get("status") == "ok"
    check(ok, f"{suite} {vid}: status {row.get('status')} {row.get('error') or ''}".strip())
    if not ok:
        continue
    if row["format"] == "onnx":
        want = "TensorrtExecutionProvider" if suite.endswith("ort-trt") else "CUDAExecutionProvider"
        check((row.get("providers") or [None])[0] == want, f"{suite} {vid}: provider {row.get('providers')} (want {want})")
    check(row.get("gpu_nvml_used_peak_mb") is not None or row.get("gpu_max_memory_allocated_mb") is not None,
          f"{suite} {vid}: GPU memory fields present")
    diff = row.get("parity_max_abs_diff")
    bound = 0.5 if "int8" in row["precision"] else 0.05
    check(diff is None or diff <= bound, f"{suite} {vid}: parity max |Δlogit| {diff} <= {bound}")

main = {vid: row for (suite, vid), row in rows.items() if suite == "gpu-check" and row.get("status") == "ok"}
def p50(fmt, precision):
    return next((r["latency_p50_ms"] for r in main.values() if r["format"] == fmt and r["precision"] == precision), None)
trt16, pt32 = p50("tensorrt", "fp16"), p50("pytorch", "fp32")
check(trt16 is not None and pt32 is not None and trt16 < pt32,
      f"TensorRT fp16 p50 {trt16} ms < PyTorch fp32 p50 {pt32} ms on cuda")
trt8 = p50("tensorrt", "int8")
check(trt8 is not None, f"TensorRT int8 p50 {trt8} ms vs fp16 {trt16} ms (recorded, not judged)")

failed = [w for ok, w in checks if not ok]
lines = [f"# GPU check: {'PASS' if not failed else 'FAIL'} ({len(checks) - len(failed)}/{len(checks)} checks)", "",
         "## Environment", "", (out / "environment.md").read_text(), "## Checks", ""]
lines += [f"- {'ok  ' if ok else 'FAIL'} {w}" for ok, w in checks]
lines += ["", "## Latency (p50 ms, batch 1)", "", "| suite | variant | p50 ms | speedup vs PyTorch fp32 |", "|---|---|---|---|"]
lines += [f"| {s} | {v} | {r.get('latency_p50_ms')} | {r.get('speedup_vs_reference')} |"
          for (s, v), r in sorted(rows.items()) if r.get("status") == "ok"]
verdict.write_text("\n".join(lines) + "\n")
print(f"gpu_check: {'PASS' if not failed else 'FAIL'}: {verdict}")
sys.exit(1 if failed else 0)
EOF
