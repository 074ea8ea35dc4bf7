"""`bench report RUN_DIR`: reports/<run-id>/index.md from results files only (works on results
produced on another machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.results import RESULTS_FILE, RUN_FILE, load_results

COLUMNS = {
    "model": "model", "format": "format", "precision": "precision", "graph": "graph", "device": "device",
    "threads": "threads",
    "params_m": "params (M)", "size_mb": "size MB", "accuracy_pct": "accuracy %", "delta_pts": "Δ vs teacher (pts)",
    "retained_pct": "% of teacher", "latency_p50_ms": "p50 ms", "latency_p90_ms": "p90 ms",
    "speedup": "speedup vs teacher pytorch fp32", "parity_max_abs_diff": "parity max |Δlogit|",
    "parity_label_agreement": "label agreement",
}


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """One line per measured variant, with accuracy and speed relative to the teacher PyTorch FP32."""
    ok = df[df["status"] == "ok"].copy()
    for col in ("parity_max_abs_diff", "parity_label_agreement"):
        ok[col] = ok[col] if col in ok else float("nan")
    # "int8-static" alone is ambiguous: name the calibrator.
    ok["precision"] = [f"{p}-{c}" if c else p for p, c in zip(ok["precision"], ok["calibration"], strict=True)]
    base = ok[(ok["model"] == "teacher") & (ok["format"] == "pytorch") & (ok["precision"] == "fp32")]
    teacher_acc = base["accuracy"].iloc[0] if len(base) else float("nan")
    # Speed is compared at the same device and thread count, measured in the same run.
    base_p50 = base.set_index(["device", "threads"])["latency_p50_ms"]
    ok["params_m"] = ok["params"] / 1e6
    ok["accuracy_pct"] = ok["accuracy"] * 100
    ok["delta_pts"] = (ok["accuracy"] - teacher_acc) * 100
    ok["retained_pct"] = ok["accuracy"] / teacher_acc * 100
    ok["speedup"] = [base_p50.get((d, t), float("nan")) / p for d, t, p in
                     zip(ok["device"], ok["threads"], ok["latency_p50_ms"], strict=True)]
    order = ["device", "threads", "model", "format", "precision"]
    ok = ok.sort_values(order, ascending=[True, True, False, False, True], kind="stable")  # teacher, pytorch first
    return ok[list(COLUMNS)].rename(columns=COLUMNS)


def _markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".3g", missingval="—")


def write_report(run_dir: Path, out_root: Path = Path("reports")) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS_FILE).is_file():
        raise BenchError(f"{run_dir}: no {RESULTS_FILE} (is this a run directory?)")
    df = load_results(run_dir)
    if df.empty:
        raise BenchError(f"{run_dir / RESULTS_FILE}: no complete rows")
    run = json.loads((run_dir / RUN_FILE).read_text()) if (run_dir / RUN_FILE).is_file() else {}
    run_id = run.get("run_id", run_dir.name)
    out_dir = out_root / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    env = run.get("environment", {})
    lines = [f"# {run.get('suite', '?')} — run {run_id}", ""]
    if env:
        cpu = env.get("cpu", {})
        lines += [f"Machine: {cpu.get('model')} ({cpu.get('logical_cores')} logical cores), "
                  f"{env.get('memory_gb')} GB, Python {env.get('python')}; "
                  f"torch {env['versions'].get('torch')}, transformers {env['versions'].get('transformers')}, "
                  f"onnxruntime {env['versions'].get('onnxruntime')}; git {env.get('git_sha')}.", ""]
    if "data" in run:
        d = run["data"]
        lines += [f"Data: {d['origin']} (train {d['train_rows']} rows, eval {d['eval_rows']} rows).", ""]
    lines += ["## Variants", "", _markdown(summarise(df)), "",
              "Latency: batch 1 over the real dev sentences (tokenisation not timed), after warmup. "
              "Accuracy: the whole eval split through the variant's own runtime.", ""]
    failed = df[df["status"] != "ok"]
    if len(failed):
        lines += ["## Failed variants", ""]
        lines += [f"- {r.variant_id}: {r.status}: {r.error}" for r in failed.itertuples()] + [""]
    if run.get("skipped"):
        lines += ["## Skipped variants", ""] + [f"- {s['variant']}: {s['reason']}" for s in run["skipped"]] + [""]
    if run.get("stages"):
        lines += ["## Stage wall times", "", "| stage | wall s | built in s | reused |", "|---|---|---|---|"]
        for name, s in run["stages"].items():
            lines.append(f"| {name} | {s.get('wall_s')} | {s.get('build_time_s', '')} | {s.get('reused', '')} |")
        lines.append("")
    path = out_dir / "index.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)
    return path
