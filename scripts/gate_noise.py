"""The noise floor of the `bench compare` gate: false positives on an unchanged tree, and how small a
planted slowdown it catches.

    python scripts/gate_noise.py --suite suites/gate-noise.yaml --results-dir results/gate-noise --pairs 10

1. Two calibration runs (`PREFIX-cal0/1`, not counted; the first also builds the suite's artifacts)
   give the reference variant's p50 (the lower of the two); each `--slowdowns` percentage of it becomes
   a planted slowdown in ms.
2. Rounds 0..PAIRS-1 each run the suite unchanged (`PREFIX-uNN`) and once per planted slowdown
   (`PREFIX-sP-NN`, with BENCH_TEST_SLOWDOWN_MS, the worker's test-only busy-wait after every timed
   call), in a seeded random order within the round; one more unchanged run closes the last round.
   Every run is `bench run` in a subprocess, one at a time; a finished run id is not run again, so an
   interrupted study resumes.
3. False positives: unchanged run NN vs unchanged run NN+1 (PAIRS pairs, each a round apart, like a
   stored baseline and a later PR), judged by each gate of GATES: the default (the interleaved
   speedup over the reference at 10 %, when the suite sets measure.interleave), the speedup at 0 %
   (the Mann-Whitney test on the rounds alone decides), the p50 at 10 % and 0 %, the p95 at 10 %.
   Detection: unchanged run NN vs planted run NN of the same round, by the same gates. Counted per
   variant (its verdict on the gate's metric) and per pair (any variant regressed on it). The planted
   busy-wait slows every variant's own measurement and its rounds, never the reference's rounds.

The planted ms is one number for the whole run, so it is a different share of each variant's p50:
the report gives each variant's effective slowdown (planted ms / its median unchanged p50) and the
p50 ratio actually measured. Prints Markdown; `--json FILE` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.gate.compare import compare_runs, parse_tolerances  # noqa: E402
from bench.measure.stream import SLOWDOWN_ENV  # noqa: E402
from bench.store.envinfo import _cpu  # noqa: E402
from bench.store.results import read_rows  # noqa: E402

RUN_RECORD = "gate_noise_run.json"
# gate -> (tolerances given to compare, the metric whose verdict is counted)
GATES = {"speedup 10% (default)": ([], "speedup"), "speedup 0%": (["speedup=0%"], "speedup"),
         "p50 10%": (["latency_p50=10%"], "latency_p50"), "p50 0%": (["latency_p50=0%"], "latency_p50"),
         "p95 10%": (["latency_p95=10%"], "latency_p95")}
DETECT = ("speedup 10% (default)", "speedup 0%", "p50 10%", "p50 0%")  # the gates the detection table shows


def run_dir(args, run_id: str) -> Path:
    return Path(args.results_dir) / args.suite_name / run_id


def bench_run(args, run_id: str, slowdown_ms: float) -> dict:
    """`bench run` in a subprocess (skipped when that run id already finished); load and wall time,
    kept next to the run (RUN_RECORD) so that a rerun of the study reports them too."""
    info, record = run_dir(args, run_id) / "run.json", run_dir(args, run_id) / RUN_RECORD
    if info.is_file() and json.loads(info.read_text()).get("status") == "finished":
        return json.loads(record.read_text()) if record.is_file() else {"run_id": run_id, "slowdown_ms": slowdown_ms}
    env = {k: v for k, v in os.environ.items() if k != SLOWDOWN_ENV}
    if slowdown_ms:
        env[SLOWDOWN_ENV] = f"{slowdown_ms:g}"
    load0, t0 = os.getloadavg()[0], time.monotonic()
    cmd = [sys.executable, "-m", "bench.cli", "run", args.suite, "--results-dir", args.results_dir, "--run-id", run_id]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    wall = time.monotonic() - t0
    print(f"{run_id}: {wall:.0f} s, planted {slowdown_ms:g} ms, load {load0:.2f} -> {os.getloadavg()[0]:.2f}",
          file=sys.stderr, flush=True)
    out = {"run_id": run_id, "slowdown_ms": slowdown_ms, "wall_s": round(wall, 1), "load1_before": load0,
           "load1_after": os.getloadavg()[0]}
    record.write_text(json.dumps(out) + "\n")
    return out


def p50s(args, run_id: str) -> dict[str, float]:
    return {r["variant_id"]: r["latency_p50_ms"] for r in read_rows(run_dir(args, run_id)) if r["status"] == "ok"}


def speedups(args, run_id: str) -> dict[str, float]:
    return {r["variant_id"]: r["speedup_vs_reference"] for r in read_rows(run_dir(args, run_id))
            if r["status"] == "ok" and r.get("speedup_vs_reference")}


def inputs(args, run_id: str) -> set[str]:
    return {r.get("latency_input") for r in read_rows(run_dir(args, run_id))}


def judge(args, base: str, cur: str) -> dict[str, dict]:
    """gate -> {"exit": 0|1 (a variant regressed on the gate's metric), "variants": {variant_id: verdict}}."""
    out = {}
    for gate, (tolerances, metric) in GATES.items():
        c = compare_runs(run_dir(args, base), run_dir(args, cur), parse_tolerances(tolerances))
        d = c.details[c.details["metric"] == metric]
        verdicts = {v.rsplit(" seed=", 1)[0]: verdict for v, verdict in zip(d["variant"], d["verdict"], strict=True)}
        out[gate] = {"exit": int("regressed" in verdicts.values()), "variants": verdicts}
    return out


def study(args) -> dict:
    cals = [f"{args.prefix}-cal{n}" for n in range(2)]
    runs = [bench_run(args, cal, 0.0) for cal in cals]
    ref_p50 = min(p50s(args, cal)[args.reference] for cal in cals)  # the less disturbed of two
    sizes = {pct: round(ref_p50 * pct / 100, 4) for pct in args.slowdowns}
    schedule = []
    for i in range(args.pairs):
        jobs = [(f"{args.prefix}-u{i:02d}", 0.0)]
        jobs += [(f"{args.prefix}-s{pct:g}-{i:02d}", ms) for pct, ms in sizes.items()]
        random.Random(1000 + i).shuffle(jobs)
        schedule += jobs
    schedule.append((f"{args.prefix}-u{args.pairs:02d}", 0.0))
    for run_id, ms in schedule:
        runs.append(bench_run(args, run_id, ms))

    unchanged = [f"{args.prefix}-u{i:02d}" for i in range(args.pairs + 1)]
    for run_id in unchanged:
        assert inputs(args, run_id) == {"dev-stream-bs1"}, run_id
    base_p50 = {v: statistics.median(p50s(args, u)[v] for u in unchanged) for v in p50s(args, unchanged[0])}
    false_pos = [judge(args, unchanged[i], unchanged[i + 1]) for i in range(args.pairs)]
    detection = {}
    for pct, ms in sizes.items():
        pairs = []
        for i in range(args.pairs):
            planted = f"{args.prefix}-s{pct:g}-{i:02d}"
            assert inputs(args, planted) == {f"dev-stream-bs1+planted-{ms:g}ms"}, planted  # the row says so
            ratios = {v: p / p50s(args, unchanged[i])[v] for v, p in p50s(args, planted).items()}
            up = {v: x / speedups(args, unchanged[i])[v] for v, x in speedups(args, planted).items()}
            pairs.append({**judge(args, unchanged[i], planted), "p50_ratio": ratios, "speedup_ratio": up})
        detection[pct] = {"ms": ms, "effective_pct": {v: 100 * ms / p for v, p in base_p50.items()}, "pairs": pairs}
    cpu = _cpu()
    return {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": {
                "cpu": cpu["model"], "logical_cores": cpu["logical_cores"], "physical_cores": cpu["physical_cores"],
                "platform": platform.platform()},
            "suite": args.suite, "pairs": args.pairs, "reference": args.reference, "reference_p50_ms": ref_p50,
            "median_p50_ms": base_p50, "unchanged_p50_ms": {u: p50s(args, u) for u in unchanged},
            "unchanged_speedup": {u: speedups(args, u) for u in unchanged},
            "false_positives": false_pos, "detection": detection, "runs": runs}


def _rate(items: list[str]) -> str:
    return f"{sum(v == 'regressed' for v in items)}/{len(items)}"


def report(res: dict) -> str:
    variants = sorted(res["median_p50_ms"])
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['logical_cores']} logical / {m['physical_cores']} physical cores "
             f"({m['platform']}). Suite {res['suite']}, {res['pairs']} pairs.", "",
             "False positives, unchanged tree (run NN vs NN+1): regressed variants / comparisons, "
             "failed pairs (exit 1) / pairs", "", "| gate | " + " | ".join(variants) + " | all variants | pairs |",
             "|---" * (len(variants) + 3) + "|"]
    for gate in GATES:
        per = [[fp[gate]["variants"].get(v) for fp in res["false_positives"]] for v in variants]
        exits = sum(fp[gate]["exit"] for fp in res["false_positives"])
        lines.append(f"| {gate} | " + " | ".join(_rate(p) for p in per) +
                     f" | {_rate([x for p in per for x in p])} | {exits}/{len(res['false_positives'])} |")
    spreads = [("p50 ms", "unchanged_p50_ms"), ("speedup ×", "unchanged_speedup")]
    lines += ["", "Run-to-run spread over the unchanged runs (what a tolerance has to absorb)", "",
              "| variant | metric | min | median | max | CV | largest change run NN -> NN+1 |",
              "|---|---|---|---|---|---|---|"]
    for v in variants:
        for label, key in spreads:
            xs = [p[v] for p in (res.get(key) or {}).values() if v in p]
            if len(xs) < 2:
                continue
            steps = [b / a - 1 for a, b in zip(xs, xs[1:], strict=False)]
            lines.append(f"| {v} | {label} | {min(xs):.4g} | {statistics.median(xs):.4g} | {max(xs):.4g} | "
                         f"{100 * statistics.stdev(xs) / statistics.mean(xs):.1f} % | "
                         f"{100 * max(steps, key=abs):+.1f} % |")
    lines += ["", "Planted slowdowns caught (the gate's metric regressed) / pairs; effective slowdown = planted ms / "
              "the variant's median unchanged p50; measured = median ratio planted/unchanged of the p50 and of the "
              "speedup", "",
              "| planted | variant | effective | p50 ratio | speedup ratio | " + " | ".join(DETECT) + " |",
              "|---" * (5 + len(DETECT)) + "|"]
    smallest: dict[tuple[str, str], float] = {}
    for pct, det in sorted(res["detection"].items(), key=lambda kv: float(kv[0])):
        for v in variants:
            eff = det["effective_pct"][v]
            measured = statistics.median(p["p50_ratio"][v] for p in det["pairs"])
            ups = [p["speedup_ratio"][v] for p in det["pairs"] if v in p.get("speedup_ratio", {})]
            cells = []
            for gate in DETECT:
                verdicts = [p[gate]["variants"].get(v) for p in det["pairs"]]
                cells.append(_rate(verdicts))
                if all(x == "regressed" for x in verdicts):
                    smallest[(v, gate)] = min(smallest.get((v, gate), float("inf")), eff)
            up = f"{statistics.median(ups):.3f}×" if ups else "—"
            lines.append(f"| {float(pct):g} % of ref = {det['ms']:g} ms | {v} | {eff:.1f} % | {measured:.3f}× | "
                         f"{up} | " + " | ".join(cells) + " |")
    lines += ["", "Smallest planted slowdown caught in every pair:", ""]
    for v in variants:
        got = [f"{gate}: " + (f"{smallest[(v, gate)]:.1f} %" if (v, gate) in smallest else "none of those planted")
               for gate in DETECT]
        lines.append(f"- {v} (p50 {res['median_p50_ms'][v]:.4g} ms): " + "; ".join(got))
    loads = [r["load1_before"] for r in res["runs"] if "load1_before" in r]
    walls = [r["wall_s"] for r in res["runs"] if "wall_s" in r]
    if loads:
        lines += ["", f"1-minute load average at run starts: median {statistics.median(loads):.2f}, "
                      f"max {max(loads):.2f}; {len(walls)} runs, {sum(walls) / 60:.0f} min."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="suites/gate-noise.yaml")
    p.add_argument("--results-dir", default="results/gate-noise")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--slowdowns", type=lambda s: [float(x) for x in s.split(",")], default=[5.0, 10.0, 20.0],
                   help="planted slowdowns in %% of the reference variant's p50 (default 5,10,20)")
    p.add_argument("--reference", default="student-onnx-fp32-cpu-t1", help="variant whose p50 sizes the slowdowns")
    p.add_argument("--prefix", default="gn", help="run id prefix (a finished run id is reused)")
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args(argv)
    import yaml

    args.suite_name = yaml.safe_load(Path(args.suite).read_text())["name"]
    args.suite, args.results_dir = str(Path(args.suite).resolve()), str(Path(args.results_dir).resolve())
    res = study(args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    print(report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
