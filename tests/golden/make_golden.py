"""Regenerate the golden run directories used by tests/test_compare.py and tests/test_check.py.

    python tests/golden/make_golden.py

Rows follow results schema version 1 (field names copied from a real `bench run suites/smoke.yaml` row);
raw latency samples are seeded lognormal draws rounded to 3 decimals, so the output is byte-identical on
every run. Folders:

- baseline/           four CPU variants at 1 thread, seed 42
- regressed_latency/  student-onnx-fp32 20 % slower: every raw sample x1.2
- noise/              every raw sample of every variant x uniform(0.98, 1.02)
- accuracy_drop/      student-onnx-fp32 accuracy 1 point lower
- regressed_p95/      student-onnx-fp32: the slower half of the raw samples x1.15 (p50 +7.5 %, inside the
                      10 % default; p95 +15 %), for `--tolerance latency_p95=10%` (tests/test_gate.py)
- regressed_size/     teacher-onnx-fp32 weights 0.1 MB larger, for `--tolerance size_mb=0`
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_SAMPLES = 200
EVAL_SAMPLES = 200  # 1 accuracy point = 2 eval sentences
PLANTED = "student-onnx-fp32-cpu-t1"  # the variant that carries the planted changes

# variant -> (median latency ms, accuracy, size MB, params, peak RSS MB)
VARIANTS = {
    "teacher-pytorch-fp32-cpu-t1": (8.0, 0.915, 417.7, 109483778, 1210.4),
    "teacher-onnx-fp32-cpu-t1": (5.5, 0.915, 417.9, 109483778, 980.2),
    "student-pytorch-fp32-cpu-t1": (2.5, 0.900, 25.4, 6657026, 520.8),
    "student-onnx-fp32-cpu-t1": (1.5, 0.900, 25.6, 6657026, 410.3),
}


def _r(x: float) -> float:
    return round(float(x), 3)


def _latency_fields(raw: np.ndarray) -> dict:
    raw = np.round(raw, 3)
    p50, p90, p95, p99 = np.percentile(raw, [50, 90, 95, 99])
    mean, stdev = raw.mean(), raw.std(ddof=1)
    return {"first_call_ms": _r(raw.max() * 3), "latency_cv": _r(stdev / mean), "latency_input": "dev-stream-bs1",
            "latency_max_ms": _r(raw.max()), "latency_mean_ms": _r(mean), "latency_min_ms": _r(raw.min()),
            "latency_n": int(raw.size), "latency_p50_ms": _r(p50), "latency_p90_ms": _r(p90),
            "latency_p95_ms": _r(p95), "latency_p99_ms": _r(p99), "latency_raw_ms": [float(x) for x in raw],
            "latency_stdev_ms": _r(stdev)}


def _accuracy_fields(accuracy: float) -> dict:
    # A balanced eval split; errors split evenly between false positives and false negatives.
    errors = EVAL_SAMPLES - round(accuracy * EVAL_SAMPLES)
    fp, fn = errors // 2, errors - errors // 2
    tn, tp = EVAL_SAMPLES // 2 - fp, EVAL_SAMPLES // 2 - fn
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {"accuracy": accuracy, "confusion_matrix": [[tn, fp], [fn, tp]], "eval_samples": EVAL_SAMPLES,
            "f1": _r(2 * precision * recall / (precision + recall)), "precision_score": _r(precision),
            "recall": _r(recall)}


def make_row(run_id: str, variant_id: str, raw: np.ndarray, accuracy: float, size_mb: float | None = None) -> dict:
    _, _, default_size_mb, params, peak_rss = VARIANTS[variant_id]
    size_mb = default_size_mb if size_mb is None else size_mb
    model, fmt, precision, device, threads = variant_id.split("-")
    is_onnx = fmt == "onnx"
    return {
        "schema_version": 1, "run_id": run_id, "suite": "golden", "task": "sst2", "variant_id": variant_id,
        "model": model, "format": fmt, "precision": precision, "device": device, "threads": int(threads[1:]),
        "seed": 42, "status": "ok", "error": None, "artifact": f"{model}-{fmt}-golden",
        "artifact_build_time_s": 1.0, "size_mb": size_mb, "train_dev_accuracy": VARIANTS[variant_id][1],
        "parity_max_abs_diff": 6e-07 if is_onnx else None, "parity_label_agreement": 1.0 if is_onnx else None,
        **_accuracy_fields(accuracy), **_latency_fields(raw),
        "load_time_s": 0.5, "mean_tokens": 25.3, "params": params, "peak_rss_mb": peak_rss,
        "providers": ["CPUExecutionProvider"] if is_onnx else None, "rss_before_load_mb": 380.0,
        "tokenization_timed": False, "measured_at": "2026-01-01T00:00:00+0000", "measure_wall_s": 5.0,
    }


def write_run(name: str, rows: list[dict]) -> None:
    run_dir = HERE / name
    run_dir.mkdir(exist_ok=True)
    run = {"schema_version": 1, "run_id": name, "suite": "golden", "seeds": [42], "status": "finished",
           "planned": [r["variant_id"] for r in rows], "skipped": []}
    (run_dir / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    base_raw = {}
    for i, (variant_id, (median, *_)) in enumerate(VARIANTS.items()):
        rng = np.random.default_rng(1000 + i)
        base_raw[variant_id] = np.round(rng.lognormal(np.log(median), 0.08, N_SAMPLES), 3)
    accuracy = {v: spec[1] for v, spec in VARIANTS.items()}
    wobble = np.random.default_rng(7)

    runs = {
        "baseline": (base_raw, accuracy),
        "regressed_latency": ({v: r * 1.2 if v == PLANTED else r for v, r in base_raw.items()}, accuracy),
        "noise": ({v: r * wobble.uniform(0.98, 1.02, r.size) for v, r in base_raw.items()}, accuracy),
        "accuracy_drop": (base_raw, {v: round(a - 0.01, 3) if v == PLANTED else a for v, a in accuracy.items()}),
    }
    for name, (raw, acc) in runs.items():
        write_run(name, [make_row(name, v, raw[v], acc[v]) for v in VARIANTS])

    # A tail regression the p50 gate passes (+7.5 %) and a p95 tolerance catches; a tiny size growth.
    tail = {v: np.where(r > np.median(r), r * 1.15, r) if v == PLANTED else r for v, r in base_raw.items()}
    write_run("regressed_p95", [make_row("regressed_p95", v, tail[v], accuracy[v]) for v in VARIANTS])
    grown = {"teacher-onnx-fp32-cpu-t1": round(VARIANTS["teacher-onnx-fp32-cpu-t1"][2] + 0.1, 3)}
    write_run("regressed_size", [make_row("regressed_size", v, base_raw[v], accuracy[v], grown.get(v))
                                 for v in VARIANTS])


if __name__ == "__main__":
    main()
