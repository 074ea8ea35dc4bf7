"""Check `bench plan`'s cost model against finished runs of different sizes, each leaving itself out.

    python scripts/cost_model_check.py SUITE1 RUN_DIR1 SUITE2 RUN_DIR2 SUITE3 RUN_DIR3 [--json FILE]

Each RUN_DIR is a `bench run` of its SUITE from an empty artifact cache. For every run, the cost model
(bench/run/cost_model.py) is fitted to the *other* runs' run.json only, and `bench plan`'s estimate for that
run's suite, with every artifact to build, is compared with the run's measured wall time. Prints a
Markdown table of each run's size, its wall time per stage (share of the whole) and the estimate's
error; `--json` also writes the numbers. Nothing is built or measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.data.load import load_task_data
from bench.plan import make_plan
from bench.run.bill import fmt_duration, make_bill
from bench.spec.suite import load_suite
from bench.store.results import RUN_FILE

TRAINING = {"teacher_finetune": "teacher", "teacher_logits": "logits", "student_distill": "student"}


def stage_shares(run: dict) -> dict[str, float]:
    """Wall seconds of the run by part: each training stage, the other builds, measuring, the rest."""
    stages = run["stages"]
    parts = {label: stages[name]["wall_s"] for name, label in TRAINING.items() if name in stages}
    parts["other builds"] = sum(s["wall_s"] for n, s in stages.items() if n not in TRAINING and n != "measure")
    parts["measure"] = stages["measure"]["wall_s"]
    parts["overhead"] = run["wall_s"] - sum(s["wall_s"] for s in stages.values())
    return parts


def leave_one_out(suite_path: Path, run_dir: Path, others: list[Path]) -> tuple[float, dict]:
    """The estimate (seconds) for `suite_path` from the other runs' history, with an empty cache."""
    suite = load_suite(suite_path)
    plan = make_plan(suite, str(suite_path))
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, other in enumerate(others):
            dest = root / "history" / f"{other.parent.name}-{i}" / other.name
            dest.mkdir(parents=True)
            shutil.copy(other / RUN_FILE, dest / RUN_FILE)
        e = make_bill(suite, plan, data, root / "empty-cache", root / "history").estimate
    if e is None:
        raise SystemExit(f"{run_dir}: no other run on this host to fit the cost model to")
    return e.total_s, {"training_s": e.training_s, "builds_s": e.builds_s, "measure_s": e.measure_s,
                       "overhead_s": e.overhead_s, "runs": e.runs, "train_rows": len(data.splits["train"]),
                       "eval_rows": len(data.splits["validation"]), "variants": len(plan.variants)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", help="SUITE RUN_DIR, repeated (at least two runs)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    if len(args.pairs) % 2 or len(args.pairs) < 4:
        ap.error("give SUITE RUN_DIR pairs, at least two")
    pairs = [(Path(s), Path(r)) for s, r in zip(args.pairs[::2], args.pairs[1::2], strict=True)]
    out = []
    for suite_path, run_dir in pairs:
        run = json.loads((run_dir / RUN_FILE).read_text())
        others = [r for _, r in pairs if r != run_dir]
        estimate, parts = leave_one_out(suite_path, run_dir, others)
        out.append({"run": str(run_dir), "suite": str(suite_path), "wall_s": run["wall_s"], "stages": stage_shares(run),
                    "estimate_s": round(estimate, 1), "error_pct": round(100 * (estimate / run["wall_s"] - 1), 1),
                    **{k: round(v, 1) if isinstance(v, float) else v for k, v in parts.items()}})
    labels = list(dict.fromkeys(k for r in out for k in r["stages"]))
    print("| run | train rows | eval rows | variants | wall | " + " | ".join(labels) +
          " | estimate (fitted to the other runs) | error |")
    print("|---" * (7 + len(labels)) + "|")
    for r in out:
        shares = [f"{fmt_duration(r['stages'][k])} ({100 * r['stages'][k] / r['wall_s']:.0f} %)"
                  if k in r["stages"] else "—" for k in labels]
        print(f"| {Path(r['run']).name} | {r['train_rows']:,} | {r['eval_rows']} | {r['variants']} | "
              f"{fmt_duration(r['wall_s'])} | " + " | ".join(shares) +
              f" | {fmt_duration(r['estimate_s'])} | {r['error_pct']:+.1f} % |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
