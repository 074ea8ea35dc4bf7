"""Run-to-run stability of bench's latency: run the same suite N times and compare the p50s.

    python scripts/stability.py suites/stability.yaml --runs 5 --results-dir results --run-id-prefix stab

Each run is `bench run SUITE --results-dir DIR --run-id PREFIX-N` in a subprocess, one after the
other (the parent only waits). Afterwards it prints, per variant, the SingleStream p50 of every
run, the CV (stdev / mean) of those p50s across runs (the run-to-run spread; the goal is <= 5 %),
and the within-run `latency_cv` of each run (the spread of the single calls inside one run, which
on the real dev stream is mostly the spread of sentence lengths, not noise).

`--check-cache` builds nothing and measures nothing: it resolves every artifact the suite needs
against the cache and exits 1 naming the first one that would have to be built (trained,
exported or quantized). Run it before a timed study so a study never trains by accident.
Existing run ids are resumed by bench (rows already measured are kept), so use a fresh prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def check_cache(suite_path: Path, results_dir: Path) -> int:
    sys.path.insert(0, str(REPO))
    from bench.build.pipeline import build_all
    from bench.data.load import load_task_data
    from bench.plan import make_plan
    from bench.spec.suite import load_suite
    from bench.store.artifacts import ArtifactStore

    def refuse(self, name, build, work_dir):
        raise SystemExit(f"check-cache: {name} is not in the cache under {self.root}: `bench run` would build it")

    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # bench logs each "reuse <artifact>"
    ArtifactStore._run_build = refuse
    suite = load_suite(suite_path)
    plan = make_plan(suite, str(suite_path))
    data = load_task_data(suite.data, suite.task, suite.seed)
    store = ArtifactStore(results_dir / "artifacts")
    for seed in suite.training_seeds:
        built = build_all(suite, plan, data, store, seed)
        for stage, info in built.stages.items():
            print(f"{stage:40s} {info['artifact']:45s} {'reuse' if info['reused'] else 'BUILT'}")
    print("check-cache: every artifact is reused")
    return 0


def watch_parent(proc: subprocess.Popen, every_s: float = 1.0) -> tuple[float, float]:
    """Wait for `bench run`, and once a second read its CPU time (psutil): the CPU seconds the
    bench parent used during the seconds in which a measuring worker child was alive at both ends
    of the interval, and those seconds. Measures whether the parent competes with the child."""
    import psutil

    parent = psutil.Process(proc.pid)
    cpu_s = wall_s = 0.0
    last = None  # (cpu, time) at the previous sample, when a worker was alive then
    while proc.poll() is None:
        try:
            kids = [c for c in parent.children() if "bench.child.worker" in " ".join(c.cmdline())]
            t = parent.cpu_times()
            now = (t.user + t.system, time.monotonic())
        except psutil.Error:
            kids, now = [], None
        if kids and now and last:
            cpu_s += now[0] - last[0]
            wall_s += now[1] - last[1]
        last = now if kids else None
        try:
            proc.wait(timeout=every_s)
        except subprocess.TimeoutExpired:
            pass
    return cpu_s, wall_s


def read_rows(run_dir: Path) -> dict[str, dict]:
    """The latest row of each variant (of each variant on each target, `<variant>@<target>`, for a cluster run),
    read through bench's one run reader (bench.store.results.open_run)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.common.errors import BenchError
    from bench.store.results import open_run

    try:
        return {row["variant_id"] + (f"@{row['target']}" if row.get("target") else ""): row
                for row in open_run(run_dir).latest()}
    except BenchError as exc:
        raise SystemExit(f"stability: {exc}") from None


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", type=Path)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--results-dir", type=Path, default=Path(os.environ.get("BENCH_RESULTS_DIR", "results")))
    p.add_argument("--run-id-prefix", default="stab")
    p.add_argument("--bench", default=str(Path(sys.executable).with_name("bench")), help="the bench executable")
    p.add_argument("--check-cache", action="store_true", help="only check that no artifact would be built")
    p.add_argument("--report-only", action="store_true", help="do not run, only summarise existing runs")
    p.add_argument("--json", type=Path, help="also write the summary here")
    a = p.parse_args()
    if a.check_cache:
        return check_cache(a.suite, a.results_dir)

    import yaml

    suite_name = yaml.safe_load(a.suite.read_text())["name"]
    run_ids = [f"{a.run_id_prefix}-{i}" for i in range(1, a.runs + 1)]
    for run_id in run_ids if not a.report_only else []:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        load = os.getloadavg()
        print(f"[{started}] bench run {a.suite} --run-id {run_id} (load average {load[0]:.2f} {load[1]:.2f} "
              f"{load[2]:.2f})", flush=True)
        proc = subprocess.Popen([a.bench, "run", str(a.suite), "--results-dir", str(a.results_dir),
                                 "--run-id", run_id])
        cpu_s, wall_s = watch_parent(proc)
        if proc.returncode != 0:
            raise SystemExit(f"bench run exited {proc.returncode}")
        print(f"  bench's parent process while a worker child measured: {cpu_s:.2f} CPU-s over {wall_s:.1f} s "
              f"({100 * cpu_s / max(wall_s, 1e-9):.1f} % of one core)", flush=True)

    per_variant: dict[str, dict[str, list]] = {}
    for run_id in run_ids:
        for vid, row in read_rows(a.results_dir / suite_name / run_id).items():
            if row.get("status") != "ok":
                print(f"{run_id} {vid}: status {row.get('status')}: {row.get('error')}")
                continue
            d = per_variant.setdefault(vid, {"p50_ms": [], "latency_cv": [], "run_ids": []})
            d["p50_ms"].append(row["latency_p50_ms"])
            d["latency_cv"].append(row["latency_cv"])
            d["run_ids"].append(run_id)
    summary = {}
    print(f"\n{'variant':36s} {'p50 per run (ms)':44s} {'mean':>8s} {'CV p50s':>8s}  within-run latency_cv")
    for vid, d in per_variant.items():
        p50s = d["p50_ms"]
        summary[vid] = {**d, "p50_mean_ms": statistics.mean(p50s), "p50_cv": cv(p50s)}
        print(f"{vid:36s} {' '.join(f'{x:.3f}' for x in p50s):44s} {statistics.mean(p50s):8.3f} "
              f"{100 * cv(p50s):7.2f}%  {' '.join(f'{x:.3f}' for x in d['latency_cv'])}")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
