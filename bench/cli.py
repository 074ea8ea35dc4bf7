"""The `bench` command: plan | run | quick | train | tune | report | profile | serve | compare | check | merge |
calibrate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from bench import __version__
from bench.common.errors import BenchError, ParityError


def _cmd_plan(args) -> int:
    from bench.plan import format_plan, make_plan
    from bench.spec.suite import load_suite
    from bench.store.artifacts import cache_root

    suite = load_suite(args.suite)
    plan = make_plan(suite, str(args.suite))
    bill = None
    if plan.variants:  # data is validated (and needed for cache keys) only when something would run
        from bench.data.load import load_task_data
        from bench.run.bill import make_bill

        data = load_task_data(suite.data, suite.task_def, suite.seed)
        results = Path(args.results_dir)
        bill = make_bill(suite, plan, data, cache_root(results, args.cache_dir), results)
    print(format_plan(plan, suite, bill))
    return 0


def _cmd_run(args) -> int:
    from bench.plan import parse_shard
    from bench.run.suite_run import run_suite

    shard = parse_shard(args.shard) if args.shard else None
    run_dir = run_suite(Path(args.suite), Path(args.results_dir), args.run_id, shard, cache_dir=args.cache_dir,
                        cluster=args.cluster)
    print(run_dir)
    status = json.loads((run_dir / "run.json").read_text())["status"]
    return 0 if status == "finished" else 1  # a crashed, timed-out or over-budget variant fails the run


def _cmd_quick(args) -> int:
    from bench.run.quick import SUITE_FILE, run_quick

    run_dir = run_quick(args.model, Path(args.results_dir), args.run_id, cache_dir=args.cache_dir, task=args.task,
                        precisions=args.precision, fmts=args.format, threads=args.threads, data=args.data,
                        max_eval_samples=args.max_eval_samples)
    print(run_dir)
    print(f"reproduce: bench run {run_dir / SUITE_FILE}", file=sys.stderr)
    status = json.loads((run_dir / "run.json").read_text())["status"]
    return 0 if status == "finished" else 1


def _cmd_train(args) -> int:
    from bench.run.suite_run import train_suite

    trained = train_suite(Path(args.suite), Path(args.results_dir), args.model, cache_dir=args.cache_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(trained, indent=1))
    return 0


def _cmd_report(args) -> int:
    from bench.report.write import write_report

    print(write_report([Path(d) for d in args.run_dirs], Path(args.out), args.name, args.profile))
    return 0


def _cmd_profile(args) -> int:
    from bench.run.profile_command import format_profile, profile_variant

    result = profile_variant(Path(args.suite), args.variant, Path(args.results_dir), args.cache_dir, args.calls,
                             args.seed, args.batch, args.seq_len)
    print(format_profile(result, args.top))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def parse_duration(text: str, option: str = "--budget") -> float:
    """Seconds from `90`, `90s`, `30m` or `1.5h`."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise BenchError(f"{option}: expected a duration like 90s, 30m or 1.5h, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _cmd_tune(args) -> int:
    from bench.tune.report import to_markdown
    from bench.tune.search import tune

    budget = parse_duration(args.budget) if args.budget else None
    if args.max_drop is not None and not args.max_drop >= 0:
        raise BenchError(f"--max-drop: expected points >= 0, got {args.max_drop}")
    result = tune(Path(args.suite), args.profile, args.objective, budget, args.max_drop, Path(args.results_dir),
                  args.run_id, args.cache_dir, args.cluster, args.target)
    print(to_markdown(result))
    print(f"tune: {result.run_dir / 'tune.md'}, tune.json" + (", chosen-suite.yaml" if result.chosen else ""))
    return result.exit_code


def _cmd_serve(args) -> int:
    from bench.serve.command import serve_command

    return serve_command(args)


def _cmd_calibrate(args) -> int:
    import platform
    import time

    from bench.common.paths import confined
    from bench.measure.flops import matmul_peak_gflops
    from bench.run.suite_run import CALIBRATION_FILE
    from bench.store.artifacts import write_json_atomic

    by_library = {str(t): matmul_peak_gflops(t, seconds=args.seconds) for t in args.threads}
    peaks = {t: max(found.values()) for t, found in by_library.items()}  # the best this machine can do
    out = confined(Path(args.results_dir), CALIBRATION_FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"host": platform.node(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "method": "best 1024x1024 fp32 matmul of torch and onnxruntime",
                            "fp32_matmul_peak_gflops": peaks, "by_library": by_library})
    for t, found in by_library.items():
        print(f"threads {t}: fp32 matmul peak {peaks[t]} GFLOP/s ({found})")
    print(out)
    return 0


def _cmd_merge(args) -> int:
    from bench.store.merge import merge_runs

    print(merge_runs([Path(d) for d in args.run_dirs], Path(args.output)))
    return 0


def _gate_output(text: str, report, annotations: list[str], args) -> None:
    """compare/check: Markdown on stdout and in $GITHUB_STEP_SUMMARY, --json FILE, --annotations."""
    from bench.gate.json_report import write_json

    print(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # GitHub Actions shows this file on the job page
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if args.json:
        write_json(report, args.json)
    if args.annotations:  # GitHub turns these stdout lines into annotations on the run and the PR
        for line in annotations:
            print(line)


def _cmd_compare(args) -> int:
    from bench.gate.compare import compare_runs, format_markdown, parse_tolerances
    from bench.gate.json_report import compare_annotations, compare_report

    comparison = compare_runs(Path(args.baseline), Path(args.current), parse_tolerances(args.tolerance))
    report = compare_report(comparison, args.fail_on_missing)
    _gate_output(format_markdown(comparison), report, compare_annotations(report), args)
    return report.exit_code


def _cmd_check(args) -> int:
    from bench.gate.check import check_run, format_markdown, load_profile
    from bench.gate.json_report import check_annotations, check_report
    from bench.store.results import open_run

    profile, run_dir = load_profile(args.profile), Path(args.run_dir)
    # A run measured on several cluster targets: one verdict per target (a target is its own decision).
    targets = [args.target] if args.target else open_run(run_dir).targets or [None]
    if len(targets) > 1 and (args.json or args.annotations):
        raise BenchError(f"--json/--annotations: {run_dir} was measured on targets {', '.join(targets)}; "
                         "pass --target for each")
    exit_code, judged = 0, 0
    for target in targets:
        try:
            result = check_run(run_dir, profile, args.variant or None, target=target)
        except BenchError as exc:  # this target has no row the profile judges; the others are judged
            if len(targets) == 1:
                raise
            print(f"## Edge check: target `{target}`: nothing judged: {exc}\n")
            continue
        judged += 1
        report = check_report(result)
        _gate_output(format_markdown(result), report, check_annotations(report), args)
        exit_code = max(exit_code, result.exit_code)
    if not judged:
        raise BenchError(f"{run_dir}: no target has rows profile {profile.name} judges")
    return exit_code


def _log_options(default) -> argparse.ArgumentParser:
    """-v/-q as a parent parser. The subcommands' copies default to SUPPRESS, so `bench -v run x` keeps
    the top-level value instead of the subparser resetting it to False."""
    opts = argparse.ArgumentParser(add_help=False)
    opts.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")
    opts.add_argument("-q", "--quiet", action="store_true", default=default,
                      help="only warnings and errors from bench")
    return opts


class _SubcommandParser(argparse.ArgumentParser):
    """Every subcommand (present and future) also takes -v/-q, so they work anywhere on the line."""

    def __init__(self, *args, parents=(), **kwargs):
        super().__init__(*args, parents=[*parents, _log_options(argparse.SUPPRESS)], **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__, parents=[_log_options(False)])
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    p = sub.add_parser("plan", help="print the variants a suite would measure (and those skipped), what it would "
                                    "build per seed (cached or not), the rows and an estimated wall time")
    p.add_argument("suite", type=Path)
    p.add_argument("--results-dir", default=os.environ.get("BENCH_RESULTS_DIR", "results"),
                   help="results root; its earlier runs give the time estimate (default: results, or "
                        "$BENCH_RESULTS_DIR)")
    p.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR") or None,
                   help="artifact cache folder, e.g. one CI keeps between runs "
                        "(default: $BENCH_CACHE_DIR, else <results-dir>/artifacts)")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("run", help="build every artifact and measure every variant of a suite")
    p.add_argument("suite", type=Path)
    p.add_argument("--results-dir", default=os.environ.get("BENCH_RESULTS_DIR", "results"),
                   help="results root (default: results, or $BENCH_RESULTS_DIR)")
    p.add_argument("--run-id", help="name of the run directory; an existing one is resumed")
    p.add_argument("--shard", metavar="I/N", help="measure only shard I of N (deterministic), e.g. for a CI matrix")
    p.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR") or None,
                   help="artifact cache folder, e.g. one CI keeps between runs "
                        "(default: $BENCH_CACHE_DIR, else <results-dir>/artifacts)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="a Ray cluster (host:port, or auto): build once, measure on each of the suite's "
                        "cluster.targets (docs/cluster.md); default: here, in this process")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("quick", help="measure a model you already have (hub id, folder, .onnx) in one line; "
                                     "writes the suite it ran into the run folder")
    p.add_argument("model", help="a fine-tuned checkpoint: hub id, local folder, package:<module>, or an ONNX "
                                 "file / optimum folder")
    p.add_argument("--task", default="sst2", help="the GLUE task the model was fine-tuned for (default: sst2)")
    p.add_argument("--precision", nargs="+", default=None, metavar="P",
                   help="precisions besides fp32, e.g. int8-dynamic int8-static")
    p.add_argument("--format", nargs="+", default=None, choices=["pytorch", "onnx"],
                   help="formats (default: pytorch onnx; an ONNX model: onnx)")
    p.add_argument("--threads", nargs="+", type=int, default=None,
                   help="intra-op threads, one variant each (default 2)")
    p.add_argument("--data", default=None, help="folder holding <task>/ in GLUE layout (default: $BENCH_DATA_DIR, "
                                                "else the hub)")
    p.add_argument("--max-eval-samples", type=int, default=None, help="first N dev rows (default: all)")
    p.add_argument("--results-dir", default=os.environ.get("BENCH_RESULTS_DIR", "results"))
    p.add_argument("--run-id", help="name of the run directory (default: a timestamp)")
    p.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR") or None,
                   help="artifact cache folder (default: $BENCH_CACHE_DIR, else <results-dir>/artifacts)")
    p.set_defaults(func=_cmd_quick)

    p = sub.add_parser("train", help="build only the trained models (teacher, students); runs under torchrun "
                                     "/ accelerate launch for DDP")
    p.add_argument("suite", type=Path)
    p.add_argument("--results-dir", default=os.environ.get("BENCH_RESULTS_DIR", "results"))
    p.add_argument("--model", action="append", help="only this model and what it needs (repeatable)")
    p.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR") or None,
                   help="artifact cache folder, e.g. one CI keeps between runs "
                        "(default: $BENCH_CACHE_DIR, else <results-dir>/artifacts)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("report", help="one report (index.md, index.html, PNGs, CSV) over one or more run directories")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", default="reports", help="reports root (default: reports)")
    p.add_argument("--name", help="report folder name (default: the run ids joined by '+')")
    p.add_argument("--profile", help="the profile the decision block at the top judges (a bench check profile "
                                     "name or YAML file; default: the suite's `profile:`)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("profile", help="where one variant's time goes, per operator (ONNX Runtime / PyTorch "
                                       "profiler, batch 1 over the dev stream); builds what it needs")
    p.add_argument("suite", type=Path)
    p.add_argument("variant", help="a variant id of the suite, e.g. student-onnx-int8-static-minmax-cpu-t2")
    p.add_argument("--calls", type=int, default=200, help="profiled batch-1 calls (default 200)")
    p.add_argument("--batch", type=int, default=1, help="examples per call (default 1: the dev stream)")
    p.add_argument("--seq-len", type=int, help="pad/cut every example to this many tokens (a grid cell's shape)")
    p.add_argument("--seed", type=int, help="the training seed of the models (default: the suite's first)")
    p.add_argument("--top", type=int, default=25, help="ops to list (default 25)")
    p.add_argument("--json", metavar="FILE", help="also write the profile as JSON")
    p.add_argument("--results-dir", default=os.environ.get("BENCH_RESULTS_DIR", "results"))
    p.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR") or None,
                   help="artifact cache folder (default: $BENCH_CACHE_DIR, else <results-dir>/artifacts)")
    p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("tune", help="search the suite's space for the fastest (or smallest) variant that keeps the "
                                    "metric within a bar of the teacher (bootstrap interval) and fits a profile")
    p.add_argument("suite", type=Path)
    p.add_argument("--profile", required=True, help="a bench check profile (edge-cpu-1t, server-cpu, ...) or a YAML "
                                                    "file: its budgets and its threads/device")
    p.add_argument("--objective", choices=["latency_p50", "latency_p95", "size", "samples_per_s"],
                   help="what to minimise (samples_per_s: maximise); default: tune.objective, else latency_p50")
    p.add_argument("--budget", help="wall time for the search, e.g. 30m (checked before each candidate)")
    p.add_argument("--max-drop", type=float, help="max drop of the task's metric vs the teacher, points x100; "
                                                  "default: tune.max_drop_pts, the profile's, else 1.0")
    p.add_argument("--run-id", help="the run directory's name (default tune-<time>); an existing one resumes")
    p.add_argument("--results-dir", default=os.environ.get("BENCH_RESULTS_DIR", "results"))
    p.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR") or None,
                   help="artifact cache folder (default: $BENCH_CACHE_DIR, else <results-dir>/artifacts)")
    p.add_argument("--cluster", metavar="ADDRESS", help="a Ray cluster (host:port, or auto): measure the candidates "
                                                        "in parallel on one cluster target's nodes (docs/cluster.md)")
    p.add_argument("--target", help="with --cluster: the suite's cluster target to tune for (needed when it has "
                                    "several)")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("serve", help="serve one variant over HTTP (POST /predict, GET /health) on 127.0.0.1, "
                                     "with optional dynamic batching")
    p.add_argument("target", help="a `bench run` directory (with --variant), or a model folder")
    p.add_argument("--variant", help="the variant id to serve from the run directory")
    p.add_argument("--seed", type=int, help="the training seed, when the run measured several")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=1, help="texts per forward pass (default 1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="how long a batch waits for more requests after its first (default 0)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: as measured; a model folder: 1)")
    p.add_argument("--max-body-bytes", type=int, default=2**20, help="largest request body (default 1 MiB)")
    p.add_argument("--max-texts", type=int, default=256, help="most texts in one request (default 256)")
    p.add_argument("--max-queue", type=int, default=1024, help="texts waiting before 503 (default 1024)")
    p.add_argument("--format", choices=["pytorch", "onnx", "tensorrt"], help="a model folder: its format "
                   "(default: from its files)")
    p.add_argument("--precision", default="fp32", help="a model folder: the precision to load (default fp32)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="a model folder: the device")
    p.add_argument("--max-length", type=int, default=128, help="a model folder: max tokens (default 128)")
    p.add_argument("--pair", action="store_true", help="a model folder: the task takes sentence pairs")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("calibrate", help="measure this machine's fp32 matmul peak; later runs show %% of it")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=2.0, help="per thread count")
    p.add_argument("--results-dir", default=os.environ.get("BENCH_RESULTS_DIR", "results"))
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("merge", help="combine run directories (e.g. shards from several machines) into one")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("-o", "--output", required=True, help="the merged run directory to write")
    p.set_defaults(func=_cmd_merge)

    p = sub.add_parser("compare", help="regression gate: baseline vs current run (exit 1 on regression)")
    p.add_argument("baseline")
    p.add_argument("current")
    p.add_argument("--tolerance", action="append", default=[], metavar="METRIC=N%|Npt|0",
                   help="repeatable; defaults speedup=10%% (where both runs have interleaved rounds, else "
                        "latency_p50=10%%) and accuracy=0.5pt; other metrics (latency_p95=10%%, "
                        "size_mb=0, peak_rss_mb=5%%, gflops_per_s=5%%, ...) are judged only when given")
    p.add_argument("--fail-on-missing", action="store_true",
                   help="also exit 1 when a current variant failed, a baseline variant is missing, "
                        "or nothing was compared")
    p.add_argument("--json", metavar="FILE", help="also write the comparison as JSON (docs/compare.schema.json)")
    p.add_argument("--annotations", action="store_true",
                   help="also print GitHub annotations (::error per regression or failed variant, ::warning per note)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("check", help="edge-readiness budgets for a run (exit 1 if a variant fails)",
                       description="Judge a run's rows against a profile's budgets. Accuracy drops are shown as "
                                   "point [paired bootstrap 95 percent interval] and pass when the interval's "
                                   "upper end is within the budget: the rule bench tune and the report's decision "
                                   "use.")
    p.add_argument("run_dir")
    p.add_argument("--profile", required=True,
                   help="a shipped profile (edge-cpu-1t, server-cpu, gpu-t4-like) or a YAML file")
    p.add_argument("--variant", action="append",
                   help="variant_id to judge (repeatable); default: every row the profile selects")
    p.add_argument("--target", help="judge the rows of this cluster target (`bench run --cluster`); default: each "
                                    "target of the run apart")
    p.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON (docs/check.schema.json)")
    p.add_argument("--annotations", action="store_true",
                   help="also print GitHub annotations (::error per failed variant, ::warning per unmeasured budget)")
    p.set_defaults(func=_cmd_check)
    return parser


# Every character str.splitlines() breaks on: user text (a path, a YAML value) must not break the line.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def one_line(exc: BaseException) -> str:
    return "".join(c.encode("unicode_escape").decode() if c in _LINE_BREAKS else c for c in str(exc))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose and args.quiet:
        print("bench: error: -v/--verbose and -q/--quiet cannot be used together", file=sys.stderr)
        return 2
    if os.environ.get("BENCH_OFFLINE", "") not in ("", "0"):
        # Make the Hugging Face libraries refuse the network too, not only bench's own checks.
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.setdefault(var, "1")
    # Our own progress at INFO; libraries (the ORT quantizer logs every tensor at INFO) at WARNING.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("bench").setLevel(
        logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
    try:
        return args.func(args)
    except BenchError as exc:
        print(f"bench: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except ParityError as exc:
        print(f"bench: parity check failed: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; rerun the same command (with --run-id) to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
